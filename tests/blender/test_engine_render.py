"""The "One-Shot Avatar" render engine in real Blender against a real backend on loopback
(started by the driver, tests/test_blender_engine.py): F12 writes what the backend's own render
gives for the same pose and camera (compared by the driver), Render Animation writes one file
per frame, two avatars are ordered by the depth pass (a multilayer EXR the driver reads), a
scene with no avatar is transparent, a backend that is down ends F12 and Render Animation with
a clear error in bounded time."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from rig_support import camera_view, key_arm_swing, render_still, scene_camera

from conftest import closed_port_url, driver_server, env_path, import_avatar, use_backend

WIDTH, HEIGHT = 64, 80


def _use_server(url=None) -> None:
    """The driver's server (no token), or ``url``; a short timeout."""
    use_backend(url or driver_server()[0], timeout_s=5.0)


def _camera(scene, rig_z: float) -> bpy.types.Object:
    return scene_camera(scene, (0.2, -4.5, rig_z - 0.3),
                        (math.radians(88.0), 0.0, math.radians(2.0)), lens=40.0)


def _engine_scene(scene, folder) -> None:
    scene.render.engine = "ONESHOT_AVATAR"
    scene.render.resolution_x, scene.render.resolution_y = WIDTH * 2, HEIGHT * 2
    scene.render.resolution_percentage = 50
    scene.render.film_transparent = True
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.filepath = str(folder) + os.sep


@pytest.fixture()
def posed(addon, empty_scene, tmp_path):
    _use_server()
    scene = empty_scene
    rig = import_avatar(env_path("ONESHOT_AVATAR_TEST_PACKAGE"))
    key_arm_swing(rig, range(1, 6), (-0.8, -0.4, 0.0, 0.4, 0.8))
    _camera(scene, rig.location.z)
    scene.frame_start, scene.frame_end = 1, 5
    scene.frame_set(2)
    _engine_scene(scene, tmp_path / "frames")
    return scene, rig


def _out() -> str:
    return str(env_path("ONESHOT_AVATAR_TEST_OUT"))


def test_f12_matches_the_backends_own_render(posed):
    from oneshot_avatar.preferences import connection_config

    from oneshot_avatar import render_ops

    scene, rig = posed
    scene.render.filepath = os.path.join(_out(), "f12.png")
    bpy.ops.render.render(write_still=True)
    assert os.path.isfile(os.path.join(_out(), "f12.png"))
    # The backend's own render of the same pose and camera (what Preview Frame sends).
    request = render_ops.build_render_request(bpy.context, rig, [scene.frame_current])
    client = connection_config().client()
    avatar, package = render_ops.avatar_on_rig(rig)
    request["avatar"] = render_ops.ensure_avatar(client, avatar, package, rig.name,
                                                 render_ops.upload_cache())
    request["background"] = None
    request["format"] = "png"
    with open(os.path.join(_out(), "reference.png"), "wb") as handle:
        handle.write(client.render(request))


def test_render_animation_writes_one_file_per_frame(posed, tmp_path):
    scene, _rig = posed
    bpy.ops.render.render(animation=True)
    names = sorted(os.listdir(tmp_path / "frames"))
    assert names == [f"{frame:04d}.png" for frame in range(1, 6)], names
    first = bpy.data.images.load(str(tmp_path / "frames" / "0001.png"))
    last = bpy.data.images.load(str(tmp_path / "frames" / "0005.png"))
    assert tuple(first.size) == (WIDTH, HEIGHT)  # resolution x percentage
    a, b = np.empty(WIDTH * HEIGHT * 4, np.float32), np.empty(WIDTH * HEIGHT * 4, np.float32)
    first.pixels.foreach_get(a)
    last.pixels.foreach_get(b)
    assert a.reshape(-1, 4)[:, 3].max() > 0.5 and np.abs(a - b).max() > 0.2  # the arm moves
    # The animation asked for its frames ahead in one request; each is the frame's own pose:
    # F12 at frame 4 alone gives the same picture as the animation's 0004.png.
    scene.frame_set(4)
    scene.render.filepath = str(tmp_path / "single_0004.png")
    bpy.ops.render.render(write_still=True)
    alone = bpy.data.images.load(str(tmp_path / "single_0004.png"))
    batched = bpy.data.images.load(str(tmp_path / "frames" / "0004.png"))
    c, d = np.empty_like(a), np.empty_like(a)
    alone.pixels.foreach_get(c)
    batched.pixels.foreach_get(d)
    assert np.abs(c - d).max() <= 2 / 255 and np.abs(c - a).max() > 0.2


def test_two_avatars_write_a_depth_pass(addon, empty_scene, tmp_path):
    _use_server()
    scene = empty_scene
    near = import_avatar(env_path("ONESHOT_AVATAR_TEST_PACKAGE"))
    far = import_avatar(env_path("ONESHOT_AVATAR_TEST_PACKAGE_2"))
    near.location.y -= 1.0  # 1 m closer to the camera (which looks along +Y)
    near.location.x += 0.05
    far.location.x -= 0.05
    _camera(scene, near.location.z)
    _engine_scene(scene, tmp_path)
    scene.view_layers[0].use_pass_z = True
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5: multilayer is a media type
        settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"
    scene.render.image_settings.color_depth = "32"
    scene.render.image_settings.exr_codec = "NONE"
    for name, hidden in (("both.exr", ()), ("near.exr", (far,)), ("far.exr", (near,))):
        for rig in (near, far):
            rig.hide_render = rig in hidden
            for child in rig.children:
                child.hide_render = rig in hidden
        scene.render.filepath = os.path.join(_out(), name)
        bpy.ops.render.render(write_still=True)
        assert os.path.isfile(os.path.join(_out(), name))


def test_a_scene_without_avatars_renders_transparent(addon, empty_scene, tmp_path):
    _use_server()
    scene = empty_scene
    _camera(scene, 1.0)
    _engine_scene(scene, tmp_path)
    scene.render.filepath = str(tmp_path / "empty.png")
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(tmp_path / "empty.png"))
    pixels = np.empty(WIDTH * HEIGHT * 4, np.float32)
    image.pixels.foreach_get(pixels)
    assert tuple(image.size) == (WIDTH, HEIGHT) and pixels.reshape(-1, 4)[:, 3].max() == 0


def test_backend_down_fails_clearly_in_bounded_time(posed, tmp_path, capfd):
    _scene, _rig = posed
    _use_server(closed_port_url())
    started = time.monotonic()
    message = ""
    try:
        bpy.ops.render.render(animation=True)
    except RuntimeError as error:  # Blender raises the engine's error report
        message = str(error)
    elapsed = time.monotonic() - started
    captured = capfd.readouterr()
    message += captured.out + captured.err
    assert elapsed < 15, elapsed
    assert "One-Shot Avatar: frame 1" in message and "127.0.0.1" in message, message
    folder = tmp_path / "frames"
    assert not folder.exists() or not os.listdir(folder)  # nothing written, render stopped
    assert "frame 2" not in message  # the animation stopped at the first failed frame
    print(f"backend down: reported after {elapsed:.2f} s: {message.strip()[:300]}")


def test_set_up_avatar_compositing_puts_the_avatar_into_a_cycles_set(addon, empty_scene,
                                                                     tmp_path):
    """The operator's composite in one F12 of the set scene (Cycles): the avatar is drawn over
    the set's background, a box nearer the camera hides the avatar behind it, the background
    elsewhere is the set's."""
    _use_server()
    scene = empty_scene
    rig = import_avatar(env_path("ONESHOT_AVATAR_TEST_PACKAGE"))
    _camera(scene, rig.location.z)
    _engine_scene(scene, tmp_path)
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    scene.render.film_transparent = False
    scene.world = bpy.data.worlds.new("set")
    scene.world.color = (0.0, 0.5, 0.0)
    bpy.ops.mesh.primitive_cube_add(size=0.3, location=(0.2, -3.0, rig.location.z - 0.3))
    box = bpy.context.active_object
    material = bpy.data.materials.new("box")  # glowing red, whatever the lighting
    if not material.node_tree:  # Blender 5 makes materials with nodes
        material.use_nodes = True
    principled = material.node_tree.nodes["Principled BSDF"]
    principled.inputs["Emission Color"].default_value = (1.0, 0.0, 0.0, 1.0)
    principled.inputs["Emission Strength"].default_value = 5.0
    box.data.materials.append(material)
    bpy.context.view_layer.objects.active = rig
    assert bpy.ops.oneshot_avatar.setup_compositing() == {"FINISHED"}
    avatars = bpy.data.scenes[scene.name + " Avatars"]
    assert avatars.render.engine == "ONESHOT_AVATAR" and avatars.camera == scene.camera
    assert scene.compositing_node_group is not None and scene.render.use_compositing
    # Running it again updates the same scene and node group (no duplicates).
    assert bpy.ops.oneshot_avatar.setup_compositing() == {"FINISHED"}
    assert sum(s.name.startswith(scene.name + " Avatars") for s in bpy.data.scenes) == 1
    scene.render.filepath = os.path.join(_out(), "composite.png")
    bpy.ops.render.render(write_still=True)
    # The set alone, and the avatars alone, for the driver to compare with.
    scene.render.use_compositing = False
    scene.render.filepath = os.path.join(_out(), "set.png")
    bpy.ops.render.render(write_still=True)
    avatars.render.filepath = os.path.join(_out(), "avatars.png")
    avatars.view_settings.view_transform = "Standard"
    avatars.render.image_settings.file_format = "PNG"
    avatars.render.image_settings.color_mode = "RGBA"
    bpy.ops.render.render(write_still=True, scene=avatars.name)
    scene.render.engine = "ONESHOT_AVATAR"  # run in the avatars' own kind of scene: refused
    with pytest.raises(RuntimeError, match="scene that renders the set"):
        bpy.ops.oneshot_avatar.setup_compositing()


def test_viewport_request_from_a_camera_view_matches_f12(posed, tmp_path):
    """The Rendered viewport's request path (drawing needs a GPU window, which background
    Blender lacks): looking through the scene camera, the view and projection matrices Blender
    gives the 3D view produce the frame F12 renders."""
    from oneshot_avatar.core.colors import linear_to_srgb
    from oneshot_avatar.preferences import connection_config
    from oneshot_avatar.render_engine import viewport_work

    scene, rig = posed
    f12 = render_still(scene, tmp_path / "f12.png", WIDTH, HEIGHT)

    depsgraph, view, window = camera_view(scene, WIDTH, HEIGHT)
    key, work = viewport_work(connection_config(), depsgraph, view, window, WIDTH, HEIGHT)
    frame = work()
    alpha = frame.combined[..., 3]
    assert np.abs(alpha - f12[..., 3]).max() < 3 / 255
    solid = alpha > 0.5
    colour = linear_to_srgb(frame.combined[..., :3][solid] / alpha[solid][:, None])
    assert solid.sum() > 50 and np.abs(colour - f12[..., :3][solid]).mean() < 2 / 255
    # The same view and pose is the same request; a new pose is a new one.
    assert viewport_work(connection_config(), depsgraph, view, window, WIDTH, HEIGHT)[0] == key
    rig.pose.bones["left_elbow"].rotation_quaternion = (0.8, 0.0, 0.6, 0.0)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    assert viewport_work(connection_config(), depsgraph, view, window, WIDTH, HEIGHT)[0] != key


def _png_pixels(path) -> np.ndarray:
    image = bpy.data.images.load(str(path), check_existing=False)
    pixels = np.empty(image.size[0] * image.size[1] * 4, np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return pixels


def test_a_package_rewritten_on_disk_is_rendered_anew(addon, empty_scene, tmp_path):
    import shutil

    _use_server()
    scene = empty_scene
    package = tmp_path / "person.avatar"
    shutil.copy(env_path("ONESHOT_AVATAR_TEST_PACKAGE"), package)
    rig = import_avatar(package)
    _camera(scene, rig.location.z)
    _engine_scene(scene, tmp_path)
    scene.render.filepath = str(tmp_path / "before.png")
    bpy.ops.render.render(write_still=True)
    again = tmp_path / "again.png"
    scene.render.filepath = str(again)
    bpy.ops.render.render(write_still=True)
    assert np.abs(_png_pixels(again) - _png_pixels(tmp_path / "before.png")).max() == 0
    shutil.copy(env_path("ONESHOT_AVATAR_TEST_PACKAGE_2"), package)  # another avatar, same path
    scene.render.filepath = str(tmp_path / "after.png")
    bpy.ops.render.render(write_still=True)
    assert np.abs(_png_pixels(tmp_path / "after.png")
                  - _png_pixels(tmp_path / "before.png")).max() > 0.2
