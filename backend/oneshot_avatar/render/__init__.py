"""Rendering: one differentiable 3D-Gaussian rasterizer API (gsplat on CUDA, a compiled tile
rasterizer on CPUs, a pure-PyTorch reference everywhere). Importing this package never imports
gsplat or numba, nor loads CUDA."""

from oneshot_avatar.render.rasterize import (
    BACKENDS,
    RasterBackend,
    RasterOutput,
    choose_backend,
    cpu_available,
    gsplat_available,
    rasterize_gaussians,
)

__all__ = [
    "BACKENDS",
    "RasterBackend",
    "RasterOutput",
    "choose_backend",
    "cpu_available",
    "gsplat_available",
    "rasterize_gaussians",
]
