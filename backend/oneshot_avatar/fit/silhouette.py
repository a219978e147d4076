"""A differentiable silhouette of the posed body: opaque Gaussians bound to the mesh, rendered
with the product's one rasterizer (gsplat on CUDA, the PyTorch reference elsewhere)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from oneshot_avatar.avatar import MeshGaussians
from oneshot_avatar.avatar.binding import triangle_frames
from oneshot_avatar.cameras import Camera
from oneshot_avatar.render.mesh import triangle_areas
from oneshot_avatar.render.rasterize import rasterize_gaussians

DEFAULT_SILHOUETTE_GAUSSIANS = 3000
SILHOUETTE_OPACITY = 0.9
SPACING_FRACTION = 0.45  # in-plane sigma / mean spacing: covers the surface without holes


def silhouette_gaussians(body, count: int = DEFAULT_SILHOUETTE_GAUSSIANS,
                         seed: int = 0) -> MeshGaussians:
    """``count`` flat, opaque Gaussians on the rest mesh: faces drawn in proportion to their area
    (seeded, so deterministic), each Gaussian at its face's centroid and wide enough that
    together they cover the surface (in-plane sigma ``SPACING_FRACTION`` x the square root of
    the area it stands for). ``count`` at or above the face count gives one per face."""
    vertices = body.v_template.detach()
    faces = body.faces
    num_faces = faces.shape[0]
    areas = triangle_areas(vertices, faces)
    if count >= num_faces:
        chosen = torch.arange(num_faces, device=faces.device)
    else:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        chosen = torch.multinomial(areas.double().cpu(), count, replacement=False,
                                   generator=generator).sort().values.to(faces.device)
    n = chosen.shape[0]
    # Each Gaussian stands for the mean area per Gaussian, or its own face when that is larger.
    share = torch.clamp(areas[chosen], min=float(areas.sum()) / n)
    sigma = SPACING_FRACTION * torch.sqrt(share)
    frame_scales = triangle_frames(vertices, faces).scales[chosen].clamp_min(1e-6)
    in_plane = sigma / frame_scales
    log_scales = torch.log(torch.stack([in_plane, in_plane, 0.1 * in_plane], dim=-1))
    quats = torch.zeros(n, 4, dtype=vertices.dtype, device=vertices.device)
    quats[:, 0] = 1.0
    logit = math.log(SILHOUETTE_OPACITY / (1.0 - SILHOUETTE_OPACITY))
    gaussians = MeshGaussians(
        binding=chosen,
        local_means=torch.zeros(n, 3, dtype=vertices.dtype, device=vertices.device),
        local_quats=quats,
        log_scales=log_scales,
        opacity_logits=torch.full((n,), logit, dtype=vertices.dtype, device=vertices.device),
        sh0=torch.zeros(n, 1, 3, dtype=vertices.dtype, device=vertices.device),
        sh_rest=torch.zeros(n, 0, 3, dtype=vertices.dtype, device=vertices.device),
        num_faces=num_faces,
        num_vertices=vertices.shape[0],
    )
    return gaussians.requires_grad_(False)


def default_gaussian_count(body, size: int) -> int:
    """Enough silhouette Gaussians for a hole-free ``size`` px render: one per 8 pixels of the
    image, at least ``DEFAULT_SILHOUETTE_GAUSSIANS``, at most one per face."""
    return min(int(body.faces.shape[0]), max(DEFAULT_SILHOUETTE_GAUSSIANS, size * size // 8))


def render_silhouette(body, params: dict[str, Tensor], camera: Camera, size: int, *,
                      gaussians: MeshGaussians | None = None,
                      vertices: Tensor | None = None) -> Tensor:
    """Differentiable alpha ``[size, size]`` of the body posed by ``params`` (batch 1) seen by
    ``camera`` (any image size; rescaled to ``size`` x ``size``, so give a square camera).

    Gradients flow to the parameters and to the camera's tensors. ``gaussians`` defaults to
    :func:`silhouette_gaussians` with :func:`default_gaussian_count` (made anew each call: pass
    them in when rendering often);
    ``vertices [1, V, 3]`` skips posing when the caller already has the posed mesh.
    """
    if gaussians is None:
        gaussians = silhouette_gaussians(body, default_gaussian_count(body, size))
    if vertices is None:
        vertices = body(**params).vertices
    if vertices.shape[0] != 1:
        raise ValueError(f"render_silhouette renders one body; got a batch of {vertices.shape[0]}")
    if camera.width != size or camera.height != size:
        camera = camera.resized(size, size)
    posed = gaussians.place(vertices, body.faces)
    dtype = posed.means.dtype
    out = rasterize_gaussians(
        posed.means, posed.quats, posed.scales, posed.opacities,
        torch.ones_like(posed.means),
        camera.world_to_cam.to(dtype)[None, None], camera.K.to(dtype)[None, None],
        size, size, near=camera.near,
    )
    return out.alpha[0, 0, :, :, 0]
