"""Where training starts (train/initial.py): Gaussians on the rest mesh of the fitted shape,
at least one per triangle, each with the photo texture's colour at its spot."""

from __future__ import annotations

import torch

from oneshot_avatar.avatar.gaussians import rgb_to_sh0
from oneshot_avatar.render.mesh import SurfaceTexture
from oneshot_avatar.train import initial_gaussians


def test_initial_gaussians_sit_on_the_shaped_mesh_with_the_texture_colours(open_body):
    body = open_body
    betas = torch.zeros(1, body.num_betas)
    betas[0, 0] = 1.5
    with torch.no_grad():
        rest = body(betas=betas).rest_vertices[0]
    # Colour by height: red at the feet, green at the head.
    low, high = float(rest[:, 1].min()), float(rest[:, 1].max())

    def by_height(points, normals):
        t = ((points[:, 1] - low) / (high - low)).clamp(0, 1)
        return torch.stack([1 - t, t, torch.full_like(t, 0.25)], dim=-1)

    texture = SurfaceTexture.from_function(rest, body.faces, by_height, 4)
    gaussians = initial_gaussians(body, betas, texture, num_gaussians=10, sh_degree=1, seed=3)
    assert gaussians.num_gaussians == body.info.num_faces  # at least one per triangle
    assert gaussians.sh_degree == 1
    assert torch.equal(torch.bincount(gaussians.binding, minlength=body.info.num_faces) > 0,
                       torch.ones(body.info.num_faces, dtype=torch.bool))
    with torch.no_grad():
        means = gaussians.place(rest[None], body.faces).means[0]
    expected = by_height(means, None)
    colors = gaussians.sh0.reshape(-1, 3)
    # A linear colour field: the texture gives the colour at each Gaussian's spot (up to the
    # texture's sampling and the small normal offsets).
    torch.testing.assert_close(colors, rgb_to_sh0(expected), atol=0.02, rtol=0)
    same = initial_gaussians(body, betas, texture, num_gaussians=10, sh_degree=1, seed=3)
    assert torch.equal(same.local_means, gaussians.local_means)
