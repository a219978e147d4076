"""Where a training step's time goes on the CPU: the compiled kernels beside the PyTorch
formulas they replace, piece by piece and for whole steps.

    python benchmarks/train_step.py [--size 256] [--repeats 20] [--steps 30]

The fast preset's setting: one Gaussian per triangle of the open default body (27,420), SH
degree 1, the front view at ``--size`` px, float32, ``torch.get_num_threads()`` threads. Prints
milliseconds of forward + backward per call for

- ``place``: Gaussians placed on the posed mesh (``MeshGaussians.place`` with gradients);
- ``d-ssim``: the photo's D-SSIM over the whole view;
- ``perceptual``: the SSIM-based perceptual substitute on the person's box (what label views
  pay when no LPIPS weights exist);
- ``regularisers``: the mesh terms (Laplacian of the offsets, normal consistency);
- ``adam``: one optimiser step over the seven parameter groups (fused kernel or per tensor);

each for ``compiled`` (what runs now on the CPU) and ``pytorch`` (the same formulas by PyTorch's
operations under autograd, as on CUDA), then wall-clock and CPU milliseconds per training step
for ``--steps`` steps in both modes (the rasterizer is the compiled one in both). Set
``ONESHOT_AVATAR_CACHE`` to reuse a built body.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Callable, Iterator

# as the CLI does: OpenMP threads that spin while waiting slow torch down badly when other
# processes share the cores
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from oneshot_avatar.avatar import MeshGaussians, pose_gaussians
from oneshot_avatar.avatar import gaussians as gaussians_module
from oneshot_avatar.body import load_body_model
from oneshot_avatar.render import rasterize_gaussians
from oneshot_avatar.render.shots import ShotSettings, front_shot_cameras
from oneshot_avatar.train import (
    SSIMPerceptual,
    TrainConfig,
    TrainView,
    losses,
    perceptual,
    regularizers,
    train_avatar,
    trainer,
)
from oneshot_avatar.train.regularizers import MeshTopology, laplacian_loss, normal_consistency_loss


@contextlib.contextmanager
def pytorch_only() -> Iterator[None]:
    """The PyTorch formulas instead of the compiled kernels (the rasterizer excepted), and
    Adam's per-tensor loop."""
    saved = (gaussians_module._compiled_place, losses.compiled_losses,
             perceptual.compiled_losses, regularizers.compiled_losses, trainer.make_optimizer)
    make_optimizer = trainer.make_optimizer

    def unfused(gaussians, config):
        optimizer = make_optimizer(gaussians, config)
        for group in optimizer.param_groups:
            group["fused"] = None
        return optimizer

    gaussians_module._compiled_place = losses.compiled_losses = lambda: False
    perceptual.compiled_losses = regularizers.compiled_losses = lambda: False
    trainer.make_optimizer = unfused
    try:
        yield
    finally:
        (gaussians_module._compiled_place, losses.compiled_losses, perceptual.compiled_losses,
         regularizers.compiled_losses, trainer.make_optimizer) = saved


def per_call(fn: Callable[[], None], repeats: int) -> float:
    for _ in range(3):
        fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    size = args.size

    body = load_body_model(None)
    with torch.no_grad():
        rest = body().vertices[0]
        camera = front_shot_cameras(rest, ShotSettings(width=size, height=size))[0]
    faces = body.faces
    params = {"body_pose": torch.zeros(1, 21, 3), "betas": torch.zeros(1, 16)}

    def fresh() -> MeshGaussians:
        return MeshGaussians.on_mesh(rest, faces, body.info.num_faces, sh_degree=1)

    with torch.no_grad():
        posed = pose_gaussians(body, fresh(), **params)
        out = rasterize_gaussians(
            posed.means, posed.quats, posed.scales, posed.opacities, posed.sh,
            camera.world_to_cam[None, None].float(), camera.K[None, None].float(), size, size,
            sh_degree=1, backend="cpu")
        alpha = out.alpha[0, 0, ..., 0].clamp(0, 1)
        noise = torch.rand(out.rgb.shape[2:], generator=torch.Generator().manual_seed(0))
        photo_rgb = (out.rgb[0, 0] / alpha.clamp_min(1e-6)[..., None] + 0.2 * noise).clamp(0, 1)
    rows = torch.nonzero(alpha.amax(1) > 0.5)[:, 0]
    cols = torch.nonzero(alpha.amax(0) > 0.5)[:, 0]
    box = (slice(None), slice(None), slice(int(rows[0]), int(rows[-1]) + 1),
           slice(int(cols[0]), int(cols[-1]) + 1))

    gaussians = fresh().requires_grad_(True)
    vertices = rest[None].clone().requires_grad_(True)
    image = photo_rgb.permute(2, 0, 1)[None]
    target = image.flip(-1).contiguous()
    topology = MeshTopology.from_faces(faces, rest.shape[0])
    offsets = (0.01 * torch.randn(rest.shape, generator=torch.Generator().manual_seed(1))
               ).requires_grad_(True)
    perceptual_loss = SSIMPerceptual()
    config = TrainConfig()

    def place() -> None:
        placed = gaussians.place(vertices, faces)
        (placed.means.sum() + placed.quats.sum() + placed.scales.sum()).backward()

    def d_ssim() -> None:
        losses.d_ssim(image.requires_grad_(True), target).backward()

    def percept() -> None:
        perceptual_loss(image[box].requires_grad_(True), target[box]).backward()

    def mesh_terms() -> None:
        (config.reg_laplacian * laplacian_loss(offsets, topology) + config.reg_normal
         * normal_consistency_loss(rest + offsets, faces, topology)).backward()

    def adam_step(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
        for p in gaussians.parameters():
            p.grad = torch.randn_like(p)
        return optimizer.step

    print(f"training step pieces: {body.info.num_faces} Gaussians, {size}² px, "
          f"{torch.get_num_threads()} threads, float32; ms forward + backward per call")
    print(f"  {'piece':14s} {'compiled':>10s} {'pytorch':>10s} {'ratio':>7s}")
    pieces = [("place", place), ("d-ssim", d_ssim), ("perceptual", percept),
              ("regularisers", mesh_terms)]
    for name, fn in pieces:
        fast = per_call(fn, args.repeats)
        with pytorch_only():
            slow = per_call(fn, args.repeats)
        print(f"  {name:14s} {fast:10.1f} {slow:10.1f} {slow / fast:6.1f}x")
    fused = per_call(adam_step(trainer.make_optimizer(gaussians, config)), args.repeats)
    with pytorch_only():
        loop = per_call(adam_step(trainer.make_optimizer(gaussians, config)), args.repeats)
    print(f"  {'adam':14s} {fused:10.1f} {loop:10.1f} {loop / fused:6.1f}x")

    photo = TrainView(photo_rgb, alpha, params, camera, "photo")
    label = TrainView(photo_rgb.flip(1), alpha.flip(1), params, camera, "view:front")

    def train(count: int) -> None:
        config = TrainConfig(steps=count, resolution=size, densify_from=10**6,
                             densify_until=10**6 + 1)
        train_avatar(body, fresh(), photo, [label], config, device="cpu",
                     perceptual=perceptual_loss, backend="cpu")

    def step_cost() -> tuple[float, float]:
        train(2)  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        train(args.steps)
        return ((time.perf_counter() - wall) / args.steps * 1e3,
                (time.process_time() - cpu) / args.steps * 1e3)

    fast = step_cost()
    with pytorch_only():
        slow = step_cost()
    print(f"whole steps ({args.steps}, with the input-view evaluations before and after):")
    print(f"  compiled: {fast[0]:6.1f} ms wall, {fast[1]:6.1f} ms CPU per step "
          f"({1e3 / fast[0]:.1f} steps/s)")
    print(f"  pytorch : {slow[0]:6.1f} ms wall, {slow[1]:6.1f} ms CPU per step "
          f"({1e3 / slow[0]:.1f} steps/s); {slow[0] / fast[0]:.2f}x the compiled wall time")


if __name__ == "__main__":
    main()
