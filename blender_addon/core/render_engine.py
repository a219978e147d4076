"""The render engine's plain parts (no bpy): one ``POST /v1/render-scene`` request for every
avatar in the scene and a camera (the scene camera, or a 3D view's view and projection
matrices), and its answer decoded into Blender's render-result buffers.

Blender's buffers: rows bottom to top, ``Combined`` is scene-linear RGBA with *premultiplied*
alpha, ``Depth`` (Z) is the distance along the camera's viewing axis with 1e10 where nothing is
drawn. The backend answers straight sRGB colour, coverage and depth (``inf`` where empty), rows
top to bottom (see the backend's ``service/scene.py``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .camera import CameraExportError, _matrix4

BLENDER_NO_DEPTH = 1e10  # Blender's Z for pixels where nothing is drawn


@dataclass
class SceneAvatar:
    """One avatar of the scene: backend id, per-frame SMPL-X rows (``rig_pose.motion_params``),
    expression space and the rig object's ``matrix_world``."""

    avatar_id: str
    params: dict[str, list[list[float]]]
    expression_space: str | None
    matrix_world: Any


def scene_request(avatars: Sequence[SceneAvatar], cameras: Sequence[dict[str, Any]], *,
                  dtype: str = "float32", depth: bool = True) -> dict[str, Any]:
    """The ``/v1/render-scene`` body: every avatar with its rows and rig matrix; ``cameras``
    one for all frames or one per frame (a ``blender_camera_payload`` without a rig, or
    :func:`viewport_camera`). The backend wants at least one avatar: a scene without any is
    drawn transparent without a request (:func:`transparent_frame`). The answer is cropped to
    the avatars' box (:func:`decode_scene` places it); ``depth=False`` leaves out the depth
    pass (the viewport draws colour only)."""
    if not cameras:
        raise CameraExportError("no camera to render from; set the scene camera", "camera")
    entries = []
    for avatar in avatars:
        entry: dict[str, Any] = {"avatar": avatar.avatar_id, "params": avatar.params,
                                 "matrix_world": _matrix4(avatar.matrix_world,
                                                          "rig matrix_world").tolist()}
        if avatar.expression_space:
            entry["expression_space"] = avatar.expression_space
        entries.append(entry)
    return {"avatars": entries, "cameras": list(cameras), "dtype": dtype, "crop": True,
            "depth": depth}


def viewport_camera(view_matrix: Any, projection_matrix: Any, width: int, height: int
                    ) -> dict[str, Any]:
    """An OpenCV camera (in the Blender world, as ``/v1/render-scene`` takes it) from a 3D
    view's ``region_3d.view_matrix`` (world -> OpenGL eye) and ``window_matrix`` (OpenGL
    projection) and the region's size in pixels. Orthographic views are refused."""
    view = _matrix4(view_matrix, "view_matrix")
    projection = _matrix4(projection_matrix, "projection_matrix")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1 or \
            isinstance(height, bool) or not isinstance(height, int) or height < 1:
        raise CameraExportError(f"expected a region size in whole pixels, got {width}x{height}",
                                "region")
    if abs(projection[3, 3]) > 1e-9 or abs(projection[3, 2] + 1.0) > 1e-6:
        raise CameraExportError("the view is orthographic; avatars render in perspective "
                                "views (View > Perspective/Orthographic, numpad 5)",
                                "projection_matrix")
    # OpenGL: x_ndc = P00 x/(-z) + ..., OpenCV camera = (x, -y, -z) of the OpenGL eye.
    fx = projection[0, 0] * width / 2.0
    fy = projection[1, 1] * height / 2.0
    cx = width / 2.0 * (1.0 - projection[0, 2])
    cy = height / 2.0 * (1.0 + projection[1, 2])
    p22, p23 = projection[2, 2], projection[2, 3]
    near, far = p23 / (p22 - 1.0), p23 / (p22 + 1.0)
    world_to_cam = np.diag([1.0, -1.0, -1.0, 1.0]) @ view
    camera = {"K": [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]],
              "world_to_cam": world_to_cam.tolist(), "width": width, "height": height}
    if 0 < near < far and np.isfinite(far):
        camera["near"], camera["far"] = float(near), float(far)
    return camera


def same_rigs(first: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]]) -> bool:
    """Whether two frames' avatars (``{"name", "package", "matrix_world", ...}``) can share one
    request: the same rigs with the same packages, standing where they stood."""
    return len(first) == len(other) and all(
        a["name"] == b["name"] and a["package"] == b["package"]
        and a["avatar_id"] == b["avatar_id"] and a["expression_space"] == b["expression_space"]
        and np.allclose(a["matrix_world"], b["matrix_world"], atol=1e-7)
        for a, b in zip(first, other))


def merge_frames(frames: Sequence[tuple[int, list[dict[str, Any]], dict[str, Any]]]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``[(frame, avatars, camera)]`` of frames with :func:`same_rigs` -> one request's
    avatars (rows of every frame, in order) and cameras (one, or one per frame)."""
    first = frames[0][1]
    entries = []
    for index, entry in enumerate(first):
        params: dict[str, list] = {}
        for _, avatars, _ in frames:
            for name, rows in avatars[index]["params"].items():
                params.setdefault(name, []).extend(rows)
        entries.append({**entry, "params": params})
    cameras = [camera for _, _, camera in frames]
    if all(camera == cameras[0] for camera in cameras):
        cameras = cameras[:1]
    return entries, cameras


@dataclass
class Frame:
    """One decoded frame in Blender's layout: ``combined`` [H, W, 4] premultiplied
    scene-linear RGBA, ``depth`` [H, W] Z (1e10 where empty), rows bottom to top. ``drawn``:
    ``(x0, y0, x1, y1)`` around the pixels with any coverage in that layout (end exclusive;
    ``None``: nothing is drawn), so the viewport uploads only that part as a texture."""

    combined: np.ndarray
    depth: np.ndarray
    drawn: tuple[int, int, int, int] | None = None

    @property
    def width(self) -> int:
        return int(self.combined.shape[1])

    @property
    def height(self) -> int:
        return int(self.combined.shape[0])


class SceneAnswerError(ValueError):
    """The backend's answer is not the expected ``.npz`` of frames."""


def decode_scene(data: bytes, width: int | None = None, height: int | None = None
                 ) -> list[Frame]:
    """``/v1/render-scene`` bytes -> frames; checks the size when ``width``/``height`` are given.
    Reads whole frames and cropped answers (``box``/``size``), with or without depth."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            color = np.asarray(arrays["color"], dtype=np.float32)
            alpha = np.asarray(arrays["alpha"], dtype=np.float32)
            depth = (np.asarray(arrays["depth"], dtype=np.float32)
                     if "depth" in arrays.files else None)
            box = [int(v) for v in arrays["box"]] if "box" in arrays.files else None
            size = [int(v) for v in arrays["size"]] if "size" in arrays.files else None
    except (OSError, ValueError, KeyError, EOFError, TypeError) as error:
        raise SceneAnswerError(f"the backend's scene render could not be read ({error}); "
                               "check the backend URL points at `oneshot-avatar serve`") from None
    if color.ndim != 4 or color.shape[-1] != 3 or alpha.shape != color.shape[:3] \
            or (depth is not None and depth.shape != alpha.shape):
        raise SceneAnswerError(f"unexpected array shapes color {color.shape}, alpha "
                               f"{alpha.shape}, depth {None if depth is None else depth.shape}")
    crop_h, crop_w = alpha.shape[1:]
    if box is None:
        x0 = y0 = 0
        width_, height_ = crop_w, crop_h
    else:
        if size is None or len(box) != 4 or len(size) != 2:
            raise SceneAnswerError(f"a cropped answer needs box [x0, y0, x1, y1] and size "
                                   f"[width, height], got box {box}, size {size}")
        x0, y0, x1, y1 = box
        width_, height_ = size
        if not (0 <= x0 <= x1 <= width_ and 0 <= y0 <= y1 <= height_) or \
                (x1 - x0, y1 - y0) != (crop_w, crop_h):
            raise SceneAnswerError(f"the box {box} does not hold the {crop_w}x{crop_h} crop "
                                   f"in a {width_}x{height_} frame")
    if width is not None and height is not None and (height_, width_) != (height, width):
        raise SceneAnswerError(f"the backend rendered {width_}x{height_}, "
                               f"{width}x{height} was asked")
    frames = []
    for index in range(alpha.shape[0]):
        combined = np.zeros((height_, width_, 4), np.float32)
        z = np.full((height_, width_), BLENDER_NO_DEPTH, np.float32)
        drawn = None
        # Colour work only inside the box around the avatars (most of a frame is empty).
        rows = np.flatnonzero((alpha[index] > 0).any(axis=1))
        if rows.size:
            cols = np.flatnonzero((alpha[index, rows[0]:rows[-1] + 1] > 0).any(axis=0))
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            a = np.clip(alpha[index, r0:r1, c0:c1], 0.0, 1.0)
            top, bottom = height_ - (y0 + r1), height_ - (y0 + r0)  # Blender: rows bottom to top
            drawn = (int(x0 + c0), int(top), int(x0 + c1), int(bottom))
            box_out = combined[top:bottom, x0 + c0:x0 + c1]
            box_out[..., :3] = (_srgb_to_linear32(color[index, r0:r1, c0:c1])
                                * a[..., None])[::-1]
            box_out[..., 3] = a[::-1]
            if depth is not None:
                seen = depth[index, r0:r1, c0:c1]
                z[top:bottom, x0 + c0:x0 + c1] = np.where(
                    np.isfinite(seen) & (a > 0), seen, BLENDER_NO_DEPTH)[::-1]
        frames.append(Frame(combined, z, drawn))
    return frames


def _srgb_to_linear32(values: np.ndarray) -> np.ndarray:
    """``colors.srgb_to_linear`` in float32 (a viewport frame has millions of values)."""
    c = np.clip(values, 0.0, 1.0, dtype=np.float32)
    low = c / np.float32(12.92)
    high = np.power((c + np.float32(0.055)) / np.float32(1.055), np.float32(2.4))
    return np.where(c <= 0.04045, low, high).astype(np.float32, copy=False)


def flat32(array: np.ndarray) -> np.ndarray:
    """``array`` as one contiguous float32 row (what ``foreach_set`` copies in one go)."""
    return np.ascontiguousarray(array, dtype=np.float32).reshape(-1)


def transparent_frame(width: int, height: int) -> Frame:
    """What a scene with no avatar renders (no request needed)."""
    return Frame(np.zeros((height, width, 4), np.float32),
                 np.full((height, width), BLENDER_NO_DEPTH, np.float32))


class LatestOnly:
    """The viewport's request loop: at most one request in flight, the newest wanted one next.

    ``want(key, work)`` says what should be on screen (``work()`` runs on a worker thread and
    returns what to draw); wants that are overtaken before they start are dropped. ``result()``
    is the last finished answer (kept while the next is on its way) and the last error (cleared
    by the next success). Thread-safe; no bpy."""

    def __init__(self, start_thread=None):
        import threading

        self._lock = threading.Lock()
        self._start = start_thread or (lambda run: threading.Thread(target=run,
                                                                    daemon=True).start())
        self._in_flight: Any = None
        self._next: tuple[Any, Any] | None = None
        self._done_key: Any = None
        self._value: Any = None
        self._error: str | None = None
        self.finished = 0  # answers received (successes and failures)

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._in_flight is not None or self._next is not None

    def want(self, key: Any, work) -> None:
        with self._lock:
            if key == self._in_flight or (self._next is None and self._in_flight is None
                                          and key == self._done_key):
                self._next = None if key == self._in_flight else self._next
                return
            self._next = (key, work)
            if self._in_flight is not None:
                return
            key, work = self._next
            self._next, self._in_flight = None, key
        self._start(lambda: self._run(key, work))

    def _run(self, key, work) -> None:
        while True:
            try:
                value, error = work(), None
            except Exception as failure:  # noqa: BLE001  (shown in the region; the loop goes on)
                value, error = None, str(failure) or type(failure).__name__
            with self._lock:
                self.finished += 1
                self._done_key = key
                if error is None:
                    self._value, self._error = value, None
                else:
                    self._error = error
                if self._next is None:
                    self._in_flight = None
                    return
                key, work = self._next
                self._next, self._in_flight = None, key

    def result(self) -> tuple[Any, str | None]:
        with self._lock:
            return self._value, self._error


VIEWPORT_PREFIX = "One-Shot Avatar: "


@dataclass
class ViewportPicture:
    """What a 3D view in Rendered shading shows now: ``frame`` (the newest finished, kept on
    screen while the next is on its way; ``None`` before the first) and ``message`` (written
    in the region; ``""`` for none)."""

    frame: Frame | None
    message: str


class Viewport:
    """Rendered shading's state for one 3D view, without bpy: each redraw says what should be
    on screen (``want(key, work)``, or ``failed(reason)`` when no request could be made, e.g.
    an orthographic view); requests are coalesced by :class:`LatestOnly` (only the newest
    frame in flight); :meth:`picture` is what to draw."""

    def __init__(self, start_thread=None):
        self.requests = LatestOnly(start_thread)
        self._setup_error: str | None = None

    def want(self, key: Any, work) -> None:
        self._setup_error = None
        self.requests.want(key, work)

    def failed(self, reason: str) -> None:
        self._setup_error = reason

    @property
    def busy(self) -> bool:
        return self.requests.busy

    def picture(self) -> ViewportPicture:
        frame, error = self.requests.result()
        error = self._setup_error or error
        if error:
            return ViewportPicture(frame, VIEWPORT_PREFIX + error)
        return ViewportPicture(frame, VIEWPORT_PREFIX + "rendering..." if frame is None else "")


def viewport_request(avatars: Sequence[dict[str, Any]], view_matrix: Any,
                     projection_matrix: Any, width: int, height: int, backend_url: str
                     ) -> tuple[str, dict[str, Any]]:
    """``(key, camera)`` for a 3D view: the camera (:func:`viewport_camera`) and a key that is
    equal exactly when the same request would be sent (view, region size, every avatar's pose
    and place, backend), so an unchanged view sends nothing."""
    camera = viewport_camera(view_matrix, projection_matrix, width, height)
    return repr((camera, list(avatars), backend_url)), camera
