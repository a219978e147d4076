"""The avatar representation: 3D Gaussians bound to the SMPL-X mesh, and how they are posed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from oneshot_avatar.avatar.gaussians import MeshGaussians, PosedGaussians


def pose_gaussians(body, gaussians: MeshGaussians, **params) -> PosedGaussians:
    """Pose the body (SMPL-X parameters as for ``BodyModel``, batched over frames) with the
    avatar's mesh offsets, and place the Gaussians on the posed triangles."""
    out = body(**params, vertex_offsets=gaussians.vertex_offsets)
    return gaussians.place(out.vertices, body.faces)


@dataclass(frozen=True)
class FixedPose:
    """A batch of body poses whose only free input is the avatar's mesh offsets.

    Skinning is linear in the rest vertices, and the offsets move the skin, not the joints, so
    ``posed(offsets) = base + rotations @ offsets`` exactly: what training needs for views whose
    SMPL-X parameters never change, without running (and differentiating) the body model every
    step."""

    base: Tensor  # [B, V, 3] posed vertices without offsets
    rotations: Tensor  # [B, V, 3, 3] linear part of each vertex's blended skinning transform

    @classmethod
    @torch.no_grad()
    def of(cls, body, **params) -> FixedPose:
        out = body(**params)
        rotations = torch.einsum("vj,bjxy->bvxy", body.lbs_weights, out.skin_transforms[:, :, :3, :3])
        return cls(out.vertices, rotations)

    @staticmethod
    def cat(poses: list[FixedPose]) -> FixedPose:
        return FixedPose(torch.cat([p.base for p in poses]), torch.cat([p.rotations for p in poses]))

    def vertices(self, offsets: Tensor) -> Tensor:  # [V, 3] -> [B, V, 3]
        return self.base + torch.einsum("bvxy,vy->bvx", self.rotations, offsets)


def pose_gaussians_fixed(pose: FixedPose, gaussians: MeshGaussians, faces: Tensor) -> PosedGaussians:
    """``pose_gaussians`` for poses fixed in advance (``FixedPose.of``): the same Gaussians."""
    return gaussians.place(pose.vertices(gaussians.vertex_offsets), faces)


__all__ = ["FixedPose", "MeshGaussians", "PosedGaussians", "pose_gaussians", "pose_gaussians_fixed"]
