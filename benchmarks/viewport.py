"""The render engine's speed (issue 13): the viewport path and Render Animation, against a
real ``oneshot-avatar serve`` on loopback started here.

    python benchmarks/viewport.py [--gaussians 30000] [--size 1280 720] [--frames 8]
                                  [--anim-size 640 360] [--anim-frames 8] [--device cpu|cuda]

- **viewport**: request -> pixels ready to draw, as Rendered shading does it: one
  ``POST /v1/render-scene`` per frame (float16, the 3D view's camera as view/projection
  matrices), the answer decoded into Blender's premultiplied scene-linear buffer. Prints
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gaussians", type=int, default=30000)
    parser.add_argument("--size", type=int, nargs=2, default=(1280, 720))
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--anim-size", type=int, nargs=2, default=(640, 360))
    parser.add_argument("--anim-frames", type=int, default=8)
    parser.add_argument("--device", default="cpu")
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
        # viewport: request -> pixels ready to draw
        projection = gl_projection(40.0, width / height)
        timings, cpu, client_cpu = [], [], []
        for frame in range(args.frames + 1):  # frame 0 warms up (avatar load, kernels)
            camera = engine.viewport_camera(view_matrix(4.0 + 0.01 * frame, -0.3), projection,
                                            width, height)
            request = engine.scene_request(
                [engine.SceneAvatar(avatar_id, rows(frame), None, rig)], [camera],
                dtype="float16")
            cpu0, t0 = server_cpu_seconds(server.proc.pid), time.perf_counter()
            own0 = time.process_time()
            frames = engine.decode_scene(client.render_scene(request), width, height)
            elapsed = time.perf_counter() - t0
            if frame:
                timings.append(elapsed)
                cpu.append(server_cpu_seconds(server.proc.pid) - cpu0)
                client_cpu.append(time.process_time() - own0)
            assert frames[0].combined[..., 3].max() > 0.5, "the avatar is not in view"
        print(f"viewport {width}x{height}: {1 / np.mean(timings):.2f} frames/s "
              f"(request -> pixels, {np.mean(timings) * 1000:.0f} ms wall per frame; server "
              f"CPU {np.mean(cpu):.3f} s, Blender-side CPU (request, decode) "
              f"{np.mean(client_cpu):.3f} s per frame; CPU-bound rate "
              f"{1 / (np.mean(cpu) + np.mean(client_cpu)):.2f} frames/s)")

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
        print(json.dumps({"viewport_fps": 1 / np.mean(timings),
                          "animation_ratio_wall": engine_wall / own_wall,
                          "animation_ratio_cpu": engine_cpu / own_cpu}))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
