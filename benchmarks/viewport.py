"""The render engine's speed (issue 13): the viewport path and Render Animation, against a
real ``oneshot-avatar serve`` on loopback started here.

    python benchmarks/viewport.py [--gaussians 30000] [--size 1280 720] [--frames 8]
                                  [--anim-size 640 360] [--anim-frames 8] [--device cpu|cuda]

- **viewport**: request -> pixels ready to draw, as Rendered shading does it: one
  ``POST /v1/render-scene`` per frame (float16, cropped to the avatars, no depth, the 3D
  view's camera as view/projection matrices), the answer decoded into Blender's premultiplied scene-linear buffer. Prints
  frames/s (wall clock) and the server's CPU seconds per frame.
- **render animation**: the engine's requests (float32, a Blender camera, 8 frames asked for
  ahead per request as Render Animation does) against the backend's own render of the same
  frames (one ``/v1/render`` zip request): seconds per frame for each and their ratio
  (target <= 1.2).

The avatar is a synthetic package of ``--gaussians`` Gaussians on the open body (built on first
use; set ``ONESHOT_AVATAR_CACHE`` to reuse a built body). CPU times come from the server
process's ``/proc`` counters, so they hold on a loaded machine; wall-clock figures do not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the add-on's plain core (blender_addon/core)
sys.path.insert(0, str(REPO / "tests"))  # the synthetic avatar package builder

import numpy as np

AHEAD_FRAMES = 8  # blender_addon/render_engine.py: frames per request in Render Animation


def server_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gl_projection(fov_y_deg: float, aspect: float, near: float = 0.1, far: float = 100.0):
    f = 1.0 / math.tan(math.radians(fov_y_deg) / 2)
    return [[f / aspect, 0, 0, 0], [0, f, 0, 0],
            [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0]]


def view_matrix(distance: float, height: float) -> list[list[float]]:
    """World -> OpenGL eye for an eye at (0, -distance, height) looking along +Y (Z up)."""
    camera_to_world = np.array([[1, 0, 0, 0], [0, 0, -1, -distance], [0, 1, 0, height],
                                [0, 0, 0, 1]], dtype=float)
    return np.linalg.inv(camera_to_world).tolist()


def viewport_fps(client, server, avatar_id: str, rows, width: int, height: int, frames: int,
                 label: str) -> float:
    """The viewport path as Rendered shading runs it (core ``Viewport``): a new view each
    frame -> request (float16) on the worker thread -> decoded frame -> the flat float32
    buffer ``draw_picture`` hands to the GPU texture. Prints and returns frames/s (wall)."""
    from blender_addon.core import render_engine as engine

    rig = [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]  # the rig's default
    projection = gl_projection(40.0, width / height)
    viewport = engine.Viewport()
    timings, cpu, client_cpu = [], [], []
    for frame in range(frames + 1):  # frame 0 warms up (avatar load, kernels)
        pose = [{"name": "rig", "params": rows(frame)}]
        key, camera = engine.viewport_request(pose, view_matrix(4.0 + 0.01 * frame, -0.3),
                                              projection, width, height, client.base_url)

        def work(camera=camera, frame=frame):
            request = engine.scene_request(
                [engine.SceneAvatar(avatar_id, rows(frame), None, rig)], [camera],
                dtype="float16", depth=False)  # as the add-on's viewport_work asks
            decoded = engine.decode_scene(client.render_scene(request), width, height)[0]
            engine.flat32(decoded.combined)  # what draw_picture gives gpu.types.Buffer
            return decoded

        cpu0, t0, own0 = server_cpu_seconds(server.proc.pid), time.perf_counter(), \
            time.process_time()
        viewport.want(key, work)
        while viewport.busy:
            time.sleep(0.001)
        elapsed = time.perf_counter() - t0
        picture = viewport.picture()
        assert picture.message == "", picture.message
        assert picture.frame.combined[..., 3].max() > 0.5, "the avatar is not in view"
        if frame:
            timings.append(elapsed)
            cpu.append(server_cpu_seconds(server.proc.pid) - cpu0)
            client_cpu.append(time.process_time() - own0)
    fps = 1 / np.mean(timings)
    print(f"viewport {width}x{height} on {label}: {fps:.2f} frames/s (request -> pixels ready "
          f"to draw, {np.mean(timings) * 1000:.0f} ms wall per frame; server CPU "
          f"{np.mean(cpu):.3f} s, Blender-side CPU (request, decode) {np.mean(client_cpu):.3f} "
          f"s per frame; CPU-bound rate {1 / (np.mean(cpu) + np.mean(client_cpu)):.2f} "
          f"frames/s)" + ("; target >= 30 frames/s" if label == "CUDA" else ""))
    return fps


def viewport_on_cuda(args, cache: Path, scratch: Path, package: Path, rows) -> float | None:
    """The viewport figure against a CUDA backend, or a line saying why it is skipped."""
    import torch
    from blender_addon.core.client import ServiceClient

    from service_server import start_server

    width, height = args.size
    if not torch.cuda.is_available():
        print(f"viewport {width}x{height} on CUDA: skipped (no CUDA device here: "
              "torch.cuda.is_available() is False)")
        return None
    server = start_server(scratch / "data-cuda", env={"ONESHOT_AVATAR_CACHE": str(cache)},
                          extra_args=("--device", "cuda"))
    try:
        client = ServiceClient(server.url, None, timeout=60)
        avatar_id = client.upload_avatar(package, name="bench")["id"]
        return viewport_fps(client, server, avatar_id, rows, width, height, args.frames,
                            "CUDA")
    finally:
        server.stop()


def blender_python(choice: str | None) -> Path | None:
    if choice == "none":
        return None
    if choice:
        return Path(choice)
    listed = os.environ.get("ONESHOT_AVATAR_BLENDER_PYTHONS", "").split(os.pathsep)
    for candidate in [*filter(None, listed), str(REPO / ".venv-blender/bin/python")]:
        if Path(candidate).exists():
            return Path(candidate)
    return None


def blender_animation(python: Path, server, package: Path, scratch: Path, args) -> dict:
    """Run benchmarks/blender_animation.py in Blender's Python against ``server``."""
    out = Path(tempfile.mkdtemp(prefix="anim-", dir=scratch))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no backend in Blender
    env.update(BENCH_URL=server.url, BENCH_PACKAGE=str(package),
               BENCH_SERVER_PID=str(server.proc.pid), BENCH_OUT=str(out),
               BENCH_SIZE="x".join(map(str, args.anim_size)),
               BENCH_FRAMES=str(args.blender_frames), BENCH_PREVIEW=args.preview,
               BLENDER_USER_RESOURCES=str(out / "blender-user"))
    result = subprocess.run([str(python), str(REPO / "benchmarks/blender_animation.py")],
                            env=env, capture_output=True, text=True, timeout=900, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH ")]
    if result.returncode or not lines:
        raise SystemExit(f"the Blender benchmark failed:\n{result.stdout[-3000:]}"
                         f"{result.stderr[-3000:]}")
    return json.loads(lines[-1][len("BENCH "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gaussians", type=int, default=30000)
    parser.add_argument("--size", type=int, nargs=2, default=(1280, 720))
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--anim-size", type=int, nargs=2, default=(640, 360))
    parser.add_argument("--anim-frames", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--blender-frames", type=int, default=24)
    parser.add_argument("--preview", choices=("hidden", "shown"), default="hidden",
                        help="the rig's splat preview in the Blender render: hidden (as Set Up "
                             "Avatar Compositing leaves it) or shown (Blender then evaluates its "
                             "Geometry Nodes every frame, ~60 ms for 30,000 Gaussians)")
    parser.add_argument("--blender", default=None,
                        help="a Blender Python (the bpy module) for Render Animation in real "
                             "Blender (default: the first of $ONESHOT_AVATAR_BLENDER_PYTHONS or "
                             ".venv-blender that exists; 'none' to skip)")
    args = parser.parse_args()

    from blender_addon.core import render_engine as engine
    from blender_addon.core.camera import blender_camera_payload
    from blender_addon.core.client import ServiceClient

    from addon_packages import build_test_package
    from oneshot_avatar.body import BodyModel, ensure_open_body
    from service_server import start_server

    cache = Path(os.environ.get("ONESHOT_AVATAR_CACHE", Path.home() / ".cache/oneshot-avatar"))
    body = BodyModel.from_file(ensure_open_body(cache), kind="open")
    scratch = Path(tempfile.mkdtemp(prefix="viewport-bench-"))
    package = build_test_package(scratch / "bench.avatar", body, args.gaussians, seed=1)
    server = start_server(scratch / "data", env={"ONESHOT_AVATAR_CACHE": str(cache)},
                          extra_args=("--device", args.device))
    try:
        client = ServiceClient(server.url, None, timeout=60)
        avatar_id = client.upload_avatar(package, name="bench")["id"]
        rig = [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]  # the rig's default

        def rows(frame: int) -> dict:
            return {"global_orient": [[0.0, 0.15 * frame, 0.0]],
                    "body_pose": [[0.0] * 45 + [0.0, 0.0, -0.3 - 0.05 * frame] + [0.0] * 15]}

        width, height = args.size
        print(f"device {client.health()['device']}; {args.gaussians} Gaussians; "
              f"load {os.getloadavg()[0]:.2f} (1 min)")
        fps = viewport_fps(client, server, avatar_id, rows, width, height, args.frames,
                           args.device.upper())
        figures = {"viewport_fps": fps}
        if args.device == "cpu":
            figures["viewport_fps_cuda"] = viewport_on_cuda(args, cache, scratch, package, rows)

        # Render Animation: the engine's per-frame requests vs the backend's own render
        aw, ah = args.anim_size
        matrix = [[1, 0, 0, 0], [0, 0, -1, -4.0], [0, 1, 0, -0.3], [0, 0, 0, 1]]
        camera = blender_camera_payload(lens_mm=40.0, sensor_width_mm=36.0,
                                        sensor_height_mm=24.0, sensor_fit="AUTO", shift_x=0.0,
                                        shift_y=0.0, clip_start=0.1, clip_end=100.0,
                                        resolution_x=aw, resolution_y=ah,
                                        camera_matrix_world=matrix)
        all_rows = {k: [rows(f)[k][0] for f in range(args.anim_frames)]
                    for k in ("global_orient", "body_pose")}
        cpu0, t0 = server_cpu_seconds(server.proc.pid), time.perf_counter()
        client.render({"avatar": avatar_id, "motion": {"params": all_rows}, "cameras": [camera],
                       "format": "zip"})
        own_wall = (time.perf_counter() - t0) / args.anim_frames
        own_cpu = (server_cpu_seconds(server.proc.pid) - cpu0) / args.anim_frames
        cpu0, t0 = server_cpu_seconds(server.proc.pid), time.perf_counter()
        for start in range(0, args.anim_frames, AHEAD_FRAMES):  # as the engine asks ahead
            batch = range(start, min(args.anim_frames, start + AHEAD_FRAMES))
            params = {k: [rows(f)[k][0] for f in batch] for k in ("global_orient", "body_pose")}
            request = engine.scene_request([engine.SceneAvatar(avatar_id, params, None, rig)],
                                           [camera])
            engine.decode_scene(client.render_scene(request), aw, ah)
        engine_wall = (time.perf_counter() - t0) / args.anim_frames
        engine_cpu = (server_cpu_seconds(server.proc.pid) - cpu0) / args.anim_frames
        print(f"render animation {aw}x{ah}, {args.anim_frames} frames: engine "
              f"{engine_wall:.3f} s/frame wall, {engine_cpu:.3f} s/frame server CPU; backend's "
              f"own render {own_wall:.3f} s/frame wall, {own_cpu:.3f} s/frame server CPU; "
              f"ratio {engine_wall / own_wall:.2f} (wall), {engine_cpu / own_cpu:.2f} (CPU); "
              "target <= 1.2")
        figures.update(animation_ratio_wall=engine_wall / own_wall,
                       animation_ratio_cpu=engine_cpu / own_cpu)
        blender = blender_python(args.blender)
        if blender is None:
            print("render animation in Blender: skipped (no Blender Python; --blender PATH)")
        else:
            measured = blender_animation(blender, server, package, scratch, args)
            parts = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in measured["parts"].items())
            ratio = measured["engine_s"] / measured["own_s"]
            engine_all = measured["engine_cpu"] + measured["engine_blender_cpu"]
            own_all = measured["own_cpu"] + measured["own_blender_cpu"]
            print(f"render animation in Blender {measured['blender_version']} {aw}x{ah}, "
                  f"{args.blender_frames} frames to PNG (splat preview {args.preview}): "
                  f"{measured['engine_s']:.3f} s/frame wall ({parts} per frame on Blender's "
                  f"thread), CPU {measured['engine_cpu']:.3f} s server + "
                  f"{measured['engine_blender_cpu']:.3f} s Blender per frame; the backend's own "
                  f"render (zip of PNGs, extracted) {measured['own_s']:.3f} s/frame wall, CPU "
                  f"{measured['own_cpu']:.3f} s server + {measured['own_blender_cpu']:.3f} s "
                  f"Blender; ratio {ratio:.2f} wall, {engine_all / own_all:.2f} CPU (server + "
                  f"Blender), {measured['engine_cpu'] / measured['own_cpu']:.2f} server CPU; "
                  "target <= 1.2 (wall)")
            floor = measured["floor_s"]
            beyond = measured["engine_s"] / (measured["own_s"] + floor)
            print(f"  Blender's own share of any Render Animation (an engine writing the "
                  f"engine's first frame each frame, same frames and format): {floor:.3f} s/frame wall, "
                  f"{measured['floor_blender_cpu']:.3f} s CPU; engine / (backend's own render "
                  f"+ that share) = {beyond:.2f} wall, "
                  f"{engine_all / (own_all + measured['floor_blender_cpu']):.2f} CPU")
            figures.update(blender_animation_ratio_beyond_blender_wall=beyond)
            figures.update(blender_animation_ratio_wall=ratio,
                           blender_animation_ratio_cpu=engine_all / own_all)
        print(json.dumps(figures))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
