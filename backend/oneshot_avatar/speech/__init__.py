"""Talking from speech: audio -> phones with timings -> visemes -> face units, plus head, blinks,
brows and beat gestures, as a ``MotionClip`` (three layers after Rhubarb Lip Sync:
:mod:`.recognize`, :mod:`.visemes`, :mod:`.lipsync` / :mod:`.nonverbal` / :mod:`.gestures`)."""

from oneshot_avatar.speech.animate import SpeechResult, SpeechSettings, speech_to_motion
from oneshot_avatar.speech.audio import MAX_SECONDS, SAMPLE_RATE, Audio, load_audio

__all__ = ["MAX_SECONDS", "SAMPLE_RATE", "Audio", "SpeechResult", "SpeechSettings", "load_audio",
           "speech_to_motion"]
