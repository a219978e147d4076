"""The CPU implementation of ``rasterize_gaussians``: compiled tile blending, forward and backward.

SH colours are the reference's PyTorch function when they need gradients (autograd carries
their backward), and a compiled kernel otherwise (renders: 150k Gaussians of SH degree 1 took
35 ms of CPU through PyTorch, 5.4 ms in the kernel; ``rasterize_gaussians`` checks the degree). The
projection (gsplat's ``projection_ewa_3dgs_fused``: covariance, EWA Jacobian with its FOV clamp,
eps2d, culling and box radii) and the blending (gsplat's ``rasterize_to_pixels``: Gaussians
binned to 16x16 tiles and sorted by (depth, index) per tile, front-to-back compositing with
early termination) are numba kernels (``cpu_kernels``), multithreaded over Gaussians and
tiles, with hand-written backward passes (blending back to front from each pixel's last
composited Gaussian) inside ``torch.autograd.Function``s. When the cameras themselves need
gradients (the body fit's silhouette term moves the camera), the projection is the reference's
PyTorch one under autograd and only the blending is compiled. Same semantics as
``torch_rasterizer`` (the twin it is tested against); the kernels compute in float64 whatever
the input dtype and the results are returned in the input dtype.

The kernels run on ``torch.get_num_threads()`` threads (a small pool; they release the GIL).
Images and gradients do not depend on the number of threads or their scheduling.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from oneshot_avatar.render.torch_rasterizer import (
    GSPLAT_TILE_SIZE,
    Projection,
    camera_centres,
    compose_images,
    gaussian_colors,
    prepare_gaussians,
)

if TYPE_CHECKING:
    from oneshot_avatar.render.rasterize import RasterInputs

TILE_SIZE = GSPLAT_TILE_SIZE  # 16 x 16 pixels, as gsplat

_POOL: tuple[ThreadPoolExecutor, int] | None = None  # the pool and its size, made on first use
_POOL_LOCK = threading.Lock()


def _kernels():
    from oneshot_avatar.render import cpu_kernels

    return cpu_kernels


def _workers() -> int:
    """Threads per kernel: torch's intra-op thread count (``torch.set_num_threads``)."""
    return max(1, torch.get_num_threads())


def _run(kernel, *args) -> None:
    """``kernel(worker, workers, *args)`` for every worker, on a thread pool (the kernels
    release the GIL); the calling thread does worker 0."""
    workers = _workers()
    if workers == 1:
        kernel(0, 1, *args)
        return
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[1] < workers - 1:
            _POOL = (ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="raster"),
                     workers - 1)
        pool = _POOL[0]
    futures = [pool.submit(kernel, w, workers, *args) for w in range(1, workers)]
    kernel(0, workers, *args)
    for future in futures:
        future.result()


def _as_f64(tensor: Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to(torch.float64).cpu().numpy())


@dataclass
class _Blend:
    """What the blending backward needs from its forward (numpy arrays, float64)."""

    offsets: np.ndarray  # [I * tiles + 1]
    flat_ids: np.ndarray  # [M]
    tile_order: np.ndarray  # [T']
    splats: np.ndarray  # [F, SPLAT_FIELDS] the Gaussians' records (``cpu_kernels``)
    trans: np.ndarray  # [I, H, W]
    last: np.ndarray  # [I, H, W]
    width: int
    height: int


PREFIX_BITS = 22  # the radix passes sort this many leading bits of the key's offset: 2 passes


def _depth_order(keys: np.ndarray) -> np.ndarray:  # [F] uint64 -> [V] int64
    """The indices of the keys that are not ``NO_KEY``, ordered by key, ties by index
    (gsplat's stable radix sort of the depth bits). A parallel LSD radix sort, 11-bit digits,
    each pass a histogram per worker's chunk then a stable scatter, of the leading
    ``PREFIX_BITS`` bits of each key's offset from the smallest (the depths' float64 bits
    span ~51 bits: 2 passes instead of 5), then the rare runs of equal prefixes ordered by
    the whole key. The same order for any number of workers."""
    k = _kernels()
    workers = _workers()
    visible = np.zeros(workers, np.int64)
    _run(k.count_keys, keys, visible)
    first = np.cumsum(visible) - visible
    count = int(visible.sum())
    key, order = np.empty(count, np.uint64), np.empty(count, np.int64)
    _run(k.compact_keys, keys, first, key, order)
    if count == 0:
        return order
    base = int(key.min())
    drop = max((int(key.max()) - base).bit_length() - PREFIX_BITS, 0)
    prefixes = np.empty_like(key)
    _run(k.key_prefixes, key, base, drop, prefixes)
    key = prefixes
    key_next, order_next = np.empty_like(key), np.empty_like(order)
    bins = 1 << k.RADIX_BITS
    for shift in range(0, PREFIX_BITS, k.RADIX_BITS):
        counts = np.zeros((workers, bins), np.int64)
        _run(k.radix_count, key, shift, counts)
        per_digit = counts.sum(axis=0)
        if per_digit.max() == count:
            continue  # one digit for all: this pass would not move anything
        cursor = (np.cumsum(per_digit) - per_digit)[None, :] + np.cumsum(counts, axis=0) - counts
        _run(k.radix_scatter, key, order, shift, cursor, key_next, order_next)
        key, key_next = key_next, key
        order, order_next = order_next, order
    if drop > 0:
        _run(k.settle_prefix_ties, key, order, keys)
    return order


def _bin(
    splats: np.ndarray,  # [I * N, SPLAT_FIELDS]: the centres
    radii: np.ndarray,  # [I, N, 2] int64
    visible: np.ndarray,  # [I, N] bool
    depths: np.ndarray,  # [I, N] float64
    tiles_x: int,
    tiles_y: int,
) -> tuple[np.ndarray, np.ndarray]:  # offsets [I * tiles + 1], flat_ids [M] into [I * N]
    """Every (image, tile, Gaussian) whose box overlaps the tile, grouped by tile and front to
    back within a tile (depth, ties by index: gsplat's order): the Gaussians sorted once by
    depth, then a counting sort into tiles, both chunks of the sorted list in parallel."""
    k = _kernels()
    I, N = visible.shape
    tiles = I * tiles_x * tiles_y
    rect = np.empty((I * N, 4), np.int32)
    keys = np.empty(I * N, np.uint64)
    _run(k.tile_rects, splats, radii, visible, np.ascontiguousarray(depths), TILE_SIZE,
         tiles_x, tiles_y, rect, keys)
    order = _depth_order(keys)
    sorted_rect = np.empty((len(order), 4), np.int32)
    _run(k.take_rows, rect, order, sorted_rect)  # read in sorted order below: not scattered
    rect = sorted_rect
    workers = _workers()
    counts = np.zeros((workers, tiles), np.int64)
    nothing = np.empty(0, np.int32)
    _run(k.tile_hits, order, rect, N, tiles_x, tiles_y, counts, nothing, False)
    per_tile = counts.sum(axis=0)
    offsets = np.zeros(tiles + 1, np.int64)
    np.cumsum(per_tile, out=offsets[1:])
    # chunk w of the sorted list writes each tile's entries after those of chunks 0..w-1
    cursor = offsets[:-1] + np.cumsum(counts, axis=0) - counts
    flat_ids = np.empty(offsets[-1], np.int32)
    _run(k.tile_hits, order, rect, N, tiles_x, tiles_y, cursor, flat_ids, True)
    return offsets, flat_ids


def _blend_forward(
    splats: np.ndarray,  # [I * N, SPLAT_FIELDS] the visible Gaussians' records
    radii: np.ndarray,  # [I, N, 2] int64
    visible: np.ndarray,  # [I, N] bool
    depths: np.ndarray,  # [I, N]
    width: int,
    height: int,
    backward: bool = True,
) -> tuple[np.ndarray, _Blend]:  # accumulated features [I, H, W, 4], state (trans, last, ...)
    """The blending forward; without ``backward`` the state cannot run the backward pass (the
    last composited Gaussian per pixel is not recorded)."""
    I, N = depths.shape
    k = _kernels()
    tiles_x, tiles_y = math.ceil(width / TILE_SIZE), math.ceil(height / TILE_SIZE)
    offsets, flat_ids = _bin(splats, radii, visible, depths, tiles_x, tiles_y)
    counts = np.diff(offsets)
    order = np.argsort(-counts, kind="stable")  # most crowded tiles first
    tile_order = np.ascontiguousarray(order[: int(np.count_nonzero(counts))])
    accum = np.zeros((I, height, width, k.FEATURES))
    trans = np.ones((I, height, width))
    last = np.zeros((I, height, width), np.int32)
    _run(k.rasterize_forward, offsets, flat_ids, tile_order, splats, width, height, TILE_SIZE,
         tiles_x, tiles_y, accum, trans, last, backward, np.zeros(_workers(), np.int64))
    return accum, _Blend(offsets, flat_ids, tile_order, splats, trans, last, width, height)


def _blend_backward(state: _Blend, v_accum: Tensor, v_trans: Tensor) -> np.ndarray:  # [F, 6 + 4]
    k = _kernels()
    tiles_x = math.ceil(state.width / TILE_SIZE)
    tiles_y = math.ceil(state.height / TILE_SIZE)
    scratch = np.zeros((len(state.flat_ids), k.GRAD_FIXED + k.FEATURES))
    _run(k.rasterize_backward, state.offsets, state.flat_ids, state.tile_order, state.splats,
         state.trans, state.last, _as_f64(v_accum), _as_f64(v_trans), state.width, state.height,
         TILE_SIZE, tiles_x, tiles_y, scratch, np.zeros(_workers(), np.int64))
    grads = np.zeros((state.splats.shape[0], scratch.shape[1]))
    _run(k.reduce_gradients, state.flat_ids, scratch, grads)
    return grads


class _TileBlend(torch.autograd.Function):
    """Per-tile compositing of projected Gaussians: ``(means2d, conics, opacities, features)``
    -> ``(accumulated features [I, H, W, D], final transmittance [I, H, W])``."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, features, radii, visible, depths, width, height):
        I, N = depths.shape
        D = features.shape[-1]
        k = _kernels()
        if D != k.FEATURES:  # the compiled blending is written for RGB + depth
            raise ValueError(
                f"the CPU rasterizer blends {k.FEATURES} feature channels (RGB and depth), got {D}")
        visible = np.ascontiguousarray(visible.cpu().numpy())
        splats = np.empty((I * N, k.SPLAT_FIELDS))
        _run(k.pack_splats, _as_f64(means2d).reshape(I * N, 2), _as_f64(conics).reshape(I * N, 3),
             _as_f64(opacities).reshape(I * N), _as_f64(features).reshape(I * N, D),
             visible.reshape(I * N), splats)
        accum, state = _blend_forward(splats, np.ascontiguousarray(radii.cpu().numpy()), visible,
                                      _as_f64(depths), width, height, any(ctx.needs_input_grad))
        ctx.state = state
        ctx.shapes = (I, N, features.shape[-1])
        dtype = means2d.dtype
        return torch.from_numpy(accum).to(dtype), torch.from_numpy(state.trans).to(dtype)

    @staticmethod
    def backward(ctx, v_accum, v_trans):
        I, N, D = ctx.shapes
        grads = torch.from_numpy(_blend_backward(ctx.state, v_accum, v_trans))
        grads = grads.to(v_accum.dtype).reshape(I, N, 6 + D)
        v_means2d, v_conics, v_opac, v_feat = grads.split([2, 3, 1, D], dim=-1)
        return (v_means2d, v_conics, v_opac[..., 0], v_feat,
                None, None, None, None, None)


class _ProjectBlend(torch.autograd.Function):
    """Projection (numba) and blending in one: ``(means, quats, scales, opacities, colours per
    image)`` -> ``(accumulated RGB + depth [I, H, W, 4], final transmittance [I, H, W])``, for
    cameras that need no gradient. ``splats`` are the [I·N, SPLAT_FIELDS] records the blending
    reads: their colours are ``rgb`` ([I, N, 3]) copied in, or, when ``rgb`` is None, colours
    the caller wrote there (``_sh_colors``: then no gradient reaches the colours); the
    projection writes the rest."""

    @staticmethod
    def forward(ctx, means, quats, scales, opacities, rgb, viewmats, Ks, width, height, near,
                far, splats):
        B, N = means.shape[:2]
        C = viewmats.shape[1]
        I = B * C
        k = _kernels()
        inputs = (_as_f64(means), _as_f64(quats), _as_f64(scales))
        cams = (_as_f64(viewmats), _as_f64(Ks))
        if rgb is not None:  # converted to float64 while copied
            _run(k.put_colors, np.ascontiguousarray(rgb.detach().reshape(I * N, 3).cpu().numpy()),
                 splats)
        depths = np.zeros((I, N))
        radii = np.zeros((I, N, 2), np.int64)
        visible = np.zeros((I, N), np.bool_)
        _run(k.project_forward, *inputs, _as_f64(opacities), *cams, width, height, near, far,
             splats, depths, radii, visible, np.zeros(_workers(), np.int64))
        accum, state = _blend_forward(splats, radii, visible, depths, width, height,
                                      any(ctx.needs_input_grad))
        ctx.state = state
        ctx.projection = (inputs, cams, visible, width, height, B, C, N)
        dtype = means.dtype
        return torch.from_numpy(accum).to(dtype), torch.from_numpy(state.trans).to(dtype)

    @staticmethod
    def backward(ctx, v_accum, v_trans):
        inputs, cams, visible, width, height, B, C, N = ctx.projection
        I = B * C
        grads = _blend_backward(ctx.state, v_accum, v_trans)
        grads = grads.reshape(I, N, grads.shape[1])
        v_means2d = np.ascontiguousarray(grads[..., 0:2])
        v_conics = np.ascontiguousarray(grads[..., 2:5])
        v_depths = np.ascontiguousarray(grads[..., 9])
        v_means = np.zeros((I, N, 3))
        v_quats = np.zeros((I, N, 4))
        v_scales = np.zeros((I, N, 3))
        _run(_kernels().project_backward, *inputs, *cams, width, height, visible, v_means2d,
             v_conics, v_depths, v_means, v_quats, v_scales)
        dtype = v_accum.dtype

        def per_scene(x: np.ndarray) -> Tensor:  # [I, N, ...] -> [B, N, ...], summed over C
            t = torch.from_numpy(x)
            return t.reshape((B, C) + t.shape[1:]).sum(1).to(dtype)

        v_opac = per_scene(np.ascontiguousarray(grads[..., 5]))
        v_rgb = None  # rgb None: the colours came from ``_sh_colors``, no gradient
        if ctx.needs_input_grad[4]:
            v_rgb = torch.from_numpy(np.ascontiguousarray(grads[..., 6:9])).to(dtype)
        return (per_scene(v_means), per_scene(v_quats), per_scene(v_scales), v_opac, v_rgb,
                None, None, None, None, None, None, None)


def _sh_colors(means: Tensor, colors: Tensor, viewmats: Tensor, sh_degree: int) -> np.ndarray:
    """``gaussian_colors`` by the compiled kernel, for renders without gradients: the records
    [B·C·N, SPLAT_FIELDS] the blending reads, with their colours (the projection fills the rest)."""
    B, N = means.shape[:2]
    C = viewmats.shape[1]
    k = _kernels()
    centres = _as_f64(camera_centres(viewmats.detach()))
    splats = np.empty((B * C * N, k.SPLAT_FIELDS))
    _run(k.sh_colors, _as_f64(means), _as_f64(colors), centres, sh_degree, splats)
    return splats


# The compiled SH colours with gradients cover degrees 0..3 (the training presets' range);
# degree 4 keeps the PyTorch formulas.
COMPILED_SH_MAX_DEGREE = 3


class _SHColors(torch.autograd.Function):
    """``gaussian_colors`` with SH, compiled forward and backward: ``means [B, N, 3]``,
    ``coeffs [B, N, K, 3]``, camera ``centres [B, C, 3]`` (no gradient) -> rgb ``[B, C, N, 3]``."""

    @staticmethod
    def forward(ctx, means, coeffs, centres, degree):
        B, N = means.shape[:2]
        C = centres.shape[1]
        k = _kernels()
        # the coefficients (16 x 3 per Gaussian at degree 3) are read in their own float type:
        # converting them both ways cost more than the kernels
        native = coeffs.dtype in (torch.float32, torch.float64)
        c = np.ascontiguousarray(coeffs.detach().cpu().numpy()) if native else _as_f64(coeffs)
        m, cen = _as_f64(means), _as_f64(centres)
        rgb = np.empty((B, C, N, 3))
        _run(k.sh_rgb_forward, m, c, cen, degree, rgb)
        ctx.state = (m, c, cen, degree)
        ctx.coeff_dtype = coeffs.dtype
        return torch.from_numpy(rgb).to(means.dtype)

    @staticmethod
    def backward(ctx, v_rgb):
        m, c, cen, degree = ctx.state
        v_means, v_coeffs = np.zeros_like(m), np.zeros_like(c)
        _run(_kernels().sh_rgb_backward, m, c, cen, degree, _as_f64(v_rgb), v_means, v_coeffs)
        dtype = v_rgb.dtype
        return (torch.from_numpy(v_means).to(dtype) if ctx.needs_input_grad[0] else None,
                torch.from_numpy(v_coeffs).to(ctx.coeff_dtype) if ctx.needs_input_grad[1]
                else None, None, None)


def sh_colors_cpu(means: Tensor, coeffs: Tensor, viewmats: Tensor, sh_degree: int) -> Tensor:
    """``gaussian_colors(means, coeffs, viewmats, sh_degree)`` ``[B, C, N, 3]`` by the compiled
    kernels, differentiable in ``means`` and ``coeffs`` (not in the cameras); degrees 0..3."""
    if not 0 <= sh_degree <= COMPILED_SH_MAX_DEGREE:
        raise ValueError(f"the compiled SH colours take degrees 0..{COMPILED_SH_MAX_DEGREE}, "
                         f"got {sh_degree}")
    return _SHColors.apply(means, coeffs, camera_centres(viewmats.detach()), sh_degree)


def rasterize_to_pixels_cpu(
    proj: Projection,
    opacities: Tensor,  # [I, N]
    features: Tensor,  # [I, N, 4]: RGB and depth (the compiled blending takes 4 channels)
    width: int,
    height: int,
) -> tuple[Tensor, Tensor]:  # accumulated features [I, H, W, D], transmittance [I, H, W]
    """Tile-based front-to-back compositing of projected Gaussians (no background), the
    compiled twin of ``torch_rasterizer.rasterize_to_pixels``."""
    return _TileBlend.apply(
        proj.means2d, proj.conics, opacities, features,
        proj.radii, proj.visible, proj.depths.detach(), width, height,
    )


def rasterize_gaussians_cpu(
    inputs: RasterInputs,
) -> tuple[Tensor, Tensor, Tensor]:  # rgb [B, C, H, W, 3], alpha [B, C, H, W, 1], depth same
    """Render B scenes from C cameras each on the CPU; ``inputs`` are assumed checked by the
    caller (``oneshot_avatar.render.rasterize_gaussians``). Returns rgb, alpha, depth."""
    means, colors, viewmats, Ks = inputs.means, inputs.colors, inputs.viewmats, inputs.Ks
    width, height, sh_degree = inputs.width, inputs.height, inputs.sh_degree
    B, C, N = inputs.batch, inputs.cameras, means.shape[1]
    if viewmats.requires_grad or Ks.requires_grad:
        # gradients w.r.t. the cameras (the fit's silhouette term moves the camera): the
        # reference's projection under autograd, compiled blending
        proj, opac, features = prepare_gaussians(inputs)
        accum, trans = rasterize_to_pixels_cpu(proj, opac, features, width, height)
    else:
        if sh_degree is not None and not (torch.is_grad_enabled() and (
                means.requires_grad or colors.requires_grad)):
            rgb = None  # compiled: nothing to derive
            splats = _sh_colors(means, colors, viewmats, sh_degree)
        else:
            if sh_degree is not None and sh_degree <= COMPILED_SH_MAX_DEGREE:
                rgb = sh_colors_cpu(means, colors, viewmats, sh_degree).reshape(B * C, N, 3)
            else:
                rgb = gaussian_colors(means, colors, viewmats, sh_degree).reshape(B * C, N, 3)
            splats = np.empty((B * C * N, _kernels().SPLAT_FIELDS))
        accum, trans = _ProjectBlend.apply(
            means, inputs.quats, inputs.scales, inputs.opacities, rgb, viewmats, Ks, width,
            height, inputs.near, inputs.far, splats,
        )
    return compose_images(accum, trans, inputs.backgrounds, B, C)
