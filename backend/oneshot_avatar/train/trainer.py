"""Fit mesh-bound Gaussians to the photo and to pseudo-label frames.

One step: pick views (the photo, or a label frame with probability ``label_probability``),
pose the avatar with each view's SMPL-X parameters, rasterize at the view's camera over a
background, compare with the target composited over the same background, add the regularisers,
take an Adam step; at intervals densify and prune. Deterministic for a seed on the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from oneshot_avatar.avatar import FixedPose, MeshGaussians
from oneshot_avatar.cameras import Camera
from oneshot_avatar.errors import UserError
from oneshot_avatar.render.posed import render_posed
from oneshot_avatar.render.rasterize import RasterBackend
from oneshot_avatar.train import checkpoint as ckpt
from oneshot_avatar.train.config import BACKGROUND_COLORS, TrainConfig
from oneshot_avatar.train.densification import (
    GradientStats,
    densify_and_prune,
    screen_gradient_norms,
)
from oneshot_avatar.train.foreground import foreground_colors
from oneshot_avatar.train.losses import d_ssim, l1, mask_loss, psnr
from oneshot_avatar.train.perceptual import Perceptual, make_perceptual
from oneshot_avatar.train.regularizers import (
    MeshTopology,
    laplacian_loss,
    normal_consistency_loss,
    offset_magnitude_loss,
    position_loss,
    scale_loss,
)

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, dict[str, float]], None]
DECAYING_GROUPS = ("local_means", "vertex_offsets")


@dataclass
class TrainView:
    """One supervision image: the photo or a pseudo-label frame."""

    image: Tensor  # [H, W, 3] float in [0, 1]
    mask: Tensor  # [H, W] float in [0, 1], 1 = person
    params: dict[str, Tensor]  # SMPL-X parameters, batch 1
    camera: Camera  # width x height = the image's
    kind: str = "photo"
    # The solid colour behind the person where mask < 1 (a rendered label frame), or None (a
    # photo: its backdrop is estimated around the person; see train.foreground).
    background: tuple[float, float, float] | None = None


@dataclass
class TrainResult:
    gaussians: MeshGaussians
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class _View:
    """A view resized to the training resolution, on the training device."""

    image: Tensor  # [3, H, W]
    mask: Tensor  # [1, H, W]
    params: dict[str, Tensor]
    viewmat: Tensor  # [4, 4]
    K: Tensor  # [3, 3]
    width: int
    height: int
    is_photo: bool
    box: tuple[int, int, int, int]  # (top, bottom, left, right) around the person
    pose: FixedPose  # the body in the view's pose, batch 1 (offsets are the only free input)


# ---------------------------------------------------------------------------------------------
# Views


def _check_view(view: TrainView, field_name: str) -> None:
    image, mask = view.image, view.mask
    if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[2] != 3:
        shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise UserError(f"image must be a [H, W, 3] tensor, got {shape}", field=f"{field_name}.image")
    if not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(image.shape[:2]):
        shape = list(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise UserError(f"mask must be [H, W] = {list(image.shape[:2])}, got {shape}",
                        field=f"{field_name}.mask")
    if (view.camera.width, view.camera.height) != (image.shape[1], image.shape[0]):
        raise UserError(f"the camera is {view.camera.width}x{view.camera.height} but the image "
                        f"is {image.shape[1]}x{image.shape[0]}", field=f"{field_name}.camera")
    for name, value in view.params.items():
        if not isinstance(value, Tensor) or value.ndim == 0 or value.shape[0] != 1:
            shape = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise UserError(f"SMPL-X parameters must be tensors of batch 1, got {shape}",
                            field=f"{field_name}.params.{name}")
    for name, value in (("image", image), ("mask", mask)):
        v = value.detach()
        if not bool(torch.isfinite(v).all()) or float(v.min()) < 0 or float(v.max()) > 1:
            raise UserError(f"{name} values must be finite and in [0, 1]", field=f"{field_name}.{name}")


def _prepare_view(body, view: TrainView, resolution: int, device: torch.device,
                  is_photo: bool, foreground_edges: bool = True) -> _View:
    height, width = view.image.shape[:2]
    scale = resolution / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    image = view.image.detach().to(device=device, dtype=torch.float32).permute(2, 0, 1)
    mask = view.mask.detach().to(device=device, dtype=torch.float32)[None]
    camera = view.camera
    if (new_w, new_h) != (width, height):
        stacked = torch.cat([image, mask])[None]
        stacked = F.interpolate(stacked, size=(new_h, new_w), mode="bilinear",
                                align_corners=False, antialias=new_w < width)[0].clamp(0, 1)
        image, mask = stacked[:3], stacked[3:]
        camera = camera.resized(new_w, new_h)
    if foreground_edges:
        image = foreground_colors(image, mask, view.background)
    camera = camera.to(device=device, dtype=torch.float32)
    params = {k: v.detach().to(device=device, dtype=torch.float32) for k, v in view.params.items()}
    return _View(image, mask, params, camera.world_to_cam, camera.K, new_w, new_h, is_photo,
                 _person_box(mask), FixedPose.of(body, **params))


# ---------------------------------------------------------------------------------------------
# Pieces of a step


def _pick_views(generator: torch.Generator, config: TrainConfig, num_labels: int) -> list[int]:
    """Indices of the views of one step: -1 = the photo, 0.. = label frames."""
    picks = []
    for _ in range(config.batch_views):
        use_label = float(torch.rand((), generator=generator)) < config.label_probability
        if use_label and num_labels:
            picks.append(int(torch.randint(num_labels, (), generator=generator)))
        else:
            picks.append(-1)
    return picks


def _backgrounds(generator: torch.Generator, config: TrainConfig, count: int) -> Tensor:
    if config.background == "random":
        return torch.rand(count, 3, generator=generator)
    return torch.tensor(BACKGROUND_COLORS[config.background]).expand(count, 3).clone()


def _render(body, gaussians: MeshGaussians, views: Sequence[_View], backgrounds: Tensor,
            backend: RasterBackend) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Rendered rgb [B, 3, H, W] and alpha [B, 1, H, W] of same-size views, the posed means
    [B, N, 3], viewmats [B, 1, 4, 4] and Ks [B, 1, 3, 3]."""
    viewmats = torch.stack([v.viewmat for v in views])[:, None]
    Ks = torch.stack([v.K for v in views])[:, None]
    rendered = render_posed(body, gaussians, FixedPose.cat([v.pose for v in views]), viewmats, Ks,
                            views[0].width, views[0].height,
                            backgrounds=backgrounds.to(views[0].image)[:, None], backend=backend)
    out, means = rendered.raster, rendered.posed.means
    rgb = out.rgb[:, 0].permute(0, 3, 1, 2)
    alpha = out.alpha[:, 0].permute(0, 3, 1, 2)
    return rgb, alpha, means, viewmats, Ks


def _person_box(mask: Tensor, margin: float = 0.08, minimum: int = 32) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) around ``mask [1, H, W] > 0.5``, padded; whole image when
    the mask is empty."""
    _, h, w = mask.shape
    rows = torch.nonzero(mask[0].amax(dim=1) > 0.5).squeeze(1)
    cols = torch.nonzero(mask[0].amax(dim=0) > 0.5).squeeze(1)
    if len(rows) == 0:
        return 0, h, 0, w
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    pad = int(margin * max(bottom - top, right - left))

    def widen(lo: int, hi: int, size: int) -> tuple[int, int]:
        lo, hi = lo - pad, hi + pad
        short = max(0, min(minimum, size) - (hi - lo))
        lo, hi = lo - short // 2, hi + short - short // 2
        shift = max(0, -lo) - max(0, hi - size)
        return max(0, lo + shift), min(size, hi + shift)

    top, bottom = widen(top, bottom, h)
    left, right = widen(left, right, w)
    return top, bottom, left, right


def view_losses(rgb: Tensor, alpha: Tensor, target: Tensor, mask: Tensor, is_photo: bool,
                box: tuple[int, int, int, int], config: TrainConfig,
                perceptual: Perceptual) -> dict[str, Tensor]:
    """Weighted loss terms of one view: ``rgb, target [3, H, W]``, ``alpha, mask [1, H, W]``;
    the target is already composited over the render's background. Perceptual terms see only
    ``box`` (top, bottom, left, right), the region around the person."""
    pred, tgt = rgb[None], target[None]
    terms = {"mask": config.mask * mask_loss(alpha[None], mask[None])}
    top, bottom, left, right = box
    crop = (slice(None), slice(None), slice(top, bottom), slice(left, right))
    if is_photo:
        terms["photo_l1"] = config.photo_l1 * l1(pred, tgt)
        terms["photo_dssim"] = config.photo_dssim * d_ssim(pred, tgt)
        if config.photo_lpips and perceptual.name.startswith("lpips"):
            terms["photo_lpips"] = config.photo_lpips * perceptual(pred[crop], tgt[crop])
    else:
        terms["label_l1"] = config.label_l1 * l1(pred, tgt)
        terms["label_perceptual"] = config.label_perceptual * perceptual(pred[crop], tgt[crop])
    return terms


def regularisation(gaussians: MeshGaussians, base_rest: Tensor, faces: Tensor,
                   topology: MeshTopology, config: TrainConfig,
                   offset_prior: Tensor | None = None) -> dict[str, Tensor]:
    """Weighted regulariser terms (weights of 0 are skipped). The offset terms (magnitude and
    Laplacian) act on the offsets' departure from ``offset_prior [V, 3]`` (the person's shape
    beyond the body) when given, else on the offsets themselves."""
    offsets = gaussians.vertex_offsets
    change = offsets if offset_prior is None else offsets - offset_prior
    terms: dict[str, Callable[[], Tensor]] = {
        "reg_laplacian": lambda: laplacian_loss(change, topology),
        "reg_offset": lambda: offset_magnitude_loss(change),
        "reg_normal": lambda: normal_consistency_loss(base_rest + offsets, faces, topology),
        "reg_position": lambda: position_loss(gaussians.local_means, config.position_tolerance),
        "reg_scale": lambda: scale_loss(gaussians.log_scales, config.scale_tolerance),
    }
    return {name: getattr(config, name) * fn() for name, fn in terms.items() if getattr(config, name)}


def make_optimizer(gaussians: MeshGaussians, config: TrainConfig) -> torch.optim.Adam:
    """Adam with one group per parameter, each named after it (``group["name"]``)."""
    rates = {
        "local_means": config.lr_means, "local_quats": config.lr_quats,
        "log_scales": config.lr_scales, "opacity_logits": config.lr_opacity,
        "sh0": config.lr_sh0, "sh_rest": config.lr_sh_rest, "vertex_offsets": config.lr_offsets,
    }  # fmt: skip
    groups = [{"params": [getattr(gaussians, name)], "lr": lr, "name": name, "base_lr": lr}
              for name, lr in rates.items()]
    # the fused kernel updates all groups in one pass: 3 ms per step against 10 ms for the
    # per-tensor loop on the CPU (the fast preset's seven groups, this 2-core machine)
    fused = gaussians.local_means.device.type in ("cpu", "cuda")
    return torch.optim.Adam(groups, eps=1e-15, fused=fused)


def _set_learning_rates(optimizer: torch.optim.Optimizer, step: int, config: TrainConfig) -> None:
    """Exponential decay of the position groups from their base rate to ``lr_final_factor``
    times it over the run."""
    factor = config.lr_final_factor ** (step / max(1, config.steps - 1))
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * (factor if group["name"] in DECAYING_GROUPS else 1.0)


@torch.no_grad()
def evaluate_view(body, gaussians: MeshGaussians, view: _View, backend: RasterBackend) -> dict[str, float]:
    """PSNR of the render over black against the masked target: whole image and inside the
    mask."""
    black = torch.zeros(1, 3)
    rgb, _alpha, *_ = _render(body, gaussians, [view], black, backend)
    target = (view.image * view.mask)[None]
    return {"psnr": psnr(rgb, target), "psnr_mask": psnr(rgb, target, view.mask[None])}


# ---------------------------------------------------------------------------------------------
# The loop


def train_avatar(
    body,
    gaussians: MeshGaussians,
    photo: TrainView,
    labels: Sequence[TrainView],
    config: TrainConfig,
    *,
    device: torch.device | str,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    perceptual: Perceptual | None = None,
    backend: RasterBackend = "auto",
    offset_prior: Tensor | None = None,
) -> TrainResult:
    """Train ``gaussians`` (in place; moved to ``device``) on the photo and label views.

    ``body`` must live on ``device``. ``progress(step, total, losses)`` is called after every
    step (an exception raised there stops training; the last checkpoint stays). With
    ``checkpoint``, the state is saved every ``config.checkpoint_every`` steps and at the end;
    with ``resume`` and an existing checkpoint, training continues from its step and ends in
    the state an uninterrupted run would reach. On the CPU, PyTorch's deterministic algorithms
    are switched on while training (the default parallel scatter-adds are not bitwise
    reproducible with several threads). The report holds ``steps``, ``seconds``,
    ``final_losses``, ``history`` (every ``config.history_every`` steps), ``input_view``
    PSNR ``before``/``after``, ``perceptual``, ``densify_events``, ``num_gaussians``.
    ``offset_prior [V, 3]``: the mesh offsets the regularisers pull towards (the person's shape
    beyond the body, :mod:`oneshot_avatar.priors.outline`; default zero).
    """
    config.validate()
    device = torch.device(device)
    with _deterministic(device.type == "cpu"):
        return _train(body, gaussians, photo, labels, config, device=device, seed=seed,
                      checkpoint=checkpoint, resume=resume, progress=progress,
                      perceptual=perceptual, backend=backend, offset_prior=offset_prior)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def _train(body, gaussians: MeshGaussians, photo: TrainView, labels: Sequence[TrainView],
           config: TrainConfig, *, device: torch.device, seed: int, checkpoint: str | Path | None,
           resume: bool, progress: Progress | None, perceptual: Perceptual | None,
           backend: RasterBackend, offset_prior: Tensor | None = None) -> TrainResult:
    if body.device.type != device.type:
        raise ValueError(f"the body model is on {body.device} but training runs on {device}")
    if gaussians.num_faces != body.faces.shape[0]:
        raise UserError(f"the Gaussians are bound to {gaussians.num_faces} triangles but the "
                        f"body has {body.faces.shape[0]}", field="gaussians")
    if gaussians.sh_degree != config.sh_degree:
        raise ValueError(f"the Gaussians have SH degree {gaussians.sh_degree} but the config "
                         f"says {config.sh_degree}; make them with the config's degree")
    _check_view(photo, "photo")
    for i, label in enumerate(labels):
        _check_view(label, f"labels[{i}]")
    gaussians.to(device)
    if offset_prior is not None:
        if tuple(offset_prior.shape) != (gaussians.num_vertices, 3):
            raise UserError(f"expected offsets [{gaussians.num_vertices}, 3], got "
                            f"{tuple(offset_prior.shape)}", field="offset_prior")
        offset_prior = offset_prior.detach().to(device=device,
                                                dtype=gaussians.vertex_offsets.dtype)
    perceptual = perceptual if perceptual is not None else make_perceptual(device)
    photo_view = _prepare_view(body, photo, config.resolution, device, True,
                               config.foreground_edges)
    label_views = [_prepare_view(body, v, config.resolution, device, False,
                                 config.foreground_edges) for v in labels]
    faces = body.faces
    topology = MeshTopology.from_faces(faces, gaussians.num_vertices).to(device)
    with torch.no_grad():
        base_rest = body.shape_rest(photo_view.params.get("betas"), batch=1)[0][0]

    generator = torch.Generator(device="cpu").manual_seed(seed)
    optimizer = make_optimizer(gaussians, config)
    stats = GradientStats(gaussians.num_gaussians, device)
    run = {"num_faces": gaussians.num_faces, "num_vertices": gaussians.num_vertices,
           "sh_degree": gaussians.sh_degree, "initial_gaussians": gaussians.num_gaussians,
           "perceptual": perceptual.name}
    report: dict[str, Any] = {
        "steps": 0, "seconds": 0.0, "final_losses": {}, "history": [], "densify_events": [],
        "perceptual": perceptual.name, "input_view": {}, "resumed_from": None,
    }
    start = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and resume and path.exists():
        data = ckpt.read_checkpoint(path)
        ckpt.check_compatible(data, path, config=config.to_dict(), seed=seed, run=run)
        ckpt.load_gaussians_state(gaussians, data["gaussians"])
        optimizer = make_optimizer(gaussians, config)
        optimizer.load_state_dict(data["optimizer"])
        generator.set_state(data["rng"])
        stats.load_state_dict(data["stats"])
        report = data["report"]
        start = report["resumed_from"] = int(data["step"])
        logger.info("training resumes from step %d (%s)", start, path)
    else:
        report["input_view"]["before"] = evaluate_view(body, gaussians, photo_view, backend)

    def save(step: int) -> None:
        if path is not None:
            ckpt.save_checkpoint(path, {
                "step": step, "config": config.to_dict(), "seed": seed, "run": run,
                "gaussians": ckpt.gaussians_state(gaussians), "optimizer": optimizer.state_dict(),
                "rng": generator.get_state(), "stats": stats.state_dict(), "report": report,
            })

    views = [photo_view, *label_views]
    began = time.perf_counter()
    elapsed_before = float(report["seconds"])
    for step in range(start, config.steps):
        done = step + 1
        _set_learning_rates(optimizer, step, config)
        picks = _pick_views(generator, config, len(label_views))
        backgrounds = _backgrounds(generator, config, len(picks))
        chosen = [views[p + 1] for p in picks]
        terms = _step_losses(body, gaussians, chosen, backgrounds, config, perceptual, backend,
                             stats if done <= config.densify_until else None)
        terms.update(regularisation(gaussians, base_rest, faces, topology, config, offset_prior))
        total = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        values = torch.stack([v.detach() for v in (*terms.values(), total)]).tolist()
        losses = dict(zip([*terms, "total"], values))
        if config.densify_from <= done <= config.densify_until and done % config.densify_every == 0:
            event = _densify(gaussians, optimizer, stats, base_rest, faces, done, config, generator)
            report["densify_events"].append(event)
        report["steps"] = done
        report["seconds"] = elapsed_before + time.perf_counter() - began
        report["final_losses"] = losses
        if done % config.history_every == 0 or done == config.steps:
            report["history"].append({"step": done, **losses})
        if done % config.checkpoint_every == 0 or done == config.steps:
            save(done)
        if progress is not None:
            try:
                progress(done, config.steps, losses)
            except BaseException:
                # Stopped between two steps (a server shutting down, a cancel): keep the steps
                # done since the last checkpoint, so a resumed run goes on from here.
                if done % config.checkpoint_every and done != config.steps:
                    save(done)
                raise

    report["input_view"]["after"] = evaluate_view(body, gaussians, photo_view, backend)
    report["num_gaussians"] = gaussians.num_gaussians
    return TrainResult(gaussians=gaussians, report=report)


def _densify(gaussians: MeshGaussians, optimizer: torch.optim.Optimizer, stats: GradientStats,
             base_rest: Tensor, faces: Tensor, step: int, config: TrainConfig,
             generator: torch.Generator) -> dict[str, int]:
    with torch.no_grad():
        rest = base_rest + gaussians.vertex_offsets
    event = densify_and_prune(
        gaussians, optimizer, stats, rest, faces, step=step,
        grad_threshold=config.densify_grad_threshold, split_scale=config.densify_split_scale,
        max_gaussians=config.max_gaussians, prune_opacity=config.prune_opacity,
        generator=generator,
    )
    logger.info("step %d: densified (%s)", step, event)
    return event.as_dict()


def _step_losses(body, gaussians: MeshGaussians, views: Sequence[_View], backgrounds: Tensor,
                 config: TrainConfig, perceptual: Perceptual, backend: RasterBackend,
                 stats: GradientStats | None) -> dict[str, Tensor]:
    """Render the step's views (batched when they share one size) and average their loss
    terms; registers a hook feeding the densification statistics."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, view in enumerate(views):
        groups.setdefault((view.width, view.height), []).append(i)
    summed: dict[str, Tensor] = {}
    for (width, height), members in groups.items():
        group = [views[i] for i in members]
        rgb, alpha, means, viewmats, Ks = _render(body, gaussians, group, backgrounds[members], backend)
        if stats is not None and means.requires_grad:
            _feed_stats(means, viewmats, Ks, width, height, len(views), stats)
        for b, view in enumerate(group):
            bg = backgrounds[members[b]].to(rgb)[:, None, None]
            target = view.image * view.mask + bg * (1 - view.mask)
            for name, value in view_losses(rgb[b], alpha[b], target, view.mask, view.is_photo,
                                           view.box, config, perceptual).items():
                summed[name] = summed.get(name, 0.0) + value / len(views)
    return summed


def _feed_stats(means: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                num_views: int, stats: GradientStats) -> None:
    """Once the gradient of the posed means is known, add its screen-space norms to
    ``stats``, times the number of views the loss was averaged over (as gsplat counts)."""
    detached = means.detach()

    def hook(grad: Tensor) -> None:
        norms, visible = screen_gradient_norms(detached, grad.detach() * num_views,
                                               viewmats.detach(), Ks.detach(), width, height)
        if norms.shape[-1] == stats.grad_sum.shape[0]:
            stats.add(norms, visible)

    means.register_hook(hook)
