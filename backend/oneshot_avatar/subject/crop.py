"""The square window of the photo that becomes the working image.

Pixel coordinates follow ``oneshot_avatar.cameras``: continuous ``(x, y)`` with pixel ``(row i, column j)``
covering ``[j, j+1) x [i, i+1)``, so its centre is ``(j + 0.5, i + 0.5)``. A :class:`CropBox`
maps photo pixels to working-image pixels by ``(xy - (x0, y0)) * out_size / size``, and
:meth:`CropBox.crop` resamples with exactly that map. The box may reach past the photo's edges;
those parts are filled by repeating the edge pixels (``pad="edge"``, the default, for colour)
or with a constant (``pad="constant"``, used for masks and :meth:`CropBox.valid_mask`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from oneshot_avatar.errors import UserError

Interpolation = Literal["auto", "area", "linear", "nearest"]
Padding = Literal["edge", "constant"]

KEYPOINT_CONFIDENCE = 0.1  # keypoints at or below this confidence do not shape the box
SKELETON_MARGIN = 0.1  # extra margin for a keypoint box: the skeleton lies inside the silhouette
_MIN_BOX = 16.0  # px, the smallest box person_box makes around a subject

XY = TypeVar("XY")


@dataclass(frozen=True)
class CropBox:
    """A square window of the photo, in photo pixels, resampled to ``out_size x out_size``."""

    x0: float  # left edge, photo px (may be negative)
    y0: float  # top edge, photo px (may be negative)
    size: float  # side, photo px
    out_size: int  # side of the working image, px

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(float(value)):
                raise UserError(f"must be a finite number, got {value!r}", field=f"crop.{name}")
        if float(self.size) <= 0:
            raise UserError(f"must be positive, got {self.size!r}", field="crop.size")
        if isinstance(self.out_size, bool) or not isinstance(self.out_size, (int, np.integer)) \
                or self.out_size < 1:
            raise UserError(f"must be a positive integer, got {self.out_size!r}",
                            field="crop.out_size")

    @property
    def scale(self) -> float:
        """Working-image pixels per photo pixel."""
        return self.out_size / float(self.size)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` in photo pixels."""
        return (float(self.x0), float(self.y0), float(self.x0) + float(self.size),
                float(self.y0) + float(self.size))

    def to_crop(self, xy: XY) -> XY:
        """Photo pixel coordinates ``[..., 2]`` -> working-image pixel coordinates.

        Takes and returns the same type: numpy array, torch tensor, or a tuple/list of numbers
        (one point) or of pairs."""
        return _affine(xy, self.scale, -float(self.x0) * self.scale, -float(self.y0) * self.scale)

    def from_crop(self, xy: XY) -> XY:
        """Working-image pixel coordinates ``[..., 2]`` -> photo pixel coordinates."""
        inv = float(self.size) / self.out_size
        return _affine(xy, inv, float(self.x0), float(self.y0))

    def camera_to_crop(self, camera):
        """The photo's camera seen through this box: same pose, the intrinsics of the working
        image (``out_size`` square). Pixel centres map as :meth:`to_crop` maps points."""
        from oneshot_avatar.cameras import Camera

        K = camera.K.clone()
        K[0, 0] *= self.scale
        K[1, 1] *= self.scale
        K[0, 2] = (K[0, 2] - float(self.x0)) * self.scale
        K[1, 2] = (K[1, 2] - float(self.y0)) * self.scale
        return Camera(K, camera.world_to_cam.clone(), self.out_size, self.out_size, camera.near,
                      camera.far)

    def camera_from_crop(self, camera, width: int, height: int):
        """The inverse of :meth:`camera_to_crop`: a working-image camera as the camera of the
        ``width`` x ``height`` photo."""
        from oneshot_avatar.cameras import Camera

        K = camera.K.clone()
        K[0, 0] /= self.scale
        K[1, 1] /= self.scale
        K[0, 2] = K[0, 2] / self.scale + float(self.x0)
        K[1, 2] = K[1, 2] / self.scale + float(self.y0)
        return Camera(K, camera.world_to_cam.clone(), width, height, camera.near, camera.far)

    def crop(self, image: np.ndarray, interpolation: Interpolation = "auto", *,
             pad: Padding = "edge", fill: float = 0.0) -> np.ndarray:
        """The window of ``image`` (``[H, W]`` or ``[H, W, C]``, the photo's pixels) resampled to
        ``[out_size, out_size(, C)]``, same dtype (bool becomes float32).

        ``"auto"`` interpolation averages pixel areas when shrinking (``cv2.INTER_AREA``) and is
        bilinear when enlarging. A box on whole pixels is cut and resized in one step; a box at
        fractional pixels is resized to about the final scale and then shifted by a bilinear
        warp (slightly softer)."""
        import cv2

        image = np.asarray(image)
        if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(f"image must be [H, W] or [H, W, C], got shape {image.shape}")
        if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            image = image.astype(np.float32)
        if pad not in ("edge", "constant"):
            raise ValueError(f"pad must be 'edge' or 'constant', got {pad!r}")
        x0, y0, size = float(self.x0), float(self.y0), float(self.size)
        ix0, iy0 = math.floor(x0), math.floor(y0)
        ix1, iy1 = math.ceil(x0 + size), math.ceil(y0 + size)
        region = _window(image, ix0, iy0, ix1, iy1, pad, fill)
        channels = image.shape[2] if image.ndim == 3 else None
        flag = _cv2_interpolation(interpolation, self.scale)
        out = self.out_size
        if ix0 == x0 and iy0 == y0 and ix1 - ix0 == size:
            result = cv2.resize(region, (out, out), interpolation=flag)
        else:
            nw, nh = ix1 - ix0, iy1 - iy0
            tw, th = max(1, round(nw * self.scale)), max(1, round(nh * self.scale))
            step = cv2.resize(region, (tw, th), interpolation=flag)
            sx, sy = tw / nw, th / nh
            # OpenCV pixel indices: src = dst * sx / scale + offset (pixel centres at index + 0.5).
            matrix = np.array([
                [sx / self.scale, 0.0, 0.5 * sx / self.scale + (x0 - ix0) * sx - 0.5],
                [0.0, sy / self.scale, 0.5 * sy / self.scale + (y0 - iy0) * sy - 0.5],
            ])
            warp = cv2.INTER_NEAREST if flag == cv2.INTER_NEAREST_EXACT else cv2.INTER_LINEAR
            result = cv2.warpAffine(step, matrix, (out, out),
                                    flags=warp | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REPLICATE)
        if channels is not None and result.ndim == 2:
            result = result[..., None]
        return result

    def valid_mask(self, image_size: tuple[int, int]) -> np.ndarray:
        """float32 ``[out_size, out_size]``: the part of each working pixel that lies inside a
        photo of ``image_size = (width, height)`` (0 where the box reaches past the photo)."""
        width, height = (int(v) for v in image_size)
        valid = self.crop(np.ones((height, width), np.float32), pad="constant", fill=0.0)
        valid = np.clip(valid, 0.0, 1.0)
        valid[valid > 1.0 - 1e-5] = 1.0  # resampling rounds whole pixels to 0.99999994
        valid[valid < 1e-5] = 0.0
        return valid

    def to_dict(self) -> dict[str, Any]:
        return {"x0": float(self.x0), "y0": float(self.y0), "size": float(self.size),
                "out_size": int(self.out_size)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CropBox:
        if not isinstance(data, Mapping):
            raise UserError(f"must be an object with x0, y0, size, out_size, got {data!r}",
                            field="crop")
        missing = [key for key in ("x0", "y0", "size", "out_size") if key not in data]
        if missing:
            raise UserError(f"missing {', '.join(missing)}", field="crop")
        out_size = data["out_size"]
        if isinstance(out_size, float) and out_size.is_integer():
            out_size = int(out_size)
        return cls(x0=data["x0"], y0=data["y0"], size=data["size"], out_size=out_size)


def person_box(image_size: tuple[int, int], out_size: int, mask: np.ndarray | None = None,
               points: np.ndarray | None = None, conf: np.ndarray | None = None,
               margin: float = 0.12) -> CropBox:
    """A square box on whole pixels around the person in a photo of ``(width, height)``.

    The person's extent is the bounding box of ``mask > 0.5`` (``[H, W]``) when it has any
    foreground, else of the keypoints ``points`` ``[K, 2]`` (photo px) whose ``conf`` ``[K]`` is
    above ``KEYPOINT_CONFIDENCE`` (all finite points without ``conf``; at least two needed),
    widened by a further ``SKELETON_MARGIN``. The box is centred on that extent, its side the
    extent's longer side plus ``margin`` of it on each side; it may reach past the photo. With
    neither, it is the centred square of the photo's shorter side.
    """
    width, height = (int(v) for v in image_size)
    if width < 1 or height < 1:
        raise ValueError(f"image_size must be positive (width, height), got {image_size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    extent = None
    extra = 0.0
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (height, width):
            raise ValueError(f"mask is {mask.shape}, expected [H, W] = {(height, width)}")
        rows = np.flatnonzero((mask > 0.5).any(axis=1))
        cols = np.flatnonzero((mask > 0.5).any(axis=0))
        if rows.size:
            extent = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    if extent is None and points is not None:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        keep = np.isfinite(points).all(axis=1)
        if conf is not None:
            conf = np.asarray(conf, dtype=np.float64).reshape(-1)
            if conf.shape[0] != points.shape[0]:
                raise ValueError(f"conf has {conf.shape[0]} entries for {points.shape[0]} points")
            keep &= conf > KEYPOINT_CONFIDENCE
        if keep.sum() >= 2:
            lo, hi = points[keep].min(axis=0), points[keep].max(axis=0)
            extent = (lo[0], lo[1], hi[0], hi[1])
            extra = SKELETON_MARGIN
    if extent is None:
        side = min(width, height)
        return CropBox(x0=(width - side) // 2, y0=(height - side) // 2, size=side,
                       out_size=out_size)
    x0, y0, x1, y1 = (float(v) for v in extent)
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * (margin + extra))
    size = math.ceil(max(side, _MIN_BOX))
    return CropBox(x0=round((x0 + x1 - size) / 2), y0=round((y0 + y1 - size) / 2), size=size,
                   out_size=out_size)


# --------------------------------------------------------------------------------------------


def _affine(xy: Any, scale: float, tx: float, ty: float) -> Any:
    """``xy * scale + (tx, ty)`` for a numpy array, a torch tensor or nested tuples/lists."""
    if isinstance(xy, np.ndarray):
        if xy.shape[-1:] != (2,):
            raise ValueError(f"points must be [..., 2], got shape {xy.shape}")
        dtype = xy.dtype if np.issubdtype(xy.dtype, np.floating) else np.float64
        return (xy.astype(np.float64) * scale + np.array([tx, ty])).astype(dtype)
    if isinstance(xy, (tuple, list)):
        array = np.asarray(xy, dtype=np.float64)
        if array.shape[-1:] != (2,):
            raise ValueError(f"points must be [..., 2], got shape {array.shape}")
        mapped = (array * scale + np.array([tx, ty])).tolist()
        if array.ndim == 1:
            return type(xy)(mapped)
        return type(xy)(type(item)(pair) for item, pair in zip(xy, mapped))
    if hasattr(xy, "new_tensor"):  # torch.Tensor, without importing torch here
        if xy.shape[-1] != 2:
            raise ValueError(f"points must be [..., 2], got shape {tuple(xy.shape)}")
        if not xy.is_floating_point():
            xy = xy.double()
        return xy * scale + xy.new_tensor([tx, ty])
    raise TypeError(f"points must be a numpy array, torch tensor, tuple or list, got {type(xy)}")


def _window(image: np.ndarray, ix0: int, iy0: int, ix1: int, iy1: int, pad: str,
            fill: float) -> np.ndarray:
    """Rows ``iy0:iy1`` and columns ``ix0:ix1`` of ``image``, padded where they fall outside."""
    height, width = image.shape[:2]
    if 0 <= ix0 and 0 <= iy0 and ix1 <= width and iy1 <= height:
        return image[iy0:iy1, ix0:ix1]
    if pad == "edge":
        rows = np.clip(np.arange(iy0, iy1), 0, height - 1)
        cols = np.clip(np.arange(ix0, ix1), 0, width - 1)
        return image[rows[:, None], cols[None, :]]
    region = np.full((iy1 - iy0, ix1 - ix0) + image.shape[2:], fill, dtype=image.dtype)
    sx0, sy0 = max(ix0, 0), max(iy0, 0)
    sx1, sy1 = min(ix1, width), min(iy1, height)
    if sx0 < sx1 and sy0 < sy1:
        region[sy0 - iy0:sy1 - iy0, sx0 - ix0:sx1 - ix0] = image[sy0:sy1, sx0:sx1]
    return region


def _cv2_interpolation(interpolation: str, scale: float) -> int:
    import cv2

    if interpolation == "auto":
        return cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    flags = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST_EXACT}
    if interpolation not in flags:
        raise ValueError(f"interpolation must be one of auto, area, linear, nearest, "
                         f"got {interpolation!r}")
    return flags[interpolation]
