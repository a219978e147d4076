"""Linear blend skinning of an SMPL-X-style body as pure functions (after ``smplx``'s ``lbs.py``).

The body is posed in five steps, one function each, so the full mesh
(:class:`oneshot_avatar.body.BodyModel`) and any subset of its vertices
(:class:`oneshot_avatar.fit.sparse_body.SparseBody`) share the same maths:

1. :func:`blend_shapes` -- shape and expression coefficients move the rest vertices (and, with
   the directions regressed to joints, the rest joints);
2. :func:`regress_joints` -- rest joints from rest vertices;
3. :func:`axis_angle_to_matrix` and :func:`pose_correctives` -- joint rotations, and the
   pose-dependent vertex correctives (``posedirs``) they drive;
4. :func:`rigid_transforms` -- the chain of joint transforms down the kinematic tree, giving the
   posed joints and the per-joint skinning transforms;
5. :func:`skin_points` -- each point moved by its weighted blend of the skinning transforms.

The rotation and the kinematic chain are ``smplx``'s own (``batch_rodrigues``,
``batch_rigid_transform``, wrapped here with shapes and checks), so their numbers are
``smplx``'s to the bit.

Shapes: ``B`` batch, ``V`` vertices (or any selected points), ``J`` joints (55 for SMPL-X),
``C`` blend-shape coefficients. Everything is differentiable and follows the inputs' device and
dtype. Units are the model's (metres), world = Y-up.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues
from torch import Tensor


def blend_shapes(coefficients: Tensor, directions: Tensor) -> Tensor:
    """Displacements ``[B, V, 3]`` of ``coefficients [B, C]`` along ``directions [V, 3, C]``
    (shape and expression blend shapes; also works for joints with ``[J, 3, C]``)."""
    return torch.einsum("bc,vdc->bvd", coefficients, directions)


def regress_joints(regressor: Tensor, vertices: Tensor) -> Tensor:
    """Joints ``[..., J, 3]`` of ``vertices [..., V, 3]`` through ``regressor [J, V]``."""
    return torch.einsum("jv,...vd->...jd", regressor, vertices)


def regress_directions(regressor: Tensor, directions: Tensor) -> Tensor:
    """Blend-shape directions of the joints ``[J, 3, C]`` from those of the vertices
    ``[V, 3, C]``: ``regress_joints(rest + blend) == regress_joints(rest) + blend of these``."""
    return torch.einsum("jv,vdc->jdc", regressor, directions)


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rotation matrices ``[..., 3, 3]`` of axis-angle vectors ``[..., 3]`` (radians; Rodrigues'
    formula, ``smplx``'s ``batch_rodrigues``, whose small offset keeps the gradient finite at
    zero rotation)."""
    flat = axis_angle.reshape(-1, 3)
    return batch_rodrigues(flat).reshape(*axis_angle.shape[:-1], 3, 3)


def pose_feature(rotations: Tensor) -> Tensor:
    """SMPL-X's pose feature ``[B, (J - 1) * 9]``: the rotations ``[B, J, 3, 3]`` of every joint
    but the root, minus the identity (zero in the rest pose)."""
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    return (rotations[:, 1:] - eye).reshape(rotations.shape[0], -1)


def pose_correctives(rotations: Tensor, posedirs: Tensor) -> Tensor:
    """Pose-corrective displacements ``[B, V, 3]`` of ``posedirs [(J - 1) * 9, V * 3]`` (the
    layout ``smplx`` keeps) driven by the joint rotations ``[B, J, 3, 3]``."""
    return (pose_feature(rotations) @ posedirs).reshape(rotations.shape[0], -1, 3)


@functools.lru_cache(maxsize=8)
def _parents_tensor(parents: tuple[int, ...]) -> Tensor:
    for joint, parent in enumerate(parents):
        if parent >= joint or (parent < 0 and joint > 0):
            raise ValueError(f"joint {joint}'s parent {parent} must come before it (only joint 0 "
                             "is the root)")
    return torch.tensor(parents, dtype=torch.long)


def rigid_transforms(rotations: Tensor, rest_joints: Tensor, parents: Sequence[int]
                     ) -> tuple[Tensor, Tensor]:
    """Pose a skeleton: ``(posed joints [B, J, 3], skinning transforms [B, J, 4, 4])``.

    ``rotations [B, J, 3, 3]`` are each joint's rotation relative to its parent, ``rest_joints
    [B, J, 3]`` the rest-pose joint positions, ``parents`` the parent index of each joint (-1 for
    the root, joint 0; parents come before their children). A skinning transform maps a rest-pose
    point rigidly attached to that joint to its posed position (the joint's world transform with
    the rest joint position taken out). This is ``smplx``'s ``batch_rigid_transform``.
    """
    parents_t = _parents_tensor(tuple(int(p) for p in parents))
    return batch_rigid_transform(rotations, rest_joints, parents_t, dtype=rest_joints.dtype)


def skin_points(weights: Tensor, transforms: Tensor, points: Tensor) -> Tensor:
    """Linear blend skinning: ``points [B, V, 3]`` (rest pose, correctives included) moved by
    their ``weights [V, J]`` blend of the skinning ``transforms [B, J, 4, 4]`` -> ``[B, V, 3]``."""
    blended = torch.einsum("vj,bjxy->bvxy", weights, transforms[:, :, :3, :])  # [B, V, 3, 4]
    return torch.einsum("bvxy,bvy->bvx", blended[..., :3], points) + blended[..., 3]
