"""Rendering: one differentiable 3D-Gaussian rasterizer API (gsplat on CUDA, a compiled tile
rasterizer on CPUs, a pure-PyTorch reference everywhere). Importing this package never imports
gsplat or numba, nor loads CUDA."""

from oneshot_avatar._lazy import lazy_exports

# submodule -> the names it exports; imported on first use (so the CLI answers at once).
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".backends": ("BACKENDS",),
    ".rasterize": ("RasterBackend", "RasterOutput", "choose_backend", "cpu_available",
                   "gsplat_available", "rasterize_gaussians"),
    ".posed": ("PosedRender", "render_posed"),
})
