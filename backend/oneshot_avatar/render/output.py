"""Where rendered frames go: a folder of PNGs with alpha (encoded in parallel threads), an MP4
(H.264 through imageio-ffmpeg's bundled ffmpeg), a GIF (Pillow), a zip of PNGs (the service's
multi-frame answer) or PNG bytes in memory (its single-frame answer). Every PNG is made by
``encode_png``. Every file appears only once complete: PNGs, zips and videos are written to
temporary names and renamed.

A sink has ``write(frame, rgba)``, ``close() -> list`` (what it wrote) and, where a failure
could leave something behind, ``abort()``; ``render.shots.render_to_sink`` drives one."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from oneshot_avatar.atomic import (
    atomic_output,
    commit,
    discard,
    is_no_space,
    new_temporary,
    output_error,
)
from oneshot_avatar.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".gif")


def _composite(rgba: np.ndarray, background: tuple[float, float, float]) -> np.ndarray:
    if rgba[..., 3].min() == 255:  # opaque (already over a background): nothing to blend
        return np.ascontiguousarray(rgba[..., :3])
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    bg = np.asarray(background, np.float32) * 255.0
    return (rgba[..., :3] * alpha + bg * (1 - alpha) + 0.5).astype(np.uint8)


class PngFolderSink:
    """``frame_00000.png`` ... with straight alpha, written by a thread pool."""

    def __init__(self, folder: Path, threads: int | None = None):
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-", delete=True)
            probe.close()
        except OSError as error:
            raise UserError(f"cannot write frames there: {error.strerror or error}", path=folder) from error
        self.pool = ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1))
        self.pending: list[Future] = []
        self.written: list[Path] = []

    def write(self, frame: int, rgba: np.ndarray) -> None:
        path = self.folder / f"frame_{frame:05d}.png"
        self.pending.append(self.pool.submit(_save_png, path, rgba))
        self.written.append(path)

    def close(self) -> list[Path]:
        """Wait for every frame; the first failure (e.g. a full disk) is raised once all have
        finished, so no write is still running when the caller looks at the folder."""
        errors = [future.exception() for future in self.pending]
        self.pool.shutdown()
        failed = [error for error in errors if error is not None]
        if failed:
            raise failed[0]
        return self.written


def encode_png(rgba: np.ndarray) -> bytes:
    """One frame ``uint8 [H, W, 4]`` (straight alpha) as PNG bytes: the one PNG encoder of
    every sink and of the service (fast zlib level: frames are many and large)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _save_png(path: Path, rgba: np.ndarray) -> None:
    data = encode_png(rgba)
    with atomic_output(path, sync=False) as tmp:
        tmp.write_bytes(data)


class PngBytesSink:
    """Frames kept in memory as PNG bytes (the service's ``format: png`` answer); ``close()``
    returns them in the order written."""

    def __init__(self):
        self.encoded: list[bytes] = []

    def write(self, frame: int, rgba: np.ndarray) -> None:
        self.encoded.append(encode_png(rgba))

    def close(self) -> list[bytes]:
        return self.encoded


class ZipSink:
    """``frame_00000.png`` ... stored in order in one zip file (PNG is already compressed, so
    the zip stores). Frames are encoded on ``pool`` (a shared one, or the sink's own); at most
    ``window`` wait for encoding, so memory stays bounded. The zip is written under a temporary
    name and renamed once complete; ``abort()`` removes it. A full disk is raised as the
    ``OSError`` it is (the caller words it)."""

    def __init__(self, path: Path, pool: Executor | None = None, window: int = 32):
        self.path = Path(path)
        self.own_pool = pool is None
        self.pool = pool or ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
        self.window = window
        self.pending: list[tuple[int, Future]] = []
        self.tmp = new_temporary(self.path)
        self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED)
        self.count = 0

    def write(self, frame: int, rgba: np.ndarray) -> None:
        self.pending.append((frame, self.pool.submit(encode_png, rgba)))
        while len(self.pending) > self.window:
            self._write_oldest()

    def _write_oldest(self) -> None:
        frame, future = self.pending.pop(0)
        self.zip.writestr(f"frame_{frame:05d}.png", future.result())
        self.count += 1

    def close(self) -> list[Path]:
        while self.pending:
            self._write_oldest()
        self.zip.close()
        if self.own_pool:
            self.pool.shutdown()
        commit(self.tmp, self.path)
        return [self.path]

    def abort(self) -> None:
        for _, future in self.pending:
            future.cancel()
        self.pending.clear()
        try:
            self.zip.close()  # may fail again (a full disk): the file goes anyway
        except OSError:
            pass
        finally:
            discard(self.tmp)
            if self.own_pool:
                self.pool.shutdown(wait=False, cancel_futures=True)


class VideoSink:
    """An MP4 or GIF, composited over ``background`` (videos have no alpha). An MP4 gets the
    sound of ``audio`` (any file ffmpeg decodes) muxed in as AAC, starting with frame 0."""

    def __init__(self, path: Path, fps: float, background: tuple[float, float, float] | None,
                 audio: Path | None = None):
        self.path = path
        self.audio = audio
        self.fps = fps
        self.background = background or (0.0, 0.0, 0.0)
        try:  # the temporary keeps the suffix: ffmpeg picks the container by it
            self.tmp = new_temporary(path, suffix=path.suffix)
        except OSError as error:
            raise UserError(f"cannot write the video there: {error.strerror or error}", path=path) from error
        self.frames: list[np.ndarray] = []
        self.writer = None

    def write(self, frame: int, rgba: np.ndarray) -> None:
        rgb = _composite(rgba, self.background)
        if self.path.suffix == ".gif":
            self.frames.append(rgb)
            return
        if self.writer is None:
            import imageio.v2 as imageio

            self.writer = imageio.get_writer(
                self.tmp, format="FFMPEG", mode="I", fps=self.fps, codec="libx264",
                quality=8, pixelformat="yuv420p", macro_block_size=2,
            )
        if rgb.shape[0] % 2 or rgb.shape[1] % 2:  # yuv420p needs even sizes
            rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
        self.writer.append_data(rgb)

    def close(self) -> list[Path]:
        try:
            if self.path.suffix == ".gif":
                from PIL import Image

                images = [Image.fromarray(f) for f in self.frames]
                images[0].save(self.tmp, format="GIF", save_all=True, append_images=images[1:],
                               duration=max(20, round(1000 / self.fps)), loop=0)
            elif self.writer is not None:
                self.writer.close()
                if self.audio is not None:
                    mux_audio(self.tmp, self.audio)
            commit(self.tmp, self.path)
        except OSError as error:
            if is_no_space(error):
                raise output_error(error, self.path) from error
            raise
        finally:
            discard(self.tmp)
        return [self.path]

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        discard(self.tmp)


def mux_audio(video: Path, audio: Path) -> None:
    """Put the sound of ``audio`` into the MP4 ``video`` (in place; video stream copied, sound
    encoded as AAC; the sound is cut where the video ends)."""
    import subprocess

    import imageio_ffmpeg

    muxed = video.with_name(f".{video.stem}-sound{video.suffix}")
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(video),
               "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
               "-b:a", "160k", "-shortest", str(muxed)]
    try:
        done = subprocess.run(command, capture_output=True, check=False, timeout=600)
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise UserError(f"could not add its sound to the video ({detail[-1] if detail else done.returncode})",
                            path=audio, field="audio")
        os.replace(muxed, video)
    finally:
        muxed.unlink(missing_ok=True)


def open_sink(out: Path, fps: float, background: tuple[float, float, float] | None,
              audio: Path | None = None):
    """A frame sink for ``out``: a video when it ends in .mp4/.gif, else a folder of PNGs.
    ``audio`` (a sound file for the MP4) needs an ``.mp4``."""
    if audio is not None and out.suffix.lower() != ".mp4":
        raise UserError(f"--audio needs an .mp4 output (GIFs and PNG frames have no sound), got "
                        f"{out.name!r}", path=out, field="audio")
    if out.suffix.lower() in VIDEO_SUFFIXES:
        return VideoSink(out, fps, background, audio)
    if out.suffix and not out.is_dir():
        raise UserError(f"--out must be a folder, a .mp4 or a .gif (got suffix {out.suffix!r})",
                        path=out, field="out")
    return PngFolderSink(out)
