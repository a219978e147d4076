"""Small rotation helpers on axis-angle arrays (numpy + scipy), shared by the motion modules.

All functions take and return float64 arrays; axis-angle vectors are ``(..., 3)`` radians.
"""

from __future__ import annotations

import numpy as np

# Z-up world -> SMPL-X's Y-up world: (x, y, z) -> (x, z, -y), a rotation of -90 deg about +X.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# A camera-style frame (y down, z forward) -> Y-up world: 180 deg about +X.
FLIP_X_180 = np.diag([1.0, -1.0, -1.0])


def _Rotation():
    """scipy's ``Rotation``, imported on first use (scipy takes ~0.5 s to import, which
    ``oneshot-avatar --help`` should not pay)."""
    from scipy.spatial.transform import Rotation

    return Rotation


def _flat(rotvec: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    rotvec = np.array(rotvec, dtype=np.float64)  # a writable copy (scipy refuses read-only views)
    return rotvec.reshape(-1, 3), rotvec.shape[:-1]


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """``(..., 3)`` axis-angle -> ``(..., 3, 3)`` rotation matrices."""
    flat, lead = _flat(rotvec)
    return _Rotation().from_rotvec(flat).as_matrix().reshape(*lead, 3, 3)


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 3)`` axis-angle (angle in [0, pi])."""
    matrix = np.array(matrix, dtype=np.float64)
    lead = matrix.shape[:-2]
    return _Rotation().from_matrix(matrix.reshape(-1, 3, 3)).as_rotvec().reshape(*lead, 3)


def premultiply(matrix: np.ndarray, rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle of ``matrix @ R(rotvec)`` for each vector: a change of world frame."""
    flat, lead = _flat(rotvec)
    out = (_Rotation().from_matrix(matrix) * _Rotation().from_rotvec(flat)).as_rotvec()
    return out.reshape(*lead, 3)


def compose(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Axis-angle of ``R(first) @ R(second)`` (broadcast over leading dimensions)."""
    first, second = (np.array(a) for a in np.broadcast_arrays(np.asarray(first, np.float64),
                                                              np.asarray(second, np.float64)))
    lead = first.shape[:-1]
    out = _Rotation().from_rotvec(first.reshape(-1, 3)) * _Rotation().from_rotvec(second.reshape(-1, 3))
    return out.as_rotvec().reshape(*lead, 3)


def rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """``(..., 3)`` axis-angle -> ``(..., 4)`` unit quaternions, scalar LAST (scipy order)."""
    flat, lead = _flat(rotvec)
    return _Rotation().from_rotvec(flat).as_quat().reshape(*lead, 4)


def quat_to_rotvec(quat: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions (scalar last) -> ``(..., 3)`` axis-angle."""
    quat = np.array(quat, dtype=np.float64)
    lead = quat.shape[:-1]
    return _Rotation().from_quat(quat.reshape(-1, 4)).as_rotvec().reshape(*lead, 3)


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
