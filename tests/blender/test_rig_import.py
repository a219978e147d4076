"""Importing a .avatar in real Blender: the rig's layout, the driven point cloud matching the
backend's posing (mean error <= 1 mm), and bad packages reported without leftovers.

Run by tests/test_blender_rig.py, which builds the package and the expected posings with the
backend and passes them in $ONESHOT_AVATAR_RIG_PACKAGE and $ONESHOT_AVATAR_RIG_EXPECTED."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.core.colors import linear_to_srgb
from rig_support import (
    datablock_counts,
    env_path,
    evaluated_positions,
    fresh_scene,
    scene_camera,
)

from zip_members import rewrite_zip


@pytest.fixture()
def package_path():
    return env_path("ONESHOT_AVATAR_RIG_PACKAGE")


@pytest.fixture()
def expected():
    with np.load(env_path("ONESHOT_AVATAR_RIG_EXPECTED")) as data:
        return {key: data[key] for key in data.files}


def _import(path):
    """Import through the add-on's operator into an empty scene; returns (rig, splats)."""
    fresh_scene()
    assert bpy.ops.oneshot_avatar.import_avatar(filepath=str(path)) == {"FINISHED"}
    rig = bpy.context.view_layer.objects.active
    return rig, rig["oneshot_avatar_splats"]


def test_import_builds_the_rig_and_the_splats(addon, package_path):
    from blender_addon.core.package import read_avatar_package
    from blender_addon.core.smplx_rig import BONE_NAMES, JOINT_NAMES, bone_parent

    package = read_avatar_package(package_path)
    rig, splats = _import(package_path)
    assert rig.type == "ARMATURE" and rig.name == f"{package_path.stem}_rig"
    assert splats.name == f"{package_path.stem}_splats" and splats.parent == rig
    bones = rig.data.bones
    assert sorted(b.name for b in bones) == sorted(BONE_NAMES)
    for j, name in enumerate(JOINT_NAMES):
        bone = bones[name]
        assert bone.parent.name == bone_parent(name)
        np.testing.assert_allclose(np.array(bone.matrix_local.to_3x3()), np.eye(3), atol=1e-6)
        np.testing.assert_allclose(bone.head_local, package.rest_joints[j], atol=1e-6)
        assert rig.pose.bones[name].rotation_mode == "QUATERNION"
    # Armature space is SMPL-X's Y-up world: SMPL-X +Y (up) is Blender +Z, SMPL-X +Z is -Y.
    np.testing.assert_allclose(np.array(rig.matrix_world.to_3x3()),
                               [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-6)
    mesh = splats.data
    assert len(mesh.vertices) == package.count
    for name, domain_type in (("splat_color", "FLOAT_COLOR"), ("opacity", "FLOAT"),
                              ("scale", "FLOAT_VECTOR"), ("rot", "FLOAT_COLOR")):
        assert mesh.attributes[name].data_type == domain_type
        assert mesh.attributes[name].domain == "POINT"
    colors = np.empty(4 * package.count, np.float32)
    mesh.attributes["splat_color"].data.foreach_get("color", colors)
    srgb = package.colors.copy()
    srgb[:, :3] = linear_to_srgb(colors.reshape(-1, 4)[:, :3])  # stored scene-linear
    np.testing.assert_allclose(srgb, package.colors, atol=1e-5)
    assert [m.type for m in splats.modifiers] == ["ARMATURE", "NODES"]
    assert splats.modifiers[0].object == rig
    assert sorted(g.name for g in splats.vertex_groups) == sorted(JOINT_NAMES)
    first = {splats.vertex_groups[g.group].name: g.weight for g in mesh.vertices[0].groups}
    want = {JOINT_NAMES[i]: w for i, w in zip(package.joint_indices[0], package.joint_weights[0])
            if w > 0}
    assert first.keys() == want.keys()
    np.testing.assert_allclose([first[k] for k in want], list(want.values()), atol=1e-6)
    # Expression controls: keyframable float properties on the root pose bone; the jaw bone.
    root = rig.pose.bones["root"]
    for name in package.expression_names:
        assert root[name] == 0.0
    assert root.keyframe_insert(f'["{package.expression_names[0]}"]', frame=1)
    assert "jaw" in rig.pose.bones
    # The splat node group turns the points into a point cloud with the material.
    depsgraph = bpy.context.evaluated_depsgraph_get()
    geometry = splats.evaluated_get(depsgraph)
    if hasattr(geometry, "evaluated_geometry"):  # Blender 4.3+
        geometry_set = geometry.evaluated_geometry()  # keep it alive while reading
        points = geometry_set.pointcloud
        # the face's Gaussians are drawn by the face object
        assert points is not None and \
            len(points.points) == package.count - package.expression_gaussians.size
        assert "splat_color" in points.attributes


def test_keyframed_poses_move_the_points_like_the_backend(addon, package_path, expected):
    from blender_addon.core.motion import Motion

    rig, splats = _import(package_path)
    names = sorted(key.removeprefix("pose_") for key in expected if key.startswith("pose_"))
    motion = Motion(fps=30.0, full_pose=np.stack([expected[f"pose_{n}"] for n in names]),
                    transl=np.stack([expected[f"transl_{n}"] for n in names]),
                    expression=np.zeros((len(names), 0)))
    addon.motion_ops.apply_motion(bpy.context, rig, motion, start_frame=1, keep_placement=True)
    bpy.context.scene.frame_set(len(names) + 5)  # held after the last key
    for frame, name in enumerate(names, start=1):
        bpy.context.scene.frame_set(frame)
        error = np.linalg.norm(evaluated_positions(splats) - expected[f"means_{name}"], axis=-1)
        print(f"{name}: mean error {1000 * error.mean():.3f} mm, max {1000 * error.max():.3f} mm")
        assert error.mean() <= 1e-3, (name, error.mean(), error.max())


def test_face_units_move_the_face_points_like_the_backend(addon, package_path, expected):
    """Issue 17: the face's Gaussians are their own object with a shape key per face unit,
    driven by the unit's property on the root bone: the viewport points follow expressions (and
    the turned head) like the backend's posing; the splats object leaves them out."""
    from blender_addon.core.motion import Motion
    from blender_addon.core.package import read_avatar_package

    package = read_avatar_package(package_path)
    face_index = package.expression_gaussians
    assert 0 < face_index.size < package.count
    rig, splats = _import(package_path)
    face = rig["oneshot_avatar_face"]
    names = package.expression_names
    assert len(face.data.vertices) == face_index.size
    assert [k.name for k in face.data.shape_keys.key_blocks] == ["Basis", *names]
    neutral = evaluated_positions(face)
    motion = Motion(fps=30.0, full_pose=expected["face_pose"][None],
                    transl=np.zeros((1, 3)), expression=expected["face_expression"][None],
                    expression_space="arkit52")
    addon.motion_ops.apply_motion(bpy.context, rig, motion, start_frame=1, keep_placement=True)
    bpy.context.scene.frame_set(1)
    posed = evaluated_positions(face)
    want = expected["face_means"]
    error = np.linalg.norm(posed - want[face_index], axis=-1)
    print(f"face points vs backend: mean {1000 * error.mean():.3f} mm, max "
          f"{1000 * error.max():.3f} mm over {face_index.size} of {package.count} Gaussians")
    assert error.mean() <= 1e-3, (error.mean(), error.max())
    body_error = np.linalg.norm(evaluated_positions(splats) - want, axis=-1)
    others = np.ones(package.count, bool)
    others[face_index] = False
    assert body_error[others].mean() <= 1e-3
    # A face unit alone changes the viewport points.
    root = rig.pose.bones["root"]
    rig.animation_data_clear()
    for name in names:
        root[name] = 0.0
    for bone in rig.pose.bones:
        bone.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
    rig.update_tag()
    np.testing.assert_allclose(evaluated_positions(face), neutral, atol=1e-6)
    root["jawOpen"] = 1.0
    rig.update_tag()
    moved = np.linalg.norm(evaluated_positions(face) - neutral, axis=-1)
    assert moved.max() > 0.01, moved.max()
    # The splats object draws every other Gaussian and not these.
    depsgraph = bpy.context.evaluated_depsgraph_get()
    if hasattr(splats.evaluated_get(depsgraph), "evaluated_geometry"):
        geometry = splats.evaluated_get(depsgraph).evaluated_geometry()
        assert len(geometry.pointcloud.points) == package.count - face_index.size


def test_bad_packages_are_reported_and_leave_nothing(addon, package_path, tmp_path):
    fresh_scene()
    before = datablock_counts()
    not_zip = tmp_path / "junk.avatar"
    not_zip.write_bytes(b"definitely not a zip")
    missing = rewrite_zip(package_path, tmp_path / "norig.avatar", **{"rig.npz": None})
    damaged = rewrite_zip(package_path, tmp_path / "damaged.avatar", **{
        "gaussians.ply": zipfile.ZipFile(package_path).read("gaussians.ply")[:-4]})
    for path, field in ((not_zip, "not a zip"), (missing, "rig.npz"),
                        (damaged, "members.gaussians.ply")):
        with pytest.raises(RuntimeError, match=field):
            bpy.ops.oneshot_avatar.import_avatar(filepath=str(path))
        assert datablock_counts() == before


def test_a_failure_while_building_removes_everything(addon, package_path, monkeypatch):
    fresh_scene()
    before = datablock_counts()

    def broken(obj):
        raise RuntimeError("simulated failure after the rig and the mesh were made")

    monkeypatch.setattr(addon.splats, "add_splat_modifier", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        addon.importer.import_avatar_file(bpy.context, package_path)
    assert datablock_counts() == before


def test_splats_render_their_colours_in_cycles(addon, package_path, tmp_path):
    """Issue 17: the splats were black in Cycles (a point attribute named ``color`` reads as 0
    there) and washed out in EEVEE (lit, and sRGB values stored as linear). Now: every splat
    sRGB (0.8, 0.35, 0.1) renders as exactly that with the Standard view transform. (EEVEE is
    not rendered here: without a GPU its EGL context fails and it draws nothing; it uses the
    same unlit material, checked below.)"""
    from blender_addon.core.colors import srgb_to_linear

    rig, splats = _import(package_path)
    count = len(splats.data.vertices)
    want = np.array([0.8, 0.35, 0.1])
    linear = np.ones((count, 4), np.float32)
    linear[:, :3] = srgb_to_linear(want)
    splats.data.attributes["splat_color"].data.foreach_set("color", linear.ravel())
    splats.data.attributes["opacity"].data.foreach_set("value", np.ones(count, np.float32))
    splats.data.update()
    # big splats: a solid body at 48x64 px
    addon.splats.set_modifier_input(splats.modifiers["Splats"], "Splat Size", 8.0)
    scene = bpy.context.scene
    # in front (-Y), looking along +Y
    scene_camera(scene, (0.0, -4.0, rig.location.z - 0.35), (np.pi / 2, 0.0, 0.0),
                 type="ORTHO", ortho_scale=2.4)
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = 48, 64, 100
    render.film_transparent = True
    render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.use_denoising, scene.cycles.device = 4, False, "CPU"
    scene.view_settings.view_transform = "Standard"
    render.filepath = str(tmp_path / "cycles.png")
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(render.filepath)
    pixels = np.array(image.pixels[:]).reshape(64, 48, 4)
    covered = pixels[..., 3] > 0.95
    assert covered.sum() > 200, "the splats are not in the picture"
    np.testing.assert_allclose(np.median(pixels[covered][:, :3], axis=0), want, atol=0.02)
    # The same material in EEVEE: unlit emission of the linear colours, mixed by opacity.
    material = splats.data.materials[0]
    kinds = {node.type for node in material.node_tree.nodes}
    assert {"EMISSION", "BSDF_TRANSPARENT", "MIX_SHADER"} <= kinds
    assert "BSDF_PRINCIPLED" not in kinds
    attribute = next(node for node in material.node_tree.nodes if node.type == "ATTRIBUTE"
                     and node.outputs["Color"].links)
    assert attribute.attribute_name == "splat_color"
    assert attribute.outputs["Color"].links[0].to_node.type == "EMISSION"
