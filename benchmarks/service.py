"""The HTTP service end to end: a real `oneshot-avatar serve` process on loopback, timed from the
client's side (request sent -> last byte received, PNGs encoded and zipped by the server).

    python benchmarks/service.py                                   # CPU, small defaults
    python benchmarks/service.py --device cuda --gaussians 150000  # the issue's targets on a GPU
    python benchmarks/service.py --soak 600 --clients 6            # 10 minutes of mixed load

Prints: the latency of a 1-frame 512x512 PNG render (median of --repeats, after one warm-up
that loads the avatar), and the time to deliver a --frames-frame --shot-size shot (default 240
frames at 1920x1080, the `talk` clip (sampled densely enough), front camera) as one zip (`POST /v1/render`). Target on
one H100: <= 10 s for the 240-frame 1080p shot. The avatar: --gaussians Gaussians spread over
the open default body (SH degree 3), uploaded with `POST /v1/avatars`.

``--soak SECONDS``: instead, --clients threads send mixed requests to one server for that long
(renders of one frame and of short zips, package uploads then deletes, fuzzed bodies that must be
refused with a 4xx, render jobs cancelled at once, listings); prints requests served, p50/p99
latency per kind, errors by class (a 5xx, a refused valid request, an accepted fuzzed one, a
connection error) and the server's memory: RSS sampled every second, its peak, and whether it
stayed flat (the last minute's median against the median of the minute after warm-up).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the add-on's launcher (blender_addon/core/launcher.py)
sys.path.insert(0, str(REPO / "tests"))  # the real server's handle (tests/service_server.py)

import torch

from oneshot_avatar.avatar import MeshGaussians
from oneshot_avatar.body import load_body_model
from oneshot_avatar.package import save_avatar
from service_server import ServerProcess, start_server


def make_package(folder: Path, gaussians: int) -> Path:
    body = load_body_model()
    with torch.no_grad():
        rest = body().vertices[0]
    g = MeshGaussians.on_mesh(rest, body.faces, max(gaussians, body.info.num_faces), sh_degree=3)
    return save_avatar(folder / "bench.avatar", g, body, torch.zeros(body.num_betas))


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fuzzed_body(rng: random.Random, avatar: str) -> bytes:
    """A render request the server must refuse (4xx): a broken field, a bound crossed, a wrong
    type, an unknown key, or bytes that are not JSON."""
    good = {"avatar": avatar, "motion": {"name": "talk", "frames": [0, 1]},
            "cameras": [{"preset": "front", "width": 32, "height": 32}]}
    breakers = [
        lambda b: b["motion"].update(fps=rng.choice([0, -1, 5e-324, 1e9, "fast"])),
        lambda b: b["motion"].update(frames=[rng.randint(5, 10**6), rng.randint(-10, 4)]),
        lambda b: b["cameras"][0].update(width=rng.choice([0, 7, 10**9, 3.5, None])),
        lambda b: b.update(size=[rng.randint(-5, 7), 10**7]),
        lambda b: b.update(background=[rng.uniform(1.01, 1e6), 0, float("inf")]),
        lambda b: b.update(avatar=rng.choice(["a_" + "0" * 16, "../../service.db", 17])),
        lambda b: b.update(motion={"params": {"body_pose": [[0.0] * rng.choice([0, 62, 64])]}}),
        lambda b: b.update(cameras=[]),
        lambda b: b.update(unknown_key=rng.random()),
        lambda b: b.update(format=rng.choice(["gif", "", None, 3])),
    ]
    if rng.random() < 0.1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
    rng.choice(breakers)(good)
    return json.dumps(good).encode()


def soak(server, avatar: str, package: bytes, seconds: float, clients: int, seed: int) -> None:
    """Mixed requests from ``clients`` threads for ``seconds``; prints the figures."""
    results: list[tuple[str, float, str]] = []  # (kind, seconds, outcome)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    json_headers = {"Content-Type": "application/json"}

    def render(rng, frames: int) -> tuple[int, str]:
        request = {"avatar": avatar, "motion": {"name": rng.choice(["talk", "wave", "idle"]),
                                                "frames": [0, frames]},
                   "cameras": [{"preset": rng.choice(["front", "orbit"]), "width": 64, "height": 64}],
                   "format": "png" if frames == 1 else "zip"}
        status, _, _ = server.request("POST", "/v1/render", json.dumps(request).encode(),
                                      headers=json_headers, timeout=300)
        return status, "ok" if status == 200 else "refused-valid"

    def upload(rng) -> tuple[int, str]:
        status, _, data = server.post_form("/v1/avatars", {"name": "soak"},
                                           {"package": ("soak.avatar", package)}, timeout=300)
        if status != 201:
            return status, "refused-valid"
        new = json.loads(data)["id"]
        status, _, _ = server.request("DELETE", f"/v1/avatars/{new}", timeout=60)
        return status, "ok" if status == 204 else "refused-valid"

    def fuzz(rng) -> tuple[int, str]:
        status, _, data = server.request("POST", rng.choice(["/v1/render", "/v1/render-jobs"]),
                                         fuzzed_body(rng, avatar), headers=json_headers, timeout=60)
        if status >= 500:
            return status, "server-error"
        if status < 400:
            return status, "accepted-fuzzed"
        error = json.loads(data).get("error", {})
        return status, "ok" if error.get("status") == status and error.get("message") else "bad-error-body"

    def cancel(rng) -> tuple[int, str]:
        request = {"avatar": avatar, "motion": {"name": "wave", "frames": [0, 4]},
                   "cameras": [{"preset": "front", "width": 48, "height": 48}], "format": "zip"}
        status, job = server.json("POST", "/v1/render-jobs", request, timeout=60)
        if status != 202:
            return status, "refused-valid"
        status, _ = server.json("POST", f"/v1/jobs/{job['id']}/cancel", timeout=60)
        return status, "ok" if status in (200, 409) else "refused-valid"  # 409: it already finished

    def listing(rng) -> tuple[int, str]:
        path = rng.choice(["/v1/health", "/v1/jobs", "/v1/avatars", "/v1/motions",
                           f"/v1/avatars/{avatar}", "/v1/motions/shrug?fps=24"])
        status, _, _ = server.request("GET", path, timeout=60)
        return status, "ok" if status == 200 else "refused-valid"

    kinds = {"render-1-frame": (lambda rng: render(rng, 1), 30),
             "render-zip-4": (lambda rng: render(rng, 4), 8),
             "upload+delete": (upload, 6), "fuzzed-body": (fuzz, 30),
             "render-job+cancel": (cancel, 8), "get": (listing, 18)}
    names = list(kinds)
    weights = [kinds[name][1] for name in names]

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.monotonic() < stop_at:
            kind = rng.choices(names, weights)[0]
            started = time.perf_counter()
            try:
                _, outcome = kinds[kind][0](rng)
            except (OSError, ValueError) as error:  # connection refused/reset, timeouts, bad JSON
                outcome = f"client-error:{type(error).__name__}"
            with lock:
                results.append((kind, time.perf_counter() - started, outcome))

    samples: list[tuple[float, int]] = []
    began = time.monotonic()

    def sample_memory() -> None:
        while time.monotonic() < stop_at + 1:
            try:
                samples.append((time.monotonic() - began, rss_bytes(server.proc.pid)))
            except OSError:
                return
            time.sleep(1.0)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sampler.join()
    wall = time.monotonic() - began

    print(f"soak: {seconds:.0f} s requested, {wall:.0f} s run, {clients} client threads, seed {seed}")
    print(f"requests served: {len(results)} ({len(results) / wall:.1f}/s)")
    latencies = sorted(r[1] for r in results)
    print(f"latency all: p50 {_pct(latencies, 50) * 1000:.0f} ms, p99 {_pct(latencies, 99) * 1000:.0f} ms")
    by_kind = defaultdict(list)
    for kind, took, _ in results:
        by_kind[kind].append(took)
    for kind in names:
        values = sorted(by_kind[kind])
        if values:
            print(f"  {kind:18s} n={len(values):5d}  p50 {_pct(values, 50) * 1000:7.0f} ms  "
                  f"p99 {_pct(values, 99) * 1000:7.0f} ms")
    outcomes = Counter(outcome for _, _, outcome in results)
    errors = {k: v for k, v in outcomes.items() if k != "ok"}
    print(f"errors by class: {dict(sorted(errors.items())) or 'none'} "
          f"(ok: {outcomes.get('ok', 0)})")
    rss = [value for _, value in samples]
    print(f"server RSS: peak {max(rss) / 2**20:.0f} MiB over {len(rss)} samples (1/s)")
    warm = [v for t, v in samples if 60 <= t < 120] or rss[len(rss) // 4: len(rss) // 2]
    last = [v for t, v in samples if t >= wall - 60]
    if warm and last:
        growth = statistics.median(last) - statistics.median(warm)
        flat = growth <= max(0.05 * statistics.median(warm), 32 * 2**20)
        print(f"flatness: median RSS after warm-up (60-120 s) {statistics.median(warm) / 2**20:.0f} MiB, "
              f"last minute {statistics.median(last) / 2**20:.0f} MiB, growth "
              f"{growth / 2**20:+.0f} MiB -> {'flat' if flat else 'GROWING'} "
              "(flat: growth <= max(5 %, 32 MiB))")
    minutes = defaultdict(list)
    for t, value in samples:
        minutes[int(t // 60)].append(value)
    print("RSS by minute (median MiB): " + ", ".join(
        f"{m}: {statistics.median(v) / 2**20:.0f}" for m, v in sorted(minutes.items())))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


@contextmanager
def served_avatar(args) -> Iterator[tuple[ServerProcess, str, bytes, dict]]:
    """A server on ``args.device`` (stopped when the block ends) holding the benchmark's avatar
    of ``args.gaussians`` Gaussians: (server, avatar id, package bytes, its health answer)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        package = make_package(folder, args.gaussians).read_bytes()
        server = start_server(folder / "data", extra_args=("--device", args.device))
        try:
            avatar = server.add_avatar(package, "bench.avatar")
            _, health = server.json("GET", "/v1/health")
            yield server, avatar, package, health
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gaussians", type=int, default=30000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--shot-size", default="1920x1080")
    parser.add_argument("--soak", type=float, default=None, metavar="SECONDS",
                        help="run the soak instead (the issue's run: 600)")
    parser.add_argument("--clients", type=int, default=6, help="soak client threads")
    parser.add_argument("--seed", type=int, default=0, help="soak request mix seed")
    args = parser.parse_args()
    if args.soak is not None:
        with served_avatar(args) as (server, avatar, package, health):
            print(f"device: {health['device']}  rasterizer: {health['rasterizer']}  "
                  f"Gaussians: {max(args.gaussians, 27420)} (SH 3), package "
                  f"{len(package) / 1e6:.1f} MB")
            soak(server, avatar, package, args.soak, args.clients, args.seed)
        code = server.stop()  # stopped already: its exit code
        tracebacks = server.log_text().count("Traceback")
        print(f"server: exit code {code}, tracebacks in its log: {tracebacks}")
        return
    width, height = (int(v) for v in args.shot_size.split("x"))

    with served_avatar(args) as (server, avatar, _package, health):
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
    print(f"device: {health['device']}  rasterizer: {health['rasterizer']}  Gaussians: "
          f"{max(args.gaussians, 27420)} (SH 3)")
    print(f"1 frame 512x512 PNG: median {statistics.median(single) * 1000:.0f} ms "
          f"(min {min(single) * 1000:.0f}, max {max(single) * 1000:.0f}, {args.repeats} requests)")
    print(f"{count}-frame {width}x{height} shot as zip: {shot_seconds:.2f} s "
          f"({count / shot_seconds:.1f} frames/s, {len(shot) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
