"""The HTTP service end to end: a real `oneshot-avatar serve` process on loopback, timed from the
client's side (request sent -> last byte received, PNGs encoded and zipped by the server).

    python benchmarks/service.py                                   # CPU, small defaults
    python benchmarks/service.py --device cuda --gaussians 150000  # the issue's targets on a GPU

Prints: the latency of a 1-frame 512x512 PNG render (median of --repeats, after one warm-up
that loads the avatar), and the time to deliver a --frames-frame --shot-size shot (default 240
frames at 1920x1080, the `talk` clip (sampled densely enough), front camera) as one zip (`POST /v1/render`). Target on
one H100: <= 10 s for the 240-frame 1080p shot. The avatar: --gaussians Gaussians spread over
the open default body (SH degree 3), uploaded with `POST /v1/avatars`.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from oneshot_avatar.avatar import MeshGaussians
from oneshot_avatar.body import load_body_model
from oneshot_avatar.package import save_avatar
from oneshot_avatar.service.launcher import multipart, start_server


def make_package(folder: Path, gaussians: int) -> Path:
    body = load_body_model()
    with torch.no_grad():
        rest = body().vertices[0]
    g = MeshGaussians.on_mesh(rest, body.faces, max(gaussians, body.info.num_faces), sh_degree=3)
    return save_avatar(folder / "bench.avatar", g, body, torch.zeros(body.num_betas))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gaussians", type=int, default=30000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--shot-size", default="1920x1080")
    args = parser.parse_args()
    width, height = (int(v) for v in args.shot_size.split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        package = make_package(folder, args.gaussians)
        server = start_server(folder / "data", extra_args=("--device", args.device))
        try:
            body, ctype = multipart({}, {"package": ("bench.avatar", package.read_bytes())})
            status, _, data = server.request("POST", "/v1/avatars", body, headers={"Content-Type": ctype})
            assert status == 201, data
            avatar = json.loads(data)["id"]
            _, health = server.json("GET", "/v1/health")
            _, motions = server.json("GET", "/v1/motions")
            talk_frames = {m["name"]: m["frames"] for m in motions["motions"]}["talk"]  # at 30 fps

            def render(frames: int, size: tuple[int, int], fmt: str) -> tuple[float, bytes]:
                fps = max(30.0, 30.0 * frames / talk_frames)  # a denser clip for long shots
                request = {"avatar": avatar,
                           "motion": {"name": "talk", "fps": fps, "frames": [0, frames]},
                           "cameras": [{"preset": "front", "width": size[0], "height": size[1]}],
                           "format": fmt}
                started = time.perf_counter()
                status, _, data = server.request("POST", "/v1/render", json.dumps(request).encode(),
                                                 headers={"Content-Type": "application/json"},
                                                 timeout=3600)
                seconds = time.perf_counter() - started
                assert status == 200, data[:300]
                return seconds, data

            render(1, (512, 512), "png")  # warm-up: loads the avatar onto the device
            single = [render(1, (512, 512), "png")[0] for _ in range(args.repeats)]
            shot_seconds, shot = render(args.frames, (width, height), "zip")
            with zipfile.ZipFile(io.BytesIO(shot)) as zf:
                count = len(zf.namelist())
        finally:
            server.stop()
    print(f"device: {health['device']}  rasterizer: {health['rasterizer']}  Gaussians: "
          f"{max(args.gaussians, 27420)} (SH 3)")
    print(f"1 frame 512x512 PNG: median {statistics.median(single) * 1000:.0f} ms "
          f"(min {min(single) * 1000:.0f}, max {max(single) * 1000:.0f}, {args.repeats} requests)")
    print(f"{count}-frame {width}x{height} shot as zip: {shot_seconds:.2f} s "
          f"({count / shot_seconds:.1f} frames/s, {len(shot) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
