"""The render engine's plain parts (blender_addon/core/render_engine.py): a 3D view's matrices
become a camera the backend projects exactly as OpenGL does; the backend's scene answer becomes
Blender's buffers (bottom-up rows, premultiplied scene-linear RGBA, Z 1e10 where empty)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from blender_addon.core import render_engine
from blender_addon.core.camera import CameraExportError
from blender_addon.core.render_engine import SceneAnswerError

from oneshot_avatar.cameras import BLENDER_TO_WORLD
from oneshot_avatar.service import schemas
from oneshot_avatar.service.scene import _scene_camera


def gl_perspective(fov_y_deg, aspect, near, far, shift=(0.0, 0.0)):
    f = 1.0 / math.tan(math.radians(fov_y_deg) / 2)
    return np.array([[f / aspect, 0, shift[0], 0], [0, f, shift[1], 0],
                     [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
                     [0, 0, -1, 0]])


def look_from(position, yaw_deg, pitch_deg):
    """A view matrix (world -> OpenGL eye) for an eye at ``position`` turned about Z and X."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    rz = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0],
                   [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)],
                   [0, math.sin(pitch), math.cos(pitch)]])
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3] = rz @ rx
    camera_to_world[:3, 3] = position
    return np.linalg.inv(camera_to_world)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.1, -0.2)])
def test_viewport_camera_projects_like_opengl_through_the_backend(shift):
    width, height = 320, 180
    view = look_from([0.5, -4.0, 1.2], 10.0, 80.0)
    projection = gl_perspective(40.0, width / height, 0.1, 50.0, shift)
    spec = render_engine.viewport_camera(view.tolist(), projection.tolist(), width, height)
    camera = _scene_camera(schemas.SceneRenderRequest.model_validate(
        {"avatars": [{"avatar": "a_0123456789abcdef", "params": {}, "matrix_world": np.eye(4)
                      .tolist()}], "cameras": [spec]}).cameras[0], 0)
    rng = np.random.default_rng(0)
    points = rng.uniform([-1, -1, 0], [1, 1, 2], size=(20, 3))  # Blender world, in front
    clip = (projection @ view @ np.c_[points, np.ones(20)].T).T
    ndc = clip[:, :3] / clip[:, 3:]
    expected = np.stack([(ndc[:, 0] + 1) / 2 * width, (1 - ndc[:, 1]) / 2 * height], axis=1)
    world = points @ np.asarray(BLENDER_TO_WORLD).T  # the backend's world
    w2c = camera.world_to_cam.double().numpy()
    in_camera = world @ w2c[:3, :3].T + w2c[:3, 3]
    K = camera.K.double().numpy()
    got = np.stack([K[0, 0] * in_camera[:, 0] / in_camera[:, 2] + K[0, 2],
                    K[1, 1] * in_camera[:, 1] / in_camera[:, 2] + K[1, 2]], axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-3)  # the backend keeps float32
    eye_depth = -(view @ np.c_[points, np.ones(20)].T).T[:, 2]
    np.testing.assert_allclose(in_camera[:, 2], eye_depth, atol=1e-5)  # Z = Blender's Z pass
    assert camera.near == pytest.approx(0.1) and camera.far == pytest.approx(50.0)


def test_orthographic_views_and_bad_sizes_are_refused_by_name():
    ortho = np.diag([0.2, 0.3, -0.02, 1.0])
    with pytest.raises(CameraExportError, match="orthographic") as error:
        render_engine.viewport_camera(np.eye(4), ortho, 64, 64)
    assert error.value.field == "projection_matrix"
    with pytest.raises(CameraExportError) as error:
        render_engine.viewport_camera(np.eye(4), gl_perspective(40, 1, 0.1, 10), 0, 64)
    assert error.value.field == "region"


def npz(color, alpha, depth, dtype="float32"):
    buffer = io.BytesIO()
    np.savez(buffer, color=color.astype(dtype), alpha=alpha.astype(dtype),
             depth=depth.astype(dtype))
    return buffer.getvalue()


def test_decode_gives_blender_buffers():
    color = np.zeros((2, 3, 4, 3))
    alpha = np.zeros((2, 3, 4))
    depth = np.full((2, 3, 4), np.inf)
    color[1, 0, 1] = (1.0, 0.5, 0.0)  # top row in the backend's image
    alpha[1, 0, 1] = 0.5
    depth[1, 0, 1] = 2.5
    frames = render_engine.decode_scene(npz(color, alpha, depth), 4, 3)
    assert len(frames) == 2 and (frames[0].width, frames[0].height) == (4, 3)
    assert not frames[0].combined.any() and (frames[0].depth == 1e10).all()
    frame = frames[1]
    top_row = frame.combined[2]  # Blender's rows go bottom to top
    np.testing.assert_allclose(top_row[1], [0.5, 0.5 * 0.21404114, 0.0, 0.5], rtol=1e-5)
    assert frame.depth[2, 1] == pytest.approx(2.5)
    assert (np.delete(frame.depth.ravel(), 2 * 4 + 1) == 1e10).all()
    assert frame.combined.dtype == np.float32 and frame.combined.flags.c_contiguous
    # what the viewport uploads: the box with coverage, in Blender's rows (bottom to top)
    assert frames[0].drawn is None and frame.drawn == (1, 2, 2, 3)


def test_decode_reads_half_precision_and_refuses_other_answers():
    frames = render_engine.decode_scene(npz(np.ones((1, 2, 2, 3)), np.ones((1, 2, 2)),
                                            np.ones((1, 2, 2)), "float16"))
    assert frames[0].combined.dtype == np.float32 and (frames[0].combined == 1).all()
    with pytest.raises(render_engine.SceneAnswerError, match="could not be read"):
        render_engine.decode_scene(b"<html>not a render</html>")
    with pytest.raises(render_engine.SceneAnswerError, match="8x8"):
        render_engine.decode_scene(npz(np.ones((1, 2, 2, 3)), np.ones((1, 2, 2)),
                                       np.ones((1, 2, 2))), 8, 8)


def test_a_cropped_answer_decodes_as_the_whole_frame():
    rng = np.random.default_rng(3)
    color = rng.random((2, 6, 7, 3))
    alpha = np.zeros((2, 6, 7))
    alpha[0, 1:3, 2:5] = rng.random((2, 3)) + 0.1
    alpha[1, 2:5, 3:4] = 0.7
    depth = np.where(alpha > 0, 3.0, np.inf)
    whole = render_engine.decode_scene(npz(color, alpha, depth), 7, 6)
    box = [2, 1, 5, 5]  # x0, y0, x1, y1 around both frames' drawn pixels
    buffer = io.BytesIO()
    np.savez(buffer, color=color[:, 1:5, 2:5], alpha=alpha[:, 1:5, 2:5],
             box=np.array(box, np.int32), size=np.array([7, 6], np.int32))
    cropped = render_engine.decode_scene(buffer.getvalue(), 7, 6)  # no depth asked for
    for a, b in zip(whole, cropped):
        np.testing.assert_array_equal(a.combined, b.combined)
        assert (b.depth == 1e10).all() and a.drawn == b.drawn
    assert cropped[0].drawn == (2, 3, 5, 5) and cropped[1].drawn == (3, 1, 4, 4)
    empty = io.BytesIO()
    np.savez(empty, color=np.zeros((1, 0, 0, 3)), alpha=np.zeros((1, 0, 0)),
             box=np.zeros(4, np.int32), size=np.array([7, 6], np.int32))
    frame, = render_engine.decode_scene(empty.getvalue(), 7, 6)
    assert frame.combined.shape == (6, 7, 4) and not frame.combined.any()
    bad = io.BytesIO()
    np.savez(bad, color=color[:, 1:5, 2:5], alpha=alpha[:, 1:5, 2:5],
             box=np.array([2, 1, 6, 5], np.int32), size=np.array([7, 6], np.int32))
    with pytest.raises(SceneAnswerError, match="box"):
        render_engine.decode_scene(bad.getvalue(), 7, 6)


def test_scene_request_carries_every_avatar_and_validates_against_the_api():
    avatars = [render_engine.SceneAvatar("a_0123456789abcdef", {"transl": [[0, 0, 0]]}, None,
                                         np.eye(4)),
               render_engine.SceneAvatar("a_fedcba9876543210", {"transl": [[1, 0, 0]]},
                                         "arkit52", np.eye(4).tolist())]
    camera = render_engine.viewport_camera(np.eye(4), gl_perspective(40, 1, 0.1, 10), 64, 64)
    body = render_engine.scene_request(avatars, [camera])
    parsed = schemas.SceneRenderRequest.model_validate(body)
    assert [a.avatar for a in parsed.avatars] == ["a_0123456789abcdef", "a_fedcba9876543210"]
    assert parsed.avatars[1].expression_space == "arkit52"
    with pytest.raises(CameraExportError):
        render_engine.scene_request(avatars, [])
    with pytest.raises(CameraExportError, match="4x4"):
        render_engine.scene_request([render_engine.SceneAvatar("a_0123456789abcdef", {}, None,
                                                               np.eye(3))], [camera])


def test_transparent_frame():
    frame = render_engine.transparent_frame(5, 3)
    assert frame.combined.shape == (3, 5, 4) and not frame.combined.any()
    assert (frame.depth == 1e10).all()


def test_latest_only_keeps_one_request_in_flight_and_drops_overtaken_ones():
    import threading

    gate = threading.Event()
    started: list[str] = []

    def work(name, fail=False):
        def run():
            started.append(name)
            gate.wait(5)
            if fail:
                raise ConnectionError("backend unreachable at http://127.0.0.1:1")
            return name
        return run

    loop = render_engine.LatestOnly()
    loop.want("f1", work("f1"))
    for name in ("f2", "f3", "f4"):  # scrubbing while f1 renders
        loop.want(name, work(name))
    assert loop.busy and loop.result() == (None, None)
    gate.set()
    deadline = __import__("time").monotonic() + 5
    while loop.busy and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.01)
    assert started == ["f1", "f4"]  # f2 and f3 were overtaken before they started
    assert loop.result() == ("f4", None)
    loop.want("f4", work("again"))  # already on screen: nothing is sent
    assert not loop.busy and started == ["f1", "f4"]
    loop.want("f5", work("f5", fail=True))
    while loop.busy:
        __import__("time").sleep(0.01)
    value, error = loop.result()
    assert value == "f4" and "unreachable" in error  # the last image stays, with the message
    loop.want("f6", work("f6"))
    while loop.busy:
        __import__("time").sleep(0.01)
    assert loop.result() == ("f6", None)


def test_fast_srgb_decode_matches_the_reference_transfer_function():
    from blender_addon.core.colors import srgb_to_linear

    values = np.linspace(0, 1, 10001, dtype=np.float32)
    np.testing.assert_allclose(render_engine._srgb_to_linear32(values), srgb_to_linear(values),
                               atol=2e-6)


def _entry(name, transl, matrix=None):
    return {"name": name, "package": f"/p/{name}.avatar", "avatar_id": "", "expression_space":
            None, "params": {"transl": [transl]}, "matrix_world": matrix or np.eye(4).tolist()}


def test_frames_ahead_merge_into_one_request_only_while_the_rigs_stay_put():
    camera = {"blender": {"lens_mm": 50}}
    frames = [(1, [_entry("a", [0, 0, 0]), _entry("b", [1, 0, 0])], camera),
              (2, [_entry("a", [0, 0, 1]), _entry("b", [1, 0, 1])], camera)]
    entries, cameras = render_engine.merge_frames(frames)
    assert cameras == [camera]
    assert entries[0]["params"]["transl"] == [[0, 0, 0], [0, 0, 1]]
    assert entries[1]["params"]["transl"] == [[1, 0, 0], [1, 0, 1]]
    moved = {"blender": {"lens_mm": 35}}
    assert len(render_engine.merge_frames([*frames, (3, frames[0][1], moved)])[1]) == 3
    assert render_engine.same_rigs(frames[0][1], frames[1][1])
    shifted = np.eye(4)
    shifted[0, 3] = 0.5
    assert not render_engine.same_rigs(frames[0][1], [_entry("a", [0, 0, 0], shifted.tolist()),
                                                      _entry("b", [0, 0, 0])])
    assert not render_engine.same_rigs(frames[0][1], frames[0][1][:1])


def _wait_idle(viewport, seconds=5.0):
    import time

    deadline = time.monotonic() + seconds
    while viewport.busy and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not viewport.busy


def test_viewport_keeps_the_last_frame_on_screen_and_says_what_is_wrong():
    """Rendered shading's state: "rendering..." before the first frame; a frame on its way
    leaves the previous one on screen; a backend that goes down leaves the last frame with the
    error written over it; a view the engine cannot draw (orthographic) says so; recovery
    clears the message."""
    import threading

    gate = threading.Event()
    viewport = render_engine.Viewport()
    first = render_engine.transparent_frame(4, 3)
    second = render_engine.transparent_frame(4, 3)

    def answer(frame):
        def work():
            gate.wait(5)
            return frame
        return work

    viewport.want("view 1", answer(first))
    picture = viewport.picture()
    assert picture.frame is None and picture.message == "One-Shot Avatar: rendering..."
    gate.set()
    _wait_idle(viewport)
    assert viewport.picture() == render_engine.ViewportPicture(first, "")
    gate.clear()
    viewport.want("view 2", answer(second))  # in flight: the first frame stays on screen
    assert viewport.picture() == render_engine.ViewportPicture(first, "")
    gate.set()
    _wait_idle(viewport)
    assert viewport.picture().frame is second

    def down():
        raise ConnectionRefusedError("backend not reachable at http://127.0.0.1:9 "
                                     "(Connection refused)")

    viewport.want("view 3", down)
    _wait_idle(viewport)
    picture = viewport.picture()
    assert picture.frame is second
    assert picture.message.startswith("One-Shot Avatar: backend not reachable")
    viewport.failed("the view is orthographic; avatars render in perspective views")
    assert "orthographic" in viewport.picture().message
    viewport.want("view 4", answer(first))
    _wait_idle(viewport)
    assert viewport.picture() == render_engine.ViewportPicture(first, "")


def test_viewport_requests_follow_camera_and_free_views():
    """The request key changes exactly when the picture would: a free view orbiting, the
    region resized, a rig posed; looking through a camera and an unchanged view send
    nothing new. Each key's camera is the view's own projection (see the OpenGL test)."""
    avatars = [_entry("a", [0, 0, 0])]
    url = "http://127.0.0.1:8000"
    free = look_from([3.0, -3.0, 1.5], 45.0, 80.0)  # a free view, off to the side
    projection = gl_perspective(50.0, 320 / 180, 0.01, 1000.0, (0.0, 0.0))
    key, camera = render_engine.viewport_request(avatars, free, projection, 320, 180, url)
    assert render_engine.viewport_request(avatars, free.copy(), projection, 320, 180,
                                          url)[0] == key
    orbit = look_from([3.1, -2.9, 1.5], 47.0, 80.0)
    assert render_engine.viewport_request(avatars, orbit, projection, 320, 180, url)[0] != key
    assert render_engine.viewport_request(avatars, free, projection, 321, 180, url)[0] != key
    posed = [_entry("a", [0, 0, 0.01])]
    assert render_engine.viewport_request(posed, free, projection, 320, 180, url)[0] != key
    assert render_engine.viewport_request(avatars, free, projection, 320, 180,
                                          "http://other:8000")[0] != key
    # Camera view: Blender gives the camera's view matrix and a shifted projection (the
    # camera frame offset in the region); the principal point moves with it.
    through = look_from([0.0, -4.0, 1.0], 0.0, 90.0)
    shifted = gl_perspective(40.0, 320 / 180, 0.1, 100.0, (0.12, -0.05))
    _, camera_view = render_engine.viewport_request(avatars, through, shifted, 320, 180, url)
    assert camera_view["K"][0][2] == pytest.approx(160 * (1 - 0.12))
    assert camera_view["K"][1][2] == pytest.approx(90 * (1 - 0.05))
    assert camera["width"] == 320 and camera["height"] == 180


def test_decode_of_a_partly_covered_frame_equals_the_whole_frame_formula():
    """The decode works only inside the box around covered pixels; the result is the plain
    formula over the whole frame (flip, sRGB -> linear, premultiply, Z 1e10 where empty)."""
    from blender_addon.core.colors import srgb_to_linear

    rng = np.random.default_rng(3)
    color = rng.random((2, 30, 40, 3))
    alpha = np.where(rng.random((2, 30, 40)) < 0.3, rng.random((2, 30, 40)), 0.0)
    alpha[0, :5] = alpha[0, 20:] = alpha[0, :, :7] = 0.0  # frame 0: a box in the middle
    alpha[1] = 0.0  # frame 1: empty
    depth = np.where(alpha > 0, rng.uniform(1, 9, alpha.shape), np.inf)
    frames = render_engine.decode_scene(npz(color, alpha, depth), 40, 30)
    for index, frame in enumerate(frames):
        a = alpha[index][::-1]
        expected = np.concatenate([srgb_to_linear(color[index][::-1]) * a[..., None],
                                   a[..., None]], axis=-1)
        np.testing.assert_allclose(frame.combined, expected, atol=2e-6)
        np.testing.assert_allclose(frame.depth, np.where(a > 0, depth[index][::-1], 1e10),
                                   rtol=1e-6)
