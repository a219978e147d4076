"""One camera model for the whole product: :class:`Camera` and its conversions.

Frames and units (the conventions in ``ARCHITECTURE.md``):

World
    SMPL-X canonical: metres, +Y up, the rest body faces +Z (its left is +X).
Camera
    OpenCV: x right, y down, z forward (along the optical axis), metres.
    ``world_to_cam`` (4x4) maps homogeneous world points to camera points: ``p_cam = R p + t``.
Image
    Continuous pixel coordinates ``(u, v)``: ``u`` to the right, ``v`` down, the image spanning
    ``[0, width] x [0, height]``; pixel ``(row i, column j)`` covers ``[j, j+1] x [i, i+1]`` and
    its centre is at ``(j + 0.5, i + 0.5)``. ``K`` maps camera points to these coordinates:
    ``u = fx * x / z + cx``, ``v = fy * y / z + cy``. This is what gsplat uses, so a camera
    centred on the image has ``cx = width / 2`` (not ``(width - 1) / 2``). Resizing an image
    scales ``K`` exactly by the size ratios.
Blender
    Z-up world: Blender ``(x, y, z)`` = world ``(x, -z, y)``, i.e. world = ``(bx, bz, -by)``.
    A Blender camera looks along its local -Z with +Y up; OpenCV axes are Blender's camera axes
    with y and z flipped. Lens, sensor fit and shift become ``K`` as in :func:`from_blender`.

Everything is device-agnostic: a :class:`Camera`'s tensors carry their device and dtype, and
the constructors take ``device`` / ``dtype``. Constructors that take tensors keep autograd
connections (``from_fit`` with a rotation that requires grad gives a differentiable camera).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from oneshot_avatar.errors import BadFileError, UserError

SCHEMA = "oneshot-avatar/camera/1"
CONVENTION = "opencv"

# Tolerances for validating matrices (float32 arithmetic stays far inside them).
ROTATION_ATOL = 1e-4
_EPS = 1e-9

SensorFit = Literal["AUTO", "HORIZONTAL", "VERTICAL"]
SENSOR_FITS: tuple[str, ...] = ("AUTO", "HORIZONTAL", "VERTICAL")

# world = BLENDER_TO_WORLD @ blender, for points and directions.
BLENDER_TO_WORLD: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0))
# OpenCV camera axes <-> Blender camera axes (its own inverse).
_FLIP_YZ: tuple[float, ...] = (1.0, -1.0, -1.0)


# --------------------------------------------------------------------------------------------
# Errors and small converters


def _fail(message: str, field: str, path: str | Path | None = None) -> None:
    if path is None:
        raise UserError(message, field=field)
    raise BadFileError(message, path=path, field=field)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_positive_int(value: Any, field: str, path: str | Path | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(f"expected a positive whole number of pixels, got {value!r}", field, path)
    return int(value)


def _check_float(value: Any, field: str, path: str | Path | None = None, *,
                 positive: bool = False) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if not _is_number(value) or not math.isfinite(value):
        _fail(f"expected a finite number, got {value!r}", field, path)
    if positive and value <= 0:
        _fail(f"expected a number > 0, got {value!r}", field, path)
    return float(value)


def _as_tensor(value: Any, field: str, shape: tuple[int, ...], *,
               device: torch.device | str | None = None,
               dtype: torch.dtype | None = None) -> Tensor:
    """``value`` (tensor or array-like) as a floating tensor of ``shape``; tensors keep their
    device (and their dtype unless ``dtype`` is given), so autograd connections survive."""
    if isinstance(value, Tensor):
        tensor = value
        if dtype is not None:
            tensor = tensor.to(dtype=dtype)
        elif not tensor.is_floating_point():
            tensor = tensor.to(dtype=torch.float32)
        if device is not None:
            tensor = tensor.to(device=device)
    else:
        try:
            tensor = torch.as_tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            _fail(f"expected numbers of shape {shape}, got {value!r}", field)
        tensor = tensor.to(device=device, dtype=dtype or torch.float32)
    if tuple(tensor.shape) != shape:
        _fail(f"expected shape {shape}, got {tuple(tensor.shape)}", field)
    if not bool(torch.isfinite(tensor.detach()).all()):
        _fail(f"must be finite, got {tensor.detach().cpu().tolist()}", field)
    return tensor


def _to_float64_cpu(value: Any, field: str, shape: tuple[int, ...]) -> Tensor:
    return _as_tensor(value, field, shape).detach().to(device="cpu", dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Validation shared by Camera.__post_init__ and Camera.from_dict


def _validate_intrinsics(K: Tensor, field: str, path: str | Path | None) -> None:  # K: [3, 3]
    k = K.detach().to(device="cpu", dtype=torch.float64)
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        _fail(f"focal lengths fx = K[0][0] = {k[0, 0].item():g} and fy = K[1][1] = "
              f"{k[1, 1].item():g} must be > 0 (pixels)", field, path)
    if k[0, 1] != 0 or k[1, 0] != 0:
        _fail(f"skewed intrinsics are not supported: K[0][1] = {k[0, 1].item():g}, "
              f"K[1][0] = {k[1, 0].item():g}; expected 0", field, path)
    if not torch.equal(k[2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)):
        _fail(f"the last row of K must be [0, 0, 1], got {k[2].tolist()}", field, path)


def _validate_rigid(matrix: Tensor, field: str, path: str | Path | None) -> None:  # [4, 4]
    m = matrix.detach().to(device="cpu", dtype=torch.float64)
    if not torch.allclose(m[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64),
                          atol=1e-6, rtol=0.0):
        _fail(f"the last row must be [0, 0, 0, 1], got {m[3].tolist()}", field, path)
    rotation = m[:3, :3]
    error = (rotation @ rotation.T - torch.eye(3, dtype=torch.float64)).abs().max().item()
    if error > ROTATION_ATOL:
        _fail(f"the 3x3 rotation part is not orthonormal (|R R^T - I| = {error:.3g}; scale or "
              f"shear?): {rotation.tolist()}. Give a pure rotation and translation", field, path)
    det = torch.linalg.det(rotation).item()
    if det < 0:
        _fail(f"the rotation part has determinant {det:.3g} (a mirror); expected +1", field,
              path)


def _validate_camera(K: Tensor, world_to_cam: Tensor, width: Any, height: Any, near: Any,
                     far: Any, *, prefix: str = "", path: str | Path | None = None) -> None:
    _check_positive_int(width, prefix + "width", path)
    _check_positive_int(height, prefix + "height", path)
    near_value = _check_float(near, prefix + "near", path, positive=True)
    far_value = _check_float(far, prefix + "far", path, positive=True)
    if far_value <= near_value:
        _fail(f"the far clip distance ({far_value:g} m) must be beyond the near one "
              f"({near_value:g} m)", prefix + "far", path)
    _validate_intrinsics(K, prefix + "K", path)
    _validate_rigid(world_to_cam, prefix + "world_to_cam", path)
    if K.device != world_to_cam.device or K.dtype != world_to_cam.dtype:
        _fail(f"K is {K.dtype} on {K.device} but world_to_cam is {world_to_cam.dtype} on "
              f"{world_to_cam.device}; put both on one device with one dtype",
              prefix + "world_to_cam", path)


# --------------------------------------------------------------------------------------------
# The camera


@dataclass(eq=False)
class Camera:
    """A pinhole camera in the OpenCV convention (see the module docstring for frames).

    ``K`` and ``world_to_cam`` may be given as tensors (kept on their device, with their dtype
    and autograd history) or array-likes (made float32 tensors on the CPU, or on ``K``'s device
    for ``world_to_cam``). ``near`` / ``far`` are clip distances along the optical axis, metres.
    Invalid values raise :class:`UserError` naming the field.
    """

    K: Tensor  # [3, 3] intrinsics, pixels; skew 0; last row [0, 0, 1]
    world_to_cam: Tensor  # [4, 4] rigid transform, world -> OpenCV camera
    width: int  # pixels
    height: int  # pixels
    near: float = 0.01  # metres
    far: float = 100.0  # metres

    def __post_init__(self) -> None:
        self.K = _as_tensor(self.K, "K", (3, 3))
        if isinstance(self.world_to_cam, Tensor):
            self.world_to_cam = _as_tensor(self.world_to_cam, "world_to_cam", (4, 4))
        else:
            self.world_to_cam = _as_tensor(self.world_to_cam, "world_to_cam", (4, 4),
                                           device=self.K.device, dtype=self.K.dtype)
        _validate_camera(self.K, self.world_to_cam, self.width, self.height, self.near, self.far)
        self.near = float(self.near)
        self.far = float(self.far)

    # ---- intrinsics (Python floats, pixels)

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def device(self) -> torch.device:
        return self.K.device

    @property
    def dtype(self) -> torch.dtype:
        return self.K.dtype

    # ---- extrinsics (tensors on the camera's device)

    @property
    def rotation(self) -> Tensor:  # [3, 3] world -> camera
        return self.world_to_cam[:3, :3]

    @property
    def translation(self) -> Tensor:  # [3] camera-frame position of the world origin
        return self.world_to_cam[:3, 3]

    @property
    def cam_to_world(self) -> Tensor:  # [4, 4]
        """The inverse of ``world_to_cam``, computed exactly for a rigid transform."""
        rotation_t = self.rotation.T
        top = torch.cat([rotation_t, (-rotation_t @ self.translation)[:, None]], dim=1)
        return torch.cat([top, self.world_to_cam[3:]], dim=0)

    @property
    def position(self) -> Tensor:  # [3] camera centre in world, metres
        return -self.rotation.T @ self.translation

    @property
    def forward(self) -> Tensor:  # [3] unit world direction of the optical axis (camera +z)
        return self.rotation[2]

    @property
    def up(self) -> Tensor:  # [3] unit world direction that appears as image-up (camera -y)
        return -self.rotation[1]

    @property
    def right(self) -> Tensor:  # [3] unit world direction that appears as image-right (camera +x)
        return self.rotation[0]

    # ---- projection

    def world_to_camera_points(self, points: Tensor) -> Tensor:  # [..., N, 3] -> [..., N, 3]
        """World points (metres) in the OpenCV camera frame (metres)."""
        rotation = self.rotation.to(dtype=points.dtype)
        translation = self.translation.to(dtype=points.dtype)
        return points @ rotation.T + translation

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Project world points.

        Args:
            points: ``[..., N, 3]`` world points, metres, on the camera's device.

        Returns:
            ``pixels [..., N, 2]``: continuous image coordinates ``(u, v)`` (see the module
            docstring: pixel ``(i, j)``'s centre is ``(j + 0.5, i + 0.5)``), and
            ``depth [..., N]``: camera-frame ``z`` in metres (distance along the optical axis,
            not along the ray). Points with ``depth <= 1e-9`` (on or behind the camera) are
            divided by ``1e-9`` instead, so they get huge or meaningless pixels but never NaN:
            mask them with ``depth > camera.near``.
        """
        if not isinstance(points, Tensor) or points.ndim < 2 or points.shape[-1] != 3:
            shape = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            raise UserError(f"expected world points of shape [..., N, 3], got {shape}",
                            field="points")
        cam_points = self.world_to_camera_points(points)
        depth = cam_points[..., 2]
        safe_depth = depth.clamp(min=_EPS)
        K = self.K.to(dtype=points.dtype)
        u = K[0, 0] * cam_points[..., 0] / safe_depth + K[0, 2]
        v = K[1, 1] * cam_points[..., 1] / safe_depth + K[1, 2]
        return torch.stack([u, v], dim=-1), depth

    # ---- copies

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> Camera:
        """A copy with both matrices on ``device`` and/or as ``dtype`` (floating)."""
        return Camera(self.K.to(device=device, dtype=dtype),
                      self.world_to_cam.to(device=device, dtype=dtype),
                      self.width, self.height, self.near, self.far)

    def resized(self, width: int, height: int) -> Camera:
        """The same camera for an image resized to ``width x height`` pixels (the same field
        of view and pose): fx, cx scale by ``width / self.width``, fy, cy by
        ``height / self.height`` (exact with the pixel-edge convention of this module)."""
        width = _check_positive_int(width, "width")
        height = _check_positive_int(height, "height")
        scale = torch.tensor([width / self.width, height / self.height, 1.0],
                             dtype=self.K.dtype, device=self.K.device)
        return Camera(self.K * scale[:, None], self.world_to_cam, width, height, self.near,
                      self.far)

    def scaled(self, factor: float) -> Camera:
        """The camera for the image scaled by ``factor`` (0.5 halves it); the new size is
        rounded to whole pixels and ``K`` follows the rounded size exactly."""
        factor = _check_float(factor, "factor", positive=True)
        width, height = round(self.width * factor), round(self.height * factor)
        if width < 1 or height < 1:
            raise UserError(f"scaling a {self.width}x{self.height} image by {factor:g} leaves "
                            f"no pixels ({width}x{height}); use a larger factor",
                            field="factor")
        return self.resized(width, height)

    # ---- JSON

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: ``schema``, ``convention`` ("opencv"), ``width``, ``height``
        (pixels), ``K`` (3x3 rows, pixels), ``world_to_cam`` (4x4 rows, metres), ``near``,
        ``far`` (metres)."""
        return {
            "schema": SCHEMA,
            "convention": CONVENTION,
            "width": self.width,
            "height": self.height,
            "K": self.K.detach().cpu().double().tolist(),
            "world_to_cam": self.world_to_cam.detach().cpu().double().tolist(),
            "near": self.near,
            "far": self.far,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> Camera:
        """Read :meth:`to_dict`'s output (``near``/``far`` may be left out), validating every
        field; a bad one raises :class:`UserError` naming it."""
        return _camera_from_dict(data, device=device, dtype=dtype)

    def save_json(self, path: str | Path) -> None:
        """Write this camera as one JSON object (see :meth:`to_dict`)."""
        _write_json(path, self.to_dict())

    @classmethod
    def load_json(cls, path: str | Path, *, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> Camera:
        """Read a camera file: one camera object, or ``{"cameras": [...]}`` holding exactly one
        (use :func:`load_cameras_json` for several). Errors name the file and the field."""
        cameras = load_cameras_json(path, device=device, dtype=dtype)
        if len(cameras) != 1:
            raise BadFileError(f"holds {len(cameras)} cameras where one was expected; use "
                               "load_cameras_json to read them all", path=path, field="cameras")
        return cameras[0]


# --------------------------------------------------------------------------------------------
# JSON helpers


def _matrix_from_json(value: Any, rows: int, cols: int, field: str, path: str | Path | None,
                      device: torch.device | str | None, dtype: torch.dtype) -> Tensor:
    expected = f"a {rows}x{cols} matrix as {rows} rows of {cols} numbers"
    if not isinstance(value, (list, tuple)) or len(value) != rows:
        _fail(f"expected {expected}, got {value!r}", field, path)
    for i, row in enumerate(value):
        if not isinstance(row, (list, tuple)) or len(row) != cols:
            _fail(f"expected {expected}; row {i} is {row!r}", field, path)
        for j, item in enumerate(row):
            if not _is_number(item) or not math.isfinite(item):
                _fail(f"element [{i}][{j}] must be a finite number, got {item!r}", field, path)
    return torch.tensor(value, dtype=torch.float64).to(device=device, dtype=dtype)


def _camera_from_dict(data: Any, *, prefix: str = "", path: str | Path | None = None,
                      device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> Camera:
    if not isinstance(data, Mapping):
        _fail(f"expected a camera object, got {type(data).__name__}", prefix.rstrip(".") or
              "camera", path)
    for key in ("schema", "convention", "width", "height", "K", "world_to_cam"):
        if key not in data:
            _fail(f"missing (a camera needs schema, convention, width, height, K, "
                  f"world_to_cam; present: {sorted(data)})", prefix + key, path)
    if data["schema"] != SCHEMA:
        _fail(f"unknown camera schema {data['schema']!r}; this version reads {SCHEMA!r}",
              prefix + "schema", path)
    if data["convention"] != CONVENTION:
        _fail(f"unsupported convention {data['convention']!r}; expected {CONVENTION!r} "
              "(x right, y down, z forward)", prefix + "convention", path)
    K = _matrix_from_json(data["K"], 3, 3, prefix + "K", path, device, dtype)
    world_to_cam = _matrix_from_json(data["world_to_cam"], 4, 4, prefix + "world_to_cam",
                                     path, device, dtype)
    near, far = data.get("near", 0.01), data.get("far", 100.0)
    _validate_camera(K, world_to_cam, data["width"], data["height"], near, far, prefix=prefix,
                     path=path)
    return Camera(K, world_to_cam, data["width"], data["height"], near, far)


def _write_json(path: str | Path, payload: Any) -> None:
    from oneshot_avatar.atomic import write_bytes_atomic

    write_bytes_atomic(path, (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode("utf-8"))


def save_cameras_json(path: str | Path, cameras: Sequence[Camera]) -> None:
    """Write several cameras as ``{"cameras": [camera, ...]}`` (see :meth:`Camera.to_dict`)."""
    _write_json(path, {"cameras": [camera.to_dict() for camera in cameras]})


def load_cameras_json(path: str | Path, *, device: torch.device | str | None = None,
                      dtype: torch.dtype = torch.float32) -> list[Camera]:
    """Read a camera file holding one camera object or ``{"cameras": [...]}``; always returns
    a list. Problems raise :class:`BadFileError` naming the file and the field
    (``cameras[2].K``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadFileError("camera file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadFileError(f"cannot read the camera file: {error}", path=path) from None
    except json.JSONDecodeError as error:
        raise BadFileError(f"not valid JSON: {error}", path=path) from None
    if isinstance(data, Mapping) and "cameras" in data:
        items = data["cameras"]
        if not isinstance(items, list) or not items:
            raise BadFileError(f"expected a non-empty list of cameras, got {items!r}",
                               path=path, field="cameras")
        return [_camera_from_dict(item, prefix=f"cameras[{i}].", path=path, device=device,
                                  dtype=dtype) for i, item in enumerate(items)]
    return [_camera_from_dict(data, path=path, device=device, dtype=dtype)]


def stack_cameras(cameras: Sequence[Camera]) -> tuple[Tensor, Tensor, int, int]:
    """Batch cameras for the rasterizer: ``(viewmats [C, 4, 4] world->camera, Ks [C, 3, 3],
    width, height)``. All cameras must share one image size, device and dtype."""
    cameras = list(cameras)
    if not cameras:
        raise UserError("no cameras to stack; give at least one", field="cameras")
    first = cameras[0]
    for i, camera in enumerate(cameras):
        if (camera.width, camera.height) != (first.width, first.height):
            sizes = sorted({(c.width, c.height) for c in cameras})
            raise UserError(f"camera {i} is {camera.width}x{camera.height} but camera 0 is "
                            f"{first.width}x{first.height} (sizes present: {sizes}); cameras "
                            "rendered together must share one image size: use "
                            "Camera.resized()", field=f"cameras[{i}]")
        if camera.device != first.device or camera.dtype != first.dtype:
            raise UserError(f"camera {i} is {camera.dtype} on {camera.device} but camera 0 is "
                            f"{first.dtype} on {first.device}; use Camera.to()",
                            field=f"cameras[{i}]")
    viewmats = torch.stack([camera.world_to_cam for camera in cameras])
    Ks = torch.stack([camera.K for camera in cameras])
    return viewmats, Ks, first.width, first.height


# --------------------------------------------------------------------------------------------
# Constructors


def intrinsics(fx: float, fy: float, cx: float, cy: float, *,
               device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:  # [3, 3]
    """``K`` from focal lengths and principal point, pixels."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64
                        ).to(device=device, dtype=dtype)


def focal_from_fov(fov_degrees: float, size_px: int) -> float:
    """Focal length in pixels giving a full field of view of ``fov_degrees`` across
    ``size_px`` pixels: ``size / (2 tan(fov / 2))``."""
    fov = _check_float(fov_degrees, "fov_y_degrees")
    if not 0.0 < fov < 180.0:
        raise UserError(f"a field of view must be between 0 and 180 degrees, got {fov:g}",
                        field="fov_y_degrees")
    return size_px / (2.0 * math.tan(math.radians(fov) / 2.0))


def _rigid(rotation: Tensor, translation: Tensor) -> Tensor:  # [3, 3], [3] -> [4, 4]
    top = torch.cat([rotation, translation[:, None]], dim=1)
    bottom = torch.zeros(1, 4, dtype=rotation.dtype, device=rotation.device)
    bottom[0, 3] = 1.0
    return torch.cat([top, bottom], dim=0)


def _focal_pair(width: int, height: int, fov_y_degrees: float | None,
                focal: float | Sequence[float] | None) -> tuple[float, float]:
    if (fov_y_degrees is None) == (focal is None):
        raise UserError("give exactly one of fov_y_degrees (vertical field of view, degrees) "
                        f"and focal (pixels); got fov_y_degrees={fov_y_degrees!r}, "
                        f"focal={focal!r}", field="focal")
    if fov_y_degrees is not None:
        f = focal_from_fov(fov_y_degrees, height)
        return f, f
    if isinstance(focal, (list, tuple)):
        if len(focal) != 2:
            raise UserError(f"expected one focal length or (fx, fy), got {focal!r}",
                            field="focal")
        return (_check_float(focal[0], "focal", positive=True),
                _check_float(focal[1], "focal", positive=True))
    f = _check_float(focal, "focal", positive=True)
    return f, f


def look_at(eye: Any, target: Any, up: Any = (0.0, 1.0, 0.0), *, width: int, height: int,
            fov_y_degrees: float | None = None, focal: float | Sequence[float] | None = None,
            near: float = 0.01, far: float = 100.0, device: torch.device | str | None = None,
            dtype: torch.dtype = torch.float32) -> Camera:
    """A camera at ``eye`` looking at ``target`` (world, metres; ``[3]`` each), rolled so that
    world ``up`` appears as image-up, with the principal point at the image centre.

    The field of view comes from exactly one of ``fov_y_degrees`` (vertical, degrees; square
    pixels) and ``focal`` (pixels: one value, or ``(fx, fy)``). Tensor inputs keep autograd.
    """
    width = _check_positive_int(width, "width")
    height = _check_positive_int(height, "height")
    fx, fy = _focal_pair(width, height, fov_y_degrees, focal)
    if isinstance(eye, Tensor) and device is None:
        device = eye.device
    eye_t = _as_tensor(eye, "eye", (3,), device=device, dtype=dtype)
    target_t = _as_tensor(target, "target", (3,), device=device, dtype=dtype)
    up_t = _as_tensor(up, "up", (3,), device=device, dtype=dtype)
    view = target_t - eye_t
    distance = float(torch.linalg.norm(view.detach()))
    if distance < 1e-6:
        raise UserError(f"eye and target are the same point ({eye_t.detach().cpu().tolist()}); "
                        "move the camera away from what it looks at", field="target")
    forward = view / torch.linalg.norm(view)
    right = torch.linalg.cross(forward, up_t)
    if float(torch.linalg.norm(right.detach())) < 1e-6 * max(float(torch.linalg.norm(up_t)), 1):
        raise UserError(f"up {up_t.detach().cpu().tolist()} is parallel to the view direction "
                        f"{forward.detach().cpu().tolist()} (or zero), so the camera's roll is "
                        "undefined; give another up vector", field="up")
    right = right / torch.linalg.norm(right)
    down = torch.linalg.cross(forward, right)
    rotation = torch.stack([right, down, forward])  # rows: camera axes in world
    K = intrinsics(fx, fy, width / 2.0, height / 2.0, device=eye_t.device, dtype=dtype)
    return Camera(K, _rigid(rotation, -rotation @ eye_t), width, height, near, far)


def orbit_cameras(count: int, *, radius: float, height: float, target: Any, width: int,
                  height_px: int, fov_y_degrees: float, start_degrees: float = 0.0,
                  near: float = 0.01, far: float = 100.0,
                  device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32) -> list[Camera]:
    """``count`` cameras evenly spaced on a horizontal circle about the vertical (+Y) line
    through ``target``, each looking at ``target`` with world +Y as image-up.

    ``radius``: horizontal distance from that line, metres. ``height``: the cameras' world y,
    metres (not relative to ``target``). ``width`` / ``height_px``: image size, pixels.
    Azimuth ``a`` (degrees; camera ``k`` is at ``start_degrees + 360 k / count``) places the
    camera at ``target + radius * (sin a, 0, cos a)`` (then y set to ``height``): ``a = 0`` is
    in front of the body (on +Z, looking toward -Z), ``a = 90`` on +X (the body's left), i.e.
    azimuth grows counter-clockwise seen from above (a right-handed turn about +Y).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"expected a positive number of cameras, got {count!r}", field="count")
    radius = _check_float(radius, "radius", positive=True)
    camera_y = _check_float(height, "height")
    start = _check_float(start_degrees, "start_degrees")
    target_t = _as_tensor(target, "target", (3,), device=device, dtype=torch.float64)
    cameras = []
    for k in range(count):
        azimuth = math.radians(start + 360.0 * k / count)
        eye = target_t.detach().cpu().clone()
        eye[0] += radius * math.sin(azimuth)
        eye[1] = camera_y
        eye[2] += radius * math.cos(azimuth)
        cameras.append(look_at(eye.to(target_t.device), target_t, width=width,
                               height=height_px, fov_y_degrees=fov_y_degrees, near=near,
                               far=far, dtype=dtype))
    return cameras


def front_camera(target: Any, distance: float, width: int, height: int, fov_y_degrees: float,
                 *, near: float = 0.01, far: float = 100.0,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> Camera:
    """A camera ``distance`` metres in front of ``target`` (at ``target + (0, 0, distance)``,
    on +Z where the body faces), looking at it horizontally, +Y image-up."""
    distance = _check_float(distance, "distance", positive=True)
    target_t = _as_tensor(target, "target", (3,), device=device, dtype=dtype)
    offset = torch.tensor([0.0, 0.0, distance], dtype=dtype, device=target_t.device)
    return look_at(target_t + offset, target_t, width=width, height=height,
                   fov_y_degrees=fov_y_degrees, near=near, far=far, dtype=dtype)


def _focal_tensor(focal: Any, device: torch.device, dtype: torch.dtype) -> Tensor:  # [2]
    """One focal length or ``(fx, fy)`` (pixels) as ``[fx, fy]``, keeping autograd."""
    given = focal
    if not isinstance(focal, Tensor):
        try:
            focal = torch.as_tensor(focal, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            focal = None
    if focal is None or focal.numel() not in (1, 2):
        raise UserError(f"expected one focal length or (fx, fy) in pixels, got {given!r}",
                        field="focal")
    focal = focal.to(device=device, dtype=dtype).reshape(-1).expand(2)
    if not bool(torch.isfinite(focal.detach()).all()) or bool((focal.detach() <= 0).any()):
        raise UserError(f"focal lengths must be finite and > 0 pixels, got "
                        f"{focal.detach().cpu().tolist()}", field="focal")
    return focal


def from_fit(focal: Any, principal_point: Any, rotation: Any, translation: Any, width: int,
             height: int, *, near: float = 0.01, far: float = 100.0) -> Camera:
    """The camera fitted to the photo: ``focal`` (pixels: one value or ``(fx, fy)``),
    ``principal_point`` ``(cx, cy)`` (pixels, this module's convention), ``rotation`` ``[3, 3]``
    world->camera (OpenCV axes) and ``translation`` ``[3]`` (metres) with
    ``p_cam = rotation @ p_world + translation``. Tensors keep their device, dtype and autograd.
    """
    rotation_t = _as_tensor(rotation, "rotation", (3, 3))
    device, dtype = rotation_t.device, rotation_t.dtype
    translation_t = _as_tensor(translation, "translation", (3,), device=device, dtype=dtype)
    focal_t = _focal_tensor(focal, device, dtype)
    centre = _as_tensor(principal_point, "principal_point", (2,), device=device, dtype=dtype)
    zero, one = torch.zeros((), device=device, dtype=dtype), torch.ones((), device=device,
                                                                         dtype=dtype)
    K = torch.stack([torch.stack([focal_t[0], zero, centre[0]]),
                     torch.stack([zero, focal_t[1], centre[1]]),
                     torch.stack([zero, zero, one])])
    return Camera(K, _rigid(rotation_t, translation_t), width, height, near, far)


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


__all__ = [
    "BLENDER_TO_WORLD",
    "CONVENTION",
    "SCHEMA",
    "SENSOR_FITS",
    "Camera",
    "SensorFit",
    "blender_intrinsics",
    "focal_from_fov",
    "from_blender",
    "from_fit",
    "front_camera",
    "intrinsics",
    "load_cameras_json",
    "look_at",
    "orbit_cameras",
    "save_cameras_json",
    "stack_cameras",
    "to_blender",
]
