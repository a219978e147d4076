"""Reading a driving video: probe, check, and decode frames at a constant rate and working size.

Decoding is the bundled ffmpeg's (``imageio-ffmpeg``). Every video is decoded through ffmpeg's
``fps`` filter, so a variable-frame-rate recording (phones) comes out at one constant rate with
frames duplicated or dropped by their timestamps, and through ``scale``, so 4K comes out at the
working size. ffmpeg applies a phone video's rotation flag while decoding (the frames come out
upright); the probe reports the flag and the upright size.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oneshot_avatar.errors import UserError

MAX_SECONDS = 600.0  # longer videos need --max-frames (the part read stays within this)
MAX_FPS = 60.0  # output frame rate cap
MIN_FPS = 1.0  # a motion sampled more sparsely than once a second is no motion
DEFAULT_SIZE = 720  # short side of the working frames (never upscaled)
MIN_SIDE = 64
STILL_CODECS = ("png", "mjpeg", "bmp", "tiff", "webp", "gif", "jpegls", "jpeg2000")
STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass(frozen=True)
class VideoInfo:
    """What the probe found (sizes upright, after the rotation flag)."""

    path: Path
    width: int
    height: int
    fps: float  # the container's average rate
    duration: float  # seconds
    rotation: int  # degrees of the rotation flag (0, 90, 180, 270)
    codec: str

    @property
    def frames(self) -> int:
        return max(1, round(self.duration * self.fps))


def _meta(path: Path, output_params: list[str] | None = None):
    import imageio_ffmpeg

    generator = imageio_ffmpeg.read_frames(str(path), output_params=output_params)
    with contextlib.redirect_stdout(io.StringIO()):  # imageio-ffmpeg prints a size notice
        meta = next(generator)
    return generator, meta


def probe_video(path: str | Path) -> VideoInfo:
    """Probe ``path``; a missing file, a file that is not a video, or a still image is a
    :class:`UserError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError("no such video file" if not path.exists() else "is not a file",
                        path=path, field="video")
    try:
        generator, meta = _meta(path)
        generator.close()
    except (OSError, RuntimeError, StopIteration, ValueError) as error:
        first = str(error).strip().splitlines()
        raise UserError("is not a video ffmpeg can read (" + (first[-1] if first else "no "
                        "video stream") + "); give an MP4, MOV, MKV, WebM, AVI ... file",
                        path=path, field="video") from error
    codec = str(meta.get("codec", "")).strip(" ,")
    fps = float(meta.get("fps") or 0.0)
    duration = float(meta.get("duration") or 0.0)
    rotation = int(meta.get("rotate") or 0) % 360
    # "size" is what ffmpeg outputs, after applying a rotation flag (newer ffmpeg versions give
    # the flag as a display matrix that imageio-ffmpeg does not report: the swap tells)
    width, height = (int(v) for v in meta.get("size") or meta.get("source_size"))
    source = tuple(int(v) for v in meta.get("source_size") or (width, height))
    if rotation == 0 and source != (width, height) and source == (height, width):
        rotation = 90
    if duration <= 0.1 and (codec in STILL_CODECS or path.suffix.lower() in STILL_SUFFIXES):
        raise UserError(f"is a still image ({codec}), not a video: give a video of a person "
                        "moving (for one photo use `oneshot-avatar reconstruct`)", path=path,
                        field="video")
    if not math.isfinite(fps) or fps <= 0 or not math.isfinite(duration) or duration <= 0:
        raise UserError(f"has no readable frame rate or duration (fps {fps}, duration "
                        f"{duration} s); re-encode it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`",
                        path=path, field="video")
    if min(width, height) < MIN_SIDE:
        raise UserError(f"is {width}x{height}: too small to track a person (at least "
                        f"{MIN_SIDE} px on the short side)", path=path, field="video")
    return VideoInfo(path=path, width=width, height=height, fps=fps, duration=duration,
                     rotation=rotation, codec=codec)


def output_rate(info: VideoInfo, fps: float | None) -> float:
    """The constant frame rate frames are decoded at: ``fps`` or the video's, at most 60."""
    if fps is not None:
        if not math.isfinite(fps) or fps < MIN_FPS or fps > MAX_FPS:
            raise UserError(f"--fps must be in [{MIN_FPS:g}, {MAX_FPS:g}], got {fps}",
                            field="fps")
        return float(fps)
    return float(min(round(info.fps, 3), MAX_FPS))


def working_size(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """``(width, height)`` of the decoded frames: the short side ``size`` (default 720), never
    larger than the video's own, both even (H.264 previews need it)."""
    short = DEFAULT_SIZE if size is None else int(size)
    if short < MIN_SIDE:
        raise UserError(f"--size must be at least {MIN_SIDE} px, got {short}", field="size")
    scale = min(1.0, short / min(info.width, info.height))
    width = max(2, round(info.width * scale / 2) * 2)
    height = max(2, round(info.height * scale / 2) * 2)
    return width, height


def check_length(info: VideoInfo, fps: float, max_frames: int | None) -> int:
    """Frames that will be read; a video over ``MAX_SECONDS`` needs ``max_frames``."""
    total = max(1, math.floor(info.duration * fps + 1e-6))
    if max_frames is not None:
        if max_frames < 1:
            raise UserError(f"--max-frames must be at least 1, got {max_frames}",
                            field="max_frames")
        total = min(total, max_frames)
    if min(total / fps, info.duration) > MAX_SECONDS + 1e-6:  # the stretch of video read
        raise UserError(f"is {info.duration / 60:.1f} minutes long; at most "
                        f"{MAX_SECONDS / 60:.0f} minutes are tracked at once: cut it (e.g. "
                        "`ffmpeg -ss START -t 600 -i IN OUT.mp4`) or give --max-frames N",
                        path=info.path, field="video")
    return total


def read_frames(info: VideoInfo, fps: float, size: tuple[int, int],
                max_frames: int) -> Iterator[np.ndarray]:
    """Frames ``uint8 [H, W, 3]`` at ``fps`` and ``size``, at most ``max_frames``."""
    width, height = size
    generator, meta = _meta(info.path, ["-vf", f"fps={fps:g},scale={width}:{height}:flags=area",
                                        "-frames:v", str(max_frames)])
    got = tuple(int(v) for v in meta["size"])
    if got != (width, height):  # the rotation was applied differently than probed
        width, height = got
    count = 0
    try:
        for raw in generator:
            frame = np.frombuffer(raw, dtype=np.uint8)
            if frame.size != width * height * 3:
                break
            yield frame.reshape(height, width, 3)
            count += 1
            if count >= max_frames:
                break
    finally:
        generator.close()
