"""The avatar representation: 3D Gaussians bound to the SMPL-X mesh, and how they are posed."""

from __future__ import annotations

from oneshot_avatar.avatar.gaussians import MeshGaussians, PosedGaussians


def pose_gaussians(body, gaussians: MeshGaussians, **params) -> PosedGaussians:
    """Pose the body (SMPL-X parameters as for ``BodyModel``, batched over frames) with the
    avatar's mesh offsets, and place the Gaussians on the posed triangles."""
    out = body(**params, vertex_offsets=gaussians.vertex_offsets)
    return gaussians.place(out.vertices, body.faces)


__all__ = ["MeshGaussians", "PosedGaussians", "pose_gaussians"]
