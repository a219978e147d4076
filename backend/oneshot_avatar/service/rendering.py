"""Render requests: checked and turned into a motion clip plus cameras (in the request thread,
cheap), then rendered on the GPU worker while PNGs are encoded on other threads."""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from oneshot_avatar.cameras import Camera, from_blender
from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import MotionClip, builtin_clip, builtin_names
from oneshot_avatar.service import schemas

PARAM_WIDTHS = {
    "global_orient": 3, "body_pose": 63, "jaw_pose": 3, "leye_pose": 3, "reye_pose": 3,
    "left_hand_pose": 45, "right_hand_pose": 45, "transl": 3,
}
_SHAPES = {"body_pose": (21, 3), "left_hand_pose": (15, 3), "right_hand_pose": (15, 3)}


@dataclass
class RenderPlan:
    avatar_id: str
    clip: MotionClip  # exactly the frames to render
    cameras: list[Camera]  # 1 or one per frame
    width: int
    height: int
    background: tuple[float, float, float] | None
    format: str

    @property
    def num_frames(self) -> int:
        return self.clip.num_frames


def _clip_from_params(motion: schemas.MotionParams, max_frames: int,
                      num_expressions: int) -> MotionClip:
    params = motion.params.model_dump(exclude_none=True)
    unknown = sorted(set(params) - set(PARAM_WIDTHS) - {"expression"})
    if unknown:
        raise UserError(f"unknown SMPL-X parameter(s) {unknown}; known: "
                        f"{sorted(PARAM_WIDTHS) + ['expression']}", field=f"motion.params.{unknown[0]}")
    if not params:
        raise UserError("give at least one parameter (e.g. 'body_pose'), one row per frame",
                        field="motion.params")
    counts = {name: len(rows) for name, rows in params.items()}
    frames = max(counts.values())
    if frames < 1 or frames > max_frames:
        raise UserError(f"{frames} frames; a request renders 1..{max_frames}", field="motion.params")
    arrays: dict[str, np.ndarray] = {}
    for name, width in PARAM_WIDTHS.items():
        rows = params.get(name)
        if rows is None:
            value = np.zeros((frames, width), np.float32)
        else:
            if len(rows) != frames:
                raise UserError(f"'{name}' has {len(rows)} rows but other parameters have {frames}; "
                                "give one row per frame for every parameter",
                                field=f"motion.params.{name}")
            if any(len(row) != width for row in rows):
                raise UserError(f"each row of '{name}' must have {width} numbers",
                                field=f"motion.params.{name}")
            value = np.asarray(rows, np.float32)
        arrays[name] = value.reshape((frames, *_SHAPES[name])) if name in _SHAPES else value
    expression = params.get("expression")
    space = motion.expression_space
    if expression is not None:
        if len(expression) != frames or len({len(row) for row in expression}) > 1:
            raise UserError(f"'expression' needs {frames} rows of equal length",
                            field="motion.params.expression")
        width = len(expression[0])
        if width and space is None:
            space = "arkit52" if width == 52 else "smplx-pca"
        expression = np.asarray(expression, np.float32).reshape(frames, width)
        if width == 0:
            expression, space = None, None
    return MotionClip(fps=motion.fps, expression=expression, expression_space=space,
                      name=motion.name, source="request", **arrays)


def _clip_from_builtin(motion: schemas.BuiltinMotion, max_frames: int) -> MotionClip:
    if motion.name not in builtin_names():
        raise UserError(f"no built-in clip {motion.name!r}; choose one of {builtin_names()}",
                        field="motion.name")
    clip = builtin_clip(motion.name, fps=motion.fps)
    start, stop = motion.frames if motion.frames is not None else (0, clip.num_frames)
    if not 0 <= start < stop <= clip.num_frames:
        raise UserError(f"frames [{start}, {stop}) are outside the clip's 0..{clip.num_frames} at "
                        f"{motion.fps:g} fps", field="motion.frames")
    if stop - start > max_frames:
        raise UserError(f"{stop - start} frames; a request renders at most {max_frames}",
                        field="motion.frames")
    return clip.slice(start, stop)


def _camera(spec, index: int, rest_vertices: torch.Tensor, frames: int) -> list[Camera]:
    from oneshot_avatar.render.shots import ShotSettings, front_shot_cameras, orbit_shot_cameras

    where = f"cameras[{index}]"
    try:
        if isinstance(spec, schemas.OpenCVCamera):
            from oneshot_avatar.cameras import CONVENTION, SCHEMA

            data = {"schema": SCHEMA, "convention": CONVENTION, **spec.model_dump(exclude_none=True)}
            return [Camera.from_dict(data)]
        if isinstance(spec, schemas.BlenderCamera):
            return [from_blender(**spec.blender.model_dump())]
        settings = ShotSettings(width=spec.width, height=spec.height)
        if spec.preset == "front":
            return front_shot_cameras(rest_vertices, settings)
        return orbit_shot_cameras(rest_vertices, frames, settings)
    except UserError as error:
        inner = f".{error.field}" if error.field else ""
        if isinstance(spec, schemas.BlenderCamera) and error.field:
            inner = f".blender.{error.field}"
        raise UserError(error.message, field=where + inner) from None


def plan_render(request: schemas.RenderRequest, *, rest_vertices: torch.Tensor, max_frames: int,
                max_pixels: int, num_expressions: int) -> RenderPlan:
    """Check a render request and resolve its motion and cameras (no rendering)."""
    if isinstance(request.motion, schemas.BuiltinMotion):
        clip = _clip_from_builtin(request.motion, max_frames)
    else:
        clip = _clip_from_params(request.motion, max_frames, num_expressions)
    frames = clip.num_frames
    if len(request.cameras) not in (1, frames):
        raise UserError(f"give 1 camera or one per frame ({frames}); got {len(request.cameras)}",
                        field="cameras")
    cameras: list[Camera] = []
    for i, spec in enumerate(request.cameras):
        cameras += _camera(spec, i, rest_vertices, frames)
    if len({(c.width, c.height) for c in cameras}) > 1:
        raise UserError("all cameras must render the same image size", field="cameras")
    if request.size is not None:
        width, height = request.size
        if not (8 <= width <= 8192 and 8 <= height <= 8192):
            raise UserError(f"size {width}x{height} is out of range (8..8192 per side)", field="size")
        cameras = [c.resized(width, height) for c in cameras]
    width, height = cameras[0].width, cameras[0].height
    if width * height > max_pixels:
        raise UserError(f"{width}x{height} is over the limit of {max_pixels} pixels per frame",
                        field="size")
    if request.format == "png" and frames != 1:
        raise UserError(f"format 'png' returns one frame; this request has {frames} (use 'zip')",
                        field="format")
    background = request.background
    if background is not None and not all(0.0 <= v <= 1.0 and math.isfinite(v) for v in background):
        raise UserError("background values must be in 0..1", field="background")
    return RenderPlan(avatar_id=request.avatar, clip=clip, cameras=cameras, width=width,
                      height=height, background=background, format=request.format)


def png_bytes(rgba: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def render_plan_frames(plan: RenderPlan, avatar, body, *, batch_frames: int, backend: str,
                       on_frame: Callable[[int, np.ndarray], None],
                       between_batches: Callable[[int], None] | None = None) -> None:
    """Render every frame of ``plan`` (on the worker thread), calling ``on_frame(i, rgba)``."""
    from oneshot_avatar.render.shots import ShotSettings, render_shot

    settings = ShotSettings(width=plan.width, height=plan.height, background=plan.background,
                            batch_frames=batch_frames, backend=backend)
    done = 0

    def progress(count: int) -> None:
        nonlocal done
        done += count
        if between_batches is not None:
            between_batches(done)

    for frame, rgba in render_shot(avatar, body, plan.clip, plan.cameras, range(plan.num_frames),
                                   settings, progress=progress):
        on_frame(frame, rgba)


class ZipOfFrames:
    """Frames encoded to PNG on ``pool`` and stored in order into a zip file (PNG is already
    compressed). At most ``window`` frames wait for encoding, so memory stays bounded."""

    def __init__(self, path: Path, pool: Executor, window: int = 32):
        self.path = path
        self.pool = pool
        self.window = window
        self.pending: list[tuple[int, Future]] = []
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED)
        self.count = 0

    def add(self, frame: int, rgba: np.ndarray) -> None:
        self.pending.append((frame, self.pool.submit(png_bytes, rgba)))
        while len(self.pending) > self.window:
            self._write_oldest()

    def _write_oldest(self) -> None:
        frame, future = self.pending.pop(0)
        self.zip.writestr(f"frame_{frame:05d}.png", future.result())
        self.count += 1

    def close(self) -> None:
        while self.pending:
            self._write_oldest()
        self.zip.close()

    def abort(self) -> None:
        for _, future in self.pending:
            future.cancel()
        self.pending.clear()
        try:
            self.zip.close()  # may fail again (a full disk): the file goes anyway
        except OSError:
            pass
        finally:
            self.path.unlink(missing_ok=True)
