"""``oneshot-avatar track VIDEO --out motion.npz``: motion from a driving video."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers) -> None:
    track = subparsers.add_parser(
        "track",
        help="motion from a driving video: SMPL-X body, hands, jaw and face per frame",
        description="Video -> landmarks per frame (the embedded MediaPipe Holistic in video "
        "mode) -> one SMPL-X fit over the clip (shape shared by all frames or taken from "
        "--avatar, pose, fingers, jaw, gaze and face units per frame, one static camera with "
        "root translation, smooth without lag) -> OUT.npz (our motion format), OUT.camera.json "
        "(the tracked camera, for `render --camera`), OUT.track.json (report) and "
        "OUT.preview.mp4 (the video with landmarks and the fitted outline | the fitted body).")
    track.add_argument("video", help="a video of one person (MP4, MOV, MKV, WebM, ...; at most "
                       "10 minutes, or use --max-frames)")
    track.add_argument("--out", required=True, help="the motion file to write (.npz)")
    track.add_argument("--avatar", metavar="FILE", default=None,
                       help="take the body shape from this .avatar instead of fitting it")
    track.add_argument("--max-frames", type=int, default=None, metavar="N",
                       help="track only the first N frames")
    track.add_argument("--fps", type=float, default=None,
                       help="frame rate of the motion, 1 to 60 (default: the video's, at most 60; "
                       "variable-rate videos are resampled to it)")
    track.add_argument("--size", type=int, default=None, metavar="PX",
                       help="short side of the frames the detector sees (default 720; never "
                       "upscaled; 4K is brought down to it)")
    track.add_argument("--no-preview", action="store_true", help="skip OUT.preview.mp4")
    track.add_argument("--body-model", default=None, metavar="PATH",
                       help="SMPL-X model (default: $SMPLX_MODEL_PATH, else the open body)")
    track.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    track.set_defaults(func=_cmd_track)


def _say(quiet: bool):
    started = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - started:6.1f}s] track: {message}", file=sys.stderr,
                  flush=True)

    return say


def avatar_betas(path: str, body):
    from oneshot_avatar.avatar import check_body_matches
    from oneshot_avatar.package.avatar_file import read_avatar_members

    meta, _, _ = read_avatar_members(path)
    check_body_matches(meta, body)
    return meta["betas"]


def _cmd_track(args: argparse.Namespace) -> int:
    from pathlib import Path

    from oneshot_avatar.track.outputs import output_paths
    from oneshot_avatar.track.video import probe_video

    say = _say(args.quiet)
    output_paths(Path(args.out))  # a bad --out fails first,
    probe_video(args.video)  # then not a video, both before torch and the body load
    import numpy as np

    from oneshot_avatar.body.model import load_body_model
    from oneshot_avatar.track.pipeline import track_video

    body = load_body_model(args.body_model, progress=say)
    betas = None
    if args.avatar:
        betas = np.asarray(avatar_betas(args.avatar, body), dtype=np.float32)
    result = track_video(args.video, args.out, body=body, avatar_betas=betas, fps=args.fps,
                         size=args.size, max_frames=args.max_frames,
                         preview=not args.no_preview, quiet=args.quiet, say=say)
    for note in result.fit.notes:
        say(f"note: {note}")
    for kind, path in result.outputs.items():
        print(f"{kind}: {path}")
    return 0
