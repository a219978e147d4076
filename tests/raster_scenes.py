"""Scene helpers shared by the rasterizer parity tests (CPU and GPU)."""

from __future__ import annotations

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
