"""The LBS core (body/lbs.py): each pure function against ``smplx``'s own, and the two users
of it (the full body and the fit's sparse body) agreeing, pose correctives included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from smplx import lbs as smplx_lbs

from oneshot_avatar.body import PARENTS, lbs


def _random_pose(batch: int, seed: int = 0, scale: float = 0.6) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, len(PARENTS), 3, generator=generator, dtype=torch.float64) * scale


def test_axis_angle_to_matrix_is_rodrigues_for_any_leading_shape():
    pose = _random_pose(3)
    pose[0, 0] = 0.0  # the identity
    pose[1, 1] = torch.tensor([np.pi - 1e-4, 0.0, 0.0])  # near half a turn
    ours = lbs.axis_angle_to_matrix(pose)
    assert ours.shape == (3, len(PARENTS), 3, 3)
    expected = Rotation.from_rotvec(pose.reshape(-1, 3).numpy()).as_matrix().reshape(3, -1, 3, 3)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-7)
    single = lbs.axis_angle_to_matrix(pose[2, 5])
    assert single.shape == (3, 3)
    torch.testing.assert_close(single, ours[2, 5], atol=0, rtol=0)


def test_axis_angle_gradient_is_finite_and_right_at_zero():
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    matrix = lbs.axis_angle_to_matrix(zero)
    # d R / d v at v = 0 is the cross-product matrix: R[0, 1] = -v_z, R[0, 2] = v_y.
    (grad,) = torch.autograd.grad(matrix[0, 1] + 2 * matrix[0, 2], zero)
    torch.testing.assert_close(grad, torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64),
                               atol=1e-6, rtol=0)


def test_rigid_transforms_chain_the_tree():
    pose = _random_pose(4, seed=1)
    rotations = lbs.axis_angle_to_matrix(pose)
    rest_joints = torch.randn(4, len(PARENTS), 3, dtype=torch.float64,
                              generator=torch.Generator().manual_seed(2))
    joints, skin = lbs.rigid_transforms(rotations, rest_joints, PARENTS)
    assert joints.shape == (4, len(PARENTS), 3) and skin.shape == (4, len(PARENTS), 4, 4)
    # A skinning transform takes each rest joint to its posed place ...
    moved = (skin[..., :3, :3] @ rest_joints[..., None])[..., 0] + skin[..., :3, 3]
    torch.testing.assert_close(moved, joints, atol=1e-12, rtol=0)
    # ... its rotation is the product of the rotations from the root down ...
    world = [rotations[:, 0]]
    for joint, parent in enumerate(PARENTS[1:], start=1):
        world.append(world[parent] @ rotations[:, joint])
    torch.testing.assert_close(skin[..., :3, :3], torch.stack(world, dim=1), atol=1e-12, rtol=0)
    # ... and each bone keeps its rest length (to Rodrigues' 1e-8 angle offset).
    child, parent = torch.arange(1, len(PARENTS)), torch.tensor(PARENTS[1:])
    torch.testing.assert_close((joints[:, child] - joints[:, parent]).norm(dim=-1),
                               (rest_joints[:, child] - rest_joints[:, parent]).norm(dim=-1),
                               atol=1e-6, rtol=0)


def test_rigid_transforms_refuse_a_child_before_its_parent():
    rotations = torch.eye(3).expand(1, 3, 3, 3)
    with pytest.raises(ValueError, match="parent"):
        lbs.rigid_transforms(rotations, torch.zeros(1, 3, 3), (-1, 2, 0))


def test_composed_functions_match_smplx_lbs_with_pose_correctives(open_body):
    """Blend shapes, joint regression, correctives, chain and skinning composed as the body model
    does equal ``smplx.lbs.lbs`` -- with random (non-zero) pose correctives, which the open body
    itself has none of."""
    body = open_body
    generator = torch.Generator().manual_seed(3)
    vertices = body.v_template.shape[0]
    posedirs = torch.randn((len(PARENTS) - 1) * 9, vertices * 3, generator=generator) * 1e-3
    directions = body.blend_directions
    coefficients = torch.randn(2, directions.shape[-1], generator=generator)
    pose = _random_pose(2, seed=4).float()

    rest = body.v_template[None] + lbs.blend_shapes(coefficients, directions)
    rest_joints = lbs.regress_joints(body.joint_regressor, rest)
    rotations = lbs.axis_angle_to_matrix(pose)
    corrected = rest + lbs.pose_correctives(rotations, posedirs)
    joints, skin = lbs.rigid_transforms(rotations, rest_joints, PARENTS)
    ours = lbs.skin_points(body.lbs_weights, skin, corrected)

    ref_vertices, ref_joints = smplx_lbs.lbs(
        coefficients, pose.reshape(2, -1), body.v_template, directions, posedirs,
        body.joint_regressor, torch.tensor(PARENTS), body.lbs_weights)
    torch.testing.assert_close(ours, ref_vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(joints, ref_joints, atol=1e-5, rtol=0)
    # The joints of shaped vertices are the shaped joints (regression is linear).
    joint_dirs = lbs.regress_directions(body.joint_regressor, directions)
    torch.testing.assert_close(
        lbs.regress_joints(body.joint_regressor, body.v_template)[None]
        + lbs.blend_shapes(coefficients, joint_dirs), rest_joints, atol=1e-5, rtol=0)


def test_sparse_body_follows_the_body_with_pose_correctives(open_body_file):
    """The fit's sparse body and the full body agree when the model has pose correctives (a
    real SMPL-X file has them; here random ones are put on the open body)."""
    from oneshot_avatar.body import BodyModel
    from oneshot_avatar.fit.sparse_body import SparseBody

    body = BodyModel.from_file(open_body_file, kind="open")
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        body.smplx.posedirs.copy_(torch.randn(body.smplx.posedirs.shape, generator=generator) * 1e-3)
    body = BodyModel(body.smplx, body.info)  # re-reads whether the model has correctives
    assert body.pose_directions is not None
    params = {"body_pose": _random_pose(2, seed=6)[:, 1:22].float(),
              "betas": torch.randn(1, body.num_betas, generator=generator),
              "expression": torch.rand(2, len(body.expression_names), generator=generator),
              "transl": torch.tensor([[0.1, -0.2, 0.3]]).expand(2, 3)}
    ids = [0, 100, 5000, 9000]
    with torch.no_grad():
        joints, picked = SparseBody(body, ids)(**params)
        full = body(**params)
        without = body(**{**params, "body_pose": torch.zeros(2, 63)})
    torch.testing.assert_close(joints, full.joints, atol=2e-5, rtol=0)
    torch.testing.assert_close(picked, full.vertices[:, ids], atol=2e-5, rtol=0)
    # The correctives do act: the rest-pose mesh is not moved by them, the posed one is.
    corrective = lbs.pose_correctives(body.joint_rotations(params, 2), body.pose_directions)
    assert float(corrective.abs().max()) > 1e-3
    assert float((without.vertices - without.rest_vertices - params["transl"][:, None]).abs().max()) < 1e-5


def _params(body, batch: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"global_orient": torch.randn(batch, 3, generator=generator) * 0.5,
            "body_pose": _random_pose(batch, seed=seed)[:, 1:22].float(),
            "right_hand_pose": torch.randn(batch, 45, generator=generator) * 0.3,
            "jaw_pose": torch.randn(batch, 3, generator=generator) * 0.2,
            "betas": torch.randn(1, body.num_betas, generator=generator),
            "expression": torch.rand(batch, len(body.expression_names), generator=generator),
            "transl": torch.randn(batch, 3, generator=generator)}


def test_body_model_forward_is_the_lbs_functions(open_body):
    """``BodyModel.forward`` is the five lbs steps with the body's arrays, to the bit."""
    body = open_body
    params = _params(body, 2, seed=7)
    with torch.no_grad():
        out = body(**params)
        coefficients = body.blend_coefficients(params, 2)
        rest = body.v_template[None] + lbs.blend_shapes(coefficients, body.blend_directions)
        rest_joints = lbs.regress_joints(body.joint_regressor, rest)
        joints, skin = lbs.rigid_transforms(body.joint_rotations(params, 2), rest_joints, PARENTS)
        vertices = lbs.skin_points(body.lbs_weights, skin, rest)
    assert body.pose_directions is None  # the open body has no pose correctives
    torch.testing.assert_close(out.rest_vertices, rest, atol=0, rtol=0)
    torch.testing.assert_close(out.joints, joints + params["transl"][:, None], atol=0, rtol=0)
    torch.testing.assert_close(out.vertices, vertices + params["transl"][:, None], atol=1e-6,
                               rtol=0)


def test_sparse_body_gradients_match_the_full_body(open_body):
    """The fit optimises through the sparse body: its gradients (pose, shape, expression,
    translation) are the full body's on the same vertices."""
    from oneshot_avatar.fit.sparse_body import SparseBody

    body = open_body
    jaw_vertex = int(body.lbs_weights[:, 22].argmax())  # moved by the jaw (joint 22)
    ids = [10, 2000, 7000, jaw_vertex]
    weights = torch.randn(len(ids), 3, generator=torch.Generator().manual_seed(8))
    grads = []
    for full in (True, False):
        params = {k: v.clone().requires_grad_(True) for k, v in _params(body, 2, seed=9).items()}
        if full:
            out = body(**params)
            joints, vertices = out.joints, out.vertices[:, ids]
        else:
            joints, vertices = SparseBody(body, ids)(**params)
        loss = (vertices * weights).sum() + joints[:, [3, 20, 40]].square().sum()
        grads.append(torch.autograd.grad(loss, list(params.values())))
    for name, full, sparse in zip(_params(body, 2, seed=9), *grads):
        assert float(full.abs().max()) > 0, name
        torch.testing.assert_close(sparse, full, atol=2e-4, rtol=1e-4, msg=name)
