"""Changing a clip's frame rate: slerp for rotations, linear for translation and expression."""

from __future__ import annotations

import math

import numpy as np

from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import _rotations as rot
from oneshot_avatar.motion.clip import MotionClip

_SNAP = 1e-6  # source positions this close to a whole frame are taken as that frame


def resampled_frame_count(num_frames: int, fps_in: float, fps_out: float) -> int:
    """Frames after resampling: ``floor(duration * fps_out) + 1`` with
    ``duration = (num_frames - 1) / fps_in`` (a tiny tolerance absorbs rounding)."""
    duration = (num_frames - 1) / fps_in
    return math.floor(duration * fps_out + _SNAP) + 1


def resample(clip: MotionClip, fps: float) -> MotionClip:
    """``clip`` at ``fps`` frames per second, keeping its duration.

    Output frame ``k`` is at time ``k / fps`` for ``k = 0 .. floor(duration * fps)``, where
    ``duration = (T - 1) / clip.fps``; the last output frame therefore falls on or before the last
    input frame (e.g. 601 frames at 120 fps -> 151 frames at 30 fps, input frames 0, 4, 8, ...).
    Rotations of all 55 joints are interpolated by quaternion slerp (shorter arc), ``transl`` and
    ``expression`` linearly. Output frames that fall on an input frame copy it exactly. Equal
    frame rates give an unchanged copy.
    """
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        fps = float("nan")
    if not math.isfinite(fps) or fps <= 0:
        raise UserError(f"target frame rate must be a positive number, got {fps}", field="fps")
    if fps == clip.fps:
        return clip.copy()

    num_out = resampled_frame_count(clip.num_frames, clip.fps, fps)
    position = np.arange(num_out, dtype=np.float64) * (clip.fps / fps)  # in input frames
    index0 = np.floor(position + _SNAP).astype(np.int64)
    weight = np.where(np.abs(position - index0) < _SNAP, 0.0, position - index0)
    index0 = np.clip(index0, 0, clip.num_frames - 1)
    index1 = np.minimum(index0 + 1, clip.num_frames - 1)
    weight = np.where(index1 == index0, 0.0, np.clip(weight, 0.0, 1.0))

    pose = clip.full_pose().astype(np.float64)  # (T, 55, 3)
    quat = rot.rotvec_to_quat(pose)
    new_pose = rot.quat_to_rotvec(rot.slerp_quat(quat[index0], quat[index1], weight[:, None]))
    exact = weight == 0.0
    new_pose[exact] = pose[index0[exact]]  # keep the source axis-angle bit for bit

    def lerp(values: np.ndarray) -> np.ndarray:
        values = values.astype(np.float64)
        w = weight.reshape(-1, *([1] * (values.ndim - 1)))
        out = (1.0 - w) * values[index0] + w * values[index1]
        out[exact] = values[index0[exact]]
        return out

    return MotionClip.from_full_pose(
        new_pose, lerp(clip.transl), fps, expression=lerp(clip.expression),
        expression_space=clip.expression_space,
        betas=None if clip.betas is None else clip.betas.copy(), name=clip.name,
        source=clip.source)
