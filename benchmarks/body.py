"""LBS throughput of the body layer: posed vertices x frames per second.

    python benchmarks/body.py [--device cpu|cuda] [--batches 1,8,32,128] [--body-model PATH]

Poses random SMPL-X parameters (betas, expression, all joints) through ``BodyModel`` without
gradients and prints, per batch size, the time per call, frames/s and vertices x frames/s.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from oneshot_avatar.body import load_body_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(body, batch: int, repeats: int, device: torch.device) -> float:
    g = torch.Generator().manual_seed(batch)
    params = dict(
        betas=torch.randn(batch, body.num_betas, generator=g) * 0.5,
        global_orient=torch.randn(batch, 3, generator=g) * 0.3,
        body_pose=torch.randn(batch, 21, 3, generator=g) * 0.3,
        jaw_pose=torch.randn(batch, 3, generator=g) * 0.1,
        left_hand_pose=torch.randn(batch, 15, 3, generator=g) * 0.3,
        right_hand_pose=torch.randn(batch, 15, 3, generator=g) * 0.3,
        expression=torch.rand(batch, len(body.expression_names), generator=g),
        transl=torch.randn(batch, 3, generator=g),
    )
    params = {k: v.to(device) for k, v in params.items()}
    with torch.no_grad():
        for _ in range(2):
            body(**params)
        _sync(device)
        started = time.perf_counter()
        for _ in range(repeats):
            body(**params)
        _sync(device)
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="1,8,32,128", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--body-model", default=None, help="SMPL-X file (default: open body)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    body = load_body_model(args.body_model, device=device)
    vertices = body.info.num_vertices
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"body: {body.info.model_id}, {vertices} vertices; device: {device} ({name}); "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'batch':>6} {'ms/call':>10} {'frames/s':>10} {'Mvert*frames/s':>15}")
    for batch in (int(b) for b in args.batches.split(",")):
        seconds = measure(body, batch, args.repeats, device)
        fps = batch / seconds
        print(f"{batch:>6} {seconds * 1e3:>10.2f} {fps:>10.1f} {fps * vertices / 1e6:>15.2f}")


if __name__ == "__main__":
    main()
