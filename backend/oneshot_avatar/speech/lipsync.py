"""Layer 3a: animation rules for the mouth (after Rhubarb Lip Sync's animation step).

From timed phones to per-frame jaw opening and mouth face units:

1. **Targets**: every phone becomes one viseme target (two for diphthongs, 60/40 of its time),
   each active over its time span with the viseme's dominance.
2. **Co-articulation by dominance blending** (Cohen & Massaro 1993): a target's influence is its
   dominance over its own span and decays exponentially outside it, reaching further *before*
   the phone (anticipation: the lips prepare early, ``anticipation`` s) than after it
   (``carryover`` s). Each frame is the dominance-weighted mean of the targets.
3. **Loudness**: the jaw and the lip-opening units scale with the loudness (0.55x at the noise
   floor, 1.25x at the speech peak level), so shouted syllables open wider than mumbled ones.
4. **Hard rules**, applied last so blending cannot break them: on every p, b, m the lips meet
   (jaw 0, lip-opening units 0, lips pressed) in at least the frame nearest the phone's centre,
   easing in and out over ``closure_ease`` s; in silences of at least ``min_silence`` s the mouth
   rests closed (neutral), easing over ``silence_ease`` s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oneshot_avatar.motion.face_units import ARKIT_FACE_UNIT_INDEX, ARKIT_FACE_UNITS
from oneshot_avatar.speech.prosody import Prosody
from oneshot_avatar.speech.recognize import SILENCE, Phone
from oneshot_avatar.speech.visemes import (
    BILABIALS,
    OPENING_UNITS,
    VISEMES,
    viseme_vector,
    visemes_for,
)


@dataclass(frozen=True)
class LipSyncSettings:
    """Timing of the mouth rules, in seconds (defaults tuned on real and synthetic speech)."""

    anticipation: float = 0.07
    carryover: float = 0.04
    closure_ease: float = 0.06
    min_silence: float = 0.12
    silence_ease: float = 0.08
    opening_gain: float = 1.0  # scales jaw and lip opening (style: calm < 1 < lively)


@dataclass(frozen=True)
class MouthTrack:
    """Per-frame mouth: ``jaw`` (T,) opening 0..1 and ``units`` (T, 52) ARKit face units (only
    the mouth units are non-zero); ``closed`` (T,) the weight 0..1 with which a p/b/m or a
    silence holds the lips together."""

    jaw: np.ndarray
    units: np.ndarray
    closed: np.ndarray


_OPENING_COLUMNS = np.array([1 + ARKIT_FACE_UNIT_INDEX[u] for u in OPENING_UNITS])
_PRESS_COLUMNS = np.array([1 + ARKIT_FACE_UNIT_INDEX[u] for u in ("mouthPressLeft",
                                                                  "mouthPressRight")])
_SPREAD = 5.0  # dominance tails are evaluated out to this many time constants


def _targets(phones: list[Phone]) -> list[tuple[float, float, np.ndarray, float]]:
    out = []
    for phone in phones:
        names = visemes_for(phone.label)
        if phone.label == SILENCE:
            names = ("sil",)
        edges = [phone.start, phone.end] if len(names) == 1 else \
            [phone.start, phone.start + 0.6 * (phone.end - phone.start), phone.end]
        for name, a, b in zip(names, edges, edges[1:]):
            out.append((a, b, viseme_vector(name), VISEMES[name].dominance))
    return out


def mouth_track(phones: list[Phone], prosody: Prosody, times: np.ndarray,
                settings: LipSyncSettings = LipSyncSettings()) -> MouthTrack:
    """Jaw and mouth units at ``times`` (seconds, increasing) from timed ``phones``."""
    t = np.asarray(times, dtype=np.float64)
    width = 1 + len(ARKIT_FACE_UNITS)
    weighted = np.zeros((t.size, width))
    total = np.full(t.size, 1e-6)
    weighted[:] = 0.0
    for start, end, vector, dominance in _targets(phones):
        lo = np.searchsorted(t, start - _SPREAD * settings.anticipation)
        hi = np.searchsorted(t, end + _SPREAD * settings.carryover, side="right")
        if hi <= lo:
            continue
        local = t[lo:hi]
        before = np.exp(-np.clip(start - local, 0, None) / settings.anticipation)
        after = np.exp(-np.clip(local - end, 0, None) / settings.carryover)
        weight = dominance * before * after
        weighted[lo:hi] += weight[:, None] * vector
        total[lo:hi] += weight
    blend = weighted / total[:, None]

    loud = prosody.at(prosody.loudness01(), t)
    gain = settings.opening_gain * (0.55 + 0.70 * loud)
    blend[:, 0] *= gain
    blend[:, _OPENING_COLUMNS] *= np.clip(gain, 0.0, 1.3)[:, None]

    closed = np.zeros(t.size)
    fps_half = 0.5 * (t[1] - t[0]) if t.size > 1 else 0.02
    for phone in phones:
        if phone.label in BILABIALS:
            centre = 0.5 * (phone.start + phone.end)
            a, b = min(phone.start, centre - fps_half), max(phone.end, centre + fps_half)
            closed = np.maximum(closed, _plateau(t, a, b, settings.closure_ease))
    silent = np.zeros(t.size)
    for phone in _silences(phones, prosody, settings.min_silence):
        silent = np.maximum(silent, _plateau(t, phone[0], phone[1], settings.silence_ease))

    keep = 1.0 - np.maximum(closed, silent)
    blend[:, 0] *= keep
    blend[:, _OPENING_COLUMNS] *= keep[:, None]
    press = 0.45 * closed
    blend[:, _PRESS_COLUMNS] = np.maximum(blend[:, _PRESS_COLUMNS] * (1 - silent)[:, None],
                                          press[:, None])
    blend = np.clip(blend, 0.0, 1.0)
    return MouthTrack(jaw=blend[:, 0], units=blend[:, 1:], closed=np.maximum(closed, silent))


def _plateau(t: np.ndarray, a: float, b: float, ease: float) -> np.ndarray:
    """1 on [a, b], smoothstep down to 0 over ``ease`` s on both sides."""
    distance = np.maximum(a - t, t - b).clip(0, None) / max(ease, 1e-6)
    x = np.clip(1.0 - distance, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _silences(phones: list[Phone], prosody: Prosody, min_length: float) -> list[tuple[float, float]]:
    """Silent stretches: SIL phones of at least ``min_length`` s, and stretches the loudness
    calls inactive, whichever the recogniser missed."""
    out = [(p.start, p.end) for p in phones if p.label == SILENCE and p.end - p.start >= min_length]
    step = prosody.times[1] if prosody.num_frames > 1 else 0.01
    inactive = ~prosody.active
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inactive.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        if (b - a) * step >= min_length:
            out.append((a * step, b * step))
    if phones:  # before the first and after the last phone
        out.append((-1.0, phones[0].start))
        out.append((phones[-1].end, phones[-1].end + 3600.0))
    return out
