"""Resampling: frame counts, exact coinciding frames, slerp and linear interpolation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import MotionClip, builtin_clip, load_motion, resample
from oneshot_avatar.motion.clip import FRAME_FIELDS
from oneshot_avatar.motion.resampling import resampled_frame_count
from shared_files import real_file


def _two_frame_clip(angle0: float, angle1: float, axis=(1.0, 0.0, 0.0)) -> MotionClip:
    """Every joint rotates about ``axis`` from angle0 to angle1 over two frames at 1 fps."""
    unit = np.asarray(axis) / np.linalg.norm(axis)
    full = np.zeros((2, 55, 3))
    full[0] = unit * angle0
    full[1] = unit * angle1
    return MotionClip.from_full_pose(
        full, np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 4.0]]), 1.0,
        expression=np.array([[0.0] * 52, [1.0] * 52]), expression_space="arkit52")


def test_real_120_to_30_counts_and_exact_coinciding_frames():
    clip = load_motion(real_file("amass_sample_smplh.npz"))
    assert clip.fps == 120.0 and clip.num_frames == 601
    low = resample(clip, 30.0)
    assert low.num_frames == 151 and low.fps == 30.0
    assert low.duration == pytest.approx(clip.duration)
    for field in FRAME_FIELDS:  # output frame k is input frame 4k, bit for bit
        np.testing.assert_array_equal(getattr(low, field), getattr(clip, field)[::4],
                                      err_msg=field)
    np.testing.assert_array_equal(low.betas, clip.betas)


def test_real_30_to_24_keeps_duration():
    clip = load_motion(real_file("talkshow_french.npy"))
    out = resample(clip, 24.0)
    assert out.num_frames == int(np.floor((288 - 1) / 30 * 24)) + 1 == 230
    assert out.duration <= clip.duration + 1e-9
    assert clip.duration - out.duration < 1 / 24
    # frames at multiples of 1/6 s coincide (every 5th input, every 4th output)
    every_sixth = out.full_pose()[::4]
    np.testing.assert_array_equal(every_sixth, clip.full_pose()[::5][: len(every_sixth)])
    assert out.expression_space == "smplx-pca"


def test_slerp_midpoint():
    clip = _two_frame_clip(0.2, 1.0)
    out = resample(clip, 2.0)
    assert out.num_frames == 3
    np.testing.assert_allclose(out.full_pose()[1], np.tile([0.6, 0.0, 0.0], (55, 1)), atol=1e-6)
    np.testing.assert_allclose(out.transl[1], [0.5, -1.0, 2.0], atol=1e-7)
    np.testing.assert_allclose(out.expression[1], 0.5, atol=1e-7)
    np.testing.assert_array_equal(out.full_pose()[2], clip.full_pose()[1])


def test_slerp_takes_the_short_way_and_is_not_linear_in_axis_angle():
    # 170 deg and -170 deg about X are 20 deg apart through 180 deg.
    clip = _two_frame_clip(np.radians(170), np.radians(-170))
    middle = resample(clip, 2.0).full_pose()[1, 0].astype(np.float64)
    angle = Rotation.from_rotvec(middle).magnitude()
    assert angle == pytest.approx(np.pi, abs=1e-5)
    # A general axis change: compare with scipy's Slerp.
    a, b = np.array([0.3, -0.2, 0.5]), np.array([-0.4, 0.9, 0.1])
    full = np.zeros((2, 55, 3))
    full[0], full[1] = a, b
    clip = MotionClip.from_full_pose(full, np.zeros((2, 3)), 10.0)
    out = resample(clip, 40.0)
    assert out.num_frames == 5
    from scipy.spatial.transform import Slerp

    slerp = Slerp([0.0, 1.0], Rotation.from_rotvec(np.stack([a, b])))
    expected = slerp([0.25, 0.5, 0.75]).as_matrix()
    got = Rotation.from_rotvec(out.full_pose()[1:4, 7].astype(np.float64)).as_matrix()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_upsampling_doubles_minus_one():
    clip = builtin_clip("wave")
    out = resample(clip, 60.0)
    assert out.num_frames == 2 * clip.num_frames - 1
    np.testing.assert_array_equal(out.full_pose()[::2], clip.full_pose())
    assert out.expression_space == "arkit52"
    assert out.expression.min() >= 0 and out.expression.max() <= 1


def test_equal_fps_is_an_identity_copy():
    clip = builtin_clip("idle")
    same = resample(clip, 30)
    assert same.equals(clip)
    assert same.transl is not clip.transl


def test_single_frame():
    out = resample(MotionClip.rest(1, fps=30.0), 60.0)
    assert out.num_frames == 1 and out.fps == 60.0


def test_frame_count_formula():
    assert resampled_frame_count(601, 120, 30) == 151
    assert resampled_frame_count(601, 120, 50) == 251
    assert resampled_frame_count(10, 30, 29.97) == 9  # 0.3 s * 29.97 = 8.99 -> 9 frames
    assert resampled_frame_count(1, 30, 60) == 1


@pytest.mark.parametrize("fps", [0, -5, float("nan"), "x"])
def test_bad_target_fps(fps):
    with pytest.raises(UserError) as error:
        resample(MotionClip.rest(3), fps)
    assert error.value.field == "fps"
