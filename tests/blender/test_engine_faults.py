"""The render engine when things change under it during Render Animation, in real Blender
against a real backend on loopback that the driver (tests/test_blender_engine.py) started for
this file alone: a package rewritten on disk while the animation renders, and the backend
killed in the middle of the animation (last test: the backend is gone afterwards)."""

from __future__ import annotations

import os
import shutil
import signal
import time

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from test_engine_render import _camera, _engine_scene, _png_pixels, _use_server

from conftest import env_path, import_avatar


@pytest.fixture()
def small_batches(addon):
    """Two frames per request, so an animation of a few frames takes several requests (and the
    engine sends the next one while Blender writes)."""
    from oneshot_avatar import render_engine

    saved = render_engine.AHEAD_FRAMES
    render_engine.AHEAD_FRAMES = 2
    yield
    render_engine.AHEAD_FRAMES = saved


@pytest.fixture()
def on_frame_written():
    """``add(frame, action)``: run ``action()`` once Blender has written ``frame``."""
    actions: dict[int, list] = {}

    def handler(scene, *_):
        for action in actions.pop(scene.frame_current, []):
            action()

    bpy.app.handlers.render_write.append(handler)
    yield lambda frame, action: actions.setdefault(frame, []).append(action)
    bpy.app.handlers.render_write.remove(handler)


def _animation_scene(scene, package, folder, frames: int):
    rig = import_avatar(package)
    _camera(scene, rig.location.z)
    _engine_scene(scene, folder)
    scene.frame_start, scene.frame_end = 1, frames
    scene.frame_set(1)
    return rig


def _render_animation(capfd) -> str:
    """Render Animation; the engine's error report (Blender raises it, or prints it)."""
    message = ""
    try:
        bpy.ops.render.render(animation=True)
    except RuntimeError as error:
        message = str(error)
    captured = capfd.readouterr()
    return message + captured.out + captured.err


def test_a_package_rewritten_during_the_animation(addon, empty_scene, small_batches,
                                                  on_frame_written, tmp_path, capfd):
    """One animation shows one avatar: the package as it was when the render started, though
    it is replaced on disk after the first frame; the next render shows the new one. A package
    broken on disk (half-written) fails that render with a clear error, in bounded time."""
    _use_server()
    package = tmp_path / "person.avatar"
    shutil.copy(env_path("ONESHOT_AVATAR_TEST_PACKAGE"), package)
    scene = empty_scene
    _animation_scene(scene, package, tmp_path / "frames", 5)

    def replace():  # as a writer that writes aside and renames (oneshot_avatar/atomic.py)
        partial = tmp_path / "person.avatar.part"
        shutil.copy(env_path("ONESHOT_AVATAR_TEST_PACKAGE_2"), partial)
        os.replace(partial, package)

    on_frame_written(1, replace)
    message = _render_animation(capfd)
    assert "One-Shot Avatar: frame" not in message, message
    names = sorted(os.listdir(tmp_path / "frames"))
    assert names == [f"{frame:04d}.png" for frame in range(1, 6)], names
    first = _png_pixels(tmp_path / "frames" / "0001.png")
    assert first.reshape(-1, 4)[:, 3].max() > 0.5
    for name in names[1:]:  # no pose change: every frame is the first avatar's picture
        assert np.abs(_png_pixels(tmp_path / "frames" / name) - first).max() == 0, name
    scene.render.filepath = str(tmp_path / "after.png")
    bpy.ops.render.render(write_still=True)
    assert np.abs(_png_pixels(tmp_path / "after.png") - first).max() > 0.2  # the new avatar

    package.write_bytes(package.read_bytes()[:5000])  # cut short, as a crashed copy leaves it
    scene.render.filepath = str(tmp_path / "broken.png")
    started = time.monotonic()
    message = ""
    try:
        bpy.ops.render.render(write_still=True)
    except RuntimeError as error:
        message = str(error)
    message += "".join(capfd.readouterr())
    assert time.monotonic() - started < 30
    assert "One-Shot Avatar: frame 1:" in message and "internal error" not in message, message
    assert str(package) in message and "refused" in message, message  # names the file
    assert not (tmp_path / "broken.png").exists()
    print(f"broken package: {message.strip()[:300]}")


def test_backend_killed_during_the_animation(addon, empty_scene, small_batches,
                                             on_frame_written, tmp_path, capfd):
    """The backend dies after frame 2 is written: the first frame it cannot give fails with a
    clear report, nothing after it is written, and the render ends in bounded time."""
    _use_server()
    scene = empty_scene
    rig = _animation_scene(scene, env_path("ONESHOT_AVATAR_TEST_PACKAGE"), tmp_path / "frames",
                           8)
    shoulder = rig.pose.bones["left_shoulder"]
    for frame in range(1, 9):  # a new pose each frame: every frame is its own render
        shoulder.rotation_quaternion = (1.0, 0.0, 0.0, 0.1 * frame)
        shoulder.keyframe_insert("rotation_quaternion", frame=frame)
    pid = int(os.environ["ONESHOT_AVATAR_TEST_SERVER_PID"])
    killed = []

    def kill():
        os.kill(pid, signal.SIGKILL)
        killed.append(time.monotonic())

    on_frame_written(2, kill)
    started = time.monotonic()
    message = _render_animation(capfd)
    ended = time.monotonic()
    assert killed, "the backend was not killed (frame 2 was never written)"
    names = sorted(os.listdir(tmp_path / "frames"))
    written = len(names)
    # Frames 1, 2 and maybe 3 (asked for before the kill) are written; the next one fails.
    assert 2 <= written <= 4 and names == [f"{f:04d}.png" for f in range(1, written + 1)], names
    failed = written + 1
    assert f"One-Shot Avatar: frame {failed}:" in message, message
    assert "backend" in message and "internal error" not in message, message
    assert f"frame {failed + 1}:" not in message  # the animation stopped there
    assert ended - killed[0] < 20, ended - killed[0]  # bounded: the 5 s timeout, not forever
    print(f"backend killed after frame 2: frame {failed} failed {ended - killed[0]:.2f} s later "
          f"({ended - started:.2f} s in all): {message.strip()[:300]}")
