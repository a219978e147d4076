"""Pure-PyTorch 3D-Gaussian rasterizer: the reference twin of the gsplat 1.5.3 CUDA path.

Runs on any device torch runs on and is differentiable by autograd w.r.t. means, quats, scales,
opacities and colours / SH coefficients. Every step reproduces gsplat 1.5.3's ``rasterization``
(``render_mode="RGB+ED"``, ``rasterize_mode="classic"``, ``camera_model="pinhole"``,
``eps2d=0.3``, ``radius_clip=0``) so the two can be parity-tested:

* covariance ``R(q/|q|) diag(s)^2 R^T`` (``quat_scale_to_covar_preci`` in ``Utils.cuh``);
* world -> camera ``x_c = R x + t``, ``Σ_c = R Σ R^T`` (``posW2C`` / ``covarW2C``);
* perspective Jacobian with the camera-space ``x/z``, ``y/z`` clamped to the FOV limits
  ``(W - cx)/fx + 0.3·W/(2 fx)`` and ``-(cx/fx + 0.3·W/(2 fx))`` (likewise for y) — the
  "1.3× FOV" clamp — while the projected mean itself is not clamped (``persp_proj``);
* ``eps2d`` added to the 2D covariance diagonal, conic = its inverse (``add_blur``);
* culling (``projection_ewa_3dgs_fused_fwd_kernel``): depth outside ``[near, far]``,
  non-positive 2D determinant, opacity below 1/255, and boxes entirely outside the image;
* per-axis, opacity-aware box ``radius_x = ceil(e·sqrt(Σ2d_xx))`` with
  ``e = min(3.33, sqrt(2 ln(opacity·255)))`` — the distance at which ``α`` falls to 1/255; it
  is below 3.33 for every opacity <= 1 (same kernel; this is what 1.5.3 does, not the older
  ``ceil(3·sqrt(λ_max))`` nor its own ``_torch_impl``'s fixed 3.33), binned to tiles as
  ``isect_tiles`` does — 8×8 tiles here rather than gsplat's 16×16, which provably gives
  every pixel the same Gaussians (see ``bin_gaussians_to_tiles``);
* per tile, Gaussians sorted by (depth, index) (gsplat's stable radix sort on depth bits);
* per pixel centre ``(x + 0.5, y + 0.5)``: ``σ = ½(a dx² + c dy²) + b dx dy``,
  ``α = min(0.999, o·exp(-σ))``, skipped when ``σ < 0`` or ``α < 1/255``; front to back
  with ``T_next = T (1 - α)``; the first Gaussian whose ``T_next <= 1e-4`` is *not*
  composited and ends the pixel (``rasterize_to_pixels_3dgs_fwd_kernel``);
* ``rgb = Σ w_i c_i + T·bg``, ``alpha = 1 - T``, expected depth
  ``Σ w_i z_i / max(alpha, 1e-10)`` (``rendering.py``, ``render_mode="ED"``);
* SH: Sloan's real SH with gsplat's constants on ``normalise(mean - camera centre)``,
  camera centre ``inverse(viewmat)[:3, 3]``, colour ``max(sh + 0.5, 0)``
  (``sh_coeffs_to_color_fast`` in ``SphericalHarmonicsCUDA.cu``, ``rendering.py``).

Gradients follow gsplat's hand-written backward: nothing flows through the (integer) radii,
the culling or the thresholds, and the 0.999 clamp passes gradient only where
``o·exp(-σ) <= 0.999``. Differences to the CUDA path are float rounding only (``__expf``,
summation order of the per-tile atomics in its backward).

Memory: tiles are composited in chunks of at most ``chunk_elements`` (pixel, Gaussian) pairs,
each under activation checkpointing when gradients are needed, so the autograd graph holds only
the per-tile gathered Gaussians, not the dense pixel x Gaussian intermediates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

if TYPE_CHECKING:
    from oneshot_avatar.render.rasterize import RasterInputs

EPS2D = 0.3  # low-pass added to the 2D covariance diagonal (gsplat ``eps2d``)
ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat ``ALPHA_THRESHOLD``: smaller alphas are skipped
MAX_ALPHA = 0.999  # per-Gaussian alpha cap
TRANSMITTANCE_MIN = 1e-4  # a Gaussian that would bring T to this or below ends the pixel
BOX_EXTEND_MAX = 3.33  # bounding-box half-size in standard deviations, at most
FOV_CLAMP_MARGIN = 0.3  # x/z, y/z clamped to the image edge plus 0.3 tan(half FOV)
GSPLAT_TILE_SIZE = 16  # gsplat's tile size (its CUDA kernels are tuned for it)
DEFAULT_TILE_SIZE = 8  # this implementation's tiles: fewer wasted pixel-Gaussian pairs on CPU
DEFAULT_CHUNK_ELEMENTS = 1 << 22  # (pixel, Gaussian) pairs composited at once, at most
DEFAULT_BLOCK = 128  # Gaussians per tile per compositing step (early exit granularity)

# Real spherical-harmonics constants as gsplat writes them (Sloan, JCGT 2013).
SH_C0 = 0.2820947917738781
SH_C1 = 0.48860251190292


@dataclass(frozen=True)
class Projection:
    """Gaussians projected into every image; I = B·C images.

    ``visible`` marks the Gaussians that survive gsplat's culling; the other entries hold
    finite placeholders and must not be used.
    """

    means2d: Tensor  # [I, N, 2] pixel coordinates of the projected centres
    conics: Tensor  # [I, N, 3] upper triangle (a, b, c) of the inverse 2D covariance
    depths: Tensor  # [I, N] camera-space z
    radii: Tensor  # [I, N, 2] int64 box half-sizes in pixels (x, y); 0 where culled
    visible: Tensor  # [I, N] bool


@dataclass(frozen=True)
class TileBins:
    """Gaussian-tile intersections sorted by (image, tile, depth, Gaussian index)."""

    flat_ids: Tensor  # [M] int64 index into the flattened [I * N] Gaussians
    counts: Tensor  # [I * tiles_y * tiles_x] int64 intersections per tile
    offsets: Tensor  # [I * tiles_y * tiles_x] int64 first intersection of each tile
    tile_size: int
    tiles_x: int
    tiles_y: int


def quat_scale_to_covar(
    quats: Tensor,  # [..., 4] wxyz, need not be normalised
    scales: Tensor,  # [..., 3] linear standard deviations along the local axes
) -> Tensor:  # [..., 3, 3]
    """3D covariance ``R diag(s)² Rᵀ`` with ``R`` the rotation of the normalised quaternion."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(quats.shape[:-1] + (3, 3))
    m = rot * scales[..., None, :]
    return m @ m.transpose(-1, -2)


def world_to_camera(
    means: Tensor,  # [B, N, 3] world
    covars: Tensor,  # [B, N, 3, 3] world
    viewmats: Tensor,  # [B, C, 4, 4] world -> camera
) -> tuple[Tensor, Tensor]:  # [B, C, N, 3], [B, C, N, 3, 3]
    """Means and covariances in each camera's frame."""
    rot = viewmats[..., :3, :3]  # [B, C, 3, 3]
    trans = viewmats[..., :3, 3]  # [B, C, 3]
    means_c = torch.einsum("bcij,bnj->bcni", rot, means) + trans[:, :, None, :]
    covars_c = torch.einsum("bcij,bnjk,bclk->bcnil", rot, covars, rot)
    return means_c, covars_c


def perspective_project(
    means_c: Tensor,  # [B, C, N, 3] camera space, z > 0 (callers substitute culled ones)
    covars_c: Tensor,  # [B, C, N, 3, 3] camera space
    Ks: Tensor,  # [B, C, 3, 3]
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:  # means2d [B, C, N, 2], covars2d [B, C, N, 2, 2]
    """Pinhole projection with the EWA Jacobian; ``x/z``, ``y/z`` in the Jacobian are clamped to
    the image extent plus 30 % of the half-FOV tangent on each side (gsplat ``persp_proj``)."""
    x, y, z = means_c.unbind(-1)
    fx, fy = Ks[..., 0, 0, None], Ks[..., 1, 1, None]  # [B, C, 1]
    cx, cy = Ks[..., 0, 2, None], Ks[..., 1, 2, None]
    margin_x = FOV_CLAMP_MARGIN * 0.5 * width / fx
    margin_y = FOV_CLAMP_MARGIN * 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + margin_x, cx / fx + margin_x
    lim_y_pos, lim_y_neg = (height - cy) / fy + margin_y, cy / fy + margin_y

    rz = 1.0 / z
    rz2 = rz * rz
    tx = z * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x * rz))
    ty = z * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y * rz))
    zero = torch.zeros_like(z)
    jac = torch.stack(
        [fx * rz, zero, -fx * tx * rz2, zero, fy * rz, -fy * ty * rz2], dim=-1
    ).reshape(z.shape + (2, 3))
    covars2d = jac @ covars_c @ jac.transpose(-1, -2)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)
    return means2d, covars2d


def project_gaussians(
    means: Tensor,  # [B, N, 3]
    quats: Tensor,  # [B, N, 4]
    scales: Tensor,  # [B, N, 3]
    opacities: Tensor,  # [B, N]
    viewmats: Tensor,  # [B, C, 4, 4]
    Ks: Tensor,  # [B, C, 3, 3]
    width: int,
    height: int,
    near: float,
    far: float,
) -> Projection:
    """Project every Gaussian into every camera and apply gsplat's culling (see module doc)."""
    B, N = means.shape[:2]
    C = viewmats.shape[1]
    means_c, covars_c = world_to_camera(means, quat_scale_to_covar(quats, scales), viewmats)
    depths = means_c[..., 2]  # [B, C, N]
    in_depth = (depths >= near) & (depths <= far)
    # Culled Gaussians get z = 1 so that no inf/NaN enters the graph (torch.where passes no
    # gradient to the unselected branch, but NaN * 0 would still poison it).
    safe_means_c = torch.where(in_depth[..., None], means_c, torch.ones_like(means_c))
    means2d, covars2d = perspective_project(safe_means_c, covars_c, Ks, width, height)

    eye = torch.eye(2, dtype=covars2d.dtype, device=covars2d.device)
    covars2d = covars2d + EPS2D * eye
    a, b, c = covars2d[..., 0, 0], covars2d[..., 0, 1], covars2d[..., 1, 1]
    det = a * c - b * covars2d[..., 1, 0]
    ok = in_depth & (det > 0)
    safe_det = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)  # [B, C, N, 3]

    with torch.no_grad():
        opac = opacities.detach()[:, None, :].expand(B, C, N)
        ok = ok & (opac >= ALPHA_THRESHOLD)
        extend = torch.sqrt(2.0 * torch.log(opac.clamp(min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        extend = extend.clamp(max=BOX_EXTEND_MAX)
        diag = torch.stack([a, c], dim=-1).detach().clamp(min=0)
        radii = torch.ceil(extend[..., None] * torch.sqrt(diag))  # [B, C, N, 2]
        lo = means2d.detach() - radii
        hi = means2d.detach() + radii
        on_image = (hi[..., 0] > 0) & (lo[..., 0] < width)
        on_image &= (hi[..., 1] > 0) & (lo[..., 1] < height)
        # gsplat culls a box of size 0 (only possible at opacity == 1/255) and bins no tiles
        # for a box empty along either axis
        visible = ok & on_image & (radii > 0).all(-1)
        radii = torch.where(visible[..., None], radii, torch.zeros_like(radii)).long()

    I = B * C
    return Projection(
        means2d=means2d.reshape(I, N, 2),
        conics=conics.reshape(I, N, 3),
        depths=depths.reshape(I, N),
        radii=radii.reshape(I, N, 2),
        visible=visible.reshape(I, N),
    )


def eval_sh_bases(
    degree: int,
    dirs: Tensor,  # [..., 3] unit vectors
) -> Tensor:  # [..., (degree + 1)²]
    """Real SH basis values, in gsplat's order and with its constants (degrees 0-4)."""
    if not 0 <= degree <= 4:
        raise ValueError(f"sh_degree must be between 0 and 4, got {degree}")
    x, y, z = dirs.unbind(-1)
    bases = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        bases += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        z2 = z * z
        tmp_b = -1.092548430592079 * z
        c1, s1 = x * x - y * y, 2.0 * x * y
        sh6 = 0.9461746957575601 * z2 - 0.3153915652525201
        bases += [0.5462742152960395 * s1, tmp_b * y, sh6, tmp_b * x, 0.5462742152960395 * c1]
    if degree >= 3:
        tmp_c = -2.285228997322329 * z2 + 0.4570457994644658
        tmp_b = 1.445305721320277 * z
        c2, s2 = x * c1 - y * s1, x * s1 + y * c1
        sh12 = z * (1.865881662950577 * z2 - 1.119528997770346)
        bases += [
            -0.5900435899266435 * s2, tmp_b * s1, tmp_c * y, sh12,
            tmp_c * x, tmp_b * c1, -0.5900435899266435 * c2,
        ]
    if degree >= 4:
        tmp_d = z * (-4.683325804901025 * z2 + 2.007139630671868)
        tmp_c = 3.31161143515146 * z2 - 0.47308734787878
        tmp_b = -1.770130769779931 * z
        c3, s3 = x * c2 - y * s2, x * s2 + y * c2
        sh20 = 1.984313483298443 * z * sh12 - 1.006230589874905 * sh6
        bases += [
            0.6258357354491763 * s3, tmp_b * s2, tmp_c * s1, tmp_d * y, sh20,
            tmp_d * x, tmp_c * c1, tmp_b * c2, 0.6258357354491763 * c3,
        ]
    return torch.stack(bases, dim=-1)


def sh_to_rgb(
    degree: int,
    dirs: Tensor,  # [..., 3] view directions, any length (zero-length gives a finite value)
    coeffs: Tensor,  # [..., K, 3] with K >= (degree + 1)²
) -> Tensor:  # [..., 3]
    """RGB ``max(Σ_k Y_k(d̂) c_k + 0.5, 0)`` as gsplat's ``rasterization`` computes it."""
    sq = (dirs * dirs).sum(-1, keepdim=True)
    sq = torch.where(sq > 0, sq, torch.ones_like(sq))  # keeps the gradient finite at 0
    bases = eval_sh_bases(degree, dirs * torch.rsqrt(sq))  # [..., K_used]
    k_used = bases.shape[-1]
    sh = (bases[..., None] * coeffs[..., :k_used, :]).sum(-2)
    return torch.clamp_min(sh + 0.5, 0.0)


def camera_centres(viewmats: Tensor) -> Tensor:  # [B, C, 4, 4] -> [B, C, 3]
    """World position of each camera, ``inverse(viewmat)[:3, 3]`` like gsplat."""
    return torch.linalg.inv(viewmats)[..., :3, 3]


def gaussian_colors(
    means: Tensor,  # [B, N, 3]
    colors: Tensor,  # [B, N, 3] RGB or [B, N, K, 3] SH coefficients
    viewmats: Tensor,  # [B, C, 4, 4]
    sh_degree: int | None,
) -> Tensor:  # [B, C, N, 3]
    """Per-camera RGB of each Gaussian: the given colours, or SH evaluated towards the camera."""
    B, N = means.shape[:2]
    C = viewmats.shape[1]
    if sh_degree is None:
        return colors[:, None].expand(B, C, N, 3)
    dirs = means[:, None, :, :] - camera_centres(viewmats)[:, :, None, :]  # [B, C, N, 3]
    return sh_to_rgb(sh_degree, dirs, colors[:, None])


@torch.no_grad()
def bin_gaussians_to_tiles(
    proj: Projection, width: int, height: int, tile_size: int = DEFAULT_TILE_SIZE
) -> TileBins:
    """Every (image, tile, Gaussian) whose box overlaps the tile, sorted per tile front to back.

    Tile bounds as gsplat's ``isect_tiles``: ``[floor((m - r)/s), ceil((m + r)/s))`` clamped
    to the grid, per axis, for tile size ``s``. Depth ties keep Gaussian-index order (gsplat's
    sort is stable).

    The tile size does not change the image: outside its box a Gaussian's alpha is below
    1/255 and skipped anyway, because ``r >= e·sqrt(Σ_xx)`` and ``σ >= ½ dx²/Σ_xx`` give
    ``o·exp(-σ) < o·exp(-½e²) <= 1/255`` for ``e = min(3.33, sqrt(2 ln(255 o)))`` and
    ``o <= 0.999``-capped alphas (``0.999·exp(-½·3.33²) < 1/255``). Each pixel therefore sees
    exactly the Gaussians gsplat's 16x16 tiles give it, in the same order.
    """
    I, N = proj.depths.shape
    device = proj.depths.device
    tiles_x = math.ceil(width / tile_size)
    tiles_y = math.ceil(height / tile_size)
    num_tiles = tiles_x * tiles_y

    flat_vis = proj.visible.reshape(-1).nonzero().squeeze(1)  # [V] in (image, index) order
    image = flat_vis // N
    mean = proj.means2d.detach().reshape(-1, 2)[flat_vis] / tile_size
    radius = proj.radii.reshape(-1, 2)[flat_vis].to(mean.dtype) / tile_size
    grid = torch.tensor([tiles_x, tiles_y], device=device)
    tile_min = torch.minimum(torch.floor(mean - radius).long().clamp(min=0), grid)
    tile_max = torch.minimum(torch.ceil(mean + radius).long().clamp(min=0), grid)
    span = tile_max - tile_min  # [V, 2]
    count = span[:, 0] * span[:, 1]

    # front to back within each image: stable sorts by depth, then by image
    depth = proj.depths.detach().reshape(-1)[flat_vis]
    order = torch.sort(depth, stable=True).indices
    order = order[torch.sort(image[order], stable=True).indices]
    flat_vis, image, tile_min, span, count = (
        flat_vis[order], image[order], tile_min[order], span[order], count[order]
    )

    owner = torch.repeat_interleave(torch.arange(len(count), device=device), count)  # [M]
    first = torch.cumsum(count, 0) - count
    k = torch.arange(len(owner), device=device) - first[owner]
    span_x = span[owner, 0]
    tile_x = tile_min[owner, 0] + k % span_x
    tile_y = tile_min[owner, 1] + k // span_x
    key = image[owner] * num_tiles + tile_y * tiles_x + tile_x
    key, perm = torch.sort(key, stable=True)
    counts = torch.bincount(key, minlength=I * num_tiles)
    return TileBins(
        flat_ids=flat_vis[owner[perm]],
        counts=counts,
        offsets=torch.cumsum(counts, 0) - counts,
        tile_size=tile_size,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
    )


def composite_block(
    pixels: Tensor,  # [T, P, 2] pixel centres of T tiles
    means2d: Tensor,  # [T, G, 2] a block of each tile's Gaussians, front to back
    conics: Tensor,  # [T, G, 3]
    opacities: Tensor,  # [T, G], 0 for padding
    features: Tensor,  # [T, G, D] colour channels (+ depth)
    trans: Tensor,  # [T, P] transmittance before this block
    done: Tensor,  # [T, P] bool, pixel already ended by the early stop
) -> tuple[Tensor, Tensor, Tensor]:  # features [T, P, D], trans [T, P], done [T, P]
    """Front-to-back alpha compositing of one block of Gaussians over the tiles' pixels, with
    gsplat's skip (``σ < 0`` or ``α < 1/255``), cap (0.999) and exclusive early stop (the first
    Gaussian that would bring ``T`` to ``1e-4`` or below is dropped and ends the pixel).

    The running product is seeded with the incoming ``trans``, so it is the same sequence of
    float multiplications as gsplat's per-pixel loop.
    """
    dx = means2d[:, None, :, 0] - pixels[:, :, 0, None]  # [T, P, G]
    dy = means2d[:, None, :, 1] - pixels[:, :, 1, None]
    a, b, c = (conics[:, None, :, i] for i in range(3))  # [T, 1, G]
    # -σ = -(½ a dx² + b dx dy + ½ c dy²), written with fused multiply-adds
    neg_sigma = dx * torch.addcmul(-0.5 * a * dx, -b, dy)
    neg_sigma = torch.addcmul(neg_sigma, -0.5 * c * dy, dy)
    alpha = torch.clamp(opacities[:, None, :] * torch.exp(neg_sigma), max=MAX_ALPHA)
    used = (alpha >= ALPHA_THRESHOLD) & (neg_sigma <= 0)
    alpha = torch.where(used, alpha, torch.zeros_like(alpha))

    # T after each Gaussian, had every one been composited; non-increasing along G
    running = torch.cumprod(torch.cat([trans[..., None], 1.0 - alpha], dim=-1), dim=-1)
    with torch.no_grad():
        kept = (running[..., 1:] > TRANSMITTANCE_MIN) & ~done[..., None]  # a prefix along G
        last = kept.sum(-1, keepdim=True) - 1  # [T, P, 1], -1 when none is kept
        done = done | (running[..., -1] <= TRANSMITTANCE_MIN)
    # the dropped suffix gets zero weight, so no gradient flows through its running product
    weights = torch.where(kept, alpha * running[..., :-1], torch.zeros_like(alpha))
    trans_after = torch.gather(running, -1, last + 1)[..., 0]  # last + 1 = 0 keeps ``trans``
    return weights @ features, trans_after, done


def _tile_pixel_centres(
    tile_ids: Tensor,  # [T] tile index within its image
    tile_size: int,
    tiles_x: int,
    dtype: torch.dtype,
) -> Tensor:  # [T, tile_size², 2]
    local = torch.arange(tile_size * tile_size, device=tile_ids.device)
    col = (tile_ids % tiles_x)[:, None] * tile_size + (local % tile_size)[None]
    row = (tile_ids // tiles_x)[:, None] * tile_size + (local // tile_size)[None]
    return torch.stack([col, row], dim=-1).to(dtype) + 0.5


def _composite_tiles(
    tile_ids: Tensor,  # [T] tile index within its image
    tile_size: int,
    tiles_x: int,
    counts: Tensor,  # [T] Gaussians per tile, non-increasing
    means2d: Tensor,  # [T, G, 2] padded per tile, front to back
    conics: Tensor,  # [T, G, 3]
    opacities: Tensor,  # [T, G], 0 for padding
    features: Tensor,  # [T, G, D]
    block: int,
) -> tuple[Tensor, Tensor]:  # features [T, P, D], trans [T, P]
    """Composite tiles block by block along depth; a tile leaves the loop once all its pixels
    have ended or it has no Gaussians left (gsplat's per-tile early exit)."""
    pixels = _tile_pixel_centres(tile_ids, tile_size, tiles_x, means2d.dtype)
    num_tiles, num_pixels = pixels.shape[:2]
    out = features.new_zeros(num_tiles, num_pixels, features.shape[-1])
    trans = torch.ones(num_tiles, num_pixels, dtype=means2d.dtype, device=means2d.device)
    done = torch.zeros(num_tiles, num_pixels, dtype=torch.bool, device=means2d.device)
    for start in range(0, means2d.shape[1], block):
        live = ((counts > start) & ~done.all(-1)).nonzero().squeeze(1)
        if len(live) == 0:
            break
        part = slice(start, start + block)
        step, trans_live, done_live = composite_block(
            pixels[live], means2d[live, part], conics[live, part], opacities[live, part],
            features[live, part], trans[live], done[live],
        )
        out = out.index_add(0, live, step)
        trans = trans.index_copy(0, live, trans_live)
        done = done.index_copy(0, live, done_live)
    return out, trans


def _tile_chunks(counts: Tensor, pixels_per_tile: int, block: int, chunk_elements: int):
    """Groups of non-empty tiles, most crowded first, sized so one depth block of a group
    (tiles x pixels x min(widest, block)) stays within ``chunk_elements``."""
    nonempty = counts.nonzero().squeeze(1)
    order = torch.sort(counts[nonempty], descending=True, stable=True).indices
    tiles = nonempty[order].tolist()
    sizes = counts[nonempty][order].tolist()
    start = 0
    while start < len(tiles):
        widest = sizes[start]
        per_chunk = max(1, chunk_elements // (pixels_per_tile * min(widest, block)))
        yield tiles[start : start + per_chunk], widest
        start += per_chunk


def _zero_linked_to(*tensors: Tensor) -> Tensor:  # [] zero whose gradient reaches ``tensors``
    """A scalar 0 in the autograd graph of ``tensors``; NaNs in them do not leak into it."""
    total = sum(t.sum() for t in tensors)
    return torch.where(torch.zeros((), dtype=torch.bool, device=total.device), total, 0.0)


def rasterize_to_pixels(
    proj: Projection,
    opacities: Tensor,  # [I, N]
    features: Tensor,  # [I, N, D]
    width: int,
    height: int,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    block: int = DEFAULT_BLOCK,
) -> tuple[Tensor, Tensor]:  # accumulated features [I, H, W, D], transmittance [I, H, W]
    """Tile-based front-to-back compositing of projected Gaussians (no background).

    Tiles are processed in groups (see ``_tile_chunks``), each group under activation
    checkpointing when gradients are needed, and each along depth in blocks of ``block``
    Gaussians so that tiles whose pixels have all ended stop early.
    """
    I, N = proj.depths.shape
    D = features.shape[-1]
    dtype, device = proj.means2d.dtype, proj.means2d.device
    bins = bin_gaussians_to_tiles(proj, width, height, tile_size)
    tiles_per_image = bins.tiles_x * bins.tiles_y
    pixels_per_tile = tile_size * tile_size

    flat_means = proj.means2d.reshape(I * N, 2)
    flat_conics = proj.conics.reshape(I * N, 3)
    flat_opac = opacities.reshape(I * N)
    flat_feat = features.reshape(I * N, D)
    need_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (flat_means, flat_conics, flat_opac, flat_feat)
    )

    done_tiles, done_feats, done_trans = [], [], []
    for tiles, widest in _tile_chunks(bins.counts, pixels_per_tile, block, chunk_elements):
        tiles_t = torch.tensor(tiles, device=device)
        counts = bins.counts[tiles_t]
        slot = torch.arange(widest, device=device)
        valid = slot[None, :] < counts[:, None]  # [T, G]
        index = (bins.offsets[tiles_t][:, None] + slot[None, :]).clamp(max=len(bins.flat_ids) - 1)
        gids = torch.where(valid, bins.flat_ids[index], torch.zeros_like(index))
        opac = torch.where(valid, flat_opac[gids], torch.zeros_like(flat_opac[gids]))
        args = (
            tiles_t % tiles_per_image, tile_size, bins.tiles_x, counts,
            flat_means[gids], flat_conics[gids], opac, flat_feat[gids], block,
        )
        if need_grad:
            feats, trans = checkpoint(_composite_tiles, *args, use_reentrant=False)
        else:
            feats, trans = _composite_tiles(*args)
        done_tiles.append(tiles_t)
        done_feats.append(feats)
        done_trans.append(trans)

    all_feats = features.new_zeros(I * tiles_per_image, pixels_per_tile, D)
    all_trans = torch.ones(I * tiles_per_image, pixels_per_tile, dtype=dtype, device=device)
    if done_tiles:
        tile_index = torch.cat(done_tiles)
        all_feats = all_feats.index_copy(0, tile_index, torch.cat(done_feats))
        all_trans = all_trans.index_copy(0, tile_index, torch.cat(done_trans))
    elif need_grad:
        # nothing visible: keep the outputs in the graph (zero gradients, as gsplat gives) so
        # that a loss on them can still call backward()
        anchor = _zero_linked_to(flat_means, flat_conics, flat_opac, flat_feat)
        all_feats, all_trans = all_feats + anchor, all_trans + anchor

    def untile(x: Tensor) -> Tensor:  # [I * tiles, P, K] -> [I, H, W, K]
        k = x.shape[-1]
        x = x.reshape(I, bins.tiles_y, bins.tiles_x, tile_size, tile_size, k)
        x = x.permute(0, 1, 3, 2, 4, 5)
        return x.reshape(I, bins.tiles_y * tile_size, bins.tiles_x * tile_size, k)[
            :, :height, :width
        ]

    return untile(all_feats), untile(all_trans[..., None])[..., 0]


def prepare_gaussians(
    inputs: RasterInputs,
) -> tuple[Projection, Tensor, Tensor]:  # projection, opacities [I, N], features [I, N, 4]
    """Everything before compositing, shared by the implementations that composite on the CPU:
    the projection, per-image opacities and the features (RGB, camera depth) to composite."""
    means, viewmats, opacities = inputs.means, inputs.viewmats, inputs.opacities
    B, N = means.shape[:2]
    C = viewmats.shape[1]
    I = B * C
    proj = project_gaussians(
        means, inputs.quats, inputs.scales, opacities, viewmats, inputs.Ks, inputs.width,
        inputs.height, inputs.near, inputs.far,
    )
    rgb = gaussian_colors(means, inputs.colors, viewmats, inputs.sh_degree)  # [B, C, N, 3]
    features = torch.cat([rgb.reshape(I, N, 3), proj.depths[..., None]], dim=-1)  # [I, N, 4]
    opac = opacities[:, None, :].expand(B, C, N).reshape(I, N)
    return proj, opac, features


def compose_images(
    accum: Tensor,  # [I, H, W, 4] composited RGB and depth
    trans: Tensor,  # [I, H, W] final transmittance
    backgrounds: Tensor | None,  # [B, C, 3]
    batch: int,
    cameras: int,
) -> tuple[Tensor, Tensor, Tensor]:  # rgb [B, C, H, W, 3], alpha [B, C, H, W, 1], depth same
    """rgb over the background, alpha = 1 - T and the expected depth from the composited sums."""
    I, height, width = trans.shape
    trans = trans[..., None]  # [I, H, W, 1]
    color = accum[..., :3]
    if backgrounds is not None:
        color = color + trans * backgrounds.reshape(I, 1, 1, 3)
    alpha = 1.0 - trans
    depth = accum[..., 3:] / alpha.clamp(min=1e-10)
    shape = (batch, cameras, height, width)
    return color.reshape(shape + (3,)), alpha.reshape(shape + (1,)), depth.reshape(shape + (1,))


def rasterize_gaussians_torch(
    inputs: RasterInputs,
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> tuple[Tensor, Tensor, Tensor]:  # rgb [B, C, H, W, 3], alpha [B, C, H, W, 1], depth same
    """Render B scenes from C cameras each; ``inputs`` are assumed checked by the caller
    (``oneshot_avatar.render.rasterize_gaussians``). Returns rgb, alpha and expected depth."""
    proj, opac, features = prepare_gaussians(inputs)
    accum, trans = rasterize_to_pixels(
        proj, opac, features, inputs.width, inputs.height, chunk_elements=chunk_elements
    )
    return compose_images(accum, trans, inputs.backgrounds, inputs.batch, inputs.cameras)
