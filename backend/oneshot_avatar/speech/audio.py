"""Reading speech audio: any file ffmpeg decodes (WAV, MP3, FLAC, OGG, M4A, the sound track of a
video, ...) becomes mono float32 samples at 16 kHz, the rate pocketsphinx's acoustic model wants.

Decoding uses ``imageio-ffmpeg``'s bundled ffmpeg (already a dependency for MP4 output), which
also resamples and downmixes, so any sample rate and channel count is accepted. Bad input (not
audio, no samples, silence, more than :data:`MAX_SECONDS`) raises :class:`UserError` naming the
file and saying what to do.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oneshot_avatar.errors import BadFileError, UserError

SAMPLE_RATE = 16_000
MAX_SECONDS = 600.0  # ten minutes
MIN_SECONDS = 0.1
SILENT_PEAK = 10 ** (-60 / 20)  # peak below -60 dBFS counts as silence


@dataclass(frozen=True)
class Audio:
    """Mono speech: ``samples`` (N,) float32 in -1..1 at ``sample_rate`` Hz."""

    samples: np.ndarray  # (N,) float32
    sample_rate: int
    source: str = ""

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.size / self.sample_rate

    def pcm16(self) -> bytes:
        """Little-endian 16-bit PCM, as pocketsphinx's ``process_raw`` wants."""
        return (np.clip(self.samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def ffmpeg_exe() -> str:
    """The ffmpeg executable bundled with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def load_audio(path: str | Path, *, field: str = "audio") -> Audio:
    """Decode ``path`` to mono 16 kHz float32 and check it is usable speech.

    Raises :class:`BadFileError` for a missing file, something ffmpeg cannot decode as audio,
    no samples or silence, and :class:`UserError` for more than ten minutes.
    """
    path = Path(path)
    if not path.is_file():
        raise BadFileError("no such audio file; give a WAV, MP3, FLAC, OGG or M4A file",
                           path=path, field=field)
    command = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-vn", "-map", "0:a:0",
               "-ac", "1", "-ar", str(SAMPLE_RATE), "-t", f"{MAX_SECONDS + 1:.0f}",
               "-f", "s16le", "-acodec", "pcm_s16le", "-"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BadFileError(f"could not run ffmpeg to decode it: {error}", path=path,
                           field=field) from error
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"ffmpeg exit code {done.returncode}"
        if "matches no streams" in detail or "Stream map" in detail:
            detail = "the file has no audio stream"
        raise BadFileError(f"is not an audio file that can be decoded ({detail}); give a WAV, "
                           "MP3, FLAC, OGG or M4A file with speech", path=path, field=field)
    samples = np.frombuffer(done.stdout, dtype="<i2").astype(np.float32) / 32768.0
    return check_speech_audio(Audio(samples, SAMPLE_RATE, str(path)), field=field)


def check_speech_audio(audio: Audio, *, field: str = "audio") -> Audio:
    """Refuse audio that cannot carry speech: too short, over ten minutes, or silent."""
    where = audio.source or None
    if audio.duration < MIN_SECONDS:
        raise BadFileError(f"holds {audio.duration:.3f} s of audio; speech needs at least "
                           f"{MIN_SECONDS} s", path=where, field=field)
    if audio.duration > MAX_SECONDS:
        raise UserError(f"is longer than {MAX_SECONDS / 60:.0f} minutes; cut it into parts of "
                        "at most 10 minutes (e.g. `ffmpeg -i IN -ss 0 -t 600 part1.wav`)",
                        path=where, field=field)
    peak = float(np.max(np.abs(audio.samples)))
    if peak < SILENT_PEAK:
        level = 20 * np.log10(max(peak, 1e-12))
        raise BadFileError(f"is silent (peak level {level:.0f} dBFS); give a recording with "
                           "speech in it", path=where, field=field)
    return audio
