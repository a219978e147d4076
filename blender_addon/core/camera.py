"""A Blender camera's plain values -> the render API's camera (``{"blender": {...}}``), and the
same projection maths as the backend's ``oneshot_avatar.cameras.from_blender`` (numpy only).

Frames:

- SMPL-X world: +Y up, metres, the rest body faces +Z. The rig's armature space is this frame.
- The rig's armature object stands with a +90 deg rotation about X, so Blender sees Z-up.
- The backend takes ``matrix_world`` in a Blender world where the rig's armature object is at
  the identity apart from that +90 deg rotation. The add-on therefore sends
  ``R_x(+90) @ rig.matrix_world^-1 @ camera.matrix_world``: the camera relative to the rig,
  right wherever the user moved, turned or (uniformly) scaled the rig object.
- OpenCV camera: x right, y down, z forward; Blender camera: looks along -Z, +Y up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")
ROTATE_X_90 = np.array([[1.0, 0.0, 0.0, 0.0],
                        [0.0, 0.0, -1.0, 0.0],
                        [0.0, 1.0, 0.0, 0.0],
                        [0.0, 0.0, 0.0, 1.0]])  # +90 deg about X: y -> z, z -> -y
# world (SMPL-X) = BLENDER_TO_WORLD @ blender, as in the backend's oneshot_avatar/cameras/blender.py.
BLENDER_TO_WORLD = ROTATE_X_90[:3, :3].T
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


class CameraExportError(ValueError):
    """A camera the backend cannot use; ``field`` names the setting to change."""

    def __init__(self, message: str, field: str):
        self.field = field
        super().__init__(f"camera '{field}': {message}")


def _matrix4(value: Any, field: str) -> np.ndarray:
    try:
        matrix = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise CameraExportError(f"expected a 4x4 matrix, got {value!r:.80}", field) from error
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise CameraExportError(f"expected a finite 4x4 matrix, got shape {matrix.shape}", field)
    return matrix


def rig_relative_matrix(camera_matrix_world: Any, rig_matrix_world: Any | None = None
                        ) -> np.ndarray:
    """``R_x(+90) @ rig^-1 @ camera`` (4x4): the camera as the backend expects it. Without a rig
    the scene's world is taken as the backend's (``camera_matrix_world`` unchanged)."""
    camera = _matrix4(camera_matrix_world, "matrix_world")
    if rig_matrix_world is None:
        return camera
    rig = _matrix4(rig_matrix_world, "rig matrix_world")
    if abs(np.linalg.det(rig[:3, :3])) < 1e-12:
        raise CameraExportError("the rig object has zero scale; give it a non-zero scale",
                                "rig matrix_world")
    return ROTATE_X_90 @ np.linalg.inv(rig) @ camera


def _positive(value: Any, field: str) -> float:
    number = _finite(value, field)
    if number <= 0:
        raise CameraExportError(f"expected a number > 0, got {value!r}", field)
    return number


def _finite(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CameraExportError(f"expected a finite number, got {value!r}", field)
    return float(value)


def _whole(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CameraExportError(f"expected a positive whole number, got {value!r}", field)
    return int(value)


def render_size(resolution_x: int, resolution_y: int, resolution_percentage: int = 100
                ) -> tuple[int, int]:
    """The rendered image size in pixels, as Blender computes it."""
    x = _whole(resolution_x, "resolution_x")
    y = _whole(resolution_y, "resolution_y")
    pct = _whole(resolution_percentage, "resolution_percentage")
    width, height = x * pct // 100, y * pct // 100
    if width < 1 or height < 1:
        raise CameraExportError(f"{x}x{y} at {pct}% renders no pixels; raise the percentage",
                                "resolution_percentage")
    return width, height


def blender_camera_payload(*, camera_type: str = "PERSP", lens_mm: float,
                           sensor_width_mm: float, sensor_height_mm: float, sensor_fit: str,
                           shift_x: float, shift_y: float, clip_start: float, clip_end: float,
                           resolution_x: int, resolution_y: int,
                           resolution_percentage: int = 100, pixel_aspect_x: float = 1.0,
                           pixel_aspect_y: float = 1.0, camera_matrix_world: Any,
                           rig_matrix_world: Any | None = None) -> dict[str, Any]:
    """The API's ``{"blender": {...}}`` camera from a Blender camera's values (``bpy.types.Camera``
    data, the camera object's and the rig object's ``matrix_world`` as nested lists, the
    scene's render settings). Checks what the backend would refuse, naming the setting."""
    if camera_type != "PERSP":
        raise CameraExportError(f"only perspective cameras can render avatars, this one is "
                                f"{camera_type!r}; set the camera's type to Perspective", "type")
    if sensor_fit not in SENSOR_FITS:
        raise CameraExportError(f"expected one of {SENSOR_FITS}, got {sensor_fit!r}",
                                "sensor_fit")
    clip_start = _positive(clip_start, "clip_start")
    clip_end = _positive(clip_end, "clip_end")
    if clip_end <= clip_start:
        raise CameraExportError(f"clip end ({clip_end:g}) must be beyond clip start "
                                f"({clip_start:g})", "clip_end")
    render_size(resolution_x, resolution_y, resolution_percentage)
    matrix = rig_relative_matrix(camera_matrix_world, rig_matrix_world)
    return {"blender": {
        "lens_mm": _positive(lens_mm, "lens_mm"),
        "sensor_width_mm": _positive(sensor_width_mm, "sensor_width_mm"),
        "sensor_height_mm": _positive(sensor_height_mm, "sensor_height_mm"),
        "sensor_fit": sensor_fit,
        "shift_x": _finite(shift_x, "shift_x"),
        "shift_y": _finite(shift_y, "shift_y"),
        "clip_start": clip_start,
        "clip_end": clip_end,
        "resolution_x": int(resolution_x),
        "resolution_y": int(resolution_y),
        "resolution_percentage": int(resolution_percentage),
        "pixel_aspect_x": _positive(pixel_aspect_x, "pixel_aspect_x"),
        "pixel_aspect_y": _positive(pixel_aspect_y, "pixel_aspect_y"),
        "matrix_world": matrix.tolist(),
    }}


def blender_intrinsics(camera: dict[str, Any]) -> tuple[float, float, float, float, int, int]:
    """``(fx, fy, cx, cy, width, height)`` (pixels) of a ``{"blender": {...}}`` camera's inner
    dict, by Blender's viewplane rules (the same formulas as the backend's ``from_blender``)."""
    width, height = render_size(camera["resolution_x"], camera["resolution_y"],
                                camera["resolution_percentage"])
    aspect_x, aspect_y = camera["pixel_aspect_x"], camera["pixel_aspect_y"]
    ycor = aspect_y / aspect_x
    fit = camera["sensor_fit"]
    if fit == "AUTO":
        fit = "HORIZONTAL" if aspect_x * width >= aspect_y * height else "VERTICAL"
    sensor = (camera["sensor_height_mm"] if camera["sensor_fit"] == "VERTICAL"
              else camera["sensor_width_mm"])
    viewfac = width if fit == "HORIZONTAL" else ycor * height
    fx = camera["lens_mm"] * viewfac / sensor
    fy = fx / ycor
    cx = width / 2.0 - camera["shift_x"] * viewfac
    cy = height / 2.0 + camera["shift_y"] * viewfac / ycor
    return fx, fy, cx, cy, width, height


def world_to_camera(camera: dict[str, Any]) -> np.ndarray:
    """The backend camera's ``world_to_cam`` (4x4, SMPL-X world -> OpenCV camera) for a
    ``{"blender": {...}}`` camera's inner dict; scale in ``matrix_world`` is removed."""
    matrix = _matrix4(camera["matrix_world"], "matrix_world")
    axes = matrix[:3, :3]
    rotation_blender = axes / np.linalg.norm(axes, axis=0)
    rotation = BLENDER_TO_WORLD @ rotation_blender @ _FLIP_YZ  # camera axes -> world
    position = BLENDER_TO_WORLD @ matrix[:3, 3]
    result = np.eye(4)
    result[:3, :3] = rotation.T
    result[:3, 3] = -rotation.T @ position
    return result


def project_points(camera: dict[str, Any], points: Sequence[Sequence[float]] | np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Project SMPL-X world points ``[N, 3]`` (the rig's armature space, metres) with a
    ``{"blender": {...}}`` camera's inner dict: ``(uv [N, 2] pixels, depth [N] metres)``;
    ``u`` right and ``v`` down from the image's top-left corner."""
    fx, fy, cx, cy, _, _ = blender_intrinsics(camera)
    world_to_cam = world_to_camera(camera)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    in_camera = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    depth = in_camera[:, 2]
    uv = np.stack([fx * in_camera[:, 0] / depth + cx, fy * in_camera[:, 1] / depth + cy], axis=1)
    return uv, depth


# --------------------------------------------------------------------------------------------
# Axis-angle helpers (for the aligned initial pose)


def axis_angle_to_matrix(vector: Sequence[float]) -> np.ndarray:
    """Rodrigues: an axis-angle 3-vector (radians) -> 3x3 rotation."""
    v = np.asarray(vector, dtype=np.float64).reshape(3)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = v / angle
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def matrix_to_axis_angle(matrix: Any) -> np.ndarray:
    """3x3 rotation -> axis-angle 3-vector (radians, angle in [0, pi])."""
    r = np.asarray(matrix, dtype=np.float64).reshape(3, 3)
    # Through the quaternion: stable near 0 and pi.
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = np.array([0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s,
                      (r[1, 0] - r[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1.0 + r[i, i] - r[j, j] - r[k, k], 1e-300))
        q = np.zeros(4)
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    if q[0] < 0:
        q = -q
    sin_half = float(np.linalg.norm(q[1:]))
    if sin_half < 1e-12:
        return np.zeros(3)
    angle = 2.0 * math.atan2(sin_half, q[0])
    return q[1:] / sin_half * angle


def orient_for_front_view(global_orient: Sequence[float], camera_matrix_rig: Any) -> np.ndarray:
    """The body's ``global_orient`` as seen by a camera on +Z looking at it (the fit's starting
    view), given the orientation the user posed while looking through a camera with
    ``camera_matrix_rig`` (a ``rig_relative_matrix``: Blender-style camera in the backend's
    Blender world). What the user sees through their camera is kept: if they orbit the camera
    90 deg, the pose sent turns 90 deg the other way."""
    matrix = _matrix4(camera_matrix_rig, "matrix_world")
    axes = matrix[:3, :3]
    camera_to_world = BLENDER_TO_WORLD @ (axes / np.linalg.norm(axes, axis=0))  # Blender cam
    # The front camera (on +Z looking at -Z, +Y up) has Blender-camera axes = world axes.
    body = axis_angle_to_matrix(global_orient)
    return matrix_to_axis_angle(camera_to_world.T @ body)
