"""Render Avatar without Blender: the request body from the poses and cameras read in the scene,
where the frames go, and the frames taken out of the backend's zip. ``render_ops.py`` reads the
scene (bpy) and calls these; they are tested without Blender."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .client import ServiceError

NAME_LENGTH = 64  # the API's longest motion name


def render_request(params: dict[str, Any], cameras: Sequence[dict[str, Any]], *, fps: float,
                   expression_space: str | None, name: str,
                   background: Sequence[float] | None) -> dict[str, Any]:
    """The ``POST /v1/render`` body without ``avatar``: the motion rows ``params`` (one row per
    frame, see ``core/rows.py``), one camera per frame (sent once when they are all the same),
    ``background`` sRGB in [0, 1] or None for transparent."""
    cameras = list(cameras)
    if all(camera == cameras[0] for camera in cameras):
        cameras = cameras[:1]
    return {
        "motion": {"params": params, "fps": fps, "expression_space": expression_space,
                   "name": name[:NAME_LENGTH]},
        "cameras": cameras,
        "background": None if background is None else [float(c) for c in background],
    }


def split_output_path(path: str, fallback_folder: str, default_prefix: str) -> tuple[str, str]:
    """``(folder, file prefix)`` of a scene's (absolute) output path: ``/r/render/`` (or an
    existing folder) -> that folder and ``default_prefix``; ``/r/render/shot_`` -> ``/r/render``
    and ``shot_``; an empty path -> ``fallback_folder``."""
    if not path or path.endswith(("/", "\\")) or os.path.isdir(path):
        return path or fallback_folder, default_prefix
    return os.path.dirname(path) or ".", os.path.basename(path)


def frame_file(folder: str, prefix: str, frame: int) -> str:
    """The file of scene frame ``frame``: ``<folder>/<prefix>0001.png``."""
    return os.path.join(folder, f"{prefix}{frame:04d}.png")


def extract_frames(archive_path: str | Path, frames: list[int], folder: str,
                   prefix: str) -> list[str]:
    """Write the zip's ``frame_00000.png``... as ``<folder>/<prefix><scene frame>.png``;
    every file appears whole (written aside, then renamed)."""
    os.makedirs(folder, exist_ok=True)
    written = []
    with zipfile.ZipFile(archive_path) as archive:
        names = set(archive.namelist())
        for position, frame in enumerate(frames):
            member = f"frame_{position:05d}.png"
            if member not in names:
                raise ServiceError(f"the backend's zip has no {member} (it has {len(names)} "
                                   f"files for {len(frames)} frames)", field="frames",
                                   hint="render again; see the backend's log")
            target = frame_file(folder, prefix, frame)
            partial = target + ".part"
            with archive.open(member) as source, open(partial, "wb") as sink:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
            os.replace(partial, target)
            written.append(target)
    return written
