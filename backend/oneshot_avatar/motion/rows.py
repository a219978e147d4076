"""The motion codec of the JSON API: a :class:`MotionClip` as per-frame rows of numbers and
back. One row per frame for each SMPL-X parameter, flattened (``body_pose`` rows have 63
numbers: 21 joints x 3 axis-angle); ``expression`` rows have the clip's E numbers.

    {"name": "wave", "fps": 30.0, "expression_space": "arkit52",
     "params": {"global_orient": [[3]...], "body_pose": [[63]...], ..., "transl": [[3]...],
                "expression": [[E]...]}}

The service's motion answers (``GET /v1/motions/{name}``, ``POST /v1/speech``) encode with
``clip_to_json``; its render requests decode with ``clip_from_rows``. The Blender add-on's
twin is ``blender_addon/core/rows.py`` (numpy only), held equal by
``tests/addon/test_core_rows.py``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from oneshot_avatar.errors import UserError
from oneshot_avatar.motion.clip import MotionClip

# parameter -> numbers per row (the pose rows are flattened joints x 3)
ROW_WIDTHS = {
    "global_orient": 3, "body_pose": 63, "jaw_pose": 3, "leye_pose": 3, "reye_pose": 3,
    "left_hand_pose": 45, "right_hand_pose": 45, "transl": 3,
}
ROW_KEYS = (*ROW_WIDTHS, "expression")
_SHAPES = {"body_pose": (21, 3), "left_hand_pose": (15, 3), "right_hand_pose": (15, 3)}


def clip_rows(clip: MotionClip) -> dict[str, list[list[float]]]:
    """Every parameter of ``clip`` (``ROW_KEYS``) as one row of numbers per frame."""
    frames = clip.num_frames
    return {key: getattr(clip, key).reshape(frames, -1).tolist() for key in ROW_KEYS}


def clip_to_json(clip: MotionClip) -> dict[str, Any]:
    """``{"params": rows, "fps", "expression_space", "name"}``: a clip as the API answers it."""
    return {"params": clip_rows(clip), "fps": clip.fps, "expression_space": clip.expression_space,
            "name": clip.name}


def clip_from_rows(params: Mapping[str, Sequence[Sequence[float]] | None], *, fps: float,
                   expression_space: str | None = None, name: str = "motion",
                   source: str = "request", max_frames: int | None = None,
                   field: str = "params") -> MotionClip:
    """A clip from per-frame rows (missing parameters are zeros; every one given has the same
    row count). ``expression_space`` is guessed from the row width when not given (52: ARKit,
    else SMPL-X PCA). Raises :class:`UserError` naming ``field.PARAMETER`` when a row count or
    width does not fit, or the frame count is outside ``1..max_frames``."""
    params = {key: rows for key, rows in params.items() if rows is not None}
    unknown = sorted(set(params) - set(ROW_KEYS))
    if unknown:
        raise UserError(f"unknown SMPL-X parameter(s) {unknown}; known: "
                        f"{sorted(ROW_WIDTHS) + ['expression']}", field=f"{field}.{unknown[0]}")
    if not params:
        raise UserError("give at least one parameter (e.g. 'body_pose'), one row per frame",
                        field=field)
    frames = max(len(rows) for rows in params.values())
    if frames < 1 or (max_frames is not None and frames > max_frames):
        raise UserError(f"{frames} frames; a request renders 1..{max_frames}", field=field)
    arrays: dict[str, np.ndarray] = {}
    for key, width in ROW_WIDTHS.items():
        rows = params.get(key)
        if rows is None:
            value = np.zeros((frames, width), np.float32)
        else:
            if len(rows) != frames:
                raise UserError(f"'{key}' has {len(rows)} rows but other parameters have {frames}; "
                                "give one row per frame for every parameter", field=f"{field}.{key}")
            if any(len(row) != width for row in rows):
                raise UserError(f"each row of '{key}' must have {width} numbers",
                                field=f"{field}.{key}")
            value = np.asarray(rows, np.float32)
        arrays[key] = value.reshape((frames, *_SHAPES[key])) if key in _SHAPES else value
    expression = params.get("expression")
    space = expression_space
    if expression is not None:
        if len(expression) != frames or len({len(row) for row in expression}) > 1:
            raise UserError(f"'expression' needs {frames} rows of equal length",
                            field=f"{field}.expression")
        width = len(expression[0])
        if width and space is None:
            space = "arkit52" if width == 52 else "smplx-pca"
        expression = np.asarray(expression, np.float32).reshape(frames, width)
        if width == 0:
            expression, space = None, None
    return MotionClip(fps=fps, expression=expression, expression_space=space, name=name,
                      source=source, **arrays)
