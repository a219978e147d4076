"""Speech -> motion: CPU cost per minute of audio, and jaw agreement with a real clip.

    python benchmarks/speech.py                                   # the shared espeak sample
    python benchmarks/speech.py AUDIO [--transcript FILE] [--minutes 1]
    python benchmarks/speech.py ../shared/data/audio/talkshow_french.wav \
        --reference ../shared/data/motion/talkshow_french.npy      # jaw vs TalkSHOW's jaw

Cost: the audio is repeated (transcript too) until it lasts ``--minutes`` (default 1; at most
the 10 minutes accepted), and the
process CPU time of decoding + analysis + recognition + animation is printed as seconds of CPU
per minute of audio (target: <= 10 s/min on a 2-core machine). The one-time loading of
pocketsphinx's model is included (it is paid once per run).

Agreement (``--reference FILE.npz|.npy``, a motion of the same audio, e.g. TalkSHOW's clip):
jaw opening = the jaw's rotation about +X (TalkSHOW's jaw is columns 0:3 at 30 fps), both at
30 fps, Pearson correlation at the best lag within +-100 ms (the lag is printed too), for
each recognizer (``--recognizers``).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import load_motion, resample
from oneshot_avatar.speech import MAX_SECONDS, SpeechSettings, load_audio, speech_to_motion

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"


def best_lag_correlation(ours: np.ndarray, reference: np.ndarray, fps: float,
                         max_lag_seconds: float = 0.1) -> tuple[float, float]:
    """(Pearson r, lag in seconds) maximising r over lags within +-max_lag_seconds; a positive
    lag means ours is late."""
    best = (-2.0, 0.0)
    max_lag = round(max_lag_seconds * fps)
    for lag in range(-max_lag, max_lag + 1):
        a = ours[lag:] if lag >= 0 else ours[:lag]
        b = reference[:len(reference) - lag] if lag >= 0 else reference[-lag:]
        n = min(len(a), len(b))
        if n < 3 or np.std(a[:n]) == 0 or np.std(b[:n]) == 0:
            continue
        r = float(np.corrcoef(a[:n], b[:n])[0, 1])
        if r > best[0]:
            best = (r, lag / fps)
    return best


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", nargs="?", default=str(SHARED / "espeak_en_sam.wav"))
    parser.add_argument("--transcript", default=None,
                        help="text of the audio (default: AUDIO with .txt when it exists)")
    parser.add_argument("--minutes", type=float, default=1.0, help="audio length for the cost")
    parser.add_argument("--reference", default=None, help="a motion of the same audio")
    parser.add_argument("--recognizers", default="auto,phonemes,loudness",
                        help="recognizers to compare against --reference")
    args = parser.parse_args(argv)

    audio_path = Path(args.audio)
    transcript_path = Path(args.transcript) if args.transcript else audio_path.with_suffix(".txt")
    transcript = transcript_path.read_text() if transcript_path.is_file() else None
    audio = load_audio(audio_path)
    repeats = max(1, min(math.ceil(args.minutes * 60 / audio.duration),
                         math.floor(MAX_SECONDS / audio.duration)))
    with tempfile.TemporaryDirectory() as folder:
        long_path = Path(folder) / "long.wav"
        _write_wav(long_path, np.tile(audio.samples, repeats), audio.sample_rate)
        long_text = " ".join([transcript] * repeats) if transcript else None
        start = time.process_time()
        wall = time.perf_counter()
        long_audio = load_audio(long_path)
        result = speech_to_motion(long_audio, SpeechSettings(transcript=long_text))
        cpu = time.process_time() - start
        wall = time.perf_counter() - wall
    minutes = long_audio.duration / 60
    print(f"audio: {audio_path.name} x{repeats} = {long_audio.duration:.1f} s; "
          f"recognizer: {result.recognition.method}"
          + (f" (transcript {transcript_path.name})" if long_text else ""))
    for note in result.recognition.notes:
        print(f"  note: {note}")
    print(f"cost: {cpu:.2f} s CPU for {minutes:.2f} min = {cpu / minutes:.2f} s CPU per minute "
          f"of audio (wall {wall:.2f} s; target <= 10 s/min); stages "
          f"{result.report['cpu_seconds']}")

    if args.reference:
        reference = load_motion(args.reference)
        if reference.fps != 30.0:
            reference = resample(reference, 30.0)
        ref_jaw = reference.jaw_pose[:, 0].astype(np.float64)
        for recognizer in args.recognizers.split(","):
            settings = SpeechSettings(fps=30.0, recognizer=recognizer,
                                      transcript=transcript if recognizer in ("auto", "transcript") else None)
            try:
                ours = speech_to_motion(audio, settings)
            except UserError as error:
                print(f"  {recognizer}: {error}")
                continue
            r, lag = best_lag_correlation(ours.clip.jaw_pose[:, 0].astype(np.float64), ref_jaw, 30.0)
            print(f"jaw vs {Path(args.reference).name} ({recognizer} -> "
                  f"{ours.recognition.method}): Pearson r = {r:.3f} at lag {lag * 1000:+.0f} ms "
                  f"({min(len(ref_jaw), ours.clip.num_frames)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
