"""Beat gestures from a library of SMPL-X clips, placed on stressed syllables.

The library is cut from clips: the built-in ``talk`` clip always, plus any SMPL-X motion files the
user gives (AMASS / BEAT-style ``.npz``, TalkSHOW ``.npy``, Meshcapade ``.smpl``, our ``.npz``).
A clip is cut into *phrases* around the peaks of its arm speed (one stroke each, from 0.4 s
before the peak to 0.5 s after); only the arms and hands (collars to fingertips, 38 joints) are
kept, as rotations relative to their parents, so a clip's root orientation or seating does not
matter.

Placement over the idle base: while speaking the arms move to the library's *home* pose (the
mean arm pose of all phrases, i.e. where that speaker's hands rest between strokes), and on each
beat a phrase is blended in (raised-cosine weight over its span) with its stroke peak exactly on
the beat. Outside speech the idle base is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oneshot_avatar.body.smplx_layout import JOINT_INDEX, JOINT_NAMES
from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import _rotations as rot
from oneshot_avatar.motion.clip import MotionClip

ARM_JOINTS: tuple[int, ...] = tuple(
    [JOINT_INDEX[f"{side}_{part}"] for side in ("left", "right")
     for part in ("collar", "shoulder", "elbow", "wrist")]
    + [i for i, name in enumerate(JOINT_NAMES) if name.startswith(("left_", "right_"))
       and name[name.index("_") + 1:].rstrip("123") in ("index", "middle", "pinky", "ring", "thumb")]
)
_SPEED_JOINTS = tuple(JOINT_INDEX[f"{s}_{p}"] for s in ("left", "right")
                      for p in ("shoulder", "elbow", "wrist"))
BEFORE, AFTER = 0.4, 0.5  # seconds of a phrase around its stroke peak
MAX_PHRASES_PER_CLIP = 64


@dataclass(frozen=True)
class GesturePhrase:
    """One stroke: ``poses`` (L, 38, 3) axis-angle of ARM_JOINTS at the library's fps; the stroke
    peak is frame ``peak``."""

    poses: np.ndarray
    peak: int
    source: str


@dataclass(frozen=True)
class GestureLibrary:
    fps: float
    phrases: tuple[GesturePhrase, ...]
    home: np.ndarray  # (38, 3) mean arm pose
    sources: tuple[str, ...]


def cut_phrases(clip: MotionClip, source: str) -> list[GesturePhrase]:
    """Phrases around arm-speed peaks of ``clip`` (already at the library's fps)."""
    full = clip.full_pose().astype(np.float64)
    if clip.num_frames < 3:
        return []
    quats = rot.rotvec_to_quat(full[:, _SPEED_JOINTS])
    dots = np.abs(np.sum(quats[1:] * quats[:-1], axis=-1)).clip(0, 1)
    speed = (2 * np.arccos(dots)).sum(axis=1) * clip.fps  # rad/s summed over joints
    kernel = np.hanning(max(3, int(0.15 * clip.fps)) | 1)
    speed = np.convolve(speed, kernel / kernel.sum(), mode="same")
    before, after = round(BEFORE * clip.fps), round(AFTER * clip.fps)
    threshold = max(0.3, float(np.median(speed) + 0.5 * speed.std()))
    candidates = np.flatnonzero((speed[1:-1] >= speed[:-2]) & (speed[1:-1] > speed[2:])) + 1
    kept: list[int] = []
    for index in candidates[np.argsort(-speed[candidates])]:
        index = int(index) + 1  # speed[i] is between frames i and i+1
        if speed[index - 1] < threshold or index < before or index + after >= clip.num_frames:
            continue
        if all(abs(index - k) >= before + after for k in kept):
            kept.append(index)
        if len(kept) >= MAX_PHRASES_PER_CLIP:
            break
    return [GesturePhrase(full[k - before:k + after + 1][:, ARM_JOINTS].copy(), before, source)
            for k in sorted(kept)]


def gesture_library(fps: float, files: list[str | Path] = ()) -> GestureLibrary:
    """The built-in ``talk`` clip's phrases plus those of each file in ``files``."""
    from oneshot_avatar.motion import builtin_clip, load_motion, resample

    phrases = cut_phrases(builtin_clip("talk", fps=fps, seconds=12.0), "builtin:talk")
    sources = ["builtin:talk"]
    for path in files:
        clip = load_motion(path)
        if clip.fps != fps:
            clip = resample(clip, fps)
        found = cut_phrases(clip, str(path))
        if not found:
            raise UserError(f"has no arm strokes to use as gestures (it needs at least "
                            f"{BEFORE + AFTER + 0.1:.1f} s with moving arms)", path=path,
                            field="gestures")
        phrases.extend(found)
        sources.append(str(path))
    frames = np.concatenate([p.poses for p in phrases])
    home = rot.quat_to_rotvec(_mean_quat(rot.rotvec_to_quat(frames)))
    return GestureLibrary(fps, tuple(phrases), home, tuple(sources))


def _mean_quat(quats: np.ndarray) -> np.ndarray:
    """Per-joint mean of unit quaternions (L, J, 4) -> (J, 4), signs aligned to the first."""
    aligned = quats * np.sign(np.sum(quats * quats[:1], axis=-1, keepdims=True) + 1e-12)
    mean = aligned.mean(axis=0)
    return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def place_gestures(full_pose: np.ndarray, times: np.ndarray, library: GestureLibrary,
                   beats: list[float], speaking: np.ndarray, amount: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Blend the home pose (by ``speaking`` (T,) * ``amount``) and one phrase per beat into the
    arms of ``full_pose`` (T, 55, 3), in place; returns the source of each placed phrase."""
    arms = list(ARM_JOINTS)
    q = rot.rotvec_to_quat(full_pose[:, arms].astype(np.float64))
    home = np.broadcast_to(rot.rotvec_to_quat(library.home), q.shape)
    q = rot.slerp_quat(q, home, np.broadcast_to((speaking * amount)[:, None], q.shape[:2]))
    used: list[str] = []
    last = -1
    for beat in beats:
        choices = [i for i in range(len(library.phrases)) if i != last] or [0]
        index = int(rng.choice(choices))
        last = index
        phrase = library.phrases[index]
        offset = (np.arange(phrase.poses.shape[0]) - phrase.peak) / library.fps
        lo, hi = np.searchsorted(times, beat + offset[0]), np.searchsorted(times, beat + offset[-1])
        if hi <= lo:
            continue
        local = times[lo:hi] - beat
        span = offset[-1] - offset[0]
        window = 0.5 - 0.5 * np.cos(2 * np.pi * (local - offset[0]) / span)
        # The phrase's frames at these times (nearest frame; the library is at the output fps).
        k = np.clip(np.round(local * library.fps).astype(int) + phrase.peak, 0,
                    phrase.poses.shape[0] - 1)
        target = rot.rotvec_to_quat(phrase.poses[k])
        weight = np.broadcast_to((window * amount * speaking[lo:hi])[:, None], target.shape[:2])
        q[lo:hi] = rot.slerp_quat(q[lo:hi], target, weight)
        used.append(phrase.source)
    full_pose[:, arms] = rot.quat_to_rotvec(q)
    return full_pose, used
