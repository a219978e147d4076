"""Talking from speech (``oneshot_avatar.speech``, ``oneshot-avatar speak``) on real audio.

Ground truth for ``espeak_en_sam.wav``: the file was made with espeak-ng 1.51 (``-v en-us -s 150``,
resampled to 16 kHz). Synthesising the transcript again with libespeak-ng 1.51 through its C API
(rate 150, voice en-us, synchronous mode) gives samples whose 16 kHz resampling correlates with
the file at r = 0.99999999 over its first 9.97 s (the file adds 0.38 s of trailing silence), and
the synthesizer's word events (``espeakEVENT_WORD``, ``audio_position``) give when each word
starts, in seconds. They were measured once (17 of the 26 words; the article "a" has no event)
and agree with the waveform's pauses: the silences found in the file end where "My" (1.22),
"and" (2.51), "Please" (4.91), "before" (7.16) and "Thank" (8.62) begin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from offline import run_offline
from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import builtin_clip, load_motion, save_motion
from oneshot_avatar.motion.face_units import ARKIT_FACE_UNIT_INDEX
from oneshot_avatar.speech import SpeechSettings, load_audio, speech_to_motion
from oneshot_avatar.speech.audio import Audio
from oneshot_avatar.speech.gestures import ARM_JOINTS, gesture_library
from oneshot_avatar.speech.recognize import SILENCE, guess_pronunciation, normalise_transcript
from oneshot_avatar.speech.visemes import BILABIALS, check_table
from shared_files import SHARED_DATA

AUDIO = SHARED_DATA / "audio"
WORD_STARTS = [  # espeak-ng 1.51 word events (s), see the module docstring
    ("hello", 0.000), ("there", 0.367), ("my", 1.222), ("name", 1.383), ("is", 1.617),
    ("sam", 1.811), ("and", 2.506), ("i", 2.689), ("build", 2.785), ("avatars", 3.147),
    ("for", 3.751), ("living", 4.007), ("please", 4.910), ("pass", 5.286), ("me", 5.616),
    ("the", 5.782), ("big", 5.908), ("blue", 6.218), ("bottle", 6.470), ("before", 7.161),
    ("we", 7.504), ("begin", 7.648), ("thank", 8.620), ("you", 9.046), ("very", 9.176),
    ("much", 9.500),
]
OPEN_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "OW"}
OPENING = ["mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthFunnel",
           "mouthPucker", "mouthStretchLeft"]


def _audio_file(name: str) -> Path:
    path = AUDIO / name
    if not path.exists():
        pytest.skip(f"shared test audio {path} is absent (tests expect ../shared/data)")
    return path


def _write_wav(path: Path, samples: np.ndarray, rate: int = 16000, channels: int = 1) -> Path:
    data = np.clip(samples, -1, 1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((data * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def sam():
    return load_audio(_audio_file("espeak_en_sam.wav"))


@pytest.fixture(scope="module")
def aligned(sam):
    text = _audio_file("espeak_en_sam.txt").read_text()
    return speech_to_motion(sam, SpeechSettings(transcript=text))


@pytest.fixture(scope="module")
def unaligned(sam):
    return speech_to_motion(sam, SpeechSettings())


def _frame(clip, seconds: float) -> int:
    return min(clip.num_frames - 1, round(seconds * clip.fps))


def _silences(result, min_length=0.2):
    """Silent stretches by the alignment (SIL phones) of at least ``min_length`` s."""
    return [(p.start, p.end) for p in result.recognition.phones
            if p.label == SILENCE and p.end - p.start >= min_length]


# ---------------------------------------------------------------------------- layer 1
def test_transcript_words_within_100_ms_of_the_synthesizer(aligned):
    assert aligned.recognition.method == "transcript" and not aligned.recognition.notes
    words = [(w.text, w.start) for w in aligned.recognition.words]
    assert [w for w, _ in words] == normalise_transcript(_audio_file("espeak_en_sam.txt").read_text())
    remaining = list(words)
    errors = []
    for text, truth in WORD_STARTS:
        index = next(i for i, (w, _) in enumerate(remaining) if w == text)
        errors.append(abs(remaining[index][1] - truth))
        remaining = remaining[index + 1:]
    assert max(errors) <= 0.100, f"word start errors (s): {np.round(errors, 3)}"


def test_phoneme_recognition_and_loudness_fallback_find_the_speech(sam, unaligned):
    from oneshot_avatar.speech.prosody import analyse_prosody
    from oneshot_avatar.speech.recognize import recognise

    assert unaligned.recognition.method == "phonemes"
    prosody = analyse_prosody(sam)
    loud = recognise(sam, prosody, recognizer="loudness")
    for recognition in (unaligned.recognition, loud):
        speech = [p for p in recognition.phones if p.label != SILENCE]
        assert len(speech) > 40  # ~26 words, ~80 phones / ~40 syllables
        start, end = speech[0].start, speech[-1].end
        assert start < 0.2 and 9.6 < end < 10.1


def test_transcript_helpers():
    assert normalise_transcript("Hello, Sam's 42 cats!") == ["hello", "sam's", "four", "two", "cats"]
    assert guess_pronunciation("zorblax") == "Z AA R B L AE K S"
    check_table()
    with pytest.raises(UserError, match="characters"):
        normalise_transcript("a" * 200_001)


# ---------------------------------------------------------------------------- mouth
def _jaw(clip):
    return clip.jaw_pose[:, 0]


def _units(clip, names):
    return clip.expression[:, [ARKIT_FACE_UNIT_INDEX[n] for n in names]]


def test_mouth_closed_on_every_p_b_m_and_in_silences_open_on_vowels(aligned):
    clip, phones = aligned.clip, aligned.recognition.phones
    jaw, opening = _jaw(clip), _units(clip, OPENING)
    bilabials = [p for p in phones if p.label in BILABIALS]
    assert len(bilabials) == 13  # my name sam build please pass me big blue bottle before begin much
    for p in bilabials:
        f = _frame(clip, 0.5 * (p.start + p.end))
        assert jaw[f] < 0.003 and opening[f].max() < 0.02, (p, jaw[f], opening[f])
        assert clip.expression[f, ARKIT_FACE_UNIT_INDEX["mouthPressLeft"]] > 0.3
    silences = _silences(aligned)
    assert len(silences) >= 5
    for a, b in silences:
        frames = range(_frame(clip, a + 0.1), _frame(clip, b - 0.1) + 1)
        assert all(jaw[f] < 1e-4 and opening[f].max() < 1e-4 for f in frames), (a, b)
    closures = [0.5 * (p.start + p.end) for p in bilabials]
    vowels = [p for p in phones if p.label in OPEN_VOWELS and p.end - p.start >= 0.08
              and min(abs(0.5 * (p.start + p.end) - c) for c in closures) > 0.1]
    assert len(vowels) >= 8
    for p in vowels:
        f = _frame(clip, 0.5 * (p.start + p.end))
        assert jaw[f] > 0.03, (p, jaw[f])  # radians; ~0.1 for a loud "a"
    # Lip rounding where it belongs: "blue" (UW) puckers, "please" (IY) spreads.
    blue = next(p for p in phones if p.label == "UW" and 6.2 < p.start < 6.6)
    please = next(p for p in phones if p.label == "IY" and 4.9 < p.start < 5.3)
    fb, fp = _frame(clip, 0.5 * (blue.start + blue.end)), _frame(clip, 0.5 * (please.start + please.end))
    pucker = ARKIT_FACE_UNIT_INDEX["mouthPucker"]
    smile = ARKIT_FACE_UNIT_INDEX["mouthSmileLeft"]
    assert clip.expression[fb, pucker] > 0.3 > clip.expression[fp, pucker]
    assert clip.expression[fp, smile] > clip.expression[fb, smile]


def test_without_transcript_the_mouth_still_closes_on_most_p_b_m_and_in_silences(aligned, unaligned):
    clip = unaligned.clip
    jaw = _jaw(clip)
    speaking_level = np.percentile(jaw, 90)
    bilabials = [p for p in aligned.recognition.phones if p.label in BILABIALS]
    closed = 0
    for p in bilabials:  # the truth here is the aligned run's p/b/m times
        c = 0.5 * (p.start + p.end)
        window = jaw[_frame(clip, c - 0.06):_frame(clip, c + 0.06) + 1]
        closed += window.min() < 0.35 * speaking_level
    assert closed >= 0.6 * len(bilabials), f"{closed} of {len(bilabials)} p/b/m nearly closed"
    # Silences here: where the waveform is quiet for >= 0.3 s (the aligner's last SIL starts
    # before the final "ch" of "much" has faded).
    from oneshot_avatar.speech.prosody import _runs, analyse_prosody

    prosody = analyse_prosody(load_audio(_audio_file("espeak_en_sam.wav")))
    quiet = [(a * 0.01, b * 0.01) for a, b, v in _runs(prosody.active) if not v and b - a >= 30]
    assert len(quiet) >= 4
    for a, b in quiet:
        frames = range(_frame(clip, a + 0.1), _frame(clip, b - 0.1) + 1)
        assert max(jaw[f] for f in frames) < 0.1 * speaking_level
    vowels = [p for p in aligned.recognition.phones if p.label in OPEN_VOWELS
              and p.end - p.start >= 0.1]
    open_frames = [jaw[_frame(clip, 0.5 * (p.start + p.end))] for p in vowels]
    assert np.median(open_frames) > 0.5 * speaking_level


def test_loudness_fallback_for_other_languages_opens_and_closes_the_mouth():
    french = load_audio(_audio_file("talkshow_french.wav"))
    assert french.sample_rate == 16000 and abs(french.duration - 9.6125) < 0.01  # from 24 kHz
    result = speech_to_motion(french, SpeechSettings(language="fr"))
    assert result.recognition.method == "loudness"
    assert "language 'fr'" in result.recognition.notes[0]
    jaw = _jaw(result.clip)
    assert jaw.max() > 0.08
    # Opens and closes: many local minima near closed between openings.
    closings = np.sum((jaw[1:-1] < jaw[:-2]) & (jaw[1:-1] <= jaw[2:]) & (jaw[1:-1] < 0.3 * jaw.max()))
    assert closings >= 10


# ---------------------------------------------------------------------------- non-verbal
@pytest.fixture(scope="module")
def with_pauses(sam, tmp_path_factory):
    """1.5 s silence + 'Hello there ... living.' + 2.5 s silence + 'Please ... much.'"""
    s, rate = sam.samples, sam.sample_rate
    parts = [np.zeros(int(1.5 * rate)), s[:int(4.5 * rate)], np.zeros(int(2.5 * rate)),
             s[int(4.9 * rate):int(10.0 * rate)]]
    path = _write_wav(tmp_path_factory.mktemp("speech") / "pauses.wav", np.concatenate(parts))
    audio = load_audio(path)
    return audio, speech_to_motion(audio, SpeechSettings(style="lively", seed=3))


def test_gestures_nods_and_brows_only_while_speaking(with_pauses):
    _, result = with_pauses
    phrases = result.events.phrases
    assert len(phrases) == 2
    (a1, b1), (a2, _) = phrases
    assert abs(a1 - 1.5) < 0.1 and abs(b1 - 5.95) < 0.15 and abs(a2 - 8.5) < 0.1
    for times in (result.events.beats, result.events.nods, result.events.brow_raises):
        assert all(any(a <= t <= b for a, b in phrases) for t in times), times
    for a, b in phrases:
        assert sum(a <= t <= b for t in result.events.beats) >= 2
        assert sum(a <= t <= b for t in result.events.nods) >= 2
    clip = result.clip
    idle = builtin_clip("idle", fps=clip.fps, seconds=clip.num_frames / clip.fps)
    moved = np.abs(clip.full_pose() - idle.full_pose())
    arms = moved[:, list(ARM_JOINTS)].max(axis=(1, 2))
    head = moved[:, [12, 15]].max(axis=(1, 2))  # neck, head
    t = np.arange(clip.num_frames) / clip.fps
    quiet = ((t < a1 - 0.3) | ((t > b1 + 0.4) & (t < a2 - 0.3)))
    assert quiet.sum() > 60
    assert arms[quiet].max() < 1e-4 and head[quiet].max() < 1e-4
    speaking = np.zeros_like(quiet)
    for a, b in phrases:
        speaking |= (t > a) & (t < b)
    assert arms[speaking].max() > 0.3 and head[speaking].max() > 0.03
    brow = clip.expression[:, ARKIT_FACE_UNIT_INDEX["browInnerUp"]]
    assert brow[quiet].max() < 1e-4


def test_blinks_have_natural_timing_and_seed_repeats(with_pauses, sam):
    _, result = with_pauses
    blinks = result.events.blinks
    assert len(blinks) >= 3 and min(np.diff(blinks)) >= 1.0
    eyes = result.clip.expression[:, ARKIT_FACE_UNIT_INDEX["eyeBlinkLeft"]]
    for b in blinks:
        assert eyes[_frame(result.clip, b)] > 0.7
    first = speech_to_motion(sam, SpeechSettings(seed=5, recognizer="loudness"))
    again = speech_to_motion(sam, SpeechSettings(seed=5, recognizer="loudness"))
    other = speech_to_motion(sam, SpeechSettings(seed=6, recognizer="loudness"))
    assert first.clip.equals(again.clip)
    assert not first.clip.equals(other.clip, atol=1e-3)
    lively = speech_to_motion(sam, SpeechSettings(seed=5, recognizer="loudness", style="lively"))
    assert len(lively.events.beats) > len(first.events.beats)  # first is calm


def test_gesture_library_cuts_user_clips(tmp_path):
    talkshow = SHARED_DATA / "motion" / "talkshow_french.npy"
    if not talkshow.exists():
        pytest.skip(f"{talkshow} is absent")
    library = gesture_library(30.0, [talkshow])
    sources = [p.source for p in library.phrases]
    assert sources.count("builtin:talk") >= 6 and sources.count(str(talkshow)) >= 2
    still = save_motion(builtin_clip("turnaround", fps=30.0), tmp_path / "still.npz")
    with pytest.raises(UserError, match="no arm strokes") as error:
        gesture_library(30.0, [still])
    assert error.value.field == "gestures"


# ---------------------------------------------------------------------------- files and CLI
def test_motion_file_reads_back_with_expression_names(aligned, tmp_path):
    path = save_motion(aligned.clip, tmp_path / "speech.npz")
    back = load_motion(path)
    assert back.equals(aligned.clip)
    with np.load(path, allow_pickle=False) as arrays:
        names = list(arrays["expression_names"])
    assert names[24] == "jawOpen" and len(names) == 52


def _cli(*args, cache=None):
    import os

    env = {**os.environ}
    if cache:
        env["ONESHOT_AVATAR_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "oneshot_avatar", *args], capture_output=True,
                          text=True, env=env, timeout=600, check=False)


def test_bad_input_is_a_clear_error_never_a_traceback(tmp_path, sam):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    empty = _write_wav(tmp_path / "empty.wav", np.zeros(0))
    silent = _write_wav(tmp_path / "silent.wav", np.zeros(16000))
    long = _write_wav(tmp_path / "long.wav", 0.1 * np.sin(np.arange(601 * 8000) * 0.3), rate=8000)
    binary = tmp_path / "words.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    sam_path = str(_audio_file("espeak_en_sam.wav"))
    cases = [
        ([str(text), "--out", str(tmp_path / "a.npz")], "is not an audio file"),
        ([str(empty), "--out", str(tmp_path / "a.npz")], "needs at least"),
        ([str(silent), "--out", str(tmp_path / "a.npz")], "is silent"),
        ([str(long), "--out", str(tmp_path / "a.npz")], "longer than 10 minutes"),
        ([str(tmp_path / "missing.wav"), "--out", str(tmp_path / "a.npz")], "no such audio"),
        ([sam_path, "--out", str(tmp_path / "a.gif")], "--out must end in .npz"),
        ([sam_path, "--out", str(tmp_path / "a.mp4")], "--avatar"),
        ([sam_path, "--out", str(tmp_path / "a.npz"), "--transcript", str(binary)], "UTF-8"),
        ([sam_path, "--out", str(tmp_path / "a.npz"), "--fps", "0"], "frames per second"),
    ]
    for args, message in cases:
        result = _cli("speak", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_any_rate_and_channels_and_a_wrong_transcript_falls_back(tmp_path, sam):
    from scipy.signal import resample_poly

    stereo = resample_poly(sam.samples, 441, 160)  # 44.1 kHz
    both = np.stack([stereo, 0.5 * stereo], axis=1).reshape(-1)
    path = _write_wav(tmp_path / "stereo44k.wav", both, rate=44100, channels=2)
    audio = load_audio(path)
    assert audio.sample_rate == 16000 and abs(audio.duration - sam.duration) < 0.01
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("The quick brown fox jumps over the lazy dog again and again and again.")
    result = _cli("speak", str(path), "--transcript", str(wrong), "--out", str(tmp_path / "w.npz"))
    assert result.returncode == 0, result.stderr
    assert "recognizer: phonemes" in result.stdout
    assert "the transcript does not match the audio" in result.stdout
    report = json.loads((tmp_path / "w.report.json").read_text())
    assert report["recognizer"] == "phonemes" and "does not match" in report["notes"][0]
    assert load_motion(tmp_path / "w.npz").num_frames == report["frames"]


def test_short_audio_array_checks():
    from oneshot_avatar.speech.audio import check_speech_audio

    with pytest.raises(UserError, match="silent"):
        check_speech_audio(Audio(np.full(16000, 1e-5, np.float32), 16000))


@pytest.mark.slow
def test_speak_renders_a_talking_mp4_with_sound(tmp_path, open_body, body_cache):
    import torch

    from oneshot_avatar.avatar import MeshGaussians
    from oneshot_avatar.package import save_avatar
    from oneshot_avatar.speech.audio import ffmpeg_exe

    with torch.no_grad():
        rest = open_body().vertices[0]
    gaussians = MeshGaussians.on_mesh(rest, open_body.faces, 27420, sh_degree=0)
    avatar = save_avatar(tmp_path / "a.avatar", gaussians, open_body,
                         torch.zeros(open_body.num_betas))
    sam = _audio_file("espeak_en_sam.wav")
    short = _write_wav(tmp_path / "short.wav", load_audio(sam).samples[:int(1.2 * 16000)])
    out = tmp_path / "talk.mp4"
    result = _cli("speak", str(short), "--avatar", str(avatar), "--out", str(out), "--size", "64",
                  "--fps", "10", "-q", cache=body_cache)
    assert result.returncode == 0, result.stderr
    assert out.is_file() and (tmp_path / "talk.npz").is_file()
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True,
                           text=True, check=False)
    assert "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr
    assert load_motion(tmp_path / "talk.npz").num_frames == 12


def test_long_audio_with_a_transcript_uses_phoneme_recognition(sam):
    from oneshot_avatar.speech.prosody import analyse_prosody
    from oneshot_avatar.speech.recognize import MAX_ALIGN_SECONDS, recognise

    repeats = int(MAX_ALIGN_SECONDS // sam.duration) + 1
    long = Audio(np.tile(sam.samples, repeats), sam.sample_rate)
    text = " ".join([_audio_file("espeak_en_sam.txt").read_text()] * repeats)
    result = recognise(long, analyse_prosody(long), transcript=text)
    assert result.method == "phonemes" and "up to 150 s" in result.notes[0]
    assert result.phones[-1].end > long.duration - 1.0


def test_speech_opens_no_network_connection(tmp_path):
    """In a fresh interpreter whose sockets refuse to connect, transcript alignment and phoneme
    recognition both run: pocketsphinx's model, dictionary and phone model come from its wheel."""
    audio = SHARED_DATA / "audio" / "espeak_en_sam.wav"
    if not audio.exists():
        pytest.skip(f"shared test audio {audio} is absent")
    script = f"""
from pathlib import Path
from oneshot_avatar.speech import SpeechSettings, load_audio, speech_to_motion

audio = load_audio({str(audio)!r})
text = Path({str(audio.with_suffix(".txt"))!r}).read_text()
for settings in (SpeechSettings(transcript=text), SpeechSettings()):
    result = speech_to_motion(audio, settings)
    print(result.report["recognizer"], result.clip.num_frames)
"""
    done = run_offline(script, "speech recognition", tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    recognizers = [line.split()[0] for line in done.stdout.strip().splitlines()[-2:]]
    assert recognizers == ["transcript", "phonemes"], done.stdout
