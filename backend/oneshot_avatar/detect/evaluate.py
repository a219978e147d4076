"""Scoring detected keypoints and masks against ground truth (tests and ``benchmarks/fit.py``)."""

from __future__ import annotations

import numpy as np

from oneshot_avatar.fit.keypoints import Keypoints

PARTS = ("body", "feet", "face", "hands")


def part_of(name: str) -> str:
    if "_hand_" in name:
        return "hands"
    if name.startswith("face_"):
        return "face"
    if name.endswith(("_toe", "_heel")):
        return "feet"
    return "body"


def person_size(truth: Keypoints) -> float:
    """The longer side of the box around the annotated points (pixels)."""
    seen = truth.xy[truth.conf > 0]
    extent = seen.max(axis=0) - seen.min(axis=0)
    return float(extent.max())


def pck(detected: Keypoints, truth: Keypoints, fraction: float = 0.1,
        size: float | None = None) -> dict[str, dict[str, float]]:
    """Per part (body, feet, face, hands): the share of annotated points (truth conf > 0) that
    the detector put within ``fraction`` x ``size`` pixels (default size: the longer side of the
    box of all annotated points), and the mean error in pixels. A point the detector did not
    give (or gave with confidence 0) counts as a miss."""
    size = person_size(truth) if size is None else float(size)
    threshold = fraction * size
    out: dict[str, dict[str, float]] = {}
    index = {name: i for i, name in enumerate(detected.names)}
    per_part: dict[str, list[tuple[bool, float]]] = {p: [] for p in PARTS}
    for j, name in enumerate(truth.names):
        if truth.conf[j] <= 0:
            continue
        i = index.get(name)
        if i is None or detected.conf[i] <= 0:
            per_part[part_of(name)].append((False, float("nan")))
            continue
        error = float(np.linalg.norm(detected.xy[i] - truth.xy[j]))
        per_part[part_of(name)].append((error <= threshold, error))
    for part, rows in per_part.items():
        if not rows:
            continue
        hits = [h for h, _ in rows]
        errors = [e for _, e in rows if np.isfinite(e)]
        out[part] = {"pck": float(np.mean(hits)), "points": len(rows),
                     "mean_error_px": float(np.mean(errors)) if errors else float("nan"),
                     "threshold_px": threshold}
    return out


def mask_iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two masks thresholded at 0.5."""
    a, b = np.asarray(mask) > 0.5, np.asarray(truth) > 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
