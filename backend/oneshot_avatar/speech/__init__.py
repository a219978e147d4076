"""Talking from speech: audio -> phones with timings -> visemes -> face units, plus head, blinks,
brows and beat gestures, as a ``MotionClip`` (three layers after Rhubarb Lip Sync:
:mod:`.recognize`, :mod:`.visemes`, :mod:`.lipsync` / :mod:`.nonverbal` / :mod:`.gestures`)."""

from oneshot_avatar._lazy import lazy_exports

# submodule -> the names it exports; imported on first use (so the CLI answers at once).
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".animate": ("SpeechResult", "SpeechSettings", "speech_to_motion"),
    ".audio": ("MAX_SECONDS", "SAMPLE_RATE", "Audio", "load_audio"),
})
