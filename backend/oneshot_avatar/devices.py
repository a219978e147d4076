"""Choosing the torch device from a command-line name."""

from __future__ import annotations

import torch

from oneshot_avatar.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:N]``; a clear error for a
    CUDA device on a machine without one, or for any other name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available here; use --device cpu", field="device")
    if not (name == "cpu" or name.startswith("cuda")):
        raise UserError(f"--device must be auto, cpu or cuda[:N], got {name!r}", field="device")
    return torch.device(name)
