"""Rendering an avatar for a motion clip and cameras: posing in batches of frames, rasterizing,
and turning the result into RGBA frames."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from oneshot_avatar.avatar import check_body_matches
from oneshot_avatar.body.smplx_layout import expression_space
from oneshot_avatar.cameras import Camera, look_at, orbit_cameras
from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import MotionClip
from oneshot_avatar.render.posed import camera_tensors, render_posed
from oneshot_avatar.render.rasterize import RasterBackend

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShotSettings:
    width: int = 512
    height: int = 512
    background: tuple[float, float, float] | None = None  # None: transparent (alpha kept)
    batch_frames: int = 8
    backend: RasterBackend = "auto"
    fov_y_degrees: float = 30.0


def expression_for_body(clip: MotionClip, expression_names: Sequence[str]) -> np.ndarray | None:
    """The clip's expressions as coefficients of the body's expression space, or None (neutral)
    when the clip's space does not match the body's."""
    names = list(expression_names)
    if clip.expression.shape[1] == 0 or not names:
        return None
    space = expression_space(names)
    if clip.expression_space == "arkit52" and space == "arkit52":
        if clip.expression.shape[1] == len(names):
            return clip.expression
    elif clip.expression_space == "smplx-pca" and space == "smplx-pca":
        out = np.zeros((clip.num_frames, len(names)), np.float32)
        width = min(len(names), clip.expression.shape[1])
        out[:, :width] = clip.expression[:, :width]
        return out
    logger.warning("the clip's %s expressions do not fit this body model's expressions; "
                   "rendering a neutral face", clip.expression_space)
    return None


def framing(rest_vertices: torch.Tensor, width: int, height: int, fov_y_degrees: float,
            margin: float = 1.15) -> tuple[torch.Tensor, float]:
    """Target point and distance at which a camera with this fov sees the whole body."""
    low = rest_vertices.min(dim=0).values
    high = rest_vertices.max(dim=0).values
    target = (low + high) / 2
    half_height = float(high[1] - low[1]) / 2 * margin
    half_width = float(max(high[0] - low[0], high[2] - low[2])) / 2 * margin
    tan_y = math.tan(math.radians(fov_y_degrees) / 2)
    tan_x = tan_y * width / height
    distance = max(half_height / tan_y, half_width / tan_x) + float(high[2] - low[2]) / 2
    return target, distance


def front_shot_cameras(rest_vertices: torch.Tensor, settings: ShotSettings) -> list[Camera]:
    target, distance = framing(rest_vertices, settings.width, settings.height, settings.fov_y_degrees)
    eye = target + torch.tensor([0.0, 0.0, distance], dtype=target.dtype)
    return [look_at(eye, target, width=settings.width, height=settings.height,
                    fov_y_degrees=settings.fov_y_degrees)]


def orbit_shot_cameras(rest_vertices: torch.Tensor, frames: int, settings: ShotSettings) -> list[Camera]:
    target, distance = framing(rest_vertices, settings.width, settings.height, settings.fov_y_degrees)
    return orbit_cameras(frames, radius=distance, height=float(target[1]), target=target,
                         width=settings.width, height_px=settings.height,
                         fov_y_degrees=settings.fov_y_degrees)


PRESETS = ("front", "orbit")


def preset_cameras(preset: str, avatar, body, clip: MotionClip, frames: range,
                   settings: ShotSettings) -> list[Camera]:
    """The ``front`` (one camera) or ``orbit`` (one per clip frame, a full turn over the clip)
    cameras of a shot, framing the avatar as posed and placed in the shot's first frame; the
    CLI and the service both frame their presets with this."""
    if preset not in PRESETS:
        raise UserError(f"camera preset must be one of {PRESETS}, got {preset!r}", field="camera")
    with torch.no_grad():
        first = {name: value[frames[0]:frames[0] + 1]
                 for name, value in clip.to_torch(body.device).items() if name != "expression"}
        first_pose = avatar.pose(body, **first).vertices[0].cpu()
    if preset == "front":
        return front_shot_cameras(first_pose, settings)
    return orbit_shot_cameras(first_pose, clip.num_frames, settings)


def _batches(frames: list[int], cameras: Sequence[Camera], size: int) -> Iterator[list[int]]:
    """``frames`` in batches of at most ``size`` consecutive frames whose cameras share their
    clip distances (the rasterizer takes one near/far per call)."""
    def clip(frame: int) -> tuple[float, float]:
        camera = cameras[frame] if len(cameras) > 1 else cameras[0]
        return camera.near, camera.far

    batch: list[int] = []
    for frame in frames:
        if batch and (len(batch) == size or clip(frame) != clip(batch[0])):
            yield batch
            batch = []
        batch.append(frame)
    if batch:
        yield batch


def render_shot(
    avatar,
    body,
    clip: MotionClip,
    cameras: Sequence[Camera],
    frames: range,
    settings: ShotSettings,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame, rgba)`` for each frame, rgba ``uint8 [H, W, 4]`` (alpha = coverage; with a
    background colour the RGB is composited over it and alpha is 255 where anything is drawn
    or background). ``cameras`` has one camera for all frames or one per clip frame."""
    if len(cameras) not in (1, clip.num_frames):
        raise UserError(f"need 1 camera or one per frame ({clip.num_frames}), got {len(cameras)}",
                        field="camera")
    device = body.device
    params = clip.to_torch(device)
    params.pop("expression")
    params.pop("betas", None)
    betas = avatar.betas[None].to(device)  # the avatar's own shape, whatever the clip says
    check_body_matches(avatar.meta, body, "avatar")
    expression = expression_for_body(clip, body.expression_names)
    for chunk in _batches(list(frames), cameras, settings.batch_frames):
        index = torch.tensor(chunk, device=device)
        frame_params = {k: v[index] for k, v in params.items()}
        frame_params["betas"] = betas
        if expression is not None:
            frame_params["expression"] = torch.as_tensor(expression[chunk], device=device)
        chosen = [cameras[i] if len(cameras) > 1 else cameras[0] for i in chunk]
        viewmats, Ks, width, height = camera_tensors(chosen, device)
        background = None
        if settings.background is not None:
            background = torch.tensor(settings.background, device=device).expand(len(chunk), 1, 3)
        with torch.no_grad():
            out = render_posed(body, avatar.gaussians, frame_params, viewmats[:, None], Ks[:, None],
                               width, height, backgrounds=background, backend=settings.backend,
                               near=chosen[0].near, far=chosen[0].far).raster
        rgb = out.rgb[:, 0].clamp(0, 1)
        alpha = out.alpha[:, 0].clamp(0, 1)
        if settings.background is not None:
            alpha = torch.ones_like(alpha)
        else:
            rgb = rgb / alpha.clamp_min(1e-6) * (alpha > 0)  # un-premultiply for straight alpha
        rgba = (torch.cat([rgb.clamp(0, 1), alpha], dim=-1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
        for i, frame in enumerate(chunk):
            yield frame, rgba[i]
        if progress is not None:
            progress(len(chunk))


def render_to_sink(avatar, body, clip: MotionClip, cameras: Sequence[Camera], frames: range,
                   settings: ShotSettings, sink, *, quiet: bool = False,
                   after_batch: Callable[[int], None] | None = None) -> list:
    """Render ``frames`` into ``sink`` (see ``render.output``) with a progress bar (none when
    ``quiet``); returns what the sink wrote. ``after_batch(done)`` is called with the number of
    frames rendered so far after each batch (an exception raised there stops the render). On
    any failure the sink is aborted, so nothing half-written is left behind."""

    from oneshot_avatar.progress import progress_bar

    bar = progress_bar(len(frames), "render", "frame", quiet=quiet)

    def progress(count: int) -> None:
        bar.update(count)
        if after_batch is not None:
            after_batch(bar.n)

    try:
        for frame, rgba in render_shot(avatar, body, clip, cameras, frames, settings, progress=progress):
            sink.write(frame, rgba)
        return sink.close()
    except BaseException:
        if hasattr(sink, "abort"):
            sink.abort()
        raise
    finally:
        bar.close()
