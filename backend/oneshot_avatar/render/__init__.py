"""Rendering: one differentiable 3D-Gaussian rasterizer API (gsplat on CUDA, a pure-PyTorch
reference everywhere). Importing this package never imports gsplat or loads CUDA."""

from oneshot_avatar.render.rasterize import (
    BACKENDS,
    RasterBackend,
    RasterOutput,
    choose_backend,
    gsplat_available,
    rasterize_gaussians,
)

__all__ = [
    "BACKENDS",
    "RasterBackend",
    "RasterOutput",
    "choose_backend",
    "gsplat_available",
    "rasterize_gaussians",
]
