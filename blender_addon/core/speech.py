"""Add Speech without Blender: checking the audio file and asking the backend for the motion.

The backend's ``POST /v1/speech`` turns an audio file (and optionally its transcript) into
lip-sync, face, head and gesture motion (MotionJSON at the scene's frame rate); the operator in
``speech_ops`` keys it on the rig and adds the sound as a strip at the same frame.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .client import ServiceClient, UploadFile, encode_multipart
from .errors import FieldError, checked_media_file

AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif",
                    ".aiff", ".wma", ".mp4", ".mov", ".mkv", ".webm")
MAX_AUDIO_BYTES = 256 * 1024 * 1024  # the backend's upload limit for /v1/speech
MAX_TRANSCRIPT_CHARS = 100_000
STYLES = ("calm", "lively")
# The backend needs about 1 s of CPU per 10 s of audio; allow generously for a busy machine.
SECONDS_PER_MB = 4.0
MIN_TIMEOUT_S = 60.0


class SpeechInputError(FieldError):
    """A bad audio or transcript file, named with its field."""


def check_audio_path(path: str | os.PathLike) -> Path:
    """The audio file, checked to exist, have an audio/video extension and fit the upload."""
    return checked_media_file(path, kind="audio", examples="WAV, MP3, FLAC, OGG, M4A",
                              extensions=AUDIO_EXTENSIONS, shown=6, max_bytes=MAX_AUDIO_BYTES,
                              too_large=f"is larger than {MAX_AUDIO_BYTES >> 20} MiB; at most 10 "
                                        "minutes of speech are read", error=SpeechInputError)


def read_transcript(path: str | os.PathLike | None) -> str | None:
    """The transcript's text, or None for no transcript."""
    if path is None or not str(path).strip():
        return None
    transcript = Path(path)
    try:
        text = transcript.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise SpeechInputError(f"cannot read it: {error.strerror or error}", path=transcript,
                               field="transcript") from error
    except UnicodeDecodeError:
        raise SpeechInputError("is not UTF-8 text", path=transcript, field="transcript") from None
    if len(text) > MAX_TRANSCRIPT_CHARS:
        raise SpeechInputError(f"has {len(text)} characters; at most {MAX_TRANSCRIPT_CHARS}",
                               path=transcript, field="transcript")
    return text if any(ch.isalnum() for ch in text) else None


def speech_fields(*, fps: float, style: str = "calm", seed: int = 0,
                  transcript: str | None = None) -> dict[str, Any]:
    """The form fields of ``POST /v1/speech`` (checked here so errors name the field)."""
    if style not in STYLES:
        raise SpeechInputError(f"unknown style {style!r}; choose {' or '.join(STYLES)}",
                               field="style")
    if not (math.isfinite(fps) and 1.0 <= fps <= 240.0):
        raise SpeechInputError(f"the scene's frame rate {fps:g} is outside 1..240 fps",
                               field="fps")
    if not 0 <= int(seed) <= 2**31 - 1:
        raise SpeechInputError(f"seed must be 0..2147483647, got {seed}", field="seed")
    return {"fps": f"{fps:.6g}", "style": style, "seed": int(seed), "transcript": transcript,
            "format": "json"}


def request_speech_motion(client: ServiceClient, audio: str | os.PathLike, *, fps: float,
                          style: str = "calm", seed: int = 0,
                          transcript: str | None = None) -> dict:
    """``POST /v1/speech``: the audio (+ transcript) -> MotionJSON with ``report``."""
    path = check_audio_path(audio)
    fields = speech_fields(fps=fps, style=style, seed=seed, transcript=transcript)
    body, content_type = encode_multipart(fields, [UploadFile.from_path("audio", path)])
    timeout = max(client.timeout, MIN_TIMEOUT_S, SECONDS_PER_MB * path.stat().st_size / 2**20)
    return client._json("POST", "/v1/speech", body=body, content_type=content_type,
                        timeout=timeout)
