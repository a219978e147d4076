"""Posing + rasterizing an avatar: per device, Gaussians, resolution, pose ms, raster ms, frames/s.

    python benchmarks/render.py                       # CPU: 20k Gaussians at 256x256, torch reference
    python benchmarks/render.py --device cuda --gaussians 150000 --size 1024 --batch 8

Gaussians are spread over the open default body (area-weighted); the motion is the built-in
`talk` clip; one front camera. Times are per frame (a batch of --batch frames per call), after
warm-up, synchronised on CUDA. Also prints the bare rasterization of the same (rest-pose)
Gaussians, the reference for the "posing + raster within 1.3x of bare raster" target.
"""

from __future__ import annotations

import argparse
import time

import torch

from oneshot_avatar.avatar import Avatar, MeshGaussians
from oneshot_avatar.body import load_body_model
from oneshot_avatar.cameras import stack_cameras
from oneshot_avatar.motion import builtin_clip
from oneshot_avatar.render.rasterize import rasterize_gaussians
from oneshot_avatar.render.shots import ShotSettings, front_shot_cameras


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats: int) -> float:
    fn()
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--gaussians", type=int, default=None, help="default: 150000 on CUDA, 20000 on CPU")
    parser.add_argument("--size", type=int, default=None, help="square image side (default 1024 CUDA, 256 CPU)")
    parser.add_argument("--batch", type=int, default=None, help="frames per call (default 8 CUDA, 1 CPU)")
    parser.add_argument("--backend", default="auto", choices=("auto", "gsplat", "cpu", "torch"))
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--sh-degree", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    count = args.gaussians or (150_000 if cuda else 20_000)
    size = args.size or (1024 if cuda else 256)
    batch = args.batch or (8 if cuda else 1)
    repeats = args.repeats or (20 if cuda else 3)

    body = load_body_model(None, device=device)
    with torch.no_grad():
        rest = body().vertices[0]
    count = max(count, body.info.num_faces)
    gaussians = MeshGaussians.on_mesh(rest, body.faces, count, sh_degree=args.sh_degree).to(device)
    meta = {"body_model": {"sha256": body.info.sha256, "id": body.info.model_id}}
    avatar = Avatar(gaussians=gaussians, betas=torch.zeros(body.num_betas, device=device), meta=meta)
    settings = ShotSettings(width=size, height=size)
    camera = front_shot_cameras(rest.cpu(), settings)[0].to(device, torch.float32)
    viewmats, Ks, width, height = stack_cameras([camera] * batch)
    clip = builtin_clip("talk")
    params = {k: v[:batch].to(device) for k, v in clip.to_torch().items() if k != "expression"}
    params["expression"] = torch.as_tensor(clip.expression[:batch], device=device)

    with torch.no_grad():
        posed = avatar.pose(body, **params)

        def pose():
            return avatar.pose(body, **params)

        def raster():
            return rasterize_gaussians(posed.means, posed.quats, posed.scales, posed.opacities, posed.sh,
                                       viewmats[:, None], Ks[:, None], width, height,
                                       sh_degree=posed.sh_degree, backend=args.backend)

        def both():
            p = pose()
            return rasterize_gaussians(p.means, p.quats, p.scales, p.opacities, p.sh,
                                       viewmats[:, None], Ks[:, None], width, height,
                                       sh_degree=p.sh_degree, backend=args.backend)

        backend = raster().backend
        pose_s = _timed(pose, device, repeats) / batch
        raster_s = _timed(raster, device, repeats) / batch
        total_s = _timed(both, device, repeats) / batch
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}, backend {backend}, "
          f"{count} Gaussians (SH {args.sh_degree}), {size}x{size}, {batch} frames/call")
    print(f"pose   {pose_s * 1e3:8.2f} ms/frame")
    print(f"raster {raster_s * 1e3:8.2f} ms/frame (bare rasterization of posed Gaussians)")
    print(f"total  {total_s * 1e3:8.2f} ms/frame -> {1 / total_s:8.1f} frames/s "
          f"({total_s / raster_s:.2f}x bare raster)")


if __name__ == "__main__":
    main()
