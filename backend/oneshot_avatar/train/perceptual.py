"""Perceptual losses: LPIPS (VGG16) from local weight files, or an SSIM-based substitute.

LPIPS (Zhang et al. 2018, "vgg" variant, v0.1 linear layers) is built here without
torchvision: :func:`vgg16_features` is torchvision's ``vgg16().features`` with the same layer
indices, so a torchvision ``vgg16`` state dict (keys ``features.N.weight`` / ``.bias``; the
``classifier.*`` keys are ignored) loads as it is. The five linear layers come from the
``lpips`` package's ``weights/v0.1/vgg.pth`` (keys ``lin0.model.1.weight`` ... ``lin4...``),
found without importing that package (it imports torchvision), or from a given file.

Without both files :func:`make_perceptual` returns :class:`SSIMPerceptual`. Nothing is ever
downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from oneshot_avatar.errors import BadFileError
from oneshot_avatar.train.losses import compiled_losses, ssim

logger = logging.getLogger(__name__)

VGG16_FILE_NAME = "vgg16-397923af.pth"  # torchvision's ImageNet weights
VGG16_ENV = "ONESHOT_AVATAR_VGG16"
# torchvision vgg16 "features": (in, out) per conv, "M" = 2x2 max pool.
VGG16_LAYOUT: tuple[tuple[int, int] | str, ...] = (
    (3, 64), (64, 64), "M",
    (64, 128), (128, 128), "M",
    (128, 256), (256, 256), (256, 256), "M",
    (256, 512), (512, 512), (512, 512), "M",
    (512, 512), (512, 512), (512, 512), "M",
)  # fmt: skip
LPIPS_TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
# LPIPS "ScalingLayer": inputs in [-1, 1] are shifted and scaled per channel.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


@runtime_checkable
class Perceptual(Protocol):
    """A perceptual distance: ``pred, target [B, 3, H, W]`` in [0, 1] -> scalar (mean over
    the batch), 0 for identical images, differentiable w.r.t. ``pred``."""

    name: str

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor: ...


def vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` layout (31 modules, same indices), random init."""
    layers: list[nn.Module] = []
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            c_in, c_out = item
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
    return nn.Sequential(*layers)


def _read_state_dict(path: Path, what: str) -> dict[str, Tensor]:
    if not path.is_file():
        raise BadFileError(f"{what} file not found", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- torch.load raises many types for bad files
        raise BadFileError(f"cannot read {what} weights ({type(error).__name__}: {error}); "
                           "expected a PyTorch state dict saved with torch.save", path=path) from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise BadFileError(f"is not a {what} state dict (a dict of tensors)", path=path)
    return state


def _take(state: dict[str, Tensor], key: str, shape: tuple[int, ...], path: Path,
          what: str) -> Tensor:
    if key not in state:
        raise BadFileError(f"has no '{key}': not a {what} file", path=path, field=key)
    value = state[key]
    if tuple(value.shape) != shape:
        raise BadFileError(f"'{key}' has shape {list(value.shape)}, expected {list(shape)}",
                           path=path, field=key)
    if not torch.isfinite(value).all():
        raise BadFileError(f"'{key}' holds NaN or infinite values", path=path, field=key)
    return value.float()


def load_vgg16_features(path: str | Path) -> nn.Sequential:
    """The VGG16 feature layers with weights from a torchvision-format state dict file."""
    path = Path(path)
    state = _read_state_dict(path, "VGG16")
    features = vgg16_features()
    with torch.no_grad():
        for index, module in enumerate(features):
            if isinstance(module, nn.Conv2d):
                prefix = f"features.{index}"
                module.weight.copy_(_take(state, f"{prefix}.weight", tuple(module.weight.shape),
                                          path, "torchvision vgg16"))
                module.bias.copy_(_take(state, f"{prefix}.bias", tuple(module.bias.shape),
                                        path, "torchvision vgg16"))
    return features


def load_lpips_linear(path: str | Path) -> list[Tensor]:
    """The five LPIPS v0.1 linear-layer weights ``[1, C, 1, 1]`` from ``vgg.pth``."""
    path = Path(path)
    state = _read_state_dict(path, "LPIPS linear-layer")
    return [_take(state, f"lin{i}.model.1.weight", (1, c, 1, 1), path, "LPIPS v0.1 vgg")
            for i, c in enumerate(LPIPS_CHANNELS)]


class LPIPS(nn.Module):
    """LPIPS distance with a VGG16 trunk; frozen (no parameters train)."""

    name = "lpips-vgg"

    def __init__(self, features: nn.Sequential, linear: list[Tensor]):
        super().__init__()
        if len(features) < LPIPS_TAPS[-1] + 1:
            raise ValueError(f"need at least {LPIPS_TAPS[-1] + 1} VGG layers, got {len(features)}")
        self.features = features[: LPIPS_TAPS[-1] + 1]
        for i, weight in enumerate(linear):
            self.register_buffer(f"lin{i}", weight.detach().clone())
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, vgg_weights: str | Path, lin_weights: str | Path) -> LPIPS:
        return cls(load_vgg16_features(vgg_weights), load_lpips_linear(lin_weights))

    def _taps(self, x: Tensor) -> list[Tensor]:
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in LPIPS_TAPS:
                out.append(x)
        return out

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """``pred, target [B, 3, H, W]`` in [0, 1] -> mean LPIPS over the batch."""
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"expected two [B, 3, H, W] tensors of one shape, got "
                             f"{list(pred.shape)} and {list(target.shape)}")
        both = torch.cat([pred, target]).to(self.shift.dtype)
        both = ((2 * both - 1) - self.shift) / self.scale
        total = pred.new_zeros(pred.shape[0])
        for i, tap in enumerate(self._taps(both)):
            a, b = tap.chunk(2)
            a = a / (a.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            weighted = F.conv2d((a - b) ** 2, getattr(self, f"lin{i}"))
            total = total + weighted.mean(dim=(1, 2, 3))
        return total.mean()


class SSIMPerceptual:
    """The substitute when LPIPS weights are missing: a structural distance at three scales.

    ``d = mean over s in {1, 1/2, 1/4} of [ (1 - SSIM_s(x, y)) + 0.5 · mean |G_s(x) - G_s(y)| ]``
    where images are average-pooled by 2 between scales, SSIM is computed per RGB channel
    (11-px Gaussian window) and ``G`` is the Sobel gradient magnitude of the luminance. It is 0
    for identical images and grows with blur (lost gradients and contrast) and noise. Unlike
    LPIPS it knows nothing learned about faces or clothes.
    """

    name = "ssim-multiscale"

    def __init__(self, scales: int = 3, gradient_weight: float = 0.5):
        self.scales = scales
        self.gradient_weight = gradient_weight

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"expected two [B, 3, H, W] tensors of one shape, got "
                             f"{list(pred.shape)} and {list(target.shape)}")
        total = pred.new_zeros(())
        used = 0
        x, y = pred, target
        for scale in range(self.scales):
            if scale and min(x.shape[-2:]) < 8:
                break
            total = total + (1.0 - ssim(x, y))
            total = total + self.gradient_weight * gradient_difference(x, y)
            used += 1
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        return total / used


LUMINANCE = (0.299, 0.587, 0.114)


def gradient_difference(pred: Tensor, target: Tensor) -> Tensor:
    """``mean |G(pred) - G(target)|`` of ``[B, 3, H, W]`` images, ``G`` the Sobel gradient
    magnitude of the luminance; on the CPU with numba its compiled twin (``cpu_losses``)."""
    if pred.device.type == "cpu" and target.device.type == "cpu" and compiled_losses():
        from oneshot_avatar.train.cpu_losses import gradient_difference_cpu

        return gradient_difference_cpu(pred, target.to(pred.dtype), LUMINANCE)
    return (_gradient_magnitude(pred) - _gradient_magnitude(target)).abs().mean()


def _gradient_magnitude(rgb: Tensor) -> Tensor:  # [B, 3, H, W] -> [B, 1, H-2, W-2]
    luminance = (rgb * rgb.new_tensor(LUMINANCE).view(1, 3, 1, 1)).sum(1, keepdim=True)
    sobel = rgb.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
    gx = F.conv2d(luminance, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(luminance, sobel.T.contiguous().view(1, 1, 3, 3))
    return torch.sqrt(gx * gx + gy * gy + 1e-12)


def lpips_package_weights() -> Path | None:
    """``lpips/weights/v0.1/vgg.pth`` of an installed ``lpips`` package (not imported)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "weights" / "v0.1" / "vgg.pth"
        if candidate.is_file():
            return candidate
    return None


def default_vgg16_weights() -> Path | None:
    """``$ONESHOT_AVATAR_VGG16``, else torchvision's cached download in
    ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch`` when unset), if it exists. A path in
    the variable that is not a file raises :class:`BadFileError`."""
    env = os.environ.get(VGG16_ENV)
    if env:
        if not Path(env).is_file():
            raise BadFileError(f"${VGG16_ENV} names a VGG16 weights file that does not exist",
                               path=env)
        return Path(env)
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    candidate = torch_home / "hub" / "checkpoints" / VGG16_FILE_NAME
    return candidate if candidate.is_file() else None


def make_perceptual(device: torch.device | str, *, vgg_weights: str | Path | None = None,
                    lin_weights: str | Path | None = None) -> Perceptual:
    """LPIPS when both weight files are found (explicit paths first, then
    :func:`default_vgg16_weights` and :func:`lpips_package_weights`), else
    :class:`SSIMPerceptual`. Files that are named or found but unreadable raise
    :class:`BadFileError`; the choice is logged."""
    vgg = Path(vgg_weights) if vgg_weights is not None else default_vgg16_weights()
    lin = Path(lin_weights) if lin_weights is not None else lpips_package_weights()
    if vgg is not None and lin is not None:
        perceptual = LPIPS.from_files(vgg, lin).to(device)
        logger.info("perceptual loss: LPIPS (VGG16 %s, linear layers %s)", vgg, lin)
        return perceptual
    if vgg_weights is not None or lin_weights is not None:
        given, missing = (vgg, "LPIPS linear-layer (lpips/weights/v0.1/vgg.pth)") if vgg else \
            (lin, f"VGG16 ({VGG16_FILE_NAME}, or set ${VGG16_ENV})")
        raise BadFileError(f"LPIPS needs two weight files; the {missing} one was not found. "
                           "Give both, or neither to use the SSIM-based substitute", path=given)
    missing = [name for name, found in (("VGG16", vgg), ("LPIPS linear", lin)) if found is None]
    logger.info("perceptual loss: SSIM-based substitute (no %s weights found)", " / ".join(missing))
    return SSIMPerceptual()
