"""Render requests: checked and turned into a motion clip plus cameras (in the request thread,
cheap), then rendered on the GPU worker through ``render.shots.render_to_sink`` into a sink of
``render.output`` (a zip of PNGs encoded on other threads, or one PNG). The ``front`` / ``orbit``
presets are framed on the worker, once the avatar is loaded, by the CLI's own
``render.shots.preset_cameras``, so both frame the same body."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from oneshot_avatar.cameras import Camera, from_blender
from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import MotionClip, builtin_clip, builtin_names
from oneshot_avatar.motion.rows import clip_from_rows
from oneshot_avatar.service import schemas


@dataclass(frozen=True)
class PresetShot:
    """A ``front`` / ``orbit`` camera, framed on the posed avatar when the plan is rendered."""

    name: str
    width: int
    height: int

    def resized(self, width: int, height: int) -> PresetShot:
        return PresetShot(self.name, width, height)


@dataclass
class RenderPlan:
    avatar_id: str
    clip: MotionClip  # exactly the frames to render
    cameras: list[Camera | PresetShot]  # 1 or one per frame (an orbit preset: one per frame)
    width: int
    height: int
    background: tuple[float, float, float] | None
    format: str

    @property
    def num_frames(self) -> int:
        return self.clip.num_frames


def _clip_from_params(motion: schemas.MotionParams, max_frames: int) -> MotionClip:
    return clip_from_rows(motion.params.model_dump(exclude_none=True), fps=motion.fps,
                          expression_space=motion.expression_space, name=motion.name,
                          source="request", max_frames=max_frames, field="motion.params")


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


def request_cameras(specs, frames: int, convert) -> list:
    """A request's cameras (``convert(spec, index)`` each): one for every frame or one for all,
    all of one image size."""
    if len(specs) not in (1, frames):
        raise UserError(f"give 1 camera or one per frame ({frames}); got {len(specs)}",
                        field="cameras")
    cameras = [convert(spec, i) for i, spec in enumerate(specs)]
    if len({(c.width, c.height) for c in cameras}) > 1:
        raise UserError("all cameras must render the same image size", field="cameras")
    return cameras


def opencv_camera(spec: schemas.OpenCVCamera) -> Camera:
    """A request's OpenCV camera (the camera file's fields) as a :class:`Camera`."""
    from oneshot_avatar.cameras import CONVENTION, SCHEMA

    return Camera.from_dict({"schema": SCHEMA, "convention": CONVENTION,
                             **spec.model_dump(exclude_none=True)})


def camera_error(error: UserError, spec, index: int) -> UserError:
    """``error`` about camera ``index`` with its field named as in the request
    (``cameras[2].fx``, ``cameras[0].blender.lens``)."""
    inner = f".{error.field}" if error.field else ""
    if isinstance(spec, schemas.BlenderCamera) and error.field:
        inner = f".blender.{error.field}"
    return UserError(error.message, field=f"cameras[{index}]{inner}")


def _camera(spec, index: int) -> Camera | PresetShot:
    try:
        if isinstance(spec, schemas.OpenCVCamera):
            return opencv_camera(spec)
        if isinstance(spec, schemas.BlenderCamera):
            return from_blender(**spec.blender.model_dump())
        return PresetShot(spec.preset, spec.width, spec.height)
    except UserError as error:
        raise camera_error(error, spec, index) from None


def plan_render(request: schemas.RenderRequest, *, max_frames: int, max_pixels: int,
                num_expressions: int) -> RenderPlan:
    """Check a render request and resolve its motion and cameras (no rendering)."""
    if isinstance(request.motion, schemas.BuiltinMotion):
        clip = _clip_from_builtin(request.motion, max_frames)
    else:
        clip = _clip_from_params(request.motion, max_frames)
    frames = clip.num_frames
    cameras = request_cameras(request.cameras, frames, _camera)
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


def plan_cameras(plan: RenderPlan, avatar, body) -> list[Camera]:
    """The plan's cameras, its presets framed on ``avatar`` as the CLI frames them."""
    from oneshot_avatar.render.shots import ShotSettings, preset_cameras

    cameras: list[Camera] = []
    for camera in plan.cameras:
        if isinstance(camera, PresetShot):
            settings = ShotSettings(width=camera.width, height=camera.height)
            cameras += preset_cameras(camera.name, avatar, body, plan.clip, range(plan.num_frames),
                                      settings)
        else:
            cameras.append(camera)
    return cameras


def render_plan(plan: RenderPlan, avatar, body, sink, *, batch_frames: int, backend: str,
                after_batch: Callable[[int], None] | None = None) -> list:
    """Render every frame of ``plan`` into ``sink`` (on the worker thread); returns what the
    sink wrote. ``after_batch(done)`` runs between batches (progress, cancel)."""
    from oneshot_avatar.render.shots import ShotSettings, render_to_sink

    settings = ShotSettings(width=plan.width, height=plan.height, background=plan.background,
                            batch_frames=batch_frames, backend=backend)
    return render_to_sink(avatar, body, plan.clip, plan_cameras(plan, avatar, body),
                          range(plan.num_frames), settings, sink, quiet=True,
                          after_batch=after_batch)
