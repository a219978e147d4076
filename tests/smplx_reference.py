"""A reference SMPL-X skeleton for tests: forward kinematics on the neutral SMPL-X rest joints
shipped by ``mannequin-x`` (no SMPL-X files needed). Independent of the product's body code."""

from __future__ import annotations

import importlib.resources

import numpy as np
from scipy.spatial.transform import Rotation

from oneshot_avatar.body.smplx_layout import NUM_JOINTS, PARENTS


def mannequin_rest_joints() -> np.ndarray:
    """(55, 3) neutral SMPL-X rest joints, Y-up; jaw and eyes (no data) are NaN."""
    with importlib.resources.as_file(
        importlib.resources.files("mannequin") / "assets" / "smplx_calibration.npz"
    ) as path:
        rest = np.load(path, allow_pickle=False)["joint_rest"].astype(np.float64)
    joints = np.full((NUM_JOINTS, 3), np.nan)
    joints[:22] = rest[:22]
    joints[25:] = rest[24:]
    return joints


def forward_kinematics(rest_joints: np.ndarray, full_pose: np.ndarray) -> np.ndarray:
    """Posed joints (T, 55, 3) for axis-angle ``full_pose`` (T, 55, 3), no translation."""
    frames = full_pose.shape[0]
    rotations = Rotation.from_rotvec(full_pose.reshape(-1, 3)).as_matrix().reshape(frames, -1, 3, 3)
    world = np.zeros_like(rotations)
    posed = np.zeros((frames, NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        p = PARENTS[j]
        if p < 0:
            world[:, j] = rotations[:, j]
            posed[:, j] = rest_joints[j]
        else:
            world[:, j] = world[:, p] @ rotations[:, j]
            offset = np.nan_to_num(rest_joints[j] - rest_joints[p])
            posed[:, j] = posed[:, p] + np.einsum("tab,b->ta", world[:, p], offset)
    return posed


def bone_direction(joints: np.ndarray, parent: int, child: int) -> np.ndarray:
    d = joints[..., child, :] - joints[..., parent, :]
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def angle_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))
