"""A fit result on disk: the reconstruction's resume point (``WORK/fit.npz``).

One ``.npz`` (written deterministically, read without pickles) holding the SMPL-X parameters
(``param_<name>``, batch 1), the camera and the fit report (as UTF-8 JSON bytes), and optionally
the person mask the fit made (GrabCut from the fitted silhouette) so a resumed run reuses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from oneshot_avatar.body.npz_io import write_npz_deterministic
from oneshot_avatar.cameras import Camera
from oneshot_avatar.fit.fitter import FitResult

PARAM_PREFIX = "param_"


def _json_bytes(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value, default=float).encode(), dtype=np.uint8)


def save_fit(path: str | Path, fit: FitResult, mask: np.ndarray | None = None) -> None:
    """Write ``fit`` (and the mask ``[H, W]`` in 0..1 it made, if any) to ``path``."""
    arrays = {f"{PARAM_PREFIX}{k}": v.detach().cpu().numpy() for k, v in fit.params.items()}
    if mask is not None:
        arrays["mask"] = mask.astype(np.float32)
    arrays["camera_json"] = _json_bytes(fit.camera.to_dict())
    arrays["report_json"] = _json_bytes(fit.report)
    write_npz_deterministic(path, arrays)


def load_fit(path: str | Path, device: torch.device | str = "cpu"
             ) -> tuple[FitResult, np.ndarray | None]:
    """The fit saved by :func:`save_fit` on ``device``, and its mask (None when it had none)."""
    with np.load(path, allow_pickle=False) as data:
        params = {k[len(PARAM_PREFIX):]: torch.as_tensor(data[k], device=device)
                  for k in data.files if k.startswith(PARAM_PREFIX)}
        camera = Camera.from_dict(json.loads(bytes(data["camera_json"]).decode()), device=device)
        report = json.loads(bytes(data["report_json"]).decode())
        mask = data["mask"] if "mask" in data.files else None
    return FitResult(params=params, camera=camera, report=report), mask
