"""Geometry checks by forward kinematics on SMPL-X's neutral rest skeleton (from mannequin-x):
up-axis conversions of real files, and the poses of the built-in clips.

The FK here is a test helper on purpose: the product poses bodies with the body model.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from oneshot_avatar.body.smplx_layout import JOINT_INDEX, NOMINAL_PELVIS_REST, PARENTS
from oneshot_avatar.motion import builtin_clip, load_motion
from shared_files import real_file

Q_Z_UP_TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
J = JOINT_INDEX



def rest_skeleton() -> np.ndarray:
    """``(55, 3)`` neutral SMPL-X rest joints, Y-up, from mannequin-x's calibration.

    Mannequin has 54 joints: 0..21 are SMPL-X's 0..21; 22/23 are extra zero-length L/R_Hand
    joints at the wrists; 24..53 are the fingers (SMPL-X 25..54). It has no jaw or eyes: we put
    them near the head (they only matter for their own children, which have none).
    """
    source = resources.files("mannequin") / "assets" / "smplx_calibration.npz"
    with resources.as_file(source) as path, np.load(path, allow_pickle=False) as data:
        mannequin = data["joint_rest"].astype(np.float64)
    assert mannequin.shape == (54, 3)
    joints = np.zeros((55, 3))
    joints[:22] = mannequin[:22]
    joints[22] = mannequin[15] + [0.0, -0.03, 0.05]
    joints[23] = mannequin[15] + [0.03, 0.04, 0.07]
    joints[24] = mannequin[15] + [-0.03, 0.04, 0.07]
    joints[25:] = mannequin[24:]
    return joints


REST = rest_skeleton()


def forward_kinematics(full_pose: np.ndarray, transl: np.ndarray,
                       rest: np.ndarray = REST) -> tuple[np.ndarray, np.ndarray]:
    """SMPL-X joint positions ``(T, 55, 3)`` and global rotations ``(T, 55, 3, 3)``.

    ``full_pose (T, 55, 3)`` axis-angle; the root turns about its rest position, then ``transl``.
    """
    full_pose = np.asarray(full_pose, dtype=np.float64)
    frames = full_pose.shape[0]
    local = Rotation.from_rotvec(full_pose.reshape(-1, 3)).as_matrix().reshape(frames, 55, 3, 3)
    rotations = np.zeros_like(local)
    positions = np.zeros((frames, 55, 3))
    for joint, parent in enumerate(PARENTS):
        if parent < 0:
            rotations[:, joint] = local[:, joint]
            positions[:, joint] = rest[joint] + np.asarray(transl, dtype=np.float64)
        else:
            rotations[:, joint] = rotations[:, parent] @ local[:, joint]
            offset = rest[joint] - rest[parent]
            positions[:, joint] = positions[:, parent] + rotations[:, parent] @ offset
    return positions, rotations


def clip_fk(clip) -> tuple[np.ndarray, np.ndarray]:
    return forward_kinematics(clip.full_pose(), clip.transl)


# ---------------------------------------------------------------------------- the helper itself
def test_fk_rest_pose_gives_rest_joints():
    positions, _ = forward_kinematics(np.zeros((1, 55, 3)), np.zeros((1, 3)))
    np.testing.assert_allclose(positions[0], REST, atol=1e-12)
    assert REST[J["left_wrist"], 0] > 0.6  # SMPL-X rest: the left arm lies along +X


def test_fk_arm_lowering_signs():
    """-70 deg about +Z on left_shoulder and +70 deg on right_shoulder lower the arms."""
    for sign, expect_down in ((1.0, True), (-1.0, False)):
        pose = np.zeros((1, 55, 3))
        pose[0, J["left_shoulder"]] = [0, 0, -sign * np.radians(70)]
        pose[0, J["right_shoulder"]] = [0, 0, sign * np.radians(70)]
        positions, _ = forward_kinematics(pose, np.zeros((1, 3)))
        for side in ("left", "right"):
            drop = positions[0, J[f"{side}_shoulder"], 1] - positions[0, J[f"{side}_wrist"], 1]
            assert (drop > 0.4) == expect_down


# ---------------------------------------------------------------------------- real files
def _amass_raw(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        poses, trans = data["poses"], data["trans"]
    full = np.zeros((poses.shape[0], 55, 3))
    full[:, :22] = poses[:, :66].reshape(-1, 22, 3)
    full[:, 25:] = poses[:, 66:156].reshape(-1, 30, 3)
    return full, trans


def test_amass_conversion_is_exact_world_rotation():
    """Posing with converted parameters == Q (posing with the file's parameters)."""
    path = real_file("amass_sample_smplh.npz")
    clip = load_motion(path)
    full, trans = _amass_raw(path)
    rest = REST.copy()
    rest[0] = NOMINAL_PELVIS_REST  # the pelvis the conversion assumes: exact
    original, _ = forward_kinematics(full, trans, rest)
    converted, _ = forward_kinematics(clip.full_pose(), clip.transl, rest)
    np.testing.assert_allclose(converted, original @ Q_Z_UP_TO_Y_UP.T, atol=2e-5)
    # With mannequin's own pelvis (40 micrometres away) it stays within a millimetre.
    original, _ = forward_kinematics(full, trans)
    converted, _ = forward_kinematics(clip.full_pose(), clip.transl)
    np.testing.assert_allclose(converted, original @ Q_Z_UP_TO_Y_UP.T, atol=1e-3)


def test_amass_body_is_upright_after_conversion():
    clip = load_motion(real_file("amass_sample_smplh.npz"))
    positions, rotations = clip_fk(clip)
    assert np.all(rotations[:, 0, 1, 1] > 0.85)  # the root's +Y points mostly up
    head_over_pelvis = positions[:, J["head"], 1] - positions[:, J["pelvis"], 1]
    assert np.all(head_over_pelvis > 0.5)
    # AMASS's floor (z = 0) becomes y = 0: the lowest joints are near it, none far below.
    assert -0.05 < positions[:, :, 1].min() < 0.1


def test_talkshow_body_is_upright_head_up():
    clip = load_motion(real_file("talkshow_french.npy"))
    positions, rotations = clip_fk(clip)
    assert np.all(rotations[:, 0, 1, 1] > 0.95)  # root +Y up
    assert np.all(rotations[:, 0, 2, 2] > 0.95)  # facing +Z
    head_over_pelvis = positions[:, J["head"], 1] - positions[:, J["pelvis"], 1]
    assert np.all(head_over_pelvis > 0.45)
    assert np.all(positions[:, J["head"], 1] > positions[:, J["neck"], 1])


# ---------------------------------------------------------------------------- built-in clips
def _drop(positions: np.ndarray, side: str) -> np.ndarray:
    """How far the wrist hangs below the shoulder, per frame (metres)."""
    return positions[:, J[f"{side}_shoulder"], 1] - positions[:, J[f"{side}_wrist"], 1]


@pytest.mark.parametrize("name", ["idle", "turnaround"])
def test_arms_hang_down_all_the_time(name):
    positions, rotations = clip_fk(builtin_clip(name))
    for side in ("left", "right"):
        assert np.all(_drop(positions, side) > 0.4), side
        # and the hands hang beside the body, not in front of or behind it (in the body frame)
        offset = positions[:, J[f"{side}_wrist"]] - positions[:, J["pelvis"]]
        in_body = np.einsum("tji,tj->ti", rotations[:, 0], offset)
        assert np.all(np.abs(in_body[:, 2]) < 0.1), side
        assert np.all(in_body[:, 0] * (1 if side == "left" else -1) > 0.15), side


@pytest.mark.parametrize("name", ["idle", "talk", "wave", "point", "shrug", "turnaround"])
def test_every_clip_starts_with_arms_down(name):
    positions, _ = clip_fk(builtin_clip(name))
    for side in ("left", "right"):
        assert _drop(positions[:1], side)[0] > 0.3, side  # talk has its forearms forward


def test_talk_keeps_hands_low_and_forward():
    positions, _ = clip_fk(builtin_clip("talk"))
    for side in ("left", "right"):
        assert np.all(_drop(positions, side) > 0.2)
        wrist_ahead = positions[:, J[f"{side}_wrist"], 2] - positions[:, J["pelvis"], 2]
        assert np.all(wrist_ahead > 0.1)  # forearms forward for the beat gestures


def test_wave_raises_the_right_hand_palm_forward():
    clip = builtin_clip("wave")
    positions, rotations = clip_fk(clip)
    middle = slice(clip.num_frames // 4, 3 * clip.num_frames // 4)
    right = positions[middle, J["right_wrist"]]
    assert np.all(right[:, 1] > positions[middle, J["right_shoulder"], 1] + 0.2)
    palm = rotations[middle, J["right_wrist"]] @ np.array([0.0, -1.0, 0.0])  # rest palm: -Y
    assert np.all(palm[:, 2] > 0.7)  # facing forward
    assert np.ptp(right[:, 0]) > 0.05  # it waves side to side
    assert np.all(_drop(positions, "left") > 0.4)  # the other arm stays down


def test_point_reaches_forward_with_the_index_finger():
    clip = builtin_clip("point")
    positions, _ = clip_fk(clip)
    hold = clip.num_frames // 2
    shoulder, wrist = positions[hold, J["right_shoulder"]], positions[hold, J["right_wrist"]]
    assert wrist[2] - shoulder[2] > 0.4  # forward
    assert abs(wrist[1] - shoulder[1]) < 0.2  # about shoulder height
    index_tip = positions[hold, J["right_index3"]]
    middle_tip = positions[hold, J["right_middle3"]]
    assert index_tip[2] > wrist[2] + 0.1  # index extended along the arm
    assert middle_tip[2] < index_tip[2] - 0.04  # the other fingers are curled
    assert np.all(_drop(positions, "left") > 0.4)


def test_shrug_lifts_shoulders_and_turns_palms_up():
    clip = builtin_clip("shrug")
    positions, rotations = clip_fk(clip)
    hold = clip.num_frames // 2
    for side in ("left", "right"):
        lift = positions[hold, J[f"{side}_shoulder"], 1] - positions[0, J[f"{side}_shoulder"], 1]
        assert lift > 0.02, side
        palm = rotations[hold, J[f"{side}_wrist"]] @ np.array([0.0, -1.0, 0.0])
        assert palm[1] > 0.7, side  # palm up
        outwards = positions[hold, J[f"{side}_wrist"], 0] - positions[hold, J["pelvis"], 0]
        assert outwards * (1 if side == "left" else -1) > 0.3, side  # forearms out


def test_turnaround_covers_a_full_turn_about_y():
    clip = builtin_clip("turnaround")
    _, rotations = clip_fk(clip)
    facing = rotations[:, 0] @ np.array([0.0, 0.0, 1.0])
    assert np.allclose(facing[:, 1], 0.0, atol=1e-6)  # turns about +Y only
    yaw = np.unwrap(np.arctan2(facing[:, 0], facing[:, 2]))
    step = 2 * np.pi / clip.num_frames
    np.testing.assert_allclose(np.diff(yaw), step, atol=1e-5)  # even steps, one direction
    assert yaw[-1] - yaw[0] + step == pytest.approx(2 * np.pi, abs=1e-5)
