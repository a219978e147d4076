"""The motion modules' rotation helpers (numpy only, so reading a motion file does not import
scipy) keep scipy's ``Rotation`` conventions: the same axis-angle, quaternion and matrix for
every rotation, including the ones near 0 and near pi where the formulas change."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from oneshot_avatar.motion import _rotations as rot


def _rotvecs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(400, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([
        rng.uniform(0.0, np.pi, 200),
        rng.uniform(0.0, 2e-3, 60),  # the small-angle series and its edge
        np.pi - rng.uniform(0.0, 1e-6, 60),  # near pi, where matrix -> quat switches branches
        rng.uniform(np.pi, 3 * np.pi, 70),  # beyond pi: the same rotation as a shorter vector
        np.zeros(10),
    ])
    return axes * angles[:, None]


def test_axis_angle_to_matrix_and_quaternion_match_scipy():
    v = _rotvecs()
    reference = Rotation.from_rotvec(v)
    np.testing.assert_allclose(rot.rotvec_to_matrix(v), reference.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(rot.rotvec_to_quat(v), reference.as_quat(), atol=1e-12)


def test_back_to_axis_angle_matches_scipy_with_angles_in_zero_to_pi():
    v = _rotvecs(1)
    reference = Rotation.from_rotvec(v)
    from_matrix = rot.matrix_to_rotvec(reference.as_matrix())
    from_quat = rot.quat_to_rotvec(-reference.as_quat())  # either sign of a quaternion
    expected = reference.as_rotvec()
    # At exactly pi, v and -v are one rotation: compare the rotations, then the angles.
    np.testing.assert_allclose(rot.rotvec_to_matrix(from_matrix), reference.as_matrix(),
                               atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(from_matrix, axis=1),
                               np.linalg.norm(expected, axis=1), atol=1e-9)
    assert np.linalg.norm(from_matrix, axis=1).max() <= np.pi + 1e-12
    away_from_pi = np.linalg.norm(expected, axis=1) < np.pi - 1e-5
    np.testing.assert_allclose(from_matrix[away_from_pi], expected[away_from_pi], atol=1e-9)
    np.testing.assert_allclose(from_quat[away_from_pi], expected[away_from_pi], atol=1e-12)


def test_compose_and_premultiply_match_scipy_and_broadcast():
    a, b = _rotvecs(2), _rotvecs(3)
    expected = (Rotation.from_rotvec(a) * Rotation.from_rotvec(b)).as_matrix()
    np.testing.assert_allclose(rot.rotvec_to_matrix(rot.compose(a, b)), expected, atol=1e-9)
    # one rotation against many, and leading dimensions kept
    one = a[:1].reshape(1, 1, 3)
    out = rot.compose(one, b.reshape(20, 20, 3))
    assert out.shape == (20, 20, 3)
    np.testing.assert_allclose(
        rot.rotvec_to_matrix(out).reshape(-1, 3, 3),
        (Rotation.from_rotvec(a[0]) * Rotation.from_rotvec(b)).as_matrix(), atol=1e-9)
    world = Rotation.from_rotvec([0.3, -1.2, 2.0]).as_matrix()
    pre = rot.premultiply(world, b.reshape(4, 100, 3))
    assert pre.shape == (4, 100, 3)
    np.testing.assert_allclose(rot.rotvec_to_matrix(pre).reshape(-1, 3, 3),
                               world @ Rotation.from_rotvec(b).as_matrix(), atol=1e-9)


@pytest.mark.parametrize("matrix", [rot.Z_UP_TO_Y_UP, rot.FLIP_X_180, np.eye(3)])
def test_the_frame_changes_are_the_rotations_they_name(matrix):
    np.testing.assert_allclose(rot.rotvec_to_matrix(rot.matrix_to_rotvec(matrix)), matrix,
                               atol=1e-12)
    np.testing.assert_allclose(rot.matrix_to_rotvec(matrix),
                               Rotation.from_matrix(matrix).as_rotvec(), atol=1e-12)


def test_the_add_on_twin_gives_the_same_rotations():
    """The add-on has its own numpy rotations (``blender_addon/core/pose.py``, quaternions wxyz,
    Blender's order; it cannot import the backend): both give the same matrices, the same
    axis-angle back, and quaternions that differ only in the order of their components."""
    from blender_addon.core import pose

    v = _rotvecs(4)
    np.testing.assert_allclose(pose.axis_angle_to_matrix(v), rot.rotvec_to_matrix(v), atol=1e-12)
    matrices = rot.rotvec_to_matrix(v)
    away_from_pi = np.linalg.norm(rot.matrix_to_rotvec(matrices), axis=1) < np.pi - 1e-5
    np.testing.assert_allclose(pose.matrix_to_axis_angle(matrices)[away_from_pi],
                               rot.matrix_to_rotvec(matrices)[away_from_pi], atol=1e-9)
    within_pi = np.linalg.norm(v, axis=1) <= np.pi
    np.testing.assert_allclose(pose.axis_angle_to_quaternion(v)[within_pi],
                               np.roll(rot.rotvec_to_quat(v), 1, axis=-1)[within_pi], atol=1e-12)
