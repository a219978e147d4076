"""blender_addon.core.pose: rotation conversions, SMPL-X forward kinematics, and the numpy twin
of Blender's Armature modifier, checked against scipy and the backend's posing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from blender_addon.core import pose as posemath
from blender_addon.core.package import read_avatar_package
from blender_addon.core.smplx_rig import JOINT_INDEX
from scipy.spatial.transform import Rotation

from addon_packages import TEST_POSES, TEST_TRANSL, build_test_package, pose_params


def _random_axis_angles(n, seed=0):
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = rng.uniform(0, np.pi, size=(n, 1))
    angle[:3] = [[0.0], [1e-9], [np.pi - 1e-7]]
    return axis * angle


def test_rotation_conversions_match_scipy():
    aa = _random_axis_angles(500)
    quat = posemath.axis_angle_to_quaternion(aa)
    reference = Rotation.from_rotvec(aa).as_quat()[:, [3, 0, 1, 2]]
    reference *= np.sign(reference[:, :1] + 1e-30)
    np.testing.assert_allclose(quat, reference, atol=1e-12)
    np.testing.assert_allclose(posemath.quaternion_to_matrix(quat),
                               Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)
    back = posemath.quaternion_to_axis_angle(-quat)  # sign does not matter
    np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(),
                               Rotation.from_rotvec(aa).as_matrix(), atol=1e-9)
    np.testing.assert_allclose(back[3:], aa[3:], atol=1e-9)
    matrices = Rotation.from_rotvec(aa).as_matrix()
    np.testing.assert_allclose(posemath.matrix_to_axis_angle(matrices)[3:], aa[3:], atol=1e-7)


def test_continuity_and_slerp():
    q = posemath.axis_angle_to_quaternion(np.array([[0, 0, 3.0], [0, 0, -3.0], [0, 0, 3.1]]))
    continuous = posemath.make_continuous(q[:, None])[:, 0]
    assert (np.sum(continuous[1:] * continuous[:-1], -1) > 0).all()
    mid = posemath.slerp(q[0], q[1], 0.5)
    np.testing.assert_allclose(np.abs(posemath.quaternion_to_axis_angle(mid)), [0, 0, np.pi],
                               atol=1e-9)


def test_params_round_trip():
    full = _random_axis_angles(55 * 4).reshape(4, 55, 3)
    params = posemath.params_from_full_pose(full)
    assert params["body_pose"].shape == (4, 21, 3) and params["jaw_pose"].shape == (4, 3)
    np.testing.assert_allclose(posemath.full_pose_from_params(params, 4), full, atol=1e-6)
    with pytest.raises(ValueError, match="body_pose"):
        posemath.full_pose_from_params({"body_pose": np.zeros((4, 20, 3))}, 4)


@pytest.fixture(scope="module")
def package_path(tmp_path_factory, open_body):
    return build_test_package(tmp_path_factory.mktemp("pkg") / "p.avatar", open_body, 27420)


def _full_pose(pose):
    full = np.zeros((1, 55, 3))
    for name, value in pose.items():
        full[0, JOINT_INDEX[name]] = value
    return full


@pytest.mark.parametrize("pose_name", sorted(TEST_POSES))
def test_skinning_matches_the_backend(package_path, open_body, pose_name):
    """The rig's deformation (top-4 joint weights per Gaussian, linear blend) stays within 1 mm
    on average of the backend's placement on the posed mesh: the Blender viewport shows the
    avatar where the renderer puts it."""
    from oneshot_avatar.package import load_avatar

    package = read_avatar_package(package_path)
    avatar = load_avatar(package_path, body=open_body)
    params = pose_params(TEST_POSES[pose_name], TEST_TRANSL[pose_name])
    with torch.no_grad():
        expected = avatar.pose(open_body, **params).means[0].numpy()
        joints = open_body(betas=avatar.betas[None], **params).joints[0].numpy()
    rotations = posemath.axis_angle_to_matrix(_full_pose(TEST_POSES[pose_name]))
    world = posemath.forward_kinematics(rotations, package.rest_joints,
                                        np.array([TEST_TRANSL[pose_name]]))
    np.testing.assert_allclose(world[0, :, :3, 3], joints[:55], atol=1e-5)
    transforms = posemath.skinning_transforms(world, package.rest_joints)[0]
    skinned = posemath.skin_points(package.positions, package.joint_indices,
                                   package.joint_weights, transforms)
    error = np.linalg.norm(skinned - expected, axis=-1)
    assert error.mean() < 1e-3, (error.mean(), error.max())
