"""SMPL-X pose <-> bone rotations, in numpy (no bpy).

Quaternions are wxyz (Blender's order), unit length. Axis-angle vectors are ``(..., 3)`` radians.
Because every rig bone's rest orientation is the identity in armature space (see
``smplx_rig``), a joint's SMPL-X axis-angle and its pose bone quaternion are the same rotation.

Also here: forward kinematics on the SMPL-X tree and linear blend skinning of points, the numpy
twin of what Blender's Armature modifier computes (used by tests and the retargeter).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .smplx_rig import NUM_JOINTS, PARENTS, POSE_PARAM_JOINTS

_EPS = 1e-12


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """``(..., 3)`` axis-angle -> ``(..., 4)`` unit quaternions wxyz (w >= 0 for angles <= pi)."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(a/2)/a with its series near zero, so tiny rotations stay exact.
    small = angle < 1e-6
    safe = np.where(small, 1.0, angle)
    factor = np.where(small, 0.5 - angle * angle / 48.0, np.sin(half) / safe)
    return np.concatenate([np.cos(half), axis_angle * factor], axis=-1)


def quaternion_to_axis_angle(quaternion: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions wxyz (any length > 0) -> ``(..., 3)`` axis-angle, angle in
    [0, pi] (q and -q give the same result)."""
    q = np.asarray(quaternion, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    q = np.where(q[..., :1] < 0, -q, q)
    w, xyz = q[..., :1], q[..., 1:]
    sin_half = np.linalg.norm(xyz, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, w)
    small = sin_half < 1e-8
    factor = np.where(small, 2.0 / np.maximum(w, _EPS), angle / np.where(small, 1.0, sin_half))
    return xyz * factor


def quaternion_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """``(..., 4)`` wxyz -> ``(..., 3, 3)`` rotation matrices (normalised first)."""
    q = np.asarray(quaternion, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    w, x, y, z = np.moveaxis(q, -1, 0)
    m = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1)
    return m.reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 4)`` unit quaternions wxyz with w >= 0."""
    m = np.asarray(matrix, dtype=np.float64)
    lead = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    trace = np.trace(m, axis1=1, axis2=2)
    # One candidate per largest diagonal term (Shepperd's method), pick the stable one per row.
    candidates = np.stack([
        np.stack([1 + trace, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0],
                  m[:, 1, 0] - m[:, 0, 1]], -1),
        np.stack([m[:, 2, 1] - m[:, 1, 2], 1 + 2 * m[:, 0, 0] - trace,
                  m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
        np.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0],
                  1 + 2 * m[:, 1, 1] - trace, m[:, 1, 2] + m[:, 2, 1]], -1),
        np.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1],
                  1 + 2 * m[:, 2, 2] - trace], -1),
    ], axis=1)  # [B, 4, 4]
    choice = np.argmax(np.stack([trace, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], -1), axis=-1)
    q = candidates[np.arange(len(m)), choice]
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    q = np.where(q[:, :1] < 0, -q, q)
    return q.reshape(*lead, 4)


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """``(..., 3)`` axis-angle -> ``(..., 3, 3)``."""
    return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` -> ``(..., 3)`` axis-angle, angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def make_continuous(quaternions: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 (time) so consecutive quaternions have a non-negative dot
    product, which keeps Blender's per-channel keyframe interpolation on the short arc.

    quaternions: ``(T, ..., 4)`` wxyz. Returns a new array of the same shape.
    """
    q = np.array(quaternions, dtype=np.float64)
    for t in range(1, len(q)):
        flip = np.sum(q[t] * q[t - 1], axis=-1, keepdims=True) < 0
        q[t] = np.where(flip, -q[t], q[t])
    return q


def slerp(q0: np.ndarray, q1: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Spherical interpolation on the shorter arc between unit quaternions ``(..., 4)``;
    ``weight`` broadcasts to ``(...)`` (0 -> q0, 1 -> q1)."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    theta = np.arccos(np.clip(np.abs(dot), -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-8
    safe = np.where(near, 1.0, sin_theta)
    a = np.where(near, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    b = np.where(near, w, np.sin(w * theta) / safe)
    out = a * q0 + b * q1
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), _EPS)


# ---------------------------------------------------------------------------- SMPL-X params
def full_pose_from_params(params: Mapping[str, np.ndarray], num_frames: int) -> np.ndarray:
    """``(T, 55, 3)`` axis-angle from SMPL-X pose parameters (``global_orient (T,3)``,
    ``body_pose (T,21,3)`` or ``(T,63)``, ``jaw_pose``, ``leye_pose``, ``reye_pose (T,3)``,
    ``left_hand_pose``/``right_hand_pose (T,15,3)`` or ``(T,45)``); missing ones are zero.

    Raises ``ValueError`` naming the parameter when a shape does not fit.
    """
    full = np.zeros((num_frames, NUM_JOINTS, 3))
    for name, (first, count) in POSE_PARAM_JOINTS.items():
        if name not in params or params[name] is None:
            continue
        value = np.asarray(params[name], dtype=np.float64)
        if value.size != num_frames * count * 3 or value.shape[0] != num_frames:
            raise ValueError(f"SMPL-X parameter '{name}' has shape {value.shape}, expected "
                             f"({num_frames}, {count * 3}) or ({num_frames}, {count}, 3)")
        full[:, first:first + count] = value.reshape(num_frames, count, 3)
    return full


def params_from_full_pose(full_pose: np.ndarray) -> dict[str, np.ndarray]:
    """SMPL-X pose parameters (float32; ``body_pose (T,21,3)``, hands ``(T,15,3)``, the single
    joints ``(T,3)``) from a ``(T, 55, 3)`` full pose."""
    full_pose = np.asarray(full_pose, dtype=np.float32)
    out = {}
    for name, (first, count) in POSE_PARAM_JOINTS.items():
        part = full_pose[:, first:first + count]
        out[name] = np.ascontiguousarray(part[:, 0] if count == 1 else part)
    return out


# ---------------------------------------------------------------------------- kinematics
def forward_kinematics(rotations: np.ndarray,  # (T, 55, 3, 3) local joint rotations
                       rest_joints: np.ndarray,  # (55, 3) rest joint positions, metres
                       transl: np.ndarray | None = None,  # (T, 3) metres
                       ) -> np.ndarray:
    """World transforms ``(T, 55, 4, 4)`` of the joints (rotation and posed joint position),
    SMPL-X style: each joint rotates its subtree about its rest position, then ``transl`` is
    added."""
    rotations = np.asarray(rotations, dtype=np.float64)
    rest_joints = np.asarray(rest_joints, dtype=np.float64)
    num_frames = rotations.shape[0]
    world = np.zeros((num_frames, NUM_JOINTS, 4, 4))
    world[:, :, 3, 3] = 1.0
    for j, parent in enumerate(PARENTS):
        if parent < 0:
            world[:, j, :3, :3] = rotations[:, j]
            world[:, j, :3, 3] = rest_joints[j]
        else:
            offset = rest_joints[j] - rest_joints[parent]
            world[:, j, :3, :3] = world[:, parent, :3, :3] @ rotations[:, j]
            world[:, j, :3, 3] = world[:, parent, :3, 3] + world[:, parent, :3, :3] @ offset
    if transl is not None:
        world[:, :, :3, 3] += np.asarray(transl, dtype=np.float64)[:, None]
    return world


def skinning_transforms(world: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Rest-relative joint transforms ``(T, 55, 4, 4)``: ``world @ inverse(rest)`` where the
    rest transform of joint j is a translation to ``rest_joints[j]``."""
    world = np.asarray(world, dtype=np.float64)
    relative = world.copy()
    rest = np.asarray(rest_joints, dtype=np.float64)
    relative[..., :3, 3] = world[..., :3, 3] - np.einsum("tjab,jb->tja", world[..., :3, :3], rest)
    return relative


def skin_points(points: np.ndarray,  # (N, 3) rest positions
                joint_indices: np.ndarray,  # (N, K) int
                joint_weights: np.ndarray,  # (N, K), rows sum to 1
                transforms: np.ndarray,  # (55, 4, 4) rest-relative joint transforms
                ) -> np.ndarray:
    """Linear blend skinning of ``points`` with top-K joint weights -> ``(N, 3)``, the same
    blend as Blender's Armature modifier (weights renormalised, no volume preservation)."""
    points = np.asarray(points, dtype=np.float64)
    weights = np.asarray(joint_weights, dtype=np.float64)
    weights = weights / np.maximum(weights.sum(-1, keepdims=True), _EPS)
    blended = np.einsum("nk,nkab->nab", weights, np.asarray(transforms)[joint_indices])
    return np.einsum("nab,nb->na", blended[:, :3, :3], points) + blended[:, :3, 3]
