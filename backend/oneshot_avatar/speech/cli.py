"""``oneshot-avatar speak AUDIO --out speech.npz | talk.mp4``: speech -> motion (and video)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oneshot_avatar.errors import BadFileError, UserError

MOTION_SUFFIX = ".npz"
VIDEO_SUFFIX = ".mp4"


def register(subparsers) -> None:
    speak = subparsers.add_parser(
        "speak",
        help="make lip-sync, face, head and gesture motion from speech audio (and render it)",
        description="Audio -> phones with timings (pocketsphinx: transcript alignment, or free "
        "phoneme recognition; a loudness fallback for other languages or noisy audio) -> "
        "visemes -> the open body's ARKit face units and jaw, plus blinks, brow raises, head "
        "nods and beat gestures over the idle clip. --out speech.npz writes the motion; "
        "--out talk.mp4 with --avatar renders it with the sound.")
    speak.add_argument("audio", help="speech: WAV, MP3, FLAC, OGG, M4A, ... (any rate or "
                       "channels; at most 10 minutes)")
    speak.add_argument("--out", required=True,
                       help="motion .npz, or .mp4 (needs --avatar; the motion is also written "
                       "as the same name with .npz)")
    speak.add_argument("--transcript", metavar="FILE", default=None,
                       help="a UTF-8 text file with the words spoken: aligned to the audio "
                       "(most accurate lip-sync)")
    speak.add_argument("--avatar", metavar="FILE", default=None,
                       help="render this .avatar talking, with the sound, into --out .mp4")
    speak.add_argument("--style", choices=("calm", "lively"), default="calm",
                       help="how much the head and hands move (default calm)")
    speak.add_argument("--seed", type=int, default=0, help="repeatable randomness (default 0)")
    speak.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    speak.add_argument("--recognizer", choices=("auto", "transcript", "phonemes", "loudness"),
                       default="auto",
                       help="auto: transcript alignment when --transcript is given, else phoneme "
                       "recognition; loudness for --language other than en or noisy audio")
    speak.add_argument("--language", default="en",
                       help="en (default; pocketsphinx's US-English model) or any other code "
                       "(lip-sync then follows loudness)")
    speak.add_argument("--gestures", nargs="+", metavar="FILE", default=[],
                       help="SMPL-X motion files (AMASS/BEAT-style .npz, .smpl, TalkSHOW .npy, "
                       "ours) to cut beat gestures from, besides the built-in talk clip")
    # Rendering options (with --avatar), as in `oneshot-avatar render`.
    speak.add_argument("--size", default="512", help="N or WxH for the video (default 512)")
    speak.add_argument("--camera", default="front", help="front, orbit or a camera JSON file")
    speak.add_argument("--background", default=None, help="video background (default black)")
    speak.add_argument("--device", default="auto", help="auto, cpu or cuda")
    speak.add_argument("--backend", default="auto", choices=("auto", "gsplat", "torch"),
                       help="rasterizer: auto, gsplat or torch")
    speak.add_argument("--body-model", default=None, metavar="PATH",
                       help="the SMPL-X model the avatar was made with")
    speak.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    speak.set_defaults(func=_cmd_speak)


def read_transcript(path: str | Path) -> str:
    """The transcript file's text (UTF-8), refused when missing, binary or empty."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise BadFileError(f"cannot read the transcript: {error.strerror or error}", path=path,
                           field="transcript") from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadFileError("is not a UTF-8 text file; save the transcript as plain UTF-8 text",
                           path=path, field="transcript") from None
    if not any(ch.isalnum() for ch in text):
        raise BadFileError("has no words; give the words spoken in the audio", path=path,
                           field="transcript")
    return text


def _cmd_speak(args: argparse.Namespace) -> int:
    from oneshot_avatar.motion import save_motion
    from oneshot_avatar.speech import SpeechSettings, load_audio, speech_to_motion

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (MOTION_SUFFIX, VIDEO_SUFFIX):
        raise UserError(f"--out must end in .npz (motion) or .mp4 (video with --avatar), got "
                        f"{out.name!r}", path=out, field="out")
    if suffix == VIDEO_SUFFIX and args.avatar is None:
        raise UserError("a video needs the avatar to render: add --avatar FILE.avatar, or write "
                        "the motion with --out NAME.npz", field="avatar")
    if args.avatar is not None and not Path(args.avatar).is_file():
        raise BadFileError("no such avatar file", path=args.avatar, field="avatar")
    transcript = read_transcript(args.transcript) if args.transcript else None
    for path in args.gestures:
        if not Path(path).is_file():
            raise BadFileError("no such motion file", path=path, field="gestures")
    settings = SpeechSettings(fps=args.fps, style=args.style, seed=args.seed,
                              transcript=transcript, recognizer=args.recognizer,
                              language=args.language, gestures=tuple(args.gestures))
    settings.check()
    audio = load_audio(args.audio)
    result = speech_to_motion(audio, settings)
    motion_path = out if suffix == MOTION_SUFFIX else out.with_suffix(MOTION_SUFFIX)
    save_motion(result.clip, motion_path)
    report_path = out.with_suffix(".report.json")
    report = {**result.report, "audio": str(args.audio), "motion": str(motion_path)}
    report.pop("expression_names")
    try:
        report_path.write_text(json.dumps(report, indent=2))
    except OSError as error:
        raise UserError(f"cannot write the report: {error.strerror or error}",
                        path=report_path) from error
    words = len(result.recognition.words)
    print(f"recognizer: {result.recognition.method}"
          + (f" ({words} words aligned)" if words else ""))
    for note in result.recognition.notes:
        print(f"note: {note}")
    r = result.report
    print(f"motion: {motion_path} ({r['frames']} frames at {r['fps']:g} fps, {r['audio_seconds']:.1f} s"
          f"; {len(r['beats'])} beat gestures, {len(r['nods'])} nods, "
          f"{len(r['brow_raises'])} brow raises, {len(r['blinks'])} blinks; style {r['style']})")
    print(f"report: {report_path}")
    if suffix == VIDEO_SUFFIX:
        from oneshot_avatar.render.cli import _cmd_render

        render_args = argparse.Namespace(
            avatar=args.avatar, motion=str(motion_path), out=str(out), size=args.size,
            size_given=True, camera=args.camera, frames=None, fps=None,
            background=args.background, device=args.device, backend=args.backend, batch=8,
            body_model=args.body_model, quiet=args.quiet, audio=str(args.audio))
        sys.stdout.flush()
        return _cmd_render(render_args)
    return 0
