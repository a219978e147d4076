"""Speech -> ``MotionClip``: the three layers put together over the idle base.

``speech_to_motion(audio, settings)`` runs layer 1 (phones, :mod:`.recognize`), layer 2 (visemes,
:mod:`.visemes`) and layer 3 (mouth rules, :mod:`.lipsync`; non-verbal timing,
:mod:`.nonverbal`; gestures, :mod:`.gestures`) and returns the clip with a report of what ran.

The body starts from the built-in ``idle`` clip (breathing, weight shift) for the audio's length.
While speaking, the arms move to the gesture library's home pose and beat gestures land on
stressed syllables; the head nods on beats, tilts with the pitch contour and turns slowly. The
face uses the open body's ARKit units (``arkit52``): mouth from the visemes, blinks, brow raises
on pitch accents; the jaw is ``jaw_pose`` (so it also moves a real SMPL-X body, whose PCA
expressions cannot take ARKit units: there the lips stay neutral and only the jaw moves).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import _rotations as rot
from oneshot_avatar.motion.builtin import builtin_clip
from oneshot_avatar.motion.clip import MotionClip
from oneshot_avatar.motion.face_units import ARKIT_FACE_UNIT_INDEX, ARKIT_FACE_UNITS
from oneshot_avatar.speech import nonverbal as nv
from oneshot_avatar.speech.audio import Audio
from oneshot_avatar.speech.gestures import gesture_library, place_gestures
from oneshot_avatar.speech.lipsync import LipSyncSettings, mouth_track
from oneshot_avatar.speech.prosody import analyse_prosody
from oneshot_avatar.speech.recognize import RECOGNIZERS, Recognition, recognise
from oneshot_avatar.speech.visemes import JAW_OPEN_RADIANS, MOUTH_UNITS

MAX_FPS = 240.0


@dataclass(frozen=True)
class SpeechSettings:
    """Options of ``oneshot-avatar speak`` (documented defaults).

    fps          output frame rate (default 30).
    style        ``calm`` (fewer, smaller gestures and nods) or ``lively``.
    seed         repeatable randomness (blink times, phrase choice, head drift).
    transcript   the words spoken (text), aligned when given.
    recognizer   auto | transcript | phonemes | loudness (see :mod:`.recognize`).
    language     ``en`` (pocketsphinx) or anything else (loudness recogniser).
    gestures     extra SMPL-X clips to cut beat gestures from.
    """

    fps: float = 30.0
    style: str = "calm"
    seed: int = 0
    transcript: str | None = None
    recognizer: str = "auto"
    language: str = "en"
    gestures: tuple[str, ...] = ()

    def check(self) -> None:
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps)
                and 1.0 <= self.fps <= MAX_FPS):
            raise UserError(f"must be between 1 and {MAX_FPS:g} frames per second, got "
                            f"{self.fps!r}", field="fps")
        if self.style not in nv.STYLES:
            raise UserError(f"unknown style {self.style!r}; choose one of "
                            f"{', '.join(nv.STYLES)}", field="style")
        if self.recognizer not in RECOGNIZERS:
            raise UserError(f"unknown recognizer {self.recognizer!r}; choose one of "
                            f"{', '.join(RECOGNIZERS)}", field="recognizer")
        if not (0 <= int(self.seed) < 2**32):
            raise UserError(f"must be between 0 and 2**32 - 1, got {self.seed}", field="seed")


@dataclass
class SpeechResult:
    clip: MotionClip
    recognition: Recognition
    events: nv.Events
    report: dict = field(default_factory=dict)


def _post(full: np.ndarray, joint: str, rotvec: np.ndarray) -> None:
    """R <- R(rotvec) R for ``joint`` in ``full`` (T, 55, 3), in place."""
    index = JOINT_INDEX[joint]
    full[:, index] = rot.compose(rotvec, full[:, index].astype(np.float64))


def _about(axis: int, angle: np.ndarray) -> np.ndarray:
    out = np.zeros((angle.size, 3))
    out[:, axis] = angle
    return out


def speech_to_motion(audio: Audio, settings: SpeechSettings = SpeechSettings()) -> SpeechResult:
    """Lip-sync, face, head and gesture motion for ``audio`` (see the module docstring)."""
    settings.check()
    style = nv.STYLES[settings.style]
    rng = np.random.default_rng(int(settings.seed))
    clock = {"start": time.process_time()}
    prosody = analyse_prosody(audio)
    clock["prosody"] = time.process_time()
    recognition = recognise(audio, prosody, transcript=settings.transcript,
                            recognizer=settings.recognizer, language=settings.language)
    clock["recognition"] = time.process_time()

    fps = float(settings.fps)
    num_frames = max(2, math.ceil(audio.duration * fps))
    times = np.arange(num_frames) / fps
    mouth = mouth_track(recognition.phones, prosody, times,
                        LipSyncSettings(opening_gain=style.opening_gain))

    base = builtin_clip("idle", fps=fps, seconds=num_frames / fps)
    full = base.full_pose().astype(np.float64)
    face = base.expression.astype(np.float64).copy()
    for name in ("eyeBlinkLeft", "eyeBlinkRight"):
        face[:, ARKIT_FACE_UNIT_INDEX[name]] = 0.0

    spans = nv.phrases(prosody, style.phrase_gap)
    speaking = nv.speaking_envelope(times, spans)
    beats = nv.stressed_syllables(recognition.phones, prosody, style.beat_gap)
    nods = nv.stressed_syllables(recognition.phones, prosody, style.nod_gap)
    accents = nv.pitch_accents(prosody, style.brow_gap, style.accent_semitones)
    blinks = nv.blink_times(audio.duration, spans, style.blink_interval, rng)

    library = gesture_library(fps, list(settings.gestures))
    full, used = place_gestures(full, times, library, [t for t, _ in beats], speaking,
                                style.gesture_amount, rng)

    nod = nv.pulses(times, [t for t, _ in nods], 0.12, 0.25, [0.6 + 0.4 * s for _, s in nods])
    tilt = nv.pitch_contour(prosody, times) * style.tilt_radians
    turn = nv.smooth_noise(times, rng) * style.turn_radians
    _post(full, "neck", _about(0, 0.4 * style.nod_radians * nod * speaking))
    _post(full, "head", _about(0, 0.6 * style.nod_radians * nod * speaking))
    _post(full, "head", _about(2, tilt * speaking))
    _post(full, "head", _about(1, turn * speaking))
    full[:, JOINT_INDEX["jaw"]] = _about(0, JAW_OPEN_RADIANS * mouth.jaw)

    for name in MOUTH_UNITS:
        column = ARKIT_FACE_UNIT_INDEX[name]
        face[:, column] = np.maximum(face[:, column] * (1.0 - mouth.closed), mouth.units[:, column]) \
            if name.startswith("mouthSmile") else mouth.units[:, column]
    blink = nv.blink_curve(times, blinks)
    brow = nv.pulses(times, accents, 0.15, 0.45) * style.brow_raise * speaking
    face[:, ARKIT_FACE_UNIT_INDEX["eyeBlinkLeft"]] = blink
    face[:, ARKIT_FACE_UNIT_INDEX["eyeBlinkRight"]] = blink
    face[:, ARKIT_FACE_UNIT_INDEX["browInnerUp"]] = np.maximum(
        face[:, ARKIT_FACE_UNIT_INDEX["browInnerUp"]], brow)
    for name in ("browOuterUpLeft", "browOuterUpRight"):
        face[:, ARKIT_FACE_UNIT_INDEX[name]] = np.maximum(face[:, ARKIT_FACE_UNIT_INDEX[name]],
                                                          0.7 * brow)
    clip = MotionClip.from_full_pose(
        full, base.transl, fps, expression=np.clip(face, 0.0, 1.0), expression_space="arkit52",
        name=Path(audio.source).stem if audio.source else "speech",
        source=f"speech:{audio.source}" if audio.source else "speech")
    clock["animation"] = time.process_time()

    events = nv.Events(beats=[t for t, _ in beats], nods=[t for t, _ in nods],
                       brow_raises=accents, blinks=blinks, phrases=spans)
    report = {
        "recognizer": recognition.method,
        "notes": list(recognition.notes),
        "audio_seconds": round(audio.duration, 3),
        "frames": clip.num_frames,
        "fps": fps,
        "style": style.name,
        "seed": int(settings.seed),
        "phones": len(recognition.phones),
        "words": [{"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3)}
                  for w in recognition.words],
        "beats": [round(t, 3) for t in events.beats],
        "nods": [round(t, 3) for t in events.nods],
        "brow_raises": [round(t, 3) for t in events.brow_raises],
        "blinks": [round(t, 3) for t in events.blinks],
        "phrases": [[round(a, 3), round(b, 3)] for a, b in spans],
        "gesture_sources": list(library.sources),
        "gestures_used": len(used),
        "cpu_seconds": {
            "prosody": round(clock["prosody"] - clock["start"], 3),
            "recognition": round(clock["recognition"] - clock["prosody"], 3),
            "animation": round(clock["animation"] - clock["recognition"], 3),
        },
        "expression_names": list(ARKIT_FACE_UNITS),
    }
    return SpeechResult(clip, recognition, events, report)
