"""Training the avatar: Gaussians bound to the fitted body, fitted to the photo and to
pseudo-label frames (losses, regularisers, densification, checkpoints)."""

from __future__ import annotations

from oneshot_avatar.train.config import PRESETS, TrainConfig, preset
from oneshot_avatar.train.initial import initial_gaussians
from oneshot_avatar.train.losses import d_ssim, l1, psnr, ssim
from oneshot_avatar.train.perceptual import LPIPS, Perceptual, SSIMPerceptual, make_perceptual
from oneshot_avatar.train.trainer import TrainResult, TrainView, train_avatar

__all__ = [
    "LPIPS", "PRESETS", "Perceptual", "SSIMPerceptual", "TrainConfig", "TrainResult",
    "TrainView", "d_ssim", "initial_gaussians", "l1", "make_perceptual", "preset", "psnr", "ssim",
    "train_avatar",
]  # fmt: skip
