"""The camera type, :class:`Camera`: its checks, its JSON file format and batching.

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
from typing import Any

import torch
from torch import Tensor

from oneshot_avatar.errors import BadFileError, UserError

SCHEMA = "oneshot-avatar/camera/1"
CONVENTION = "opencv"

# Tolerances for validating matrices (float32 arithmetic stays far inside them).
ROTATION_ATOL = 1e-4
_EPS = 1e-9

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
