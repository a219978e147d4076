"""Small rotation helpers on axis-angle arrays (plain numpy), shared by the motion modules.

All functions take and return float64 arrays; axis-angle vectors are ``(..., 3)`` radians and
quaternions are ``(..., 4)`` with the scalar LAST (scipy's order). The conventions are scipy's
``Rotation`` (``tests/test_rotations.py`` holds them to it); numpy alone keeps the commands that
read motion (``motion info``) from paying scipy.spatial's ~0.5 s import. The add-on's
``blender_addon/core/pose.py`` is the twin in Blender's quaternion order (wxyz); the backend
cannot import it, and the same test holds the two together.
"""

from __future__ import annotations

import numpy as np

# Z-up world -> SMPL-X's Y-up world: (x, y, z) -> (x, z, -y), a rotation of -90 deg about +X.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# A camera-style frame (y down, z forward) -> Y-up world: 180 deg about +X.
FLIP_X_180 = np.diag([1.0, -1.0, -1.0])

_SMALL = 1e-3  # below this angle (radians) the series forms are exact to float64


def rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """``(..., 3)`` axis-angle -> ``(..., 4)`` unit quaternions, scalar LAST (scipy order)."""
    v = np.asarray(rotvec, dtype=np.float64)
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    small = angle < _SMALL
    a2 = angle * angle
    safe = np.where(small, 1.0, angle)
    # sin(angle/2)/angle, with its Taylor series near 0
    scale = np.where(small, 0.5 - a2 / 48.0 + a2 * a2 / 3840.0, np.sin(0.5 * angle) / safe)
    return np.concatenate([v * scale, np.cos(0.5 * angle)], axis=-1)


def quat_to_rotvec(quat: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions (scalar last, any norm) -> ``(..., 3)`` axis-angle, angle in [0, pi]."""
    q = np.asarray(quat, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., 3:] < 0.0, -q, q)  # q and -q are one rotation: the one with angle <= pi
    xyz_norm = np.linalg.norm(q[..., :3], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(xyz_norm, q[..., 3:])
    small = angle < _SMALL
    a2 = angle * angle
    safe = np.where(small, 1.0, np.sin(0.5 * angle))
    # angle/sin(angle/2), with its Taylor series near 0
    scale = np.where(small, 2.0 + a2 / 12.0 + 7.0 * a2 * a2 / 2880.0, angle / safe)
    return q[..., :3] * scale


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions (scalar last, any norm) -> ``(..., 3, 3)`` rotation matrices."""
    q = np.asarray(quat, dtype=np.float64)
    x, y, z, w = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_quat(matrix: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 4)`` unit quaternions (scalar last).

    Each quaternion is built from the largest of its four components (the diagonal or the
    trace), which keeps the division well away from zero for every rotation.
    """
    m = np.asarray(matrix, dtype=np.float64)
    lead = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    diag = np.diagonal(m, axis1=-2, axis2=-1)
    trace = diag.sum(axis=-1)
    choice = np.argmax(np.concatenate([diag, trace[:, None]], axis=-1), axis=-1)
    quat = np.empty((m.shape[0], 4))
    rows = np.arange(m.shape[0])
    # the scalar part is largest
    t = choice == 3
    quat[t, 0] = m[t, 2, 1] - m[t, 1, 2]
    quat[t, 1] = m[t, 0, 2] - m[t, 2, 0]
    quat[t, 2] = m[t, 1, 0] - m[t, 0, 1]
    quat[t, 3] = 1.0 + trace[t]
    # one of x, y, z is largest
    d = ~t
    i = choice[d]
    j = (i + 1) % 3
    k = (j + 1) % 3
    r = rows[d]
    quat[r, i] = 1.0 - trace[d] + 2.0 * m[r, i, i]
    quat[r, j] = m[r, j, i] + m[r, i, j]
    quat[r, k] = m[r, k, i] + m[r, i, k]
    quat[r, 3] = m[r, k, j] - m[r, j, k]
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    return quat.reshape(*lead, 4)


def quat_multiply(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The quaternion of ``R(first) @ R(second)`` (scalar last; broadcast)."""
    p = np.asarray(first, dtype=np.float64)
    q = np.asarray(second, dtype=np.float64)
    pv, pw = p[..., :3], p[..., 3:]
    qv, qw = q[..., :3], q[..., 3:]
    vector = pw * qv + qw * pv + np.cross(pv, qv)
    scalar = pw * qw - np.sum(pv * qv, axis=-1, keepdims=True)
    return np.concatenate([vector, scalar], axis=-1)


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """``(..., 3)`` axis-angle -> ``(..., 3, 3)`` rotation matrices."""
    return quat_to_matrix(rotvec_to_quat(rotvec))


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 3)`` axis-angle (angle in [0, pi])."""
    return quat_to_rotvec(matrix_to_quat(matrix))


def premultiply(matrix: np.ndarray, rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle of ``matrix @ R(rotvec)`` for each vector: a change of world frame."""
    return quat_to_rotvec(quat_multiply(matrix_to_quat(matrix), rotvec_to_quat(rotvec)))


def compose(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Axis-angle of ``R(first) @ R(second)`` (broadcast over leading dimensions)."""
    return quat_to_rotvec(quat_multiply(rotvec_to_quat(first), rotvec_to_quat(second)))


def slerp_quat(q0: np.ndarray, q1: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Spherical interpolation along the shorter arc.

    q0, q1: ``(..., 4)`` unit quaternions; weight: broadcastable to ``(...)``, 0 -> q0, 1 -> q1.
    """
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)  # q and -q are the same rotation: take the short way
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-8
    safe = np.where(near, 1.0, sin_theta)
    a = np.where(near, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    b = np.where(near, w, np.sin(w * theta) / safe)
    out = a * q0 + b * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)
