"""Prosody: loudness, voice activity, pitch and spectral balance per 10 ms frame.

Everything is computed with numpy from the 16 kHz samples (no extra dependency): RMS loudness in
dB over 25 ms windows, pitch by the normalised autocorrelation over 40 ms windows (70-400 Hz),
the spectral centroid, and speech activity from loudness relative to the recording's own noise
floor and peak level (so it works for quiet and loud recordings alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oneshot_avatar.speech.audio import Audio

HOP_SECONDS = 0.01  # one feature frame per 10 ms (pocketsphinx's frame rate too)
_LOUD_WINDOW = 0.025
_PITCH_WINDOW = 0.040
_F0_RANGE = (70.0, 400.0)
_CHUNK = 4000  # frames per FFT batch (bounds memory for 10-minute files)


@dataclass(frozen=True)
class Prosody:
    """Per-frame features at ``1 / HOP_SECONDS`` Hz; frame ``i`` is centred at ``i * HOP_SECONDS``.

    loudness_db  (F,) RMS level in dBFS.
    active       (F,) bool: speech (loud enough above the noise floor, gaps < 0.15 s filled).
    f0           (F,) pitch in Hz, 0 where unvoiced.
    centroid     (F,) spectral centroid in Hz.
    floor_db, peak_db: the recording's noise floor (5th percentile, at least peak - 60 dB) and
                 speech level (95th percentile).
    """

    loudness_db: np.ndarray
    active: np.ndarray
    f0: np.ndarray
    centroid: np.ndarray
    floor_db: float
    peak_db: float

    @property
    def num_frames(self) -> int:
        return int(self.loudness_db.size)

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.num_frames) * HOP_SECONDS

    @property
    def snr_db(self) -> float:
        """Speech level above the noise floor: small values mean noisy (or flat) audio."""
        return self.peak_db - self.floor_db

    def loudness01(self) -> np.ndarray:
        """Loudness mapped to 0 (noise floor) .. 1 (speech peak level), clipped."""
        span = max(self.peak_db - self.floor_db, 1e-3)
        return np.clip((self.loudness_db - self.floor_db) / span, 0.0, 1.0)

    def at(self, feature: np.ndarray, times: np.ndarray) -> np.ndarray:
        """``feature`` (F,) linearly interpolated at ``times`` (seconds)."""
        return np.interp(times, self.times, feature.astype(np.float64))


def _frames(samples: np.ndarray, window: int, hop: int, count: int) -> np.ndarray:
    padded = np.pad(samples, (window // 2, window // 2 + hop * count))
    view = np.lib.stride_tricks.sliding_window_view(padded, window)[::hop]
    return view[:count]


def analyse_prosody(audio: Audio) -> Prosody:
    """Loudness, activity, pitch and centroid of ``audio`` every 10 ms."""
    rate = audio.sample_rate
    hop = round(HOP_SECONDS * rate)
    count = max(1, int(np.ceil(audio.samples.size / hop)))
    x = audio.samples.astype(np.float32)

    loud = _frames(x, round(_LOUD_WINDOW * rate), hop, count)
    rms = np.sqrt(np.mean(loud.astype(np.float64) ** 2, axis=1) + 1e-12)
    loudness_db = 20.0 * np.log10(rms + 1e-9)
    peak_db = float(np.percentile(loudness_db, 95))
    # Digital silence (-120 dB) would put the floor absurdly low: no floor below peak - 60 dB.
    floor_db = max(float(np.percentile(loudness_db, 5)), peak_db - 60.0)
    threshold = floor_db + max(6.0, 0.45 * (peak_db - floor_db))
    active = _close_gaps(loudness_db > threshold, 15, 6)

    window = round(_PITCH_WINDOW * rate)
    nfft = 1 << int(np.ceil(np.log2(2 * window)))
    lag_lo, lag_hi = int(rate / _F0_RANGE[1]), int(rate / _F0_RANGE[0])
    taper = np.hanning(window).astype(np.float32)
    freqs = np.fft.rfftfreq(nfft, 1.0 / rate)
    f0 = np.zeros(count)
    centroid = np.zeros(count)
    frames = _frames(x, window, hop, count)
    for start in range(0, count, _CHUNK):
        block = frames[start:start + _CHUNK].astype(np.float32)
        block = block - block.mean(axis=1, keepdims=True)
        spectrum = np.fft.rfft(block * taper, nfft, axis=1)
        power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
        centroid[start:start + block.shape[0]] = (power @ freqs) / (power.sum(axis=1) + 1e-12)
        acf = np.fft.irfft(power, nfft, axis=1)[:, :lag_hi + 2]
        acf = acf / (acf[:, :1] + 1e-12)
        lags = np.argmax(acf[:, lag_lo:lag_hi + 1], axis=1) + lag_lo
        strength = acf[np.arange(acf.shape[0]), lags]
        # Parabolic refinement of the peak for sub-sample lags.
        left, right = acf[np.arange(acf.shape[0]), lags - 1], acf[np.arange(acf.shape[0]), lags + 1]
        denom = left - 2 * strength + right
        shift = np.where(np.abs(denom) > 1e-9, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0)
        pitch = rate / (lags + np.clip(shift, -0.5, 0.5))
        f0[start:start + block.shape[0]] = np.where(strength > 0.45, pitch, 0.0)
    f0 = np.where(active, f0, 0.0)
    return Prosody(loudness_db=loudness_db, active=active, f0=f0, centroid=centroid,
                   floor_db=floor_db, peak_db=peak_db)


def _close_gaps(mask: np.ndarray, max_gap: int, min_run: int) -> np.ndarray:
    """Fill ``False`` gaps shorter than ``max_gap`` frames inside speech, then drop ``True`` runs
    shorter than ``min_run`` frames (clicks)."""
    out = mask.copy()
    for value, limit in ((False, max_gap), (True, min_run)):
        runs = _runs(out)
        for start, stop, v in runs:
            if v == value and stop - start < limit and not (value is False and (start == 0 or stop == out.size)):
                out[start:stop] = not value
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int, bool]]:
    """Runs of equal values: (start, stop, value)."""
    if mask.size == 0:
        return []
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [mask.size]])
    return [(int(a), int(b), bool(mask[a])) for a, b in zip(starts, stops, strict=True)]
