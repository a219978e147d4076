"""Image losses and metrics on ``[B, C, H, W]`` tensors with values in [0, 1]."""

from __future__ import annotations

import importlib.util
import math

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute difference."""
    return (pred - target).abs().mean()


def gaussian_window(size: int, sigma: float, *, dtype: torch.dtype, device) -> Tensor:
    """A normalised 1D Gaussian ``[size]``."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    w = torch.exp(-(x * x) / (2 * sigma * sigma))
    return w / w.sum()


def _blur(x: Tensor, window: Tensor) -> Tensor:
    """Separable 'valid' convolution of every channel of ``x [B, C, H, W]``."""
    c = x.shape[1]
    k = window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim_window(height: int, width: int, *, dtype: torch.dtype, device,
                window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    """The 1D Gaussian of SSIM for an image of ``height x width``: ``window`` pixels, or the
    largest odd size the image holds, its sigma shrunk in proportion."""
    size = min(window, width, height)
    size -= 1 - size % 2  # odd
    return gaussian_window(size, sigma * size / window, dtype=dtype, device=device)


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"expected two [B, C, H, W] tensors of one shape, got "
                         f"{list(pred.shape)} and {list(target.shape)}")


def ssim_map(pred: Tensor, target: Tensor, *, window: int = SSIM_WINDOW,
             sigma: float = SSIM_SIGMA) -> Tensor:
    """Per-pixel SSIM ``[B, C, H', W']`` (Gaussian window, 'valid' region; the window shrinks
    to the image when the image is smaller)."""
    _check_pair(pred, target)
    w = ssim_window(pred.shape[-2], pred.shape[-1], dtype=pred.dtype, device=pred.device,
                    window=window, sigma=sigma)
    # the five local means in one convolution call: x, y, x², y², xy
    stacked = torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1)
    mu_x, mu_y, e_xx, e_yy, e_xy = _blur(stacked, w).chunk(5, dim=1)
    xx = e_xx - mu_x * mu_x
    yy = e_yy - mu_y * mu_y
    xy = e_xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * xy + SSIM_C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (xx + yy + SSIM_C2)
    return numerator / denominator


def compiled_losses() -> bool:
    """Whether numba (the CPU kernels' compiler) is installed: then ``cpu_losses`` computes
    the image losses on the CPU."""
    return importlib.util.find_spec("numba") is not None


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Mean SSIM (11-px Gaussian window, sigma 1.5, C1 = 0.01², C2 = 0.03²) of two
    ``[B, C, H, W]`` tensors, differentiable in ``pred``. On the CPU with numba the compiled
    twin of ``ssim_map(pred, target).mean()`` (``cpu_losses``) computes it."""
    _check_pair(pred, target)
    if pred.device.type == "cpu" and target.device.type == "cpu" and compiled_losses():
        from oneshot_avatar.train.cpu_losses import mean_ssim_cpu

        window = ssim_window(pred.shape[-2], pred.shape[-1], dtype=torch.float64, device="cpu")
        return mean_ssim_cpu(pred, target.to(pred.dtype), window, SSIM_C1, SSIM_C2)
    return ssim_map(pred, target).mean()


def d_ssim(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - SSIM`` (0 for identical images; the 3DGS convention)."""
    return 1.0 - ssim(pred, target)


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """PSNR in dB for values in [0, 1], over the pixels where ``mask [B, 1, H, W]`` > 0.5
    when given (all pixels otherwise)."""
    err = (pred.detach() - target.detach()) ** 2
    if mask is not None:
        keep = (mask.detach() > 0.5).expand_as(err)
        if not bool(keep.any()):
            return float("nan")
        mse = float(err[keep].mean())
    else:
        mse = float(err.mean())
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def mask_loss(alpha: Tensor, mask: Tensor) -> Tensor:
    """L1 between rendered alpha and the person mask (both ``[B, 1, H, W]`` in [0, 1])."""
    return (alpha - mask).abs().mean()
