"""Add Speech in real Blender against a real ``oneshot-avatar serve``: the rig is keyed from the
current frame at the scene's frame rate, the sound strip starts at the same frame, the keys stay
editable, and bad files are reported without touching the rig.

Run by tests/test_blender_speech.py: $ONESHOT_AVATAR_TEST_SERVER_URL / _TOKEN,
$ONESHOT_AVATAR_TEST_PACKAGE (a .avatar), $ONESHOT_AVATAR_TEST_AUDIO (+ _TRANSCRIPT)."""

from __future__ import annotations

import itertools
import math
import os

import pytest

bpy = pytest.importorskip("bpy")

from conftest import env_path, served_rig

SCENE_FPS = 24
START = 11


@pytest.fixture()
def rig(addon):
    return served_rig(SCENE_FPS)


def _sound_strips(scene):
    editor = scene.sequence_editor
    if editor is None:
        return []
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    return [s for s in strips if s.type == "SOUND"]


def test_add_speech_keys_the_rig_and_adds_the_sound_at_the_current_frame(addon, rig):
    scene = bpy.context.scene
    scene.frame_set(START)
    audio = env_path("ONESHOT_AVATAR_TEST_AUDIO")
    transcript = env_path("ONESHOT_AVATAR_TEST_TRANSCRIPT")
    assert bpy.ops.oneshot_avatar.add_speech(filepath=str(audio), transcript_path=str(transcript),
                                             style="lively") == {"FINISHED"}
    fcurves = addon.motion_ops._fcurves(rig)
    jaw = fcurves[('pose.bones["jaw"].rotation_quaternion', 1)]  # x of wxyz: opening
    frames = [k.co[0] for k in jaw.keyframe_points]
    duration = float(os.environ["ONESHOT_AVATAR_TEST_AUDIO_SECONDS"])
    assert frames[0] == START and len(frames) == math.ceil(duration * SCENE_FPS)
    assert all(b - a == 1 for a, b in itertools.pairwise(frames))
    assert max(k.co[1] for k in jaw.keyframe_points) > 0.03  # sin(angle / 2) of an open jaw
    press = fcurves[('pose.bones["root"]["mouthPressLeft"]', 0)]
    assert max(k.co[1] for k in press.keyframe_points) > 0.3  # p/b/m closures
    blink = fcurves[('pose.bones["root"]["eyeBlinkLeft"]', 0)]
    assert max(k.co[1] for k in blink.keyframe_points) > 0.7
    wrist = fcurves[('pose.bones["right_elbow"].rotation_quaternion', 0)]
    values = [k.co[1] for k in wrist.keyframe_points]
    assert max(values) - min(values) > 0.02  # beat gestures move the arm

    strips = _sound_strips(scene)
    assert len(strips) == 1
    assert strips[0].frame_start == START
    assert bpy.path.abspath(strips[0].sound.filepath) == str(audio)
    assert scene.frame_end >= START + len(frames) - 1 and scene.sync_mode == "AUDIO_SYNC"

    # The keys stay editable: change one and the rig follows it.
    key = jaw.keyframe_points[40]
    key.co[1] = 0.5
    key.handle_left[1] = key.handle_right[1] = 0.5
    jaw.update()
    assert abs(jaw.evaluate(key.co[0]) - 0.5) < 1e-6


def test_bad_audio_is_reported_and_leaves_the_rig_alone(addon, rig, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    with pytest.raises(RuntimeError, match="not an audio file type"):
        bpy.ops.oneshot_avatar.add_speech(filepath=str(text))
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(RuntimeError, match="is not an audio file that can be decoded"):
        bpy.ops.oneshot_avatar.add_speech(filepath=str(fake))
    assert addon.motion_ops._fcurves(rig) == {} and not _sound_strips(bpy.context.scene)
