"""Import Video Motion in real Blender against a real ``oneshot-avatar serve``: the video is
tracked by the backend, its motion keyed on the rig from the current frame at the scene's frame
rate, the video added as a movie clip (the camera's background) and an image empty behind the
rig; bad files are reported without touching the rig.

Run by tests/test_blender_video.py: $ONESHOT_AVATAR_TEST_SERVER_URL / _TOKEN,
$ONESHOT_AVATAR_TEST_PACKAGE (a .avatar), $ONESHOT_AVATAR_TEST_VIDEO."""

from __future__ import annotations

import itertools

import pytest

bpy = pytest.importorskip("bpy")

from rig_support import scene_camera

from conftest import env_path, served_rig

SCENE_FPS = 24
START = 5
FRAMES = 12


@pytest.fixture()
def rig(addon):
    return served_rig(SCENE_FPS)


def test_import_video_motion_keys_the_rig_and_adds_the_video(addon, rig):
    scene = bpy.context.scene
    camera = scene_camera(scene, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), name="Camera")
    scene.frame_set(START)
    video = env_path("ONESHOT_AVATAR_TEST_VIDEO")
    assert bpy.ops.oneshot_avatar.import_video_motion(
        filepath=str(video), size=200, max_frames=FRAMES, wait=True) == {"FINISHED"}
    fcurves = addon.motion_ops._fcurves(rig)
    elbow = fcurves[('pose.bones["right_elbow"].rotation_quaternion', 0)]
    frames = [k.co[0] for k in elbow.keyframe_points]
    # FRAMES frames tracked at the scene's 24 fps (the video is ~30 fps: ~FRAMES * 24 / 30 + 1)
    assert frames[0] == START and all(b - a == 1 for a, b in itertools.pairwise(frames))
    assert abs(len(frames) - FRAMES) <= 1
    assert fcurves.get(('pose.bones["root"]["eyeBlinkLeft"]', 0)) is not None
    assert scene.frame_end >= START + len(frames) - 1
    clip = next(c for c in bpy.data.movieclips if c.filepath.endswith(video.name))
    assert clip.frame_start == START
    background = camera.data.background_images[0]
    assert background.source == "MOVIE_CLIP" and background.clip == clip
    plane = next(o for o in bpy.data.objects if o.name.startswith("VideoReference"))
    assert plane.empty_display_type == "IMAGE" and plane.data.source == "MOVIE"
    assert plane.location.y > rig.matrix_world.translation.y  # behind the rig (its front is -Y)


def test_bad_video_is_reported_and_the_rig_untouched(addon, rig, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a video")
    with pytest.raises(RuntimeError, match="not a video file type"):
        bpy.ops.oneshot_avatar.import_video_motion(filepath=str(bad), wait=True)
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all")
    with pytest.raises(RuntimeError, match="video"):
        bpy.ops.oneshot_avatar.import_video_motion(filepath=str(fake), wait=True)
    assert rig.animation_data is None or rig.animation_data.action is None
