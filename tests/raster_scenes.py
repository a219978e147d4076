"""Scene helpers shared by the rasterizer parity tests (CPU and GPU)."""

from __future__ import annotations

import math

import torch


def look_at(eye, target=(0.0, 0.0, 3.0)) -> torch.Tensor:
    """World -> camera (OpenCV axes: x right, y down, z forward), world y up."""
    eye_t, target_t = torch.tensor(eye), torch.tensor(target)
    forward = torch.nn.functional.normalize(target_t - eye_t, dim=0)
    up = torch.tensor([0.0, 1.0, 0.0])
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up), dim=0)
    down = torch.linalg.cross(forward, right)
    rot = torch.stack([right, down, forward])
    view = torch.eye(4)
    view[:3, :3] = rot
    view[:3, 3] = -rot @ eye_t
    return view


def box_gaussians(n: int, batch: int, seed: int, sh_degree: int | None) -> dict:
    """``batch`` sets of ``n`` random Gaussians in a body-sized box around (0, 0, 3), the last 8
    a stack of opaque ones one behind another (early termination): means, quats, scales,
    opacities and colors (RGB, or SH coefficients of ``sh_degree``). Callers make some of the
    first ones awkward (behind the cameras, off to the side, faint, ...)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(batch, n, 3, generator=g) * torch.tensor([0.6, 1.8, 0.4]) + torch.tensor(
        [-0.3, -0.9, 2.8]
    )
    quats = torch.randn(batch, n, 4, generator=g) * 1.7
    scales = torch.rand(batch, n, 3, generator=g) * 0.03 + 0.004
    opacities = torch.rand(batch, n, generator=g) * 0.98 + 0.01
    if sh_degree is None:
        colors = torch.rand(batch, n, 3, generator=g)
    else:
        colors = torch.randn(batch, n, (sh_degree + 1) ** 2, 3, generator=g) * 0.25
    opacities[:, -8:] = 0.97
    means[:, -8:] = torch.tensor([0.0, 0.2, 2.9]) + 0.01 * torch.arange(8)[:, None]
    return {"means": means, "quats": quats, "scales": scales, "opacities": opacities,
            "colors": colors}


def cameras(batch: int, width: int, height: int, count: int = 3):
    """``count`` cameras looking at (0, 0, 3), an off-centre principal point, and random
    background colours: viewmats [B, C, 4, 4], Ks [B, C, 3, 3], backgrounds [B, C, 3]."""
    eyes = [(0.0, 0.0, 0.0), (1.2, 0.3, 0.6), (-1.5, -0.2, 1.5)][:count]
    views = torch.stack([look_at(e) for e in eyes])
    f = width / (2 * math.tan(math.radians(25)))
    K = torch.tensor([[f, 0, width / 2 - 3.25], [0, f * 1.02, height / 2 + 1.5], [0, 0, 1]])
    viewmats = views[None].expand(batch, -1, -1, -1).contiguous()
    Ks = K.expand(batch, len(eyes), 3, 3).contiguous()
    g = torch.Generator().manual_seed(99)
    return viewmats, Ks, torch.rand(batch, len(eyes), 3, generator=g)
