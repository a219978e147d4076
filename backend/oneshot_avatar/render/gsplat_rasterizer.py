"""The gsplat (CUDA) implementation of ``rasterize_gaussians``.

``gsplat`` is imported inside the function, so importing ``oneshot_avatar`` never loads it or
its CUDA extension (gsplat 1.5.3 from PyPI is a pure-Python wheel that JIT-compiles its kernels
on the first call; that needs nvcc and takes minutes once, then is cached in
``~/.cache/torch_extensions``).

Argument mapping onto ``gsplat.rasterization`` (1.5.3, ``gsplat/rendering.py``):

* batch dims: gsplat takes leading batch dims ``[..., N, 3]`` and ``[..., C, 4, 4]`` and
  returns ``[..., C, H, W, X]``; our ``[B, N, ...]`` / ``[B, C, ...]`` are passed as they are;
* ``render_mode="RGB+ED"``: the last channel is ``Σ w_i z_i / max(alpha, 1e-10)``, the
  background is extended with a zero depth channel by gsplat itself;
* ``packed=False``: avatars are seen almost whole by every camera, so packing saves little and
  the dense layout is the faster one;
* quaternions are passed unnormalised: gsplat normalises them in its kernels (and its backward
  projects the gradient onto the tangent space, as autograd through a normalisation does);
* ``eps2d=0.3``, ``rasterize_mode="classic"``, ``camera_model="pinhole"``, ``tile_size=16``,
  ``radius_clip=0`` — gsplat's defaults, spelled out because the PyTorch twin hard-codes them;
* SH: ``sh_degree`` and ``[B, N, K, 3]`` coefficients go straight through (gsplat evaluates
  them towards ``inverse(viewmat)[:3, 3]`` and applies ``max(sh + 0.5, 0)``).
"""

from __future__ import annotations

from torch import Tensor

from oneshot_avatar.render.torch_rasterizer import EPS2D, GSPLAT_TILE_SIZE


def rasterize_gaussians_gsplat(
    means: Tensor,  # [B, N, 3]
    quats: Tensor,  # [B, N, 4] wxyz, need not be normalised
    scales: Tensor,  # [B, N, 3] linear
    opacities: Tensor,  # [B, N]
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
    """Render with ``gsplat.rasterization``; inputs are assumed validated by the caller
    (``oneshot_avatar.render.rasterize_gaussians``) and on CUDA, float32."""
    from gsplat import rasterization

    render, alpha, _meta = rasterization(
        means,
        quats,
        scales,
        opacities,
        colors,
        viewmats,
        Ks,
        width,
        height,
        near_plane=near,
        far_plane=far,
        radius_clip=0.0,
        eps2d=EPS2D,
        sh_degree=sh_degree,
        packed=False,
        tile_size=GSPLAT_TILE_SIZE,
        backgrounds=backgrounds,
        render_mode="RGB+ED",
        rasterize_mode="classic",
        camera_model="pinhole",
    )
    return render[..., :3], alpha, render[..., 3:4]
