"""Blender cameras <-> :class:`Camera`: lens, sensor fit, shift, pixel aspect and the Z-up
world (the twin of the add-on's ``blender_addon/core/camera.py``, parity-tested)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from oneshot_avatar.cameras.camera import (
    ROTATION_ATOL,
    Camera,
    _check_float,
    _check_positive_int,
    _fail,
    _to_float64_cpu,
)
from oneshot_avatar.cameras.makers import _rigid, intrinsics
from oneshot_avatar.errors import UserError

SensorFit = Literal["AUTO", "HORIZONTAL", "VERTICAL"]
SENSOR_FITS: tuple[str, ...] = ("AUTO", "HORIZONTAL", "VERTICAL")

# world = BLENDER_TO_WORLD @ blender, for points and directions.
BLENDER_TO_WORLD: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0))
# OpenCV camera axes <-> Blender camera axes (its own inverse).
_FLIP_YZ: tuple[float, ...] = (1.0, -1.0, -1.0)


# --------------------------------------------------------------------------------------------
# Blender


def _blender_to_world(dtype: torch.dtype = torch.float64) -> Tensor:  # [3, 3]
    return torch.tensor(BLENDER_TO_WORLD, dtype=dtype)


def _blender_matrix_to_cam_to_world(matrix_world: Any) -> Tensor:  # -> [4, 4] float64
    """Blender camera ``matrix_world`` (Z-up world, scale allowed) -> our OpenCV cam_to_world.

    Scale is removed by normalising the three axis columns, as Blender does for rendering
    (``normalize_m4``); shear and mirroring are refused."""
    m = _to_float64_cpu(matrix_world, "matrix_world", (4, 4))
    if not torch.allclose(m[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64),
                          atol=1e-6, rtol=0.0):
        _fail(f"the last row must be [0, 0, 0, 1], got {m[3].tolist()}", "matrix_world")
    axes = m[:3, :3]
    lengths = torch.linalg.norm(axes, dim=0)
    if bool((lengths < 1e-9).any()):
        _fail(f"the camera object has zero scale (axis lengths {lengths.tolist()}); give it a "
              "non-zero scale", "matrix_world")
    rotation_blender = axes / lengths
    error = (rotation_blender.T @ rotation_blender - torch.eye(3, dtype=torch.float64)).abs()
    if error.max().item() > ROTATION_ATOL:
        _fail(f"the camera's axes are not perpendicular after removing scale (shear, e.g. from "
              f"a non-uniformly scaled parent): {axes.tolist()}; remove the shear",
              "matrix_world")
    if torch.linalg.det(rotation_blender).item() < 0:
        _fail("the camera object is mirrored (negative scale); give it a positive scale",
              "matrix_world")
    to_world = _blender_to_world()
    flip = torch.diag(torch.tensor(_FLIP_YZ, dtype=torch.float64))
    rotation = to_world @ rotation_blender @ flip  # OpenCV camera axes -> our world
    return _rigid(rotation, to_world @ m[:3, 3])


def _render_size(resolution_x: int, resolution_y: int, resolution_percentage: int
                 ) -> tuple[int, int]:
    resolution_x = _check_positive_int(resolution_x, "resolution_x")
    resolution_y = _check_positive_int(resolution_y, "resolution_y")
    percentage = _check_positive_int(resolution_percentage, "resolution_percentage")
    width, height = resolution_x * percentage // 100, resolution_y * percentage // 100
    if width < 1 or height < 1:
        raise UserError(f"{resolution_x}x{resolution_y} at {percentage}% renders no pixels "
                        f"({width}x{height}); raise the percentage",
                        field="resolution_percentage")
    return width, height


def blender_intrinsics(*, lens_mm: float, sensor_width_mm: float, sensor_height_mm: float,
                       sensor_fit: SensorFit, shift_x: float, shift_y: float, width: int,
                       height: int, pixel_aspect_x: float = 1.0, pixel_aspect_y: float = 1.0
                       ) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` in pixels for a Blender perspective camera rendering ``width x
    height`` pixels (already multiplied by the resolution percentage). The formulas are in
    :func:`from_blender`."""
    lens = _check_float(lens_mm, "lens_mm", positive=True)
    sensor_width = _check_float(sensor_width_mm, "sensor_width_mm", positive=True)
    sensor_height = _check_float(sensor_height_mm, "sensor_height_mm", positive=True)
    if sensor_fit not in SENSOR_FITS:
        raise UserError(f"unknown sensor fit {sensor_fit!r}; expected one of {SENSOR_FITS}",
                        field="sensor_fit")
    aspect_x = _check_float(pixel_aspect_x, "pixel_aspect_x", positive=True)
    aspect_y = _check_float(pixel_aspect_y, "pixel_aspect_y", positive=True)
    shift_x = _check_float(shift_x, "shift_x")
    shift_y = _check_float(shift_y, "shift_y")
    ycor = aspect_y / aspect_x
    fit = sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if aspect_x * width >= aspect_y * height else "VERTICAL"
    sensor = sensor_height if sensor_fit == "VERTICAL" else sensor_width
    viewfac = width if fit == "HORIZONTAL" else ycor * height  # in horizontal-pixel units
    fx = lens * viewfac / sensor
    fy = fx / ycor
    cx = width / 2.0 - shift_x * viewfac
    cy = height / 2.0 + shift_y * viewfac / ycor
    return fx, fy, cx, cy


def from_blender(*, lens_mm: float, sensor_width_mm: float, sensor_height_mm: float,
                 sensor_fit: SensorFit, shift_x: float, shift_y: float, clip_start: float,
                 clip_end: float, resolution_x: int, resolution_y: int,
                 resolution_percentage: int = 100, pixel_aspect_x: float = 1.0,
                 pixel_aspect_y: float = 1.0, matrix_world: Any,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> Camera:
    """A Blender perspective camera (``bpy.types.Camera`` data + the object's ``matrix_world``
    + the scene's render settings) as our :class:`Camera`.

    Inputs: ``lens_mm``, ``sensor_*_mm`` millimetres; ``shift_x/y`` as in Blender (fractions of
    the fitted dimension); ``clip_*`` metres (scene unit scale 1 assumed); ``matrix_world``
    ``[4, 4]`` camera object -> Blender world (Z-up, metres), scale is removed.

    Blender's rules (``BKE_camera_params_compute_viewplane``), with the render size
    ``W = resolution_x * resolution_percentage // 100`` (same for ``H``) and
    ``ycor = pixel_aspect_y / pixel_aspect_x``::

        fit     = sensor_fit, and for AUTO: HORIZONTAL if pixel_aspect_x*W >= pixel_aspect_y*H
                  else VERTICAL  (the larger aspect-corrected dimension)
        sensor  = sensor_height_mm if sensor_fit == VERTICAL else sensor_width_mm
                  (the *requested* fit: AUTO always uses the width, even for portrait images)
        viewfac = W if fit == HORIZONTAL else ycor * H   (fitted dimension, in pixel widths)
        fx = lens_mm / sensor * viewfac
        fy = fx / ycor                                   (pixel aspect changes fy vs fx)
        cx = W / 2 - shift_x * viewfac
        cy = H / 2 + shift_y * viewfac / ycor

    With square pixels ``viewfac`` is ``S``, the fitted dimension in pixels, so
    ``cx = W/2 - shift_x*S`` and ``cy = H/2 + shift_y*S``: a positive ``shift_x`` moves the
    frame right, so the scene (and the principal point) moves left in the image; ``cy`` has the
    opposite sign because image ``v`` points down while Blender's shift_y points up.
    Blender's pixels span the view plane edge to edge, i.e. the same pixel-centre convention as
    this module. Camera axes: OpenCV = Blender camera axes with y and z negated; world =
    ``(bx, bz, -by)``.
    """
    width, height = _render_size(resolution_x, resolution_y, resolution_percentage)
    fx, fy, cx, cy = blender_intrinsics(
        lens_mm=lens_mm, sensor_width_mm=sensor_width_mm, sensor_height_mm=sensor_height_mm,
        sensor_fit=sensor_fit, shift_x=shift_x, shift_y=shift_y, width=width, height=height,
        pixel_aspect_x=pixel_aspect_x, pixel_aspect_y=pixel_aspect_y)
    near = _check_float(clip_start, "clip_start", positive=True)
    far = _check_float(clip_end, "clip_end", positive=True)
    if far <= near:
        raise UserError(f"clip_end ({far:g}) must be beyond clip_start ({near:g})",
                        field="clip_end")
    cam_to_world = _blender_matrix_to_cam_to_world(matrix_world)
    rotation = cam_to_world[:3, :3].T
    world_to_cam = _rigid(rotation, -rotation @ cam_to_world[:3, 3])
    return Camera(intrinsics(fx, fy, cx, cy, device=device, dtype=dtype),
                  world_to_cam.to(device=device, dtype=dtype), width, height, near, far)


def to_blender(camera: Camera, *, sensor_width_mm: float = 36.0,
               sensor_height_mm: float = 24.0) -> dict[str, Any]:
    """Blender settings reproducing ``camera``: the keyword arguments of :func:`from_blender`
    (plain floats / lists, JSON-friendly), so ``from_blender(**to_blender(cam))`` gives ``cam``
    back up to rounding.

    Uses sensor fit AUTO, resolution percentage 100 and the given sensor width, inverting the
    formulas of :func:`from_blender`. Non-square pixels (``fx != fy``) become a pixel aspect
    ``>= 1`` on one axis, as Blender requires.
    """
    width, height = camera.width, camera.height
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    sensor = _check_float(sensor_width_mm, "sensor_width_mm", positive=True)
    if abs(fx - fy) <= 1e-6 * max(fx, fy):
        aspect_x = aspect_y = 1.0
    elif fy > fx:  # pixels wider than tall
        aspect_x, aspect_y = fy / fx, 1.0
    else:
        aspect_x, aspect_y = 1.0, fx / fy
    ycor = aspect_y / aspect_x
    viewfac = width if aspect_x * width >= aspect_y * height else ycor * height
    to_blender_world = _blender_to_world().T
    flip = torch.diag(torch.tensor(_FLIP_YZ, dtype=torch.float64))
    cam_to_world = camera.cam_to_world.detach().cpu().double()
    matrix_world = _rigid(to_blender_world @ cam_to_world[:3, :3] @ flip,
                          to_blender_world @ cam_to_world[:3, 3])
    return {
        "lens_mm": fx * sensor / viewfac,
        "sensor_width_mm": sensor,
        "sensor_height_mm": _check_float(sensor_height_mm, "sensor_height_mm", positive=True),
        "sensor_fit": "AUTO",
        "shift_x": (width / 2.0 - cx) / viewfac,
        "shift_y": (cy - height / 2.0) * ycor / viewfac,
        "clip_start": camera.near,
        "clip_end": camera.far,
        "resolution_x": width,
        "resolution_y": height,
        "resolution_percentage": 100,
        "pixel_aspect_x": aspect_x,
        "pixel_aspect_y": aspect_y,
        "matrix_world": matrix_world.tolist(),
    }
