"""Layer 1 (after Rhubarb Lip Sync): phones with timings from speech audio.

Three recognisers, chosen in this order and always named in the result:

``transcript``  With the words known (``--transcript``), pocketsphinx aligns them to the audio
                (forced alignment against its US-English acoustic model and CMU dictionary;
                words missing from the dictionary get a letter-to-sound guess). Most accurate.
``phonemes``    Without a transcript, pocketsphinx's free phoneme recognition ("allphone" with
                its phone language model). Timings are good, the phones themselves less so.
``loudness``    For other languages or noisy recordings: syllables from the loudness envelope
                (a vowel at every loudness peak, a consonant at every dip, closed lips at deep
                dips) with the vowel chosen from the spectral centroid. Opens and closes the
                mouth in time with the speech, without knowing the phones.

A transcript that does not fit the audio (pocketsphinx finds no alignment, or the aligned words
sit in silence while the speech is left unexplained) falls back to ``phonemes`` with a note; so
does audio longer than ``MAX_ALIGN_SECONDS`` (alignment memory grows too fast beyond it).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

import numpy as np

from oneshot_avatar.errors import UserError
from oneshot_avatar.speech.audio import Audio
from oneshot_avatar.speech.prosody import HOP_SECONDS, Prosody, _runs

logger = logging.getLogger(__name__)

Recognizer = Literal["auto", "transcript", "phonemes", "loudness"]
RECOGNIZERS: tuple[str, ...] = ("auto", "transcript", "phonemes", "loudness")
SILENCE = "SIL"
MAX_TRANSCRIPT_CHARS = 100_000
_FRAME = 0.01  # pocketsphinx frames are 10 ms
# Alignment of synthetic or fast speech fails with pocketsphinx's default beams; try a wide beam,
# then a very wide one (slower) before giving up.
_ALIGN_BEAMS = (1e-40, 1e-80)
# pocketsphinx's alignment grows faster than linearly with the utterance (measured: 124 s of
# audio 9 s CPU / 0.7 GB; 590 s 84 s CPU / 8 GB): longer audio uses phoneme recognition.
MAX_ALIGN_SECONDS = 150.0
NOISY_SNR_DB = 12.0  # below this the recording is treated as noisy: loudness recogniser


@dataclass(frozen=True)
class Phone:
    """One phone: ARPAbet label without stress digit (``AA`` ... ``ZH``) or ``SIL``; seconds."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


@dataclass
class Recognition:
    """What layer 1 found: the recogniser that ran, phones covering the audio, words (when a
    transcript was aligned) and notes (fallbacks taken and why)."""

    method: Literal["transcript", "phonemes", "loudness"]
    phones: list[Phone]
    words: list[Word] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- transcripts
def normalise_transcript(text: str) -> list[str]:
    """Lower-case words (letters, digits spelled out, inner apostrophes kept)."""
    if len(text) > MAX_TRANSCRIPT_CHARS:
        raise UserError(f"the transcript has {len(text)} characters; at most "
                        f"{MAX_TRANSCRIPT_CHARS} are read", field="transcript")
    text = text.lower().replace("\u2019", "'")
    words = []
    for token in re.findall(r"[^\W_]+(?:'[^\W_]+)*", text):
        if token.isdigit():
            words.extend(_DIGITS[int(d)] for d in token)
        else:
            words.append(token)
    return words


_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_LETTER_SOUNDS = (  # a rough letter-to-sound guess for words missing from the dictionary
    ("tch", "CH"), ("sch", "S K"), ("ch", "CH"), ("sh", "SH"), ("th", "TH"), ("ph", "F"),
    ("ng", "NG"), ("ck", "K"), ("qu", "K W"), ("wh", "W"), ("ee", "IY"), ("ea", "IY"),
    ("oo", "UW"), ("ou", "AW"), ("ow", "OW"), ("ai", "EY"), ("ay", "EY"), ("oa", "OW"),
    ("oi", "OY"), ("oy", "OY"), ("au", "AO"), ("aw", "AO"), ("ie", "IY"), ("ei", "EY"),
    ("a", "AE"), ("b", "B"), ("c", "K"), ("d", "D"), ("e", "EH"), ("f", "F"), ("g", "G"),
    ("h", "HH"), ("i", "IH"), ("j", "JH"), ("k", "K"), ("l", "L"), ("m", "M"), ("n", "N"),
    ("o", "AA"), ("p", "P"), ("q", "K"), ("r", "R"), ("s", "S"), ("t", "T"), ("u", "AH"),
    ("v", "V"), ("w", "W"), ("x", "K S"), ("y", "Y"), ("z", "Z"),
)


def guess_pronunciation(word: str) -> str:
    """ARPAbet for an unknown word by letter patterns (good enough for mouth shapes)."""
    letters = re.sub(r"[^a-z]", "", word.lower())
    if len(letters) > 3 and letters.endswith("e") and not letters.endswith("ee"):
        letters = letters[:-1]  # silent final e
    letters = re.sub(r"([bcdfgklmnprstvz])\1", r"\1", letters)
    phones: list[str] = []
    i = 0
    while i < len(letters):
        for pattern, sound in _LETTER_SOUNDS:
            if letters.startswith(pattern, i):
                if pattern == "y" and i > 0:
                    sound = "IY"
                phones.extend(sound.split())
                i += len(pattern)
                break
        else:
            i += 1
    return " ".join(phones) or "AH"


# ---------------------------------------------------------------------------- pocketsphinx
def _decoder(**options):
    try:
        from pocketsphinx import Decoder
    except ImportError as error:  # pragma: no cover - it is a dependency
        raise UserError("speech recognition needs the pocketsphinx package "
                        "(pip install pocketsphinx==5.1.1)", field="audio") from error
    return Decoder(samprate=16000, loglevel="FATAL", **options)


def _phone_label(name: str) -> str:
    label = re.sub(r"\d", "", name.split("(")[0]).upper()
    return label if label and label.isalpha() and not label.startswith(("SIL", "NSN", "SPN")) \
        and label not in ("+NSN+", "+SPN+") else SILENCE


def align_transcript(audio: Audio, words: list[str]) -> tuple[list[Phone], list[Word]]:
    """Force-align ``words`` to ``audio`` with pocketsphinx; raises ``ValueError`` when no
    alignment exists (the transcript does not fit the audio)."""
    if not words:
        raise ValueError("the transcript has no words")
    for beam in _ALIGN_BEAMS:
        try:
            return _align(audio, words, beam)
        except ValueError:
            if beam == _ALIGN_BEAMS[-1]:
                raise
    raise AssertionError("unreachable")


def _align(audio: Audio, words: list[str], beam: float) -> tuple[list[Phone], list[Word]]:
    decoder = _decoder(bestpath=False, beam=beam, wbeam=beam, pbeam=beam)
    for word in set(words):
        if decoder.lookup_word(word) is None:
            decoder.add_word(word, guess_pronunciation(word), False)
    raw = audio.pcm16()
    try:
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(raw, full_utt=True)
        decoder.end_utt()
        if decoder.hyp() is None or decoder.seg() is None:
            raise ValueError("pocketsphinx found no alignment of these words to the audio")
        decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(raw, full_utt=True)
        decoder.end_utt()
        alignment = decoder.get_alignment()
    except RuntimeError as error:
        raise ValueError(f"pocketsphinx could not align the transcript ({error})") from error
    if alignment is None:
        raise ValueError("pocketsphinx found no alignment of these words to the audio")
    phones: list[Phone] = []
    aligned: list[Word] = []
    for entry in alignment:
        name = entry.name
        start = entry.start * _FRAME
        end = (entry.start + entry.duration) * _FRAME
        if not name.startswith("<") and not name.startswith("["):
            aligned.append(Word(re.sub(r"\(\d+\)$", "", name), start, end))
        for phone in entry:
            phones.append(Phone(_phone_label(phone.name), phone.start * _FRAME,
                                (phone.start + phone.duration) * _FRAME))
    if not aligned:
        raise ValueError("pocketsphinx aligned none of the transcript's words")
    return phones, aligned


def recognise_phonemes(audio: Audio) -> list[Phone]:
    """Free phoneme recognition (pocketsphinx allphone with its US-English phone model)."""
    from pocketsphinx import get_model_path

    decoder = _decoder(allphone=get_model_path("en-us/en-us-phone.lm.bin"), lm=None,
                       beam=1e-20, pbeam=1e-20, lw=2.0)
    decoder.start_utt()
    decoder.process_raw(audio.pcm16(), full_utt=True)
    decoder.end_utt()
    segments = decoder.seg()
    return [Phone(_phone_label(s.word), s.start_frame * _FRAME, (s.end_frame + 1) * _FRAME)
            for s in (segments or [])]


def syllables_from_loudness(prosody: Prosody) -> list[Phone]:
    """Pseudo-phones from the loudness envelope: for every active stretch, a vowel at each
    loudness peak (at least 120 ms apart) and a consonant at each dip between them; a dip
    falling 40% of the speech range below its peaks becomes a closed-lips ``M``. The vowel is
    ``AA`` (open, low spectral centroid), ``AH`` or ``IY`` (spread, high centroid)."""
    level = _smooth(prosody.loudness01(), 3)
    phones: list[Phone] = []
    for start, stop, active in _runs(prosody.active):
        if not active:
            phones.append(Phone(SILENCE, start * HOP_SECONDS, stop * HOP_SECONDS))
            continue
        segment = level[start:stop]
        peaks = _peaks(segment, min_distance=12)
        if not peaks:
            peaks = [int(np.argmax(segment))]
        bounds = [0] + [a + int(np.argmin(segment[a:b])) for a, b in pairwise(peaks)] \
            + [stop - start]
        for k, peak in enumerate(peaks):
            lo, hi = bounds[k], bounds[k + 1]
            onset = lo + max(1, (peak - lo) // 2) if peak > lo else lo
            if onset > lo:
                deep = segment[peak] - segment[lo] > 0.4 or (k == 0 and lo == 0)
                phones.append(Phone("M" if deep else "D", (start + lo) * HOP_SECONDS,
                                    (start + onset) * HOP_SECONDS))
            centroid = float(np.median(prosody.centroid[start + onset:start + hi]))
            vowel = "AA" if centroid < 900 else ("IY" if centroid > 2200 else "AH")
            phones.append(Phone(vowel, (start + onset) * HOP_SECONDS, (start + hi) * HOP_SECONDS))
    return phones


def _smooth(x: np.ndarray, radius: int) -> np.ndarray:
    kernel = np.hanning(2 * radius + 3)[1:-1]
    return np.convolve(x, kernel / kernel.sum(), mode="same")


def _peaks(x: np.ndarray, min_distance: int) -> list[int]:
    """Local maxima, strongest first kept, at least ``min_distance`` apart; returned sorted."""
    if x.size < 3:
        return []
    candidates = np.flatnonzero((x[1:-1] >= x[:-2]) & (x[1:-1] > x[2:])) + 1
    kept: list[int] = []
    for index in candidates[np.argsort(-x[candidates])]:
        if all(abs(int(index) - k) >= min_distance for k in kept):
            kept.append(int(index))
    return sorted(kept)


# ---------------------------------------------------------------------------- checks
def alignment_fit(phones: list[Phone], prosody: Prosody) -> tuple[float, float]:
    """(share of speech frames the alignment calls silence, share of aligned speech-phone time
    the audio is quiet). Both are small for a transcript that fits the audio."""
    labels = np.zeros(prosody.num_frames, dtype=bool)  # True: aligned speech phone
    for phone in phones:
        if phone.label != SILENCE:
            a, b = round(phone.start / HOP_SECONDS), round(phone.end / HOP_SECONDS)
            labels[a:b] = True
    active = prosody.active
    unexplained = float(np.mean(~labels[active])) if active.any() else 0.0
    in_silence = float(np.mean(~active[labels])) if labels.any() else 1.0
    return unexplained, in_silence


def recognise(audio: Audio, prosody: Prosody, *, transcript: str | None = None,
              recognizer: Recognizer = "auto", language: str = "en") -> Recognition:
    """Phones for ``audio`` by the chosen recogniser (see the module docstring for ``auto``)."""
    if recognizer not in RECOGNIZERS:
        raise UserError(f"unknown recognizer {recognizer!r}; choose one of "
                        f"{', '.join(RECOGNIZERS)}", field="recognizer")
    notes: list[str] = []
    if recognizer == "transcript" and transcript is None:
        raise UserError("the 'transcript' recognizer needs a transcript (--transcript FILE)",
                        field="transcript")
    english = language.lower() in ("en", "en-us", "english")
    if recognizer == "auto":
        if not english:
            recognizer = "loudness"
            notes.append(f"language {language!r}: pocketsphinx has only a US-English model, "
                         "so lip-sync follows loudness")
        elif prosody.snr_db < NOISY_SNR_DB:
            recognizer = "loudness"
            notes.append(f"the recording is noisy (speech only {prosody.snr_db:.0f} dB above the "
                         "noise floor), so lip-sync follows loudness")
        else:
            recognizer = "transcript" if transcript is not None else "phonemes"
    if recognizer == "transcript" and audio.duration > MAX_ALIGN_SECONDS:
        notes.append(f"transcripts are aligned for up to {MAX_ALIGN_SECONDS:.0f} s of audio "
                     f"(this is {audio.duration:.0f} s; split it to use the transcript); used "
                     "phoneme recognition instead")
        recognizer = "phonemes"
    if recognizer == "transcript":
        words = normalise_transcript(transcript or "")
        try:
            phones, aligned = align_transcript(audio, words)
            unexplained, in_silence = alignment_fit(phones, prosody)
            if unexplained > 0.35 or in_silence > 0.5:
                raise ValueError(f"{unexplained:.0%} of the speech is left unaligned and "
                                 f"{in_silence:.0%} of the aligned words fall on silence")
            return Recognition("transcript", phones, aligned, notes)
        except ValueError as error:
            notes.append(f"the transcript does not match the audio ({error}); used phoneme "
                         "recognition instead")
            recognizer = "phonemes"
    if recognizer == "phonemes":
        phones = recognise_phonemes(audio)
        if any(p.label != SILENCE for p in phones):
            return Recognition("phonemes", phones, [], notes)
        notes.append("phoneme recognition found no phones; lip-sync follows loudness")
    return Recognition("loudness", syllables_from_loudness(prosody), [], notes)
