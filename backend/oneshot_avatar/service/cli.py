"""``oneshot-avatar serve``: the HTTP job server."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import sys
from pathlib import Path

from oneshot_avatar.errors import UserError

TOKEN_ENV = "ONESHOT_AVATAR_TOKEN"
DEFAULT_PORT = 8765


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "oneshot-avatar" / "server"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(args: argparse.Namespace) -> str | None:
    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as error:
            raise UserError(f"cannot read the token file: {error.strerror or error}",
                            path=args.token_file, field="token-file") from None
    token = token or args.token or os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < 16:
        raise UserError("the token must have at least 16 characters (e.g. `python -c \"import "
                        "secrets; print(secrets.token_urlsafe(32))\"`)", field="token")
    return token


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {error.strerror or error} (is another "
                        "server running there? choose another --port)", field="port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _cmd_serve(args: argparse.Namespace) -> int:
    token = read_token(args)
    loopback = is_loopback(args.host)
    if not loopback and token is None:
        raise UserError(f"refusing to listen on {args.host} (reachable from other machines) "
                        f"without a token: pass --token-file FILE or set ${TOKEN_ENV}, or keep "
                        "the default --host 127.0.0.1 and use an SSH tunnel", field="host")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}", field="port")
    for name in ("max_upload_mb", "max_render_frames", "max_render_pixels"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1", field=name)
    for name in ("keypoint_model", "matting_model"):
        path = getattr(args, name)
        if path and not Path(path).is_file():
            raise UserError(f"--{name.replace('_', '-')} {str(path)!r}: no such file", field=name)
    from oneshot_avatar.service.store import DataDirLock

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    # One server per data folder and a free port, both said before anything slow loads.
    data_lock = DataDirLock(data_dir)
    sock = bind(args.host, args.port)
    import logging

    import uvicorn

    from oneshot_avatar.service.app import create_app
    from oneshot_avatar.service.core import Service, ServiceConfig

    config = ServiceConfig(
        data_dir=data_dir, device=args.device, body_model=args.body_model,
        keypoint_model=Path(args.keypoint_model) if args.keypoint_model else None,
        matting_model=Path(args.matting_model) if args.matting_model else None,
        backend=args.backend, max_upload_bytes=args.max_upload_mb * 1024 * 1024,
        max_render_frames=args.max_render_frames, max_render_pixels=args.max_render_pixels,
    )

    def say(message: str) -> None:
        print(f"oneshot-avatar serve: {message}", file=sys.stderr, flush=True)

    service = Service(config, log=say, data_lock=data_lock)
    logging.getLogger("oneshot_avatar").setLevel(logging.INFO)
    app = create_app(service, token=token, loopback=loopback)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"oneshot-avatar serve: listening on http://{shown}:{port}", flush=True)
    say(f"data in {data_dir}; device {service.device_text()}; body model "
        f"{service.body.info.model_id}; {'token required' if token else 'no token (loopback only)'}")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=10))
    # uvicorn handles SIGTERM/SIGINT while it serves, then restores the previous handlers and
    # raises the signal again: with Python's default handler that would kill the process before
    # the service stops its job at a step boundary (and checkpoints it). Handlers that only note
    # the signal let the shutdown below run.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda signum, frame: None)
    try:
        server.run(sockets=[sock])
    finally:
        say("stopping (a running job resumes at the next start)")
        service.close()
    return 0


def register(subparsers) -> None:
    from oneshot_avatar.render.backends import BACKENDS

    serve = subparsers.add_parser(
        "serve",
        help="run the HTTP job server (reconstructions and renders) for the Blender add-on",
        description="Serve the HTTP API (/v1/...; OpenAPI schema at /openapi.json). Jobs and "
        "avatars live in --data-dir and survive restarts: a reconstruction that was running "
        "resumes from its last checkpoint. One worker runs GPU work; interactive renders go "
        "before training. Listens on loopback by default; any other address needs a token.",
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; others need a token)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port (default {DEFAULT_PORT}; 0 picks a free one and prints it)")
    serve.add_argument("--data-dir", default=None, metavar="DIR",
                       help="jobs, avatars and the database (default ~/.local/share/oneshot-avatar/server)")
    serve.add_argument("--token", default=None,
                       help=f"bearer token clients must send (visible in the process list: prefer "
                       f"--token-file or ${TOKEN_ENV})")
    serve.add_argument("--token-file", default=None, metavar="FILE", help="read the token from FILE")
    serve.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    serve.add_argument("--backend", default="auto", choices=BACKENDS,
                       help="rasterizer: auto (gsplat on CUDA, cpu on a CPU), gsplat, cpu or torch")
    serve.add_argument("--body-model", default=None, metavar="PATH",
                       help="SMPL-X model (default: $SMPLX_MODEL_PATH, else the open body)")
    serve.add_argument("--keypoint-model", default=None, metavar="FILE.onnx",
                       help="whole-body keypoint detector for photos sent without keypoints")
    serve.add_argument("--matting-model", default=None, metavar="FILE.onnx",
                       help="matting model for photos sent without a mask")
    serve.add_argument("--max-upload-mb", type=int, default=512,
                       help="largest request body in MiB (default 512)")
    serve.add_argument("--max-render-frames", type=int, default=2000,
                       help="most frames one render request may ask for (default 2000)")
    serve.add_argument("--max-render-pixels", type=int, default=4096 * 4096,
                       help="most pixels per rendered frame (default 4096*4096)")
    serve.set_defaults(func=_cmd_serve)
