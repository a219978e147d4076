"""How far a fitted body leans in the fit camera's side plane.

The side view is the vertical plane (world +Y up) through the camera's line of sight. An angle
here is that of a segment from a lower point to an upper point, measured from the world
vertical in that plane, positive when the upper end is nearer the camera (a person facing the
camera leaning towards it, or legs raked with the feet away from the camera). For the fit's
level camera this is the camera's ``y-z`` plane.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from oneshot_avatar.body.smplx_layout import JOINT_INDEX


def side_angle_degrees(lower: np.ndarray, upper: np.ndarray, world_to_cam: np.ndarray) -> float:
    """Angle from the world vertical (+Y) of the segment ``lower -> upper`` (world points
    ``[3]``) in the camera's side plane: the vertical plane through the camera's line of sight
    (``world_to_cam`` 4x4). Positive when the upper end is nearer the camera."""
    rotation = np.asarray(world_to_cam, dtype=np.float64)[:3, :3]
    forward = rotation.T @ np.array([0.0, 0.0, 1.0])  # the optical axis in the world
    toward = -np.array([forward[0], 0.0, forward[2]])
    toward /= max(float(np.linalg.norm(toward)), 1e-12)
    d = np.asarray(upper, dtype=np.float64) - np.asarray(lower, dtype=np.float64)
    return math.degrees(math.atan2(float(d @ toward), float(d[1])))


def lean_angles(joints: np.ndarray, world_to_cam: np.ndarray) -> dict[str, float]:
    """Side-plane angles (degrees) of the torso (pelvis -> mid-shoulders) and of each leg
    (ankle -> hip), and the legs' mean, for posed ``joints [55, 3]`` (world)."""
    j = JOINT_INDEX
    joints = np.asarray(joints, dtype=np.float64)
    shoulders = 0.5 * (joints[j["left_shoulder"]] + joints[j["right_shoulder"]])
    hips = 0.5 * (joints[j["left_hip"]] + joints[j["right_hip"]])
    out = {"torso": side_angle_degrees(hips, shoulders, world_to_cam)}
    for side in ("left", "right"):
        out[f"{side}_leg"] = side_angle_degrees(joints[j[f"{side}_ankle"]],
                                                joints[j[f"{side}_hip"]], world_to_cam)
    out["legs"] = 0.5 * (out["left_leg"] + out["right_leg"])
    return out


def fit_lean(body, params: dict, camera) -> dict[str, float]:
    """:func:`lean_angles` of a fit's body (``params`` batch 1) seen by its ``camera``."""
    with torch.no_grad():
        joints = body(**params).joints[0].detach().cpu().double().numpy()
    return lean_angles(joints, camera.world_to_cam.detach().cpu().double().numpy())
