"""The CPU implementation of ``rasterize_gaussians``: compiled tile blending, forward and backward.

The stages before blending are the reference's own PyTorch functions (``prepare_gaussians``:
projection with gsplat's culling and box radii, SH colours, camera depth), so autograd carries
their backward. Blending is gsplat's ``rasterize_to_pixels`` as numba kernels
(``cpu_kernels``): Gaussians binned to 16x16 tiles and sorted by (depth, index) per tile,
front-to-back compositing with early termination, multithreaded over tiles, and the
hand-written backward (back to front from each pixel's last composited Gaussian) inside a
``torch.autograd.Function``. Same semantics as ``torch_rasterizer`` (the twin it is tested
against); the blending runs in float64 whatever the input dtype and the results are returned in
the input dtype.

Images and gradients do not depend on the number of threads or their scheduling.
"""

from __future__ import annotations

import importlib.util
import math
import threading

import numpy as np
import torch
from torch import Tensor

from oneshot_avatar.render.torch_rasterizer import (
    GSPLAT_TILE_SIZE,
    Projection,
    compose_images,
    prepare_gaussians,
)

TILE_SIZE = GSPLAT_TILE_SIZE  # 16 x 16 pixels, as gsplat

# numba's fallback thread pool ("workqueue", used when neither TBB nor OpenMP is available)
# must not be entered from two Python threads at once; the kernels use every core anyway.
_KERNEL_LOCK = threading.Lock()


def numba_available() -> bool:
    """Whether numba (the CPU backend's compiler) is installed."""
    return importlib.util.find_spec("numba") is not None


def _kernels():
    from oneshot_avatar.render import cpu_kernels

    return cpu_kernels


def _as_f64(tensor: Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().to(torch.float64).cpu().numpy())


class _TileBlend(torch.autograd.Function):
    """Per-tile compositing of projected Gaussians: ``(means2d, conics, opacities, features)``
    -> ``(accumulated features [I, H, W, D], final transmittance [I, H, W])``."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, features, radii, visible, depths, width, height):
        I, N = depths.shape
        D = features.shape[-1]
        k = _kernels()
        tiles_x, tiles_y = math.ceil(width / TILE_SIZE), math.ceil(height / TILE_SIZE)
        arrays = (
            _as_f64(means2d).reshape(I * N, 2), _as_f64(conics).reshape(I * N, 3),
            _as_f64(opacities).reshape(I * N), _as_f64(features).reshape(I * N, D),
        )
        with _KERNEL_LOCK:
            offsets, flat_ids = k.bin_gaussians(
                _as_f64(means2d), np.ascontiguousarray(radii.cpu().numpy()), _as_f64(depths),
                np.ascontiguousarray(visible.cpu().numpy()), TILE_SIZE, tiles_x, tiles_y,
            )
            counts = np.diff(offsets)
            order = np.argsort(-counts, kind="stable")
            tile_order = np.ascontiguousarray(order[: int(np.count_nonzero(counts))])
            accum, trans, last = k.rasterize_forward(
                offsets, flat_ids, tile_order, *arrays, I, width, height,
                TILE_SIZE, tiles_x, tiles_y,
            )
        ctx.raster = (offsets, flat_ids, tile_order, arrays, trans, last,
                      width, height, tiles_x, tiles_y)
        ctx.shapes = (I, N, D)
        dtype = means2d.dtype
        return torch.from_numpy(accum).to(dtype), torch.from_numpy(trans).to(dtype)

    @staticmethod
    def backward(ctx, v_accum, v_trans):
        offsets, flat_ids, tile_order, arrays, trans, last, width, height, tx, ty = ctx.raster
        I, N, D = ctx.shapes
        dtype = v_accum.dtype
        with _KERNEL_LOCK:
            grads = _kernels().rasterize_backward(
                offsets, flat_ids, tile_order, *arrays, trans, last,
                _as_f64(v_accum), _as_f64(v_trans), width, height, TILE_SIZE, tx, ty,
            )
        grads = torch.from_numpy(grads).to(dtype).reshape(I, N, -1)
        v_means2d, v_conics, v_opac, v_feat = grads.split([2, 3, 1, D], dim=-1)
        return (v_means2d, v_conics, v_opac[..., 0], v_feat,
                None, None, None, None, None)


def rasterize_to_pixels_cpu(
    proj: Projection,
    opacities: Tensor,  # [I, N]
    features: Tensor,  # [I, N, D]
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
    means: Tensor,  # [B, N, 3]
    quats: Tensor,  # [B, N, 4] wxyz, need not be normalised
    scales: Tensor,  # [B, N, 3] linear
    opacities: Tensor,  # [B, N] in [0, 1]
    colors: Tensor,  # [B, N, 3] RGB, or [B, N, K, 3] SH coefficients when sh_degree is set
    viewmats: Tensor,  # [B, C, 4, 4] world -> camera, OpenCV axes
    Ks: Tensor,  # [B, C, 3, 3]
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,  # [B, C, 3]
    near: float = 0.01,
    far: float = 1e10,
) -> tuple[Tensor, Tensor, Tensor]:  # rgb [B, C, H, W, 3], alpha [B, C, H, W, 1], depth same
    """Render B scenes from C cameras each on the CPU; inputs are assumed validated by the
    caller (``oneshot_avatar.render.rasterize_gaussians``). Returns rgb, alpha, depth."""
    proj, opac, features = prepare_gaussians(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, near, far
    )
    accum, trans = rasterize_to_pixels_cpu(proj, opac, features, width, height)
    return compose_images(accum, trans, backgrounds, means.shape[0], viewmats.shape[1])
