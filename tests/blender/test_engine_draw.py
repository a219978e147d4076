"""Rendered viewport shading's drawing, for real: Blender 5.1+ can start its GPU module in
background mode (``gpu.init()``; Mesa's software OpenGL here), so the engine's ``draw_picture``
(what ``view_draw`` calls) draws into an offscreen framebuffer and the pixels are read back.
Run by tests/test_blender_engine.py for Blender 5.2 only (5.0's bpy has no ``gpu.init`` and
refuses drawing in background mode). Not covered: ``bind_display_space_shader`` (it needs the
engine instance Blender makes for a 3D view), so the colours compared are scene-linear."""

from __future__ import annotations

import time

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
gpu = pytest.importorskip("gpu")

from rig_support import camera_view, render_still
from test_engine_render import HEIGHT, WIDTH, _use_server, posed  # noqa: F401

from conftest import closed_port_url


@pytest.fixture(scope="module")
def gpu_ready():
    gpu.init()  # SystemError when no GPU backend can start: a real failure here


def _draw(picture, cache) -> np.ndarray:
    """``draw_picture`` into a WIDTH x HEIGHT float offscreen in region pixel coordinates, as
    ``view_draw`` has them; the pixels read back (rows bottom to top)."""
    from mathutils import Matrix
    from oneshot_avatar.render_engine import draw_picture

    offscreen = gpu.types.GPUOffScreen(WIDTH, HEIGHT, format="RGBA32F")
    try:
        with offscreen.bind():
            framebuffer = gpu.state.active_framebuffer_get()
            framebuffer.clear(color=(0.0, 0.0, 0.0, 0.0))
            with gpu.matrix.push_pop(), gpu.matrix.push_pop_projection():
                gpu.matrix.load_identity()
                gpu.matrix.load_projection_matrix(Matrix(
                    [[2 / WIDTH, 0, 0, -1], [0, 2 / HEIGHT, 0, -1], [0, 0, -1, 0],
                     [0, 0, 0, 1]]))
                draw_picture(picture, WIDTH, HEIGHT, cache)
            buffer = framebuffer.read_color(0, 0, WIDTH, HEIGHT, 4, 0, "FLOAT")
            return np.array(buffer, dtype=np.float32).reshape(HEIGHT, WIDTH, 4)
    finally:
        offscreen.free()


def test_the_viewport_draws_the_camera_views_frame_and_the_backend_down_message(
        gpu_ready, posed, tmp_path):  # noqa: F811 - the fixture imported above
    from oneshot_avatar.core.colors import linear_to_srgb
    from oneshot_avatar.core.render_engine import Viewport
    from oneshot_avatar.preferences import connection_config
    from oneshot_avatar.render_engine import DrawCache, viewport_work

    scene, _rig = posed
    f12 = render_still(scene, tmp_path / "f12.png", WIDTH, HEIGHT)

    # Looking through the scene camera: the matrices Blender gives such a 3D view.
    depsgraph, view, window = camera_view(scene, WIDTH, HEIGHT)
    viewport, cache = Viewport(), DrawCache()
    viewport.want(*viewport_work(connection_config(), depsgraph, view, window, WIDTH, HEIGHT))
    deadline = time.monotonic() + 30
    while viewport.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    picture = viewport.picture()
    assert picture.frame is not None and picture.message == "", picture.message
    drawn = _draw(picture, cache)
    np.testing.assert_allclose(drawn, picture.frame.combined, atol=2e-3)  # RGBA16F texture
    alpha = drawn[..., 3]
    assert np.abs(alpha - f12[..., 3]).max() < 3 / 255
    solid = alpha > 0.5
    colour = linear_to_srgb(drawn[..., :3][solid] / alpha[solid][:, None])
    assert solid.sum() > 50 and np.abs(colour - f12[..., :3][solid]).mean() < 2 / 255

    # The backend goes down: the last frame stays, the message is written over it.
    _use_server(closed_port_url())
    rig = scene.objects[_rig.name]
    rig.pose.bones["left_elbow"].rotation_quaternion = (0.8, 0.0, 0.6, 0.0)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    viewport.want(*viewport_work(connection_config(), depsgraph, view, window, WIDTH, HEIGHT))
    deadline = time.monotonic() + 30
    while viewport.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    picture = viewport.picture()
    assert picture.message.startswith("One-Shot Avatar: backend not reachable"), picture.message
    with_message = _draw(picture, cache)
    text = np.abs(with_message - drawn).max(axis=-1) > 0.1  # what the message changed
    rows, columns = np.nonzero(text)
    assert text.sum() > 20, "no message drawn"
    assert rows.min() >= HEIGHT - 64 and columns.min() >= 10  # at the top left, as placed
    untouched = np.ones_like(text)
    untouched[HEIGHT - 64:, :] = False
    np.testing.assert_allclose(with_message[untouched], drawn[untouched], atol=1e-6)
    print(f"drawn offscreen with {gpu.platform.renderer_get()}: frame = F12, message over it")
