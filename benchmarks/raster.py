"""Rasterizer throughput: milliseconds per frame and frames/s for each backend.

    python benchmarks/raster.py [--backend cpu torch | gsplat | both] [--gaussians 20000]
                                [--size 256] [--batch 1] [--cameras 1] [--device cpu|cuda]
                                [--grad] [--scene box|body]

``--scene box`` (default) samples Gaussians uniformly in a body-sized box (0.6 x 1.8 x 0.4 m)
3 m in front of a 50°-FOV camera; ``--scene body`` is the fast preset's training view: one
Gaussian per triangle of the open default body (27,420 unless ``--gaussians`` asks for more),
SH degree 1, the front camera that frames the body (builds the body on first use; set
``ONESHOT_AVATAR_CACHE`` to reuse a built one). Renders ``batch`` scenes x ``cameras`` views per
call and prints the device, the number of Gaussians, the resolution, the wall-clock and the CPU
time per frame (one image); with several backends, each one's speed-up over the first. With
``--grad`` each call also runs the backward pass of a simple loss. ``both`` = torch and gsplat.

``--train-steps N`` instead runs N steps of the fast preset's training (one Gaussian per triangle
of the open body, the front view at ``--size``, the photo also as the label, no densification)
with the first backend and prints the CPU time per step and the operations that take most of it
(``torch.profiler``, self CPU time; the compiled kernels show as ``_ProjectBlend``/``Backward``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

# as the CLI does: OpenMP threads that spin while waiting slow torch down badly when other
# processes share the cores
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from oneshot_avatar.render import gsplat_available, rasterize_gaussians


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def body_box_scene(n: int, batch: int, device: torch.device, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(batch, n, 3, generator=g) * torch.tensor([0.6, 1.8, 0.4])
    means += torch.tensor([-0.3, -0.9, 2.8])
    scene = {
        "means": means,
        "quats": torch.randn(batch, n, 4, generator=g),
        "scales": torch.rand(batch, n, 3, generator=g) * 0.02 + 0.003,
        "opacities": torch.rand(batch, n, generator=g),
        "colors": torch.rand(batch, n, 3, generator=g),
    }
    return {k: v.to(device) for k, v in scene.items()}


def orbit_cameras(batch: int, cameras: int, size: int, device: torch.device):
    """Cameras turned about the vertical axis through the box centre (0, 0, 3)."""
    views = []
    for c in range(cameras):
        angle = 2 * math.pi * c / max(cameras, 1)
        cos, sin = math.cos(angle), math.sin(angle)
        rot = torch.tensor([[cos, 0.0, -sin], [0.0, 1.0, 0.0], [sin, 0.0, cos]])
        centre = torch.tensor([0.0, 0.0, 3.0])
        view = torch.eye(4)
        view[:3, :3] = rot
        view[:3, 3] = centre - rot @ centre
        views.append(view)
    f = size / (2 * math.tan(math.radians(25)))
    K = torch.tensor([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    viewmats = torch.stack(views)[None].expand(batch, -1, -1, -1).contiguous()
    Ks = K.expand(batch, cameras, 3, 3).contiguous()
    return viewmats.to(device), Ks.to(device)


def open_body_scene(n: int | None, batch: int, size: int, device: torch.device) -> tuple:
    """Gaussians on the open body's rest mesh (SH degree 1, as the fast preset trains) and the
    front camera that frames it: (scene, viewmats [B, 1, 4, 4], Ks [B, 1, 3, 3], sh_degree)."""
    from oneshot_avatar.avatar import MeshGaussians
    from oneshot_avatar.body import load_body_model
    from oneshot_avatar.render.shots import ShotSettings, front_shot_cameras

    body = load_body_model(None)
    with torch.no_grad():
        rest = body().vertices[0]
        count = max(n or 0, body.info.num_faces)
        gaussians = MeshGaussians.on_mesh(rest, body.faces, count, sh_degree=1)
        posed = gaussians.place(rest[None], body.faces)
    g = torch.Generator().manual_seed(0)
    sh = posed.sh.clone()
    sh[..., 0, :] += torch.randn(sh[..., 0, :].shape, generator=g) * 0.3  # some texture
    camera = front_shot_cameras(rest, ShotSettings(width=size, height=size))[0]
    scene = {"means": posed.means, "quats": posed.quats, "scales": posed.scales,
             "opacities": posed.opacities, "colors": sh}
    scene = {k: v.expand(batch, *v.shape[1:]).contiguous().to(device, torch.float32)
             for k, v in scene.items()}
    viewmats = camera.world_to_cam.to(torch.float32).expand(batch, 1, 4, 4).contiguous()
    Ks = camera.K.to(torch.float32).expand(batch, 1, 3, 3).contiguous()
    return scene, viewmats.to(device), Ks.to(device), 1


def measure(backend: str, scene: dict, viewmats, Ks, size: int, repeats: int, grad: bool,
            sh_degree: int | None = None) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, all its threads) per call, after two warm-up
    calls. On a machine shared with other jobs the wall time swings with their load; the CPU
    time much less."""
    device = viewmats.device
    leaves = {k: v.clone().requires_grad_(grad) for k, v in scene.items()}

    def once():
        with torch.set_grad_enabled(grad):
            out = rasterize_gaussians(
                leaves["means"], leaves["quats"], leaves["scales"], leaves["opacities"],
                leaves["colors"], viewmats, Ks, size, size, sh_degree=sh_degree,
                backend=backend,
            )
            if grad:
                (out.rgb.mean() + out.depth.mean()).backward()
        return out

    for _ in range(2):
        once()
    _sync(device)
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        once()
    _sync(device)
    return ((time.perf_counter() - started) / repeats,
            (time.process_time() - cpu_started) / repeats)


def train_step_cost(backend: str, steps: int, size: int) -> None:
    """CPU time per training step of the fast preset, and its biggest parts."""
    from torch.profiler import ProfilerActivity, profile

    from oneshot_avatar.avatar import MeshGaussians, pose_gaussians
    from oneshot_avatar.body import load_body_model
    from oneshot_avatar.render.shots import ShotSettings, front_shot_cameras
    from oneshot_avatar.train import SSIMPerceptual, TrainConfig, TrainView, train_avatar

    body = load_body_model(None)
    with torch.no_grad():
        rest = body().vertices[0]
        camera = front_shot_cameras(rest, ShotSettings(width=size, height=size))[0]
        params = {"body_pose": torch.zeros(1, 21, 3), "betas": torch.zeros(1, 16)}

        def fresh() -> MeshGaussians:
            return MeshGaussians.on_mesh(rest, body.faces, body.info.num_faces, sh_degree=1)

        posed = pose_gaussians(body, fresh(), **params)
        out = rasterize_gaussians(
            posed.means, posed.quats, posed.scales, posed.opacities, posed.sh,
            camera.world_to_cam[None, None].float(), camera.K[None, None].float(), size, size,
            sh_degree=1, backend=backend)
        alpha = out.alpha[0, 0, ..., 0].clamp(0, 1)
        noise = torch.rand(out.rgb.shape[2:], generator=torch.Generator().manual_seed(0))
        rgb = (out.rgb[0, 0] / alpha.clamp_min(1e-6)[..., None] + 0.2 * noise).clamp(0, 1)
    photo = TrainView(rgb, alpha, params, camera, "photo")
    label = TrainView(rgb, alpha, params, camera, "view:front")

    def train(count: int) -> None:
        config = TrainConfig(steps=count, resolution=size, densify_from=10**6,
                             densify_until=10**6 + 1)
        train_avatar(body, fresh(), photo, [label], config, device="cpu",
                     perceptual=SSIMPerceptual(), backend=backend)

    train(2)  # warm-up (kernel loading, allocator)
    cpu_started = time.process_time()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(steps)
    cpu = (time.process_time() - cpu_started) / steps
    print(f"training step ({backend}, {body.info.num_faces} Gaussians, {size}² px, "
          f"{torch.get_num_threads()} threads): CPU {cpu * 1e3:.1f} ms per step "
          f"(under the profiler; includes the before/after evaluation renders)")
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    for event in events[:12]:
        print(f"  {event.key[:40]:40s} {event.self_cpu_time_total / total * 100:5.1f} % "
              f"({event.count} calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", nargs="+", choices=["torch", "gsplat", "cpu", "both"],
                        default=["torch"], help="one or more; the first is the baseline")
    parser.add_argument("--scene", choices=["box", "body"], default="box")
    parser.add_argument("--gaussians", type=int, default=None,
                        help="default 20000 (box), 27420 = one per triangle (body)")
    parser.add_argument("--size", type=int, default=256, help="image width = height in pixels")
    parser.add_argument("--batch", type=int, default=1, help="scenes per call (B)")
    parser.add_argument("--cameras", type=int, default=1, help="views per scene (C)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grad", action="store_true", help="include the backward pass")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--train-steps", type=int, default=0,
                        help="instead: CPU time per training step of the fast preset (N steps)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.train_steps:
        train_step_cost(args.backend[0], args.train_steps, args.size)
        return

    backends: list[str] = []
    for name in args.backend:
        for b in (["torch", "gsplat"] if name == "both" else [name]):
            if b not in backends:
                backends.append(b)
    if "gsplat" in backends and (device.type != "cuda" or not gsplat_available()):
        print(f"gsplat needs CUDA and the gsplat package (device {device}, "
              f"installed: {gsplat_available()}); skipping it")
        backends.remove("gsplat")

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    if args.scene == "body":
        scene, viewmats, Ks, sh_degree = open_body_scene(args.gaussians, args.batch, args.size,
                                                         device)
        frames = args.batch
        where = "open body, front view, SH 1"
    else:
        scene = body_box_scene(args.gaussians or 20_000, args.batch, device)
        viewmats, Ks = orbit_cameras(args.batch, args.cameras, args.size, device)
        frames, sh_degree, where = args.batch * args.cameras, None, "box"
    count = scene["means"].shape[1]
    print(f"{count} Gaussians ({where}), {args.size}x{args.size} px, "
          f"{frames} frame(s) per call, {'forward + backward' if args.grad else 'forward only'}")
    first = None
    for backend in backends:
        seconds, cpu_seconds = measure(backend, scene, viewmats, Ks, args.size, args.repeats,
                                       args.grad, sh_degree)
        per_frame = seconds / frames
        first = first or (seconds, cpu_seconds)
        print(f"  {backend:6s}: {per_frame * 1e3:9.2f} ms per frame ({1 / per_frame:7.1f} "
              f"frames/s), CPU {cpu_seconds / frames * 1e3:9.2f} ms per frame; "
              f"vs {backends[0]}: {first[0] / seconds:6.1f}x wall, "
              f"{first[1] / cpu_seconds:6.1f}x CPU")


if __name__ == "__main__":
    main()
