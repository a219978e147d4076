"""Training checkpoints: written atomically, read without unpickling code.

A checkpoint is one ``torch.save`` file holding plain data: the step reached, the Gaussians'
tensors (binding included; their count may differ from the start after densification), the
optimizer's state, the random generator's state, the densification statistics, the config and
the report so far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from oneshot_avatar.avatar.gaussians import PER_GAUSSIAN, MeshGaussians
from oneshot_avatar.errors import BadFileError, UserError

FORMAT = "oneshot-avatar/train-checkpoint/1"
# Settings that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = frozenset({"checkpoint_every"})
GAUSSIAN_TENSORS = ("binding", *PER_GAUSSIAN, "vertex_offsets")


def gaussians_state(gaussians: MeshGaussians) -> dict[str, Tensor]:
    """The tensors of ``gaussians`` (CPU copies), binding and vertex offsets included."""
    return {name: getattr(gaussians, name).detach().cpu().clone() for name in GAUSSIAN_TENSORS}


def load_gaussians_state(gaussians: MeshGaussians, state: dict[str, Tensor]) -> None:
    """Replace the tensors of ``gaussians`` by ``state``'s, with the saved shapes (so the
    Gaussian count may differ), on the device of ``gaussians``."""
    device = gaussians.vertex_offsets.device
    binding = state["binding"].to(device=device, dtype=torch.long)
    if binding.numel() and (binding.min() < 0 or binding.max() >= gaussians.num_faces):
        raise ValueError(f"binding must index faces in [0, {gaussians.num_faces})")
    gaussians.binding = binding
    for name in (*PER_GAUSSIAN, "vertex_offsets"):
        old = getattr(gaussians, name)
        value = state[name].to(device=device, dtype=old.dtype)
        setattr(gaussians, name, nn.Parameter(value, requires_grad=old.requires_grad))


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename over it."""
    from oneshot_avatar.atomic import atomic_output

    with atomic_output(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check the layout of a checkpoint (``weights_only=True``)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- torch.load raises many types for bad files
        raise BadFileError(f"cannot read the training checkpoint ({type(error).__name__}: "
                           f"{error}); delete it to start over", path=path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise BadFileError(f"is not a training checkpoint of format {FORMAT!r} (found "
                           f"{found!r}); delete it to start over", path=path, field="format")
    required = ("step", "config", "seed", "gaussians", "optimizer", "rng", "stats", "run",
                "report")
    for key in required:
        if key not in data:
            raise BadFileError(f"the checkpoint has no '{key}'; delete it to start over",
                               path=path, field=key)
    state = data["gaussians"]
    for name in GAUSSIAN_TENSORS:
        if not isinstance(state, dict) or not isinstance(state.get(name), Tensor):
            raise BadFileError(f"the checkpoint's Gaussians have no tensor '{name}'", path=path,
                               field=f"gaussians.{name}")
    count = state["binding"].shape[0]
    for name in PER_GAUSSIAN:
        if state[name].shape[0] != count:
            raise BadFileError(f"'{name}' has {state[name].shape[0]} rows but the binding has "
                               f"{count}", path=path, field=f"gaussians.{name}")
    return data


def check_compatible(data: dict[str, Any], path: Path, *, config: dict[str, Any], seed: int,
                     run: dict[str, Any]) -> None:
    """Raise :class:`UserError` when the checkpoint was made by a different run: other
    settings, seed, or ``run`` facts (mesh size, SH degree, initial Gaussian count, perceptual
    loss)."""
    saved = data["config"]
    changed = sorted(key for key in set(saved) | set(config)
                     if key not in RESUMABLE_CHANGES and saved.get(key) != config.get(key))
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in changed)
        raise UserError(f"the checkpoint was made with other training settings ({details}); "
                        "use the same settings to resume, or start over without resume",
                        path=path, field=changed[0])
    if data["seed"] != seed:
        raise UserError(f"the checkpoint was made with seed {data['seed']}, not {seed}",
                        path=path, field="seed")
    for key, value in run.items():
        if data["run"].get(key) != value:
            raise UserError(f"the checkpoint was made with {key} = {data['run'].get(key)!r} but "
                            f"this run has {value!r}; it belongs to another avatar or setup: "
                            "start over without resume", path=path, field=key)
