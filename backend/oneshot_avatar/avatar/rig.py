"""What an avatar package's rig carries for a viewer without torch (the Blender add-on),
computed from the avatar on its body: each Gaussian's top-k linear-blend-skinning weights
(the body's vertex weights at the Gaussian's barycentric spot, :mod:`oneshot_avatar.avatar.binding`)
and the offsets the face units give the Gaussians. :mod:`oneshot_avatar.package` writes them."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from oneshot_avatar.avatar.binding import barycentric_from_local
from oneshot_avatar.avatar.gaussians import MeshGaussians

TOP_K_JOINTS = 4  # joints per Gaussian in the package's skinning


def gaussian_skinning(gaussians: MeshGaussians, faces: Tensor, vertex_weights: Tensor,
                      k: int = TOP_K_JOINTS) -> tuple[Tensor, Tensor]:
    """Top-``k`` joints per Gaussian for linear blend skinning without the mesh: indices
    ``[N, k]`` (long) and weights ``[N, k]`` (summing to 1). They are the skinning
    ``vertex_weights [V, J]`` of the corners (``faces [F, 3]``) of each Gaussian's triangle,
    interpolated at its barycentric spot clamped into the triangle."""
    bary = barycentric_from_local(gaussians.local_means.detach()).clamp_min(0)  # [N, 3]
    bary = bary / bary.sum(-1, keepdim=True).clamp_min(1e-12)
    corner_weights = vertex_weights[faces[gaussians.binding]]  # [N, 3, J]
    weights = torch.einsum("nk,nkj->nj", bary.to(corner_weights), corner_weights)
    top = weights.topk(k, dim=-1)
    return top.indices, top.values / top.values.sum(-1, keepdim=True).clamp_min(1e-12)


EXPRESSION_MIN_OFFSET_M = 5e-4  # a Gaussian that no face unit moves further stays out


def expression_offsets(gaussians: MeshGaussians, body, betas: torch.Tensor, rest_means: torch.Tensor,
                       chunk: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Which Gaussians the face units move, and how: ``(indices (M,) int32, offsets (E, M, 3)
    float16 metres)``, offset ``[k]`` = the rest-pose means with face unit ``k`` at 1 minus the
    neutral ones (so a viewer can show expressions as linear shape keys before skinning; exact
    for the mesh vertices, linearised for the Gaussians' placement in their triangles). Only
    Gaussians moved more than :data:`EXPRESSION_MIN_OFFSET_M` by some unit are kept (the face)."""
    names = list(body.expression_names)
    if not names:
        return np.zeros(0, np.int32), np.zeros((0, 0, 3), np.float16)
    units = torch.eye(len(names), dtype=body.dtype, device=body.device)
    offsets = []
    for start in range(0, len(names), chunk):
        expression = units[start:start + chunk]
        out = body(betas=betas[None].expand(len(expression), -1), expression=expression,
                   vertex_offsets=gaussians.vertex_offsets.to(body.device))
        offsets.append((gaussians.place(out.vertices, body.faces).means - rest_means).cpu())
    stacked = torch.cat(offsets).numpy()  # (E, N, 3)
    moved = np.nonzero(np.abs(stacked).max(axis=(0, 2)) > EXPRESSION_MIN_OFFSET_M)[0]
    return moved.astype(np.int32), stacked[:, moved].astype(np.float16)
