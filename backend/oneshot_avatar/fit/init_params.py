"""``--init FILE``: an initial SMPL-X pose (and optionally the camera) for the fit, as the
Blender add-on sends it, or from any tool that writes SMPL-X parameters.

Formats: ``.npz`` (read without pickle) or ``.json`` (one object). Keys are ``smplx``'s names:
``betas, global_orient, body_pose, jaw_pose, leye_pose, reye_pose, left_hand_pose,
right_hand_pose, expression, transl``; JSON may add ``"camera"`` (a camera object as written by
:meth:`oneshot_avatar.cameras.Camera.to_dict`, for the square working image). Every key is
optional. Accepted shapes: ``[3]`` or ``[1, 3]`` for 3-vectors; ``[63]``, ``[21, 3]`` or
``[1, 21, 3]`` (or ``[1, 63]``) for ``body_pose``; ``[45]``, ``[15, 3]``, ... for the hands;
``[n]`` or ``[1, n]`` for ``betas`` / ``expression`` (fewer than the body has are padded with
zeros; more are an error unless the extra ones are zero). Hands are full axis-angle relative to
the flat hand (not PCA). Unknown keys (``gender``, ``mocap_framerate`` ...) are ignored with a
warning that lists them. NaN or infinite values raise an error naming the field.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from oneshot_avatar.body.npz_io import open_npz, read_array
from oneshot_avatar.cameras import Camera
from oneshot_avatar.errors import BadFileError, UserError

logger = logging.getLogger(__name__)

# name -> number of 3-vectors (joints); None for betas / expression (length from the body).
POSE_KEYS: dict[str, int] = {
    "global_orient": 1, "body_pose": 21, "jaw_pose": 1, "leye_pose": 1, "reye_pose": 1,
    "left_hand_pose": 15, "right_hand_pose": 15, "transl": 1,
}  # fmt: skip
VECTOR_KEYS = ("betas", "expression")
ZERO_TOLERANCE = 1e-6


def _as_array(value: Any, path: Path, field: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise BadFileError(f"expected numbers (a list or nested lists), got {value!r:.80}",
                           path=path, field=field) from error
    if array.dtype.kind not in "fiu":
        raise BadFileError("expected numbers", path=path, field=field)
    if not np.isfinite(array).all():
        where = np.argwhere(~np.isfinite(array))[0].tolist()
        raise BadFileError(f"contains NaN or infinite values (first at index {where}); give "
                           "finite numbers", path=path, field=field)
    return array


def _pose(array: np.ndarray, joints: int, path: Path, field: str) -> Tensor:
    accepted = {(joints * 3,), (1, joints * 3), (joints, 3), (1, joints, 3)}
    if joints == 1:
        accepted = {(3,), (1, 3)}
    if array.shape not in accepted:
        frames = array.shape[0] if array.ndim >= 2 and array.shape[0] > 1 else None
        hint = (f"; it looks like {frames} frames — give one pose" if frames
                and array.size == frames * joints * 3 else "")
        shapes = " or ".join(str(list(s)) for s in sorted(accepted, key=len))
        raise BadFileError(f"has shape {list(array.shape)}, expected {shapes}{hint}",
                           path=path, field=field)
    shape = (1, 3) if joints == 1 else (1, joints, 3)
    return torch.as_tensor(array.reshape(shape), dtype=torch.float32)


def _vector(array: np.ndarray, size: int, path: Path, field: str) -> Tensor:
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise BadFileError(f"has shape {list(array.shape)}, expected [n] or [1, n] with n <= "
                           f"{size}", path=path, field=field)
    if len(array) > size:
        extra = array[size:]
        if np.abs(extra).max() > ZERO_TOLERANCE:
            raise BadFileError(f"has {len(array)} values but this body model has {size}; the "
                               f"values after the first {size} must be zero", path=path,
                               field=field)
        array = array[:size]
    out = np.zeros(size, dtype=np.float64)
    out[: len(array)] = array
    return torch.as_tensor(out[None], dtype=torch.float32)


def _read(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise BadFileError("initial pose file does not exist", path=path)
    if suffix == ".npz":
        with open_npz(path, "initial SMPL-X pose") as npz:
            return {key: read_array(npz, key, path) for key in npz.files}
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadFileError(f"not a readable JSON file: {error}", path=path) from error
        if not isinstance(data, dict):
            raise BadFileError(f"expected one JSON object of SMPL-X parameters, got "
                               f"{type(data).__name__}", path=path)
        return data
    raise BadFileError(f"unknown initial pose format '{suffix}'; give a .npz or .json file of "
                       "SMPL-X parameters", path=path)


def load_init(path: str | Path, body) -> dict[str, Any]:
    """Read and validate an initial SMPL-X pose for ``body`` (a ``BodyModel``).

    Returns float32 CPU tensors with batch 1 (``betas [1, nb]``, ``global_orient [1, 3]``,
    ``body_pose [1, 21, 3]``, ...) for the keys the file has, plus ``"camera"``
    (:class:`Camera`) when a JSON file gives one.
    """
    path = Path(path)
    data = _read(path)
    out: dict[str, Any] = {}
    unknown = []
    sizes = {"betas": body.num_betas, "expression": len(body.expression_names)}
    for key, value in data.items():
        if key == "camera" and path.suffix.lower() == ".json":
            try:
                out["camera"] = Camera.from_dict(value)
            except BadFileError:
                raise
            except UserError as error:
                raise BadFileError(str(error), path=path, field="camera") from error
        elif key in POSE_KEYS:
            out[key] = _pose(_as_array(value, path, key), POSE_KEYS[key], path, key)
        elif key in VECTOR_KEYS:
            array = _as_array(value, path, key)
            if sizes[key] == 0:
                if array.size and np.abs(array).max() > ZERO_TOLERANCE:
                    logger.warning("%s: this body model has no expressions; 'expression' is "
                                   "ignored", path)
                continue
            out[key] = _vector(array, sizes[key], path, key)
        else:
            unknown.append(key)
    if unknown:
        logger.warning("%s: ignoring keys that are not SMPL-X parameters: %s", path,
                       ", ".join(sorted(unknown)))
    if not any(key in out for key in (*POSE_KEYS, *VECTOR_KEYS)):
        raise BadFileError(f"holds no SMPL-X parameter (found keys: {sorted(data)}); expected "
                           f"some of {', '.join((*VECTOR_KEYS, *POSE_KEYS))}", path=path)
    return out
