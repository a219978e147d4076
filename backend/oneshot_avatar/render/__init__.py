"""Rendering: one differentiable 3D-Gaussian rasterizer API (gsplat on CUDA, a compiled tile
rasterizer on CPUs, a pure-PyTorch reference everywhere). Importing this package never imports
gsplat or numba, nor loads CUDA."""

from oneshot_avatar._lazy import lazy_exports

# name -> the module it lives in; imported on first use (so the CLI answers at once).
_EXPORTS = {
    "BACKENDS": "oneshot_avatar.render.backends",
    "RasterBackend": "oneshot_avatar.render.rasterize",
    "PosedRender": "oneshot_avatar.render.posed",
    "RasterOutput": "oneshot_avatar.render.rasterize",
    "choose_backend": "oneshot_avatar.render.rasterize",
    "cpu_available": "oneshot_avatar.render.rasterize",
    "gsplat_available": "oneshot_avatar.render.rasterize",
    "rasterize_gaussians": "oneshot_avatar.render.rasterize",
    "render_posed": "oneshot_avatar.render.posed",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [*_EXPORTS]
