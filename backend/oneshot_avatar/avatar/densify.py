"""Densify / prune mesh-bound Gaussians, keeping the binding, every per-Gaussian tensor and the
optimizer's state in step, and never leaving a triangle without a Gaussian.

Each op takes the ``MeshGaussians`` and (optionally) the optimizer that trains it, replaces the
per-Gaussian parameters in place, and moves Adam-style moment buffers along (new Gaussians
start with zero moments).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from oneshot_avatar.avatar.binding import quat_to_matrix, triangle_frames, world_to_local
from oneshot_avatar.avatar.gaussians import PER_GAUSSIAN, MeshGaussians


def _replace(
    gaussians: MeshGaussians,
    optimizer: torch.optim.Optimizer | None,
    param_fn: Callable[[str, Tensor], Tensor],
    state_fn: Callable[[Tensor], Tensor],
    binding: Tensor,
) -> None:
    for name in PER_GAUSSIAN:
        old = getattr(gaussians, name)
        new = nn.Parameter(param_fn(name, old.detach()), requires_grad=old.requires_grad)
        if optimizer is not None:
            for group in optimizer.param_groups:
                for i, p in enumerate(group["params"]):
                    if p is old:
                        group["params"][i] = new
                        state = optimizer.state.pop(old, None)
                        if state:
                            for key, value in state.items():
                                if torch.is_tensor(value) and value.shape[:1] == old.shape[:1] and value.ndim > 0:
                                    state[key] = state_fn(value)
                            optimizer.state[new] = state
        setattr(gaussians, name, new)
    gaussians.binding = binding


def protect_last_per_triangle(gaussians: MeshGaussians, remove: Tensor) -> Tensor:
    """``remove`` [N] bool, changed so every triangle keeps at least one Gaussian (its most
    opaque one)."""
    remove = remove.clone()
    binding = gaussians.binding
    kept = torch.bincount(binding[~remove], minlength=gaussians.num_faces)
    orphaned = kept[binding] == 0  # Gaussians whose whole triangle would be emptied
    if orphaned.any():
        opacity = gaussians.opacity_logits.detach()
        index = torch.nonzero(orphaned).squeeze(1)
        # Per triangle, the index of its most opaque Gaussian: sort by opacity, last write wins.
        order = index[torch.argsort(opacity[index], stable=True)]
        best = torch.full((gaussians.num_faces,), -1, dtype=torch.long, device=binding.device)
        best[binding[order]] = order
        remove[best[best >= 0]] = False
    return remove


def prune(gaussians: MeshGaussians, remove: Tensor, optimizer=None) -> int:
    """Remove the Gaussians marked in ``remove`` [N] (bool), but never a triangle's last one.
    Returns how many were removed."""
    remove = protect_last_per_triangle(gaussians, remove)
    keep = ~remove
    _replace(gaussians, optimizer, lambda _, t: t[keep], lambda s: s[keep], gaussians.binding[keep])
    return int(remove.sum())


def duplicate(gaussians: MeshGaussians, selected: Tensor, optimizer=None) -> int:
    """Append a copy of each selected Gaussian (same triangle). Returns how many were added."""
    index = torch.nonzero(selected).squeeze(1)

    def grow(_, t: Tensor) -> Tensor:
        return torch.cat([t, t[index]])

    def grow_state(s: Tensor) -> Tensor:
        return torch.cat([s, torch.zeros_like(s[index])])

    _replace(gaussians, optimizer, grow, grow_state, torch.cat([gaussians.binding, gaussians.binding[index]]))
    return len(index)


def split(gaussians: MeshGaussians, selected: Tensor, rest_vertices: Tensor, faces: Tensor,
          optimizer=None, *, copies: int = 2, shrink: float = 1.6,
          generator: torch.Generator | None = None) -> int:
    """Replace each selected Gaussian by ``copies`` smaller ones sampled from it (3DGS-style),
    all on the same triangle of the rest mesh ``rest_vertices [V, 3]``. Returns the net number
    added."""
    index = torch.nonzero(selected).squeeze(1)
    if len(index) == 0:
        return 0
    with torch.no_grad():
        frames = triangle_frames(rest_vertices, faces)
        placed = gaussians.place(rest_vertices[None], faces)
        means = placed.means[0, index]
        rotation = quat_to_matrix(placed.quats[0, index])
        scales = placed.scales[0, index]
        noise = torch.randn(copies, len(index), 3, generator=generator, dtype=scales.dtype)
        samples = means + torch.einsum("sab,csb->csa", rotation, noise.to(scales.device) * scales)
        repeated = index.repeat(copies)
        new_means = world_to_local(frames, gaussians.binding[repeated], samples.reshape(-1, 3))
    keep = torch.ones(gaussians.num_gaussians, dtype=torch.bool, device=index.device)
    keep[index] = False

    def build(name: str, t: Tensor) -> Tensor:
        if name == "local_means":
            added = new_means.to(t)
        elif name == "log_scales":
            added = t[repeated] - math.log(shrink)
        else:
            added = t[repeated]
        return torch.cat([t[keep], added])

    def build_state(s: Tensor) -> Tensor:
        return torch.cat([s[keep], torch.zeros_like(s[repeated])])

    binding = torch.cat([gaussians.binding[keep], gaussians.binding[repeated]])
    _replace(gaussians, optimizer, build, build_state, binding)
    return len(index) * (copies - 1)
