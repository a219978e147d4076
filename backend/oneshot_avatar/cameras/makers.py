"""Making cameras: intrinsics from a focal length or field of view, look-at and orbit
cameras that frame a target, and the camera of a body fit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from oneshot_avatar.cameras.camera import Camera, _as_tensor, _check_float, _check_positive_int
from oneshot_avatar.errors import UserError

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
