"""The motion codec of the backend's JSON API, in numpy (no bpy): per-frame rows of numbers
<-> the add-on's arrays. The twin of the backend's ``oneshot_avatar/motion/rows.py`` (the same
keys, widths and rules), held equal by ``tests/addon/test_core_rows.py``.

    {"name", "fps", "expression_space",
     "params": {"global_orient": [[3]...], "body_pose": [[63]...], ..., "transl": [[3]...],
                "expression": [[E]...]}}

Render requests and fit initialisations encode with :func:`rows_from_pose`; motions from the
service (built-in clips, speech) decode with :func:`pose_from_rows`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import FieldError
from .pose import full_pose_from_params, params_from_full_pose

# parameter -> numbers per row (the pose rows are flattened joints x 3)
ROW_WIDTHS = {
    "global_orient": 3, "body_pose": 63, "jaw_pose": 3, "leye_pose": 3, "reye_pose": 3,
    "left_hand_pose": 45, "right_hand_pose": 45, "transl": 3,
}
ROW_KEYS = (*ROW_WIDTHS, "expression")


def rows_from_pose(full_pose: np.ndarray, transl: np.ndarray,
                   expression: np.ndarray | None = None) -> dict[str, list[list[float]]]:
    """Rows of ``full_pose (T, 55, 3)`` axis-angle, ``transl (T, 3)`` metres and, when given,
    ``expression (T, E)``: one row per frame for each parameter."""
    full_pose = np.asarray(full_pose, dtype=np.float64)
    frames = full_pose.shape[0]
    rows = {name: np.asarray(value, dtype=np.float64).reshape(frames, -1).tolist()
            for name, value in params_from_full_pose(full_pose).items()}
    rows["transl"] = np.asarray(transl, dtype=np.float64).reshape(frames, 3).tolist()
    if expression is not None:
        rows["expression"] = np.asarray(expression, dtype=np.float64).reshape(frames, -1).tolist()
    return rows


def pose_from_rows(params: Mapping[str, Any], field: str = "params"
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(full_pose (T, 55, 3), transl (T, 3), expression (T, E))`` float64 from rows; missing
    pose parameters and ``transl`` are zeros, a missing ``expression`` has E = 0; keys a newer
    server may add are ignored (the reader is tolerant; the server's decoder is strict). Raises
    :class:`FieldError` (its message names the parameter) when something does not fit."""
    if not isinstance(params, Mapping):
        raise FieldError("expected an object of per-frame rows", field=field)
    if "global_orient" not in params:
        raise FieldError("is missing", field=f"{field}.global_orient")
    try:
        arrays = {k: np.asarray(params[k], dtype=np.float64) for k in ROW_KEYS
                  if params.get(k) is not None}
    except (TypeError, ValueError) as error:
        raise FieldError(f"must hold numbers: {error}", field=field) from error
    orient = arrays["global_orient"]
    frames = orient.shape[0] if orient.ndim == 2 else 0
    if frames < 1:
        raise FieldError(f"expected (T, 3), got {orient.shape}", field=f"{field}.global_orient")
    try:
        full = full_pose_from_params(arrays, frames)
    except ValueError as error:
        raise FieldError(str(error), field=field) from error
    transl = arrays.get("transl", np.zeros((frames, 3)))
    expression = arrays.get("expression", np.zeros((frames, 0)))
    if expression.ndim == 1 and expression.size == 0:
        expression = np.zeros((frames, 0))
    return full, transl, expression
