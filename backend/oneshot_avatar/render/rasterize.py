"""One differentiable 3D-Gaussian rasterizer API with three implementations.

``rasterize_gaussians`` validates its inputs and renders with gsplat's CUDA kernels
(``gsplat_rasterizer``), the compiled CPU tile rasterizer (``cpu_rasterizer``: numba kernels for
the blending and its backward) or the pure-PyTorch reference (``torch_rasterizer``), which
reproduces gsplat 1.5.3's math; the other two are parity-tested against it on values and
gradients.

Conventions (see ``ARCHITECTURE.md``):

* world units are metres; ``viewmats`` are world -> camera 4x4 matrices in OpenCV axes
  (x right, y down, z forward); ``Ks`` are pinhole intrinsics in pixels (only fx, fy, cx, cy
  are used); pixel ``(col, row)`` covers ``[col, col + 1) x [row, row + 1)`` and is sampled at
  its centre ``(col + 0.5, row + 0.5)``;
* quaternions are wxyz and need not be normalised; scales are linear standard deviations
  (not log); opacities are in ``[0, 1]`` (already activated);
* colours are linear RGB ``[B, N, 3]``, or, with ``sh_degree`` set, SH coefficients
  ``[B, N, K, 3]`` with ``K >= (sh_degree + 1)²`` evaluated towards each camera centre,
  RGB = ``max(SH + 0.5, 0)`` (the 3DGS convention);
* the Gaussians of batch entry ``b`` are seen by the ``C`` cameras of that entry.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from oneshot_avatar.render.backends import BACKENDS
from oneshot_avatar.render.torch_rasterizer import rasterize_gaussians_torch

RasterBackend = Literal["auto", "gsplat", "cpu", "torch"]


@dataclass(frozen=True)
class RasterOutput:
    """Rendered images of B scenes from C cameras each (H = height, W = width)."""

    rgb: Tensor  # [B, C, H, W, 3] composited colour plus T·background
    alpha: Tensor  # [B, C, H, W, 1] 1 - final transmittance
    depth: Tensor  # [B, C, H, W, 1] expected camera z, Σ w_i z_i / alpha; 0 where alpha == 0
    backend: str  # "gsplat", "cpu" or "torch": the implementation that produced the images


def gsplat_available() -> bool:
    """Whether the ``gsplat`` package is installed (its CUDA kernels are built on first use)."""
    return importlib.util.find_spec("gsplat") is not None


def rasterize_gaussians(
    means: Tensor,  # [B, N, 3] world positions
    quats: Tensor,  # [B, N, 4] wxyz rotations, need not be normalised
    scales: Tensor,  # [B, N, 3] linear standard deviations along the local axes
    opacities: Tensor,  # [B, N] in [0, 1]
    colors: Tensor,  # [B, N, 3] RGB, or [B, N, K, 3] SH coefficients when sh_degree is set
    viewmats: Tensor,  # [B, C, 4, 4] world -> camera (OpenCV: x right, y down, z forward)
    Ks: Tensor,  # [B, C, 3, 3] pinhole intrinsics in pixels
    width: int,
    height: int,
    *,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,  # [B, C, 3]; None renders over black
    near: float = 0.01,
    far: float = 1e10,
    backend: RasterBackend = "auto",
) -> RasterOutput:
    """Render 3D Gaussians: front-to-back alpha compositing of their EWA-projected footprints.

    Gaussians whose camera depth lies outside ``[near, far]`` are culled. ``backend="auto"``
    uses gsplat when the tensors are on CUDA, are float32 and gsplat is installed, the compiled
    CPU rasterizer for CPU tensors (when numba is installed), else the PyTorch reference;
    ``"gsplat"``, ``"cpu"`` and ``"torch"`` force one. The output lives on the inputs' device;
    every implementation is differentiable w.r.t. means, quats, scales, opacities, colours / SH
    coefficients and backgrounds.
    """
    inputs = RasterInputs(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                          sh_degree=sh_degree, backgrounds=backgrounds, near=near, far=far)
    inputs.check()
    chosen = choose_backend(backend, means)
    if chosen == "gsplat":
        from oneshot_avatar.render.gsplat_rasterizer import rasterize_gaussians_gsplat

        rgb, alpha, depth = rasterize_gaussians_gsplat(inputs)
    elif chosen == "cpu":
        from oneshot_avatar.render.cpu_rasterizer import rasterize_gaussians_cpu

        rgb, alpha, depth = rasterize_gaussians_cpu(inputs)
    else:
        rgb, alpha, depth = rasterize_gaussians_torch(inputs)
    return RasterOutput(rgb=rgb, alpha=alpha, depth=depth, backend=chosen)


def cpu_available() -> bool:
    """Whether the compiled CPU rasterizer can run (its compiler, numba, is installed)."""
    return importlib.util.find_spec("numba") is not None


def choose_backend(backend: RasterBackend, means: Tensor) -> Literal["gsplat", "cpu", "torch"]:
    """The implementation to run for ``backend`` on tensors like ``means``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    on_cpu = means.device.type == "cpu"
    if backend == "cpu":
        if not on_cpu:
            raise ValueError(
                f"backend='cpu' needs CPU tensors, got device {means.device}; "
                "use backend='auto' (gsplat on CUDA) or 'torch' on this device"
            )
        if not cpu_available():
            raise ImportError(
                "backend='cpu' needs the numba package (pip install numba); "
                "use backend='torch' or 'auto' to render without it"
            )
        return "cpu"
    gsplat_ok = means.is_cuda and means.dtype == torch.float32 and gsplat_available()
    if backend == "auto":
        if gsplat_ok:
            return "gsplat"
        return "cpu" if on_cpu and cpu_available() else "torch"
    if not means.is_cuda:
        raise ValueError(
            f"backend='gsplat' needs CUDA tensors, got device {means.device}; "
            "use backend='torch' or 'auto' on this device"
        )
    if means.dtype != torch.float32:
        raise ValueError(f"backend='gsplat' needs float32 tensors, got {means.dtype}")
    if not gsplat_available():
        raise ImportError(
            "backend='gsplat' needs the gsplat package (pip install gsplat==1.5.3); "
            "use backend='torch' or 'auto' to render without it"
        )
    return "gsplat"


def _expect_shape(name: str, tensor: Tensor, expected: tuple[int, ...], meaning: str) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {meaning}, got {type(tensor).__name__}")
    if tuple(tensor.shape) != expected:
        raise ValueError(
            f"{name} must have shape {meaning} = {list(expected)}, got {list(tensor.shape)}"
        )


@dataclass(frozen=True)
class RasterInputs:
    """One rasterization's inputs, with the shapes and conventions of :func:`rasterize_gaussians`
    (the module doc): what every implementation takes, once :meth:`check` has passed."""

    means: Tensor  # [B, N, 3]
    quats: Tensor  # [B, N, 4]
    scales: Tensor  # [B, N, 3]
    opacities: Tensor  # [B, N]
    colors: Tensor  # [B, N, 3] or [B, N, K, 3]
    viewmats: Tensor  # [B, C, 4, 4]
    Ks: Tensor  # [B, C, 3, 3]
    width: int
    height: int
    sh_degree: int | None = None
    backgrounds: Tensor | None = None  # [B, C, 3]
    near: float = 0.01
    far: float = 1e10

    @property
    def batch(self) -> int:
        return self.means.shape[0]

    @property
    def cameras(self) -> int:
        return self.viewmats.shape[1]

    def check(self) -> None:
        """Raise ``ValueError``/``TypeError`` naming the argument, its expected and its actual
        shape (or value) when the inputs do not fit together."""
        means, quats, scales, opacities = self.means, self.quats, self.scales, self.opacities
        colors, viewmats, Ks, backgrounds = self.colors, self.viewmats, self.Ks, self.backgrounds
        width, height, sh_degree, near, far = (self.width, self.height, self.sh_degree,
                                               self.near, self.far)
        if not isinstance(means, Tensor) or means.dim() != 3 or means.shape[-1] != 3:
            shape = list(means.shape) if isinstance(means, Tensor) else type(means).__name__
            raise ValueError(f"means must have shape [B, N, 3], got {shape}")
        B, N = means.shape[:2]
        _expect_shape("quats", quats, (B, N, 4), "[B, N, 4]")
        _expect_shape("scales", scales, (B, N, 3), "[B, N, 3]")
        _expect_shape("opacities", opacities, (B, N), "[B, N]")
        if not isinstance(viewmats, Tensor) or viewmats.dim() != 4:
            shape = list(viewmats.shape) if isinstance(viewmats, Tensor) else type(viewmats).__name__
            raise ValueError(f"viewmats must have shape [B, C, 4, 4] with B = {B}, got {shape}")
        C = viewmats.shape[1]
        _expect_shape("viewmats", viewmats, (B, C, 4, 4), "[B, C, 4, 4]")
        _expect_shape("Ks", Ks, (B, C, 3, 3), "[B, C, 3, 3]")
        if sh_degree is None:
            _expect_shape("colors", colors, (B, N, 3), "[B, N, 3] (RGB, sh_degree=None)")
        else:
            if not isinstance(sh_degree, int) or not 0 <= sh_degree <= 4:
                raise ValueError(f"sh_degree must be None or an int in 0..4, got {sh_degree!r}")
            k_min = (sh_degree + 1) ** 2
            if not isinstance(colors, Tensor) or colors.dim() != 4:
                shape = list(colors.shape) if isinstance(colors, Tensor) else type(colors).__name__
                raise ValueError(
                    f"colors must be SH coefficients of shape [B, N, K, 3] with K >= {k_min} "
                    f"for sh_degree={sh_degree}, got {shape}"
                )
            K = colors.shape[2]
            _expect_shape("colors", colors, (B, N, K, 3), "[B, N, K, 3]")
            if K < k_min:
                raise ValueError(f"sh_degree={sh_degree} needs K >= {k_min} SH coefficients, got {K}")
        if backgrounds is not None:
            _expect_shape("backgrounds", backgrounds, (B, C, 3), "[B, C, 3]")
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0 < near < far:
            raise ValueError(f"need 0 < near < far (camera-space depths), got near={near}, far={far}")

        tensors = {"means": means, "quats": quats, "scales": scales, "opacities": opacities,
                   "colors": colors, "viewmats": viewmats, "Ks": Ks}
        if backgrounds is not None:
            tensors["backgrounds"] = backgrounds
        for name, tensor in tensors.items():
            if tensor.device != means.device:
                raise ValueError(f"{name} is on {tensor.device} but means is on {means.device}")
            if not tensor.is_floating_point():
                raise ValueError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
            if tensor.dtype != means.dtype:
                raise ValueError(f"{name} has dtype {tensor.dtype} but means has {means.dtype}")
