"""Rasterizer throughput: milliseconds per frame and frames/s for each backend.

    python benchmarks/raster.py [--backend torch|gsplat|both] [--gaussians 20000] [--size 256]
                                [--batch 1] [--cameras 1] [--device cpu|cuda] [--grad]

Samples Gaussians uniformly in a body-sized box (0.6 x 1.8 x 0.4 m) 3 m in front of a
50°-FOV camera, renders ``batch`` scenes x ``cameras`` views per call and prints the device,
the number of Gaussians, the resolution and the time per call and per frame (one image). With
``--grad`` each call also runs the backward pass of a simple loss.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

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


def measure(backend: str, scene: dict, viewmats, Ks, size: int, repeats: int, grad: bool) -> float:
    """Seconds per call (after two warm-up calls)."""
    device = viewmats.device
    leaves = {k: v.clone().requires_grad_(grad) for k, v in scene.items()}

    def once():
        with torch.set_grad_enabled(grad):
            out = rasterize_gaussians(
                leaves["means"], leaves["quats"], leaves["scales"], leaves["opacities"],
                leaves["colors"], viewmats, Ks, size, size, backend=backend,
            )
            if grad:
                (out.rgb.mean() + out.depth.mean()).backward()
        return out

    for _ in range(2):
        once()
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        once()
    _sync(device)
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["torch", "gsplat", "both"], default="torch")
    parser.add_argument("--gaussians", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=256, help="image width = height in pixels")
    parser.add_argument("--batch", type=int, default=1, help="scenes per call (B)")
    parser.add_argument("--cameras", type=int, default=1, help="views per scene (C)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grad", action="store_true", help="include the backward pass")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    backends = ["torch", "gsplat"] if args.backend == "both" else [args.backend]
    if "gsplat" in backends and (device.type != "cuda" or not gsplat_available()):
        print(f"gsplat needs CUDA and the gsplat package (device {device}, "
              f"installed: {gsplat_available()}); skipping it")
        backends.remove("gsplat")

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{args.gaussians} Gaussians, {args.size}x{args.size} px, "
          f"B={args.batch} x C={args.cameras} frames per call, "
          f"{'forward + backward' if args.grad else 'forward only'}")
    scene = body_box_scene(args.gaussians, args.batch, device)
    viewmats, Ks = orbit_cameras(args.batch, args.cameras, args.size, device)
    frames = args.batch * args.cameras
    for backend in backends:
        seconds = measure(backend, scene, viewmats, Ks, args.size, args.repeats, args.grad)
        per_frame = seconds / frames
        print(f"  {backend:6s}: {seconds * 1e3:9.2f} ms per call, {per_frame * 1e3:9.2f} ms per "
              f"frame, {1 / per_frame:8.1f} frames/s")


if __name__ == "__main__":
    main()
