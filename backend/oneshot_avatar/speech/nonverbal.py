"""Layer 3b: non-verbal motion timed by the speech: stressed syllables, pitch accents, phrases.

* **Speaking envelope**: 1 while speaking, easing in and out; pauses shorter than
  ``phrase_gap`` s do not end a phrase (arms and head stay engaged between sentences).
* **Stressed syllables** (beats): vowels whose loudness peak is among the strongest of the
  recording, at least ``beat_gap`` s apart, only where the audio is active. Beat gestures and
  head nods fall on them.
* **Pitch accents**: voiced frames whose pitch rises at least ``accent_semitones`` above the
  speaker's median, local maxima at least ``brow_gap`` s apart -> brow raises.
* **Blinks**: a renewal process (gamma-distributed intervals, mean ``blink_interval`` s, never
  closer than 1 s) plus a blink at most phrase ends; a blink closes in 60 ms and opens in 120 ms.
* **Head**: nods (pitch down and back, 0.35 s) on beats, tilt following the smoothed pitch
  contour, and a slow turn, all scaled by the speaking envelope so the head rests in silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oneshot_avatar.speech.prosody import Prosody, _runs
from oneshot_avatar.speech.recognize import Phone
from oneshot_avatar.speech.visemes import VOWELS


@dataclass(frozen=True)
class Style:
    """How animated the speaker is. ``calm`` and ``lively`` are the presets."""

    name: str
    beat_gap: float  # s between beat gestures
    nod_gap: float  # s between nods
    brow_gap: float
    blink_interval: float
    nod_radians: float
    tilt_radians: float
    turn_radians: float
    brow_raise: float  # browInnerUp at a pitch accent
    gesture_amount: float  # 0..1 weight of library gestures
    opening_gain: float  # jaw/lip opening scale
    accent_semitones: float = 2.5
    phrase_gap: float = 0.7


STYLES: dict[str, Style] = {
    "calm": Style("calm", beat_gap=1.4, nod_gap=1.0, brow_gap=1.5, blink_interval=4.0,
                  nod_radians=0.05, tilt_radians=0.035, turn_radians=0.05, brow_raise=0.30,
                  gesture_amount=0.65, opening_gain=0.9),
    "lively": Style("lively", beat_gap=0.6, nod_gap=0.55, brow_gap=0.8, blink_interval=3.0,
                    nod_radians=0.09, tilt_radians=0.06, turn_radians=0.10, brow_raise=0.55,
                    gesture_amount=1.0, opening_gain=1.1),
}


@dataclass
class Events:
    """Times (seconds) of what the non-verbal layer placed."""

    beats: list[float] = field(default_factory=list)
    nods: list[float] = field(default_factory=list)
    brow_raises: list[float] = field(default_factory=list)
    blinks: list[float] = field(default_factory=list)
    phrases: list[tuple[float, float]] = field(default_factory=list)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def phrases(prosody: Prosody, gap: float) -> list[tuple[float, float]]:
    """Speaking stretches (s): active runs joined across pauses shorter than ``gap``."""
    step = prosody.times[1] if prosody.num_frames > 1 else 0.01
    spans = [(a * step, b * step) for a, b, v in _runs(prosody.active) if v]
    merged: list[tuple[float, float]] = []
    for a, b in spans:
        if merged and a - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def speaking_envelope(times: np.ndarray, spans: list[tuple[float, float]], attack: float = 0.25,
                      release: float = 0.35) -> np.ndarray:
    """1 inside the spans, easing in ``attack`` s before each and out ``release`` s after,
    but never reaching into silence further than that."""
    out = np.zeros(times.size)
    for a, b in spans:
        rise = smoothstep((times - (a - attack)) / attack)
        fall = 1.0 - smoothstep((times - b) / release)
        out = np.maximum(out, np.minimum(rise, fall))
    return out


def stressed_syllables(phones: list[Phone], prosody: Prosody, gap: float) -> list[tuple[float, float]]:
    """(time, strength 0..1) of stressed vowels: loudness peak in the vowel, strongest first,
    kept at least ``gap`` s apart, only where the audio is active; sorted by time."""
    loud = prosody.loudness01()
    candidates = []
    for phone in phones:
        if phone.label not in VOWELS:
            continue
        a, b = int(phone.start / 0.01), max(int(phone.start / 0.01) + 1, int(phone.end / 0.01))
        b = min(b, loud.size)
        if a >= b:
            continue
        peak = a + int(np.argmax(loud[a:b]))
        if prosody.active[peak]:
            candidates.append((peak * 0.01, float(loud[peak])))
    if not candidates:
        return []
    threshold = float(np.quantile([s for _, s in candidates], 0.4))
    kept: list[tuple[float, float]] = []
    for time, strength in sorted(candidates, key=lambda c: -c[1]):
        if strength >= threshold and all(abs(time - k) >= gap for k, _ in kept):
            kept.append((time, strength))
    return sorted(kept)


def pitch_accents(prosody: Prosody, gap: float, semitones: float) -> list[float]:
    """Times of pitch peaks ``semitones`` above the speaker's median pitch, ``gap`` s apart."""
    voiced = prosody.f0 > 0
    if voiced.sum() < 10:
        return []
    st = np.zeros_like(prosody.f0)
    st[voiced] = 12.0 * np.log2(prosody.f0[voiced] / np.median(prosody.f0[voiced]))
    # Median over 5 frames removes octave jumps of single frames.
    padded = np.pad(st, 2, mode="edge")
    smooth = np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=1)
    smooth = np.where(voiced, np.clip(smooth, -12, 12), -99.0)
    peaks = np.flatnonzero((smooth[1:-1] >= smooth[:-2]) & (smooth[1:-1] > smooth[2:])) + 1
    peaks = [int(p) for p in peaks if smooth[p] >= semitones and prosody.active[p]]
    kept: list[int] = []
    for p in sorted(peaks, key=lambda p: -smooth[p]):
        if all(abs(p - k) * 0.01 >= gap for k in kept):
            kept.append(p)
    return sorted(k * 0.01 for k in kept)


def blink_times(duration: float, spans: list[tuple[float, float]], mean_interval: float,
                rng: np.random.Generator) -> list[float]:
    """Blink times: gamma-distributed intervals (shape 3) plus most phrase ends, >= 1 s apart."""
    times = []
    t = float(rng.uniform(0.3, mean_interval))
    while t < duration - 0.2:
        times.append(t)
        t += max(1.0, float(rng.gamma(3.0, mean_interval / 3.0)))
    for _, end in spans:
        if end + 0.15 < duration - 0.2 and rng.uniform() < 0.7:
            times.append(end + 0.15)
    kept: list[float] = []
    for t in sorted(times):
        if not kept or t - kept[-1] >= 1.0:
            kept.append(t)
    return kept


def pulses(times: np.ndarray, centres: list[float], rise: float, fall: float,
           heights: list[float] | None = None) -> np.ndarray:
    """Sum (clipped to 1) of smooth bumps: 0 -> 1 over ``rise`` s up to each centre, back to 0
    over ``fall`` s after it."""
    out = np.zeros(times.size)
    for k, centre in enumerate(centres):
        up = smoothstep((times - (centre - rise)) / rise)
        down = 1.0 - smoothstep((times - centre) / fall)
        out = np.maximum(out, np.where(times < centre, up, down) * (heights[k] if heights else 1.0))
    return out


def blink_curve(times: np.ndarray, centres: list[float]) -> np.ndarray:
    """Eyelid closure 0..1: closes in 60 ms, opens in 120 ms."""
    return pulses(times, centres, 0.06, 0.12)


def smooth_noise(times: np.ndarray, rng: np.random.Generator, periods=(2.3, 3.7, 5.9)) -> np.ndarray:
    """A slow, smooth random signal in about -1..1 (sum of sines with random phases)."""
    out = np.zeros(times.size)
    for period in periods:
        out += np.sin(2 * np.pi * times / (period * rng.uniform(0.8, 1.25)) + rng.uniform(0, 2 * np.pi))
    return out / len(periods)


def pitch_contour(prosody: Prosody, times: np.ndarray, seconds: float = 0.4) -> np.ndarray:
    """Smoothed pitch in semitones relative to the speaker's median, held through unvoiced
    frames, about -1..1 after dividing by 6 semitones; 0 without voiced speech."""
    voiced = prosody.f0 > 0
    if voiced.sum() < 10:
        return np.zeros(times.size)
    st = np.zeros_like(prosody.f0)
    st[voiced] = 12.0 * np.log2(prosody.f0[voiced] / np.median(prosody.f0[voiced]))
    index = np.flatnonzero(voiced)
    held = np.interp(np.arange(st.size), index, np.clip(st[index], -12, 12))
    width = max(1, int(seconds / 0.01))
    kernel = np.hanning(2 * width + 1)
    held = np.convolve(held, kernel / kernel.sum(), mode="same")
    return np.clip(prosody.at(held, times) / 6.0, -1.0, 1.0)
