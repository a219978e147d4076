"""Talking from speech: audio -> phones with timings -> visemes -> face units, plus head, blinks,
brows and beat gestures, as a ``MotionClip`` (three layers after Rhubarb Lip Sync:
:mod:`.recognize`, :mod:`.visemes`, :mod:`.lipsync` / :mod:`.nonverbal` / :mod:`.gestures`)."""

from oneshot_avatar._lazy import lazy_exports

# name -> the module it lives in; imported on first use (so the CLI answers at once).
_EXPORTS = {
    "SpeechResult": "oneshot_avatar.speech.animate",
    "SpeechSettings": "oneshot_avatar.speech.animate",
    "speech_to_motion": "oneshot_avatar.speech.animate",
    "MAX_SECONDS": "oneshot_avatar.speech.audio",
    "SAMPLE_RATE": "oneshot_avatar.speech.audio",
    "Audio": "oneshot_avatar.speech.audio",
    "load_audio": "oneshot_avatar.speech.audio",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [*_EXPORTS]
