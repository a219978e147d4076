"""Built-in clips: names, determinism, validity, timing, faces (poses are checked by FK in
test_motion_kinematics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import ARKIT_FACE_UNITS, MotionClip, builtin_clip, builtin_names
from oneshot_avatar.motion.clip import FRAME_FIELDS

NAMES = ["idle", "talk", "wave", "point", "shrug", "turnaround"]
UNIT = {name: i for i, name in enumerate(ARKIT_FACE_UNITS)}


def test_names():
    assert builtin_names() == NAMES


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UserError) as error:
        builtin_clip("dance")
    for name in NAMES:
        assert name in str(error.value)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_finite_and_valid(name):
    first, second = builtin_clip(name), builtin_clip(name)
    assert isinstance(first, MotionClip)
    for field in FRAME_FIELDS:
        a, b = getattr(first, field), getattr(second, field)
        assert a.dtype == np.float32
        assert np.all(np.isfinite(a)), field
        np.testing.assert_array_equal(a, b, err_msg=field)  # bit for bit
    assert first.fps == 30.0
    assert first.source == f"builtin:{name}" and first.name == name
    assert 2.0 <= first.num_frames / first.fps <= 10.0  # a few seconds
    assert np.abs(first.full_pose()[:, 1:]).max() < np.pi  # no wild joint rotations
    if first.expression_space == "arkit52":
        assert first.expression.min() >= 0.0 and first.expression.max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_loops_end_where_they_start(name):
    clip = builtin_clip(name)
    # The frame after the last one would be frame 0 again: the last step is as small as others
    # (compared as rotation matrices: turnaround's root angle grows past pi on purpose).
    matrices = Rotation.from_rotvec(clip.full_pose().reshape(-1, 3).astype(np.float64))
    matrices = matrices.as_matrix().reshape(clip.num_frames, 55, 9)
    step_to_start = np.abs(matrices[0] - matrices[-1]).max()
    typical_step = np.abs(np.diff(matrices, axis=0)).max()
    assert step_to_start <= typical_step * 1.5 + 1e-6
    assert np.abs(clip.transl[0] - clip.transl[-1]).max() <= np.abs(
        np.diff(clip.transl, axis=0)).max() * 1.5 + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_fps_and_seconds(name):
    clip = builtin_clip(name, fps=24.0, seconds=2.5)
    assert clip.fps == 24.0 and clip.num_frames == 60


def test_bad_fps_and_seconds():
    with pytest.raises(UserError) as error:
        builtin_clip("idle", fps=0)
    assert error.value.field == "fps"
    with pytest.raises(UserError) as error:
        builtin_clip("idle", seconds=-1)
    assert error.value.field == "seconds"


def test_talk_moves_the_jaw_with_a_speech_rhythm():
    clip = builtin_clip("talk", fps=60.0)
    opening = clip.jaw_pose[:, 0]  # +X opens the jaw
    assert opening.min() >= -1e-6
    assert 0.1 < opening.max() < 0.35  # radians
    assert np.abs(clip.jaw_pose[:, 1:]).max() < 1e-6
    # Syllables: several opening peaks per second while speaking, and pauses between phrases.
    rising = np.flatnonzero((opening[1:] > 0.05) & (opening[:-1] <= 0.05))
    rate = len(rising) / clip.duration
    assert 2.0 < rate < 6.0
    assert (opening < 0.01).sum() > 0.1 * clip.num_frames  # pauses


def test_talk_face_units():
    clip = builtin_clip("talk")
    assert clip.expression_space == "arkit52" and clip.expression.shape[1] == 52
    face = clip.expression
    assert np.all(face[:, UNIT["jawOpen"]] == 0)  # the jaw opens through jaw_pose, not jawOpen
    for unit in ("eyeBlinkLeft", "eyeBlinkRight"):
        assert face[:, UNIT[unit]].max() > 0.9  # full blinks
    lips = [UNIT[u] for u in ("mouthFunnel", "mouthPucker", "mouthLowerDownLeft", "mouthSmileLeft")]
    assert np.all(face[:, lips].std(axis=0) > 0.01)
    assert np.abs(clip.leye_pose).max() == 0 and np.abs(clip.reye_pose).max() == 0


def test_talk_has_beat_gestures_and_nods():
    clip = builtin_clip("talk")
    elbow = clip.body_pose[:, 18]  # right_elbow is joint 19 -> body_pose[18]
    assert np.ptp(elbow[:, 1]) > 0.2
    neck = clip.body_pose[:, 11]  # neck is joint 12
    assert np.ptp(neck[:, 0]) > 0.03


def test_turnaround_is_still_apart_from_the_turn():
    clip = builtin_clip("turnaround")
    assert np.all(clip.body_pose == clip.body_pose[:1])
    assert np.all(clip.transl == 0)
    assert clip.expression.shape[1] == 0


def test_rotations_are_smooth():
    for name in NAMES:
        clip = builtin_clip(name, fps=30.0)
        step = np.abs(np.diff(clip.full_pose()[:, 1:], axis=0)).max()  # all but the root
        assert step < 0.25, name  # < 15 degrees per frame at 30 fps
