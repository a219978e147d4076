"""Imported motion starts facing the front, above the rest pelvis, moved rigidly (issue 17)."""

from __future__ import annotations

import numpy as np
from blender_addon.core import pose as posemath
from blender_addon.core.motion import Motion
from blender_addon.core.placement import face_and_centre, rotation_about_y
from blender_addon.core.smplx_rig import NOMINAL_PELVIS_REST


def _rest_joints(seed=0):
    rng = np.random.default_rng(seed)
    joints = rng.normal(scale=0.3, size=(55, 3))
    joints[0] = NOMINAL_PELVIS_REST
    return joints


def test_first_frame_faces_forward_above_the_rest_pelvis_and_the_clip_moves_rigidly():
    rng = np.random.default_rng(4)
    t = 12
    full = rng.normal(scale=0.3, size=(t, 55, 3))
    # facing +X, far away, walking along +X
    full[:, 0] = posemath.matrix_to_axis_angle(
        rotation_about_y(np.pi / 2) @ posemath.axis_angle_to_matrix(full[:, 0] * 0.2))
    transl = np.stack([np.linspace(5, 7, t), np.full(t, 0.3), np.full(t, -4.0)], axis=1)
    motion = Motion(fps=30.0, full_pose=full, transl=transl, expression=np.zeros((t, 0)))
    rest = _rest_joints()
    placed = face_and_centre(motion, rest[0])
    world = lambda m: posemath.forward_kinematics(
        posemath.axis_angle_to_matrix(m.full_pose), rest, m.transl)[:, :, :3, 3]
    before, after = world(motion), world(placed)
    facing = posemath.axis_angle_to_matrix(placed.full_pose[0, 0])[:, 2]
    assert facing[2] > 0.95 * np.hypot(facing[0], facing[2])  # +Z on the floor plane
    np.testing.assert_allclose(after[0, 0, [0, 2]], rest[0, [0, 2]], atol=1e-9)
    np.testing.assert_allclose(after[:, :, 1], before[:, :, 1], atol=1e-9)  # heights kept
    # One rigid motion of the whole clip: distances between all joints of all frames kept.
    flat_b, flat_a = before.reshape(-1, 3), after.reshape(-1, 3)
    dist = lambda p: np.linalg.norm(p[:, None] - p[None], axis=-1)
    np.testing.assert_allclose(dist(flat_a), dist(flat_b), atol=1e-9)
    np.testing.assert_array_equal(placed.full_pose[:, 1:], motion.full_pose[:, 1:])
