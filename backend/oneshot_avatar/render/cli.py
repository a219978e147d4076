"""``oneshot-avatar render`` and ``oneshot-avatar export-ply``."""

from __future__ import annotations

import argparse
from pathlib import Path

from oneshot_avatar.errors import UserError

BACKGROUNDS = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "grey": (0.5, 0.5, 0.5)}


def parse_size(text: str) -> tuple[int, int]:
    """``512`` -> (512, 512); ``1920x1080`` -> (1920, 1080)."""
    try:
        if "x" in text.lower():
            w, h = (int(v) for v in text.lower().split("x"))
        else:
            w = h = int(text)
    except ValueError:
        raise UserError(f"--size must be N or WxH (e.g. 512 or 1920x1080), got {text!r}", field="size") from None
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise UserError(f"--size {w}x{h} is out of range (8..8192 per side)", field="size")
    return w, h


def parse_background(text: str | None) -> tuple[float, float, float] | None:
    """``transparent`` -> None; a name, ``#rrggbb`` or ``r,g,b`` in 0..1 -> RGB."""
    if text is None or text == "transparent":
        return None
    if text in BACKGROUNDS:
        return BACKGROUNDS[text]
    try:
        if text.startswith("#") and len(text) == 7:
            return tuple(int(text[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
        values = tuple(float(v) for v in text.split(","))
        if len(values) == 3 and all(0 <= v <= 1 for v in values):
            return values  # type: ignore[return-value]
    except ValueError:
        pass
    raise UserError(f"--background must be transparent, black, white, grey, #rrggbb or r,g,b in 0..1; "
                    f"got {text!r}", field="background")


def parse_frame_range(text: str | None, num_frames: int) -> range:
    """``a:b`` (Python-style, end exclusive, either side optional) -> a range of frames."""
    if text is None:
        return range(num_frames)
    try:
        start_text, _, stop_text = text.partition(":")
        start = int(start_text) if start_text else 0
        stop = int(stop_text) if stop_text else num_frames
    except ValueError:
        raise UserError(f"--frames must look like a:b (e.g. 0:60), got {text!r}", field="frames") from None
    frames = range(num_frames)[start:stop]
    if len(frames) == 0:
        raise UserError(f"--frames {text!r} selects no frame of a {num_frames}-frame clip", field="frames")
    return frames


def _load_motion(spec: str, fps: float | None):
    from oneshot_avatar.motion import builtin_clip, builtin_names, load_motion, resample

    if spec in builtin_names():
        clip = builtin_clip(spec, fps=fps or 30.0)
    else:
        path = Path(spec)
        if not path.exists():
            raise UserError(f"--motion {spec!r} is neither a built-in clip ({', '.join(builtin_names())}) "
                            "nor an existing file", field="motion")
        clip = load_motion(path)
        if fps:
            clip = resample(clip, fps)
    return clip


def _check_audio(spec: str | None) -> Path | None:
    """The ``--audio`` file, checked to hold decodable sound (any format ffmpeg reads)."""
    if spec is None:
        return None
    from oneshot_avatar.speech.audio import load_audio

    load_audio(spec, field="audio")
    return Path(spec)


def _load_avatar_and_body(args, device):
    from oneshot_avatar.avatar import check_body_matches
    from oneshot_avatar.body import load_body_model
    from oneshot_avatar.package import load_avatar

    avatar = load_avatar(args.avatar)
    body = load_body_model(args.body_model, device=device)
    check_body_matches(avatar.meta, body)
    return avatar.to(device), body


def _cmd_render(args: argparse.Namespace) -> int:
    from oneshot_avatar.render.output import VIDEO_SUFFIXES, open_sink

    # The options first, before torch loads: a mistyped value answers at once.
    width, height = parse_size(args.size)
    background = parse_background(args.background)
    out = Path(args.out)
    if background is None and out.suffix.lower() in VIDEO_SUFFIXES:
        background = (0.0, 0.0, 0.0)
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1, got {args.batch}", field="batch")
    clip = _load_motion(args.motion, args.fps)
    frames = parse_frame_range(args.frames, clip.num_frames)

    from oneshot_avatar.cameras import load_cameras_json
    from oneshot_avatar.devices import resolve_device
    from oneshot_avatar.render.shots import ShotSettings, preset_cameras, render_to_sink

    device = resolve_device(args.device)
    camera_file = None
    if args.camera not in ("front", "orbit"):
        camera_file = load_cameras_json(args.camera)
        if any((c.width, c.height) != (camera_file[0].width, camera_file[0].height) for c in camera_file):
            raise UserError("all cameras in the file must share one image size", path=args.camera)
        if args.size_given:
            camera_file = [c.resized(width, height) for c in camera_file]
        width, height = camera_file[0].width, camera_file[0].height
    # Cheap checks first (the avatar file, the output), then the body model (may be built).
    from oneshot_avatar.avatar import check_body_matches
    from oneshot_avatar.body import load_body_model
    from oneshot_avatar.package import load_avatar

    audio = _check_audio(getattr(args, "audio", None))
    avatar = load_avatar(args.avatar)
    sink = open_sink(out, clip.fps, background, audio)
    body = load_body_model(args.body_model, device=device)
    check_body_matches(avatar.meta, body)
    avatar.to(device)
    settings = ShotSettings(width=width, height=height, background=background,
                            batch_frames=args.batch, backend=args.backend)
    if camera_file is not None:
        cameras = camera_file
    else:  # framed on the body as posed (and placed) in the shot's first frame
        cameras = preset_cameras(args.camera, avatar, body, clip, frames, settings)
    written = render_to_sink(avatar, body, clip, cameras, frames, settings, sink, quiet=args.quiet)
    where = out if out.suffix.lower() in VIDEO_SUFFIXES else f"{out}/ ({len(written)} PNG frames)"
    print(f"rendered {len(frames)} frames of '{clip.name}' at {width}x{height}: {where}")
    return 0


def _cmd_export_ply(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".ply":
        raise UserError(f"the output must end in .ply, got {out.name!r}", path=out, field="out")
    clip = None
    if args.pose is not None:  # checked before torch, the avatar and the body load
        clip = _load_motion(args.pose, None)
        if not 0 <= args.frame < clip.num_frames:
            raise UserError(f"--frame {args.frame} is outside the clip's 0..{clip.num_frames - 1}",
                            field="frame")
    import torch

    from oneshot_avatar.atomic import write_bytes_atomic
    from oneshot_avatar.package import standard_ply_bytes

    params = {}
    if clip is not None:
        params = {k: v[args.frame : args.frame + 1] for k, v in clip.to_torch("cpu").items()
                  if k != "expression"}
    avatar, body = _load_avatar_and_body(args, torch.device("cpu"))
    with torch.no_grad():
        posed = avatar.pose(body, **params)
    try:
        write_bytes_atomic(out, standard_ply_bytes(posed, avatar.gaussians))
    except OSError as error:
        raise UserError(f"cannot write: {error.strerror or error}", path=out) from error
    print(f"wrote {avatar.gaussians.num_gaussians} Gaussians to {out}")
    return 0


class _SizeAction(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.size_given = True


def register(subparsers) -> None:
    from oneshot_avatar.render.backends import BACKENDS

    render = subparsers.add_parser(
        "render",
        help="render an avatar for a motion and camera to PNG frames, an MP4 or a GIF",
        description="Pose the avatar for every frame of a motion (a built-in clip or a motion "
        "file), rasterize its Gaussians (gsplat on a CUDA GPU, the compiled CPU rasterizer otherwise) "
        "and write PNG frames with alpha into a folder, or an .mp4 / .gif.",
    )
    render.add_argument("avatar", help="the .avatar package")
    render.add_argument("--motion", default="idle",
                        help="built-in clip name (see `oneshot-avatar motion list`) or a motion file")
    render.add_argument("--out", required=True, help="a folder (PNG frames), FILE.mp4 or FILE.gif")
    render.add_argument("--size", default="512", action=_SizeAction,
                        help="N or WxH in pixels (default 512)")
    render.add_argument("--camera", default="front",
                        help="front, orbit (one turn over the clip), or a camera JSON file")
    render.add_argument("--frames", default=None, help="a:b, frames a (inclusive) to b (exclusive)")
    render.add_argument("--fps", type=float, default=None, help="resample the motion to this rate")
    render.add_argument("--background", default=None,
                        help="transparent (PNG default), black (video default), white, grey, "
                        "#rrggbb or r,g,b")
    render.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    render.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="rasterizer: auto (gsplat on CUDA, cpu on a CPU), gsplat, cpu "
                        "(compiled tiles) or torch (the PyTorch reference)")
    render.add_argument("--batch", type=int, default=8, help="frames posed and rasterized per call")
    render.add_argument("--body-model", default=None, metavar="PATH",
                        help="the SMPL-X model the avatar was made with (default: $SMPLX_MODEL_PATH "
                        "or the open body)")
    render.add_argument("--audio", default=None, metavar="FILE",
                        help="sound for the .mp4 (WAV, MP3, FLAC, ...), from frame 0, e.g. the "
                        "speech a `speak` motion was made from")
    render.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    render.set_defaults(func=_cmd_render, size_given=False)

    export = subparsers.add_parser(
        "export-ply",
        help="write the avatar's Gaussians as a plain 3DGS .ply for splat viewers",
        description="Write the avatar's Gaussians (rest pose, or a frame of a motion) as a "
        "standard 3D Gaussian Splatting PLY that splat viewers open.",
    )
    export.add_argument("avatar", help="the .avatar package")
    export.add_argument("out", help="output .ply")
    export.add_argument("--pose", default=None, help="built-in clip or motion file to pose it with")
    export.add_argument("--frame", type=int, default=0, help="frame of --pose (default 0)")
    export.add_argument("--body-model", default=None, metavar="PATH",
                        help="the SMPL-X model the avatar was made with")
    export.set_defaults(func=_cmd_export_ply)
