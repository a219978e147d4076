"""When and where to add or remove Gaussians during training (the ops themselves are in
:mod:`oneshot_avatar.avatar.densify`).

The signal is 3DGS's: the mean, over the steps a Gaussian was in view, of the norm of the loss
gradient w.r.t. its projected 2D mean, in NDC-like units (pixels x half the image size, as
gsplat's ``DefaultStrategy`` counts them). ``rasterize_gaussians`` does not expose the 2D means,
so the gradient is derived from the gradient w.r.t. the posed 3D means: moving a point at
camera depth ``z`` by ``δ`` parallel to the image plane moves its projection by ``f δ / z``
pixels, hence ``dL/du = (dL/dx_cam) z / fx`` and ``dL/dv = (dL/dy_cam) z / fy``. This leaves
out what flows through the projected covariance (which the 2D-mean gradient also leaves out)
and is exact for the part of the 3D gradient that moves the projected centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from oneshot_avatar.avatar import MeshGaussians
from oneshot_avatar.avatar.densify import duplicate, prune, split


def screen_gradient_norms(
    means: Tensor,  # [B, N, 3] posed world means (detached)
    means_grad: Tensor,  # [B, N, 3] dL/dmeans
    viewmats: Tensor,  # [B, C, 4, 4]
    Ks: Tensor,  # [B, C, 3, 3]
    width: int,
    height: int,
    near: float = 0.01,
) -> tuple[Tensor, Tensor]:  # [B, C, N] gradient norms, [B, C, N] bool in view
    """Per view, the norm of the loss gradient w.r.t. each projected mean (NDC-like units)
    and whether the mean projects inside the image in front of the camera."""
    rotation = viewmats[..., :3, :3]
    cam = torch.einsum("bcij,bnj->bcni", rotation, means) + viewmats[..., None, :3, 3]
    grad_cam = torch.einsum("bcij,bnj->bcni", rotation, means_grad)
    z = cam[..., 2]
    fx, fy = Ks[..., 0, 0, None], Ks[..., 1, 1, None]
    cx, cy = Ks[..., 0, 2, None], Ks[..., 1, 2, None]
    gu = grad_cam[..., 0] * z / fx * (0.5 * width)
    gv = grad_cam[..., 1] * z / fy * (0.5 * height)
    safe_z = z.clamp_min(near)
    u = fx * cam[..., 0] / safe_z + cx
    v = fy * cam[..., 1] / safe_z + cy
    visible = (z > near) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return torch.sqrt(gu * gu + gv * gv), visible


class GradientStats:
    """Running sum of screen-space gradient norms and view counts per Gaussian."""

    def __init__(self, count: int, device: torch.device | str):
        self.grad_sum = torch.zeros(count, device=device)
        self.views = torch.zeros(count, device=device)

    def add(self, norms: Tensor, visible: Tensor) -> None:  # [B, C, N] each
        self.grad_sum += (norms * visible).reshape(-1, norms.shape[-1]).sum(0).to(self.grad_sum)
        self.views += visible.reshape(-1, visible.shape[-1]).sum(0).to(self.views)

    def mean(self) -> Tensor:
        return self.grad_sum / self.views.clamp_min(1.0)

    def reset(self, count: int) -> None:
        self.grad_sum = torch.zeros(count, device=self.grad_sum.device)
        self.views = torch.zeros(count, device=self.views.device)

    def state_dict(self) -> dict[str, Tensor]:
        return {"grad_sum": self.grad_sum.detach().cpu(), "views": self.views.detach().cpu()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.grad_sum = state["grad_sum"].to(self.grad_sum.device)
        self.views = state["views"].to(self.views.device)


@dataclass(frozen=True)
class DensifyEvent:
    step: int
    split: int  # net Gaussians added by splitting
    duplicated: int
    pruned: int
    total: int  # Gaussians after the event

    def as_dict(self) -> dict[str, int]:
        return {"step": self.step, "split": self.split, "duplicated": self.duplicated,
                "pruned": self.pruned, "total": self.total}


def densify_and_prune(
    gaussians: MeshGaussians,
    optimizer: torch.optim.Optimizer,
    stats: GradientStats,
    rest_vertices: Tensor,  # [V, 3] offset rest mesh
    faces: Tensor,  # [F, 3]
    *,
    step: int,
    grad_threshold: float,
    split_scale: float,
    max_gaussians: int,
    prune_opacity: float,
    generator: torch.Generator,
) -> DensifyEvent:
    """Grow where the mean screen gradient exceeds ``grad_threshold`` (split Gaussians whose
    largest local scale exceeds ``split_scale``, copy the others; the strongest first, until
    ``max_gaussians``), then prune those with opacity below ``prune_opacity`` (never a
    triangle's last). Resets ``stats``."""
    mean_grad = stats.mean()
    selected = mean_grad > grad_threshold
    budget = max(0, max_gaussians - gaussians.num_gaussians)
    if int(selected.sum()) > budget:
        strongest = torch.argsort(mean_grad, descending=True, stable=True)[:budget]
        selected = torch.zeros_like(selected)
        selected[strongest] = True
    large = torch.exp(gaussians.log_scales.detach()).amax(dim=-1) > split_scale
    to_split, to_copy = selected & large, selected & ~large
    copied = duplicate(gaussians, to_copy, optimizer)
    to_split = torch.cat([to_split, torch.zeros(copied, dtype=torch.bool, device=to_split.device)])
    added = split(gaussians, to_split, rest_vertices.detach(), faces, optimizer,
                  generator=generator)
    removed = prune(gaussians, gaussians.opacities().detach() < prune_opacity, optimizer)
    stats.reset(gaussians.num_gaussians)
    return DensifyEvent(step=step, split=added, duplicated=copied, pruned=removed,
                        total=gaussians.num_gaussians)
