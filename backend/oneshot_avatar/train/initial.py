"""Where training starts: Gaussians spread over the fitted body's rest mesh, coloured from the
photo's surface texture."""

from __future__ import annotations

import torch
from torch import Tensor

from oneshot_avatar.avatar.binding import barycentric_from_local
from oneshot_avatar.avatar.gaussians import MeshGaussians, rgb_to_sh0


def initial_gaussians(body, betas: Tensor, texture, *, num_gaussians: int, sh_degree: int,
                      seed: int, device: torch.device | str = "cpu",
                      vertex_offsets: Tensor | None = None) -> MeshGaussians:
    """Gaussians on the rest mesh of ``body`` shaped by ``betas [1, nb]``, at least one per
    triangle (``max(num_gaussians, faces)`` in all, by area), each coloured with ``texture``
    (a :class:`oneshot_avatar.render.mesh.SurfaceTexture` of that mesh) at its barycentric spot.
    ``vertex_offsets [V, 3]`` (the person's shape beyond the body) grow the rest mesh first:
    the avatar's mesh offsets start there and the Gaussians are sized to the grown triangles."""
    with torch.no_grad():
        rest = body(betas=betas).rest_vertices[0]
        if vertex_offsets is not None:
            rest = rest + vertex_offsets.to(rest)
        count = max(num_gaussians, body.info.num_faces)
        gaussians = MeshGaussians.on_mesh(rest, body.faces, count, sh_degree=sh_degree, seed=seed)
        if vertex_offsets is not None:
            gaussians.vertex_offsets.copy_(vertex_offsets.to(gaussians.vertex_offsets))
        bary = barycentric_from_local(gaussians.local_means)
        colors = texture.sample(gaussians.binding.to(texture.colors.device),
                                bary.to(texture.colors.device)).to(rest)
        gaussians.sh0.copy_(rgb_to_sh0(colors.clamp(0.0, 1.0))[:, None, :].reshape_as(gaussians.sh0))
    return gaussians.to(device)
