"""Import Video Motion without Blender: checking the video file, starting a tracking job on the
backend (``POST /v1/tracking``), following it and fetching the tracked motion.

The backend runs ``oneshot-avatar track`` on the uploaded video (landmarks per frame, one SMPL-X
fit over the clip) as a job with progress; its result is our motion ``.npz``, which the operator
in ``video_ops`` keys on the rig at the scene's frame rate.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from .client import ServiceClient, ServiceError, UploadFile, encode_multipart
from .errors import FieldError, checked_media_file

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv")
MAX_VIDEO_BYTES = 4 * 1024 * 1024 * 1024  # what the add-on sends at most
UPLOAD_SECONDS_PER_MB = 1.0
MIN_UPLOAD_TIMEOUT_S = 60.0


class VideoInputError(FieldError):
    """A bad video file or setting, named with its field."""


def check_video_path(path: str | os.PathLike) -> Path:
    """The video file, checked to exist and have a video extension."""
    return checked_media_file(path, kind="video", examples="MP4, MOV, MKV, WebM",
                              extensions=VIDEO_EXTENSIONS, shown=5, max_bytes=MAX_VIDEO_BYTES,
                              too_large=f"is larger than {MAX_VIDEO_BYTES >> 30} GiB",
                              error=VideoInputError)


def tracking_fields(*, fps: float, size: int = 0, max_frames: int = 0) -> dict:
    """The form fields of ``POST /v1/tracking`` (0 = the backend's default)."""
    if not (math.isfinite(fps) and 0 < fps <= 60):
        raise VideoInputError(f"the scene's frame rate {fps:g} is outside 0..60 fps (tracking "
                              "goes up to 60)", field="fps")
    if size and not 64 <= size <= 2160:
        raise VideoInputError(f"size must be 64..2160 px, got {size}", field="size")
    if max_frames and not 1 <= max_frames <= 36_000:
        raise VideoInputError(f"max frames must be 1..36000, got {max_frames}",
                              field="max_frames")
    return {"fps": f"{fps:.6g}", "size": size or None, "max_frames": max_frames or None}


def start_tracking(client: ServiceClient, video: str | os.PathLike, *, fps: float,
                   size: int = 0, max_frames: int = 0) -> dict:
    """Upload the video and start a tracking job; returns the Job."""
    path = check_video_path(video)
    fields = tracking_fields(fps=fps, size=size, max_frames=max_frames)
    body, content_type = encode_multipart(fields, [UploadFile.from_path("video", path)])
    timeout = max(client.timeout, MIN_UPLOAD_TIMEOUT_S,
                  UPLOAD_SECONDS_PER_MB * path.stat().st_size / 2**20)
    return client._json("POST", "/v1/tracking", body=body, content_type=content_type,
                        timeout=timeout)


def job_finished(job: dict) -> bool:
    return job.get("state") in ("succeeded", "failed", "cancelled")


def job_failure(job: dict) -> ServiceError | None:
    """The error of a failed or cancelled job (None when it succeeded or runs)."""
    if job.get("state") == "failed":
        error = job.get("error") or {}
        return ServiceError(f"tracking failed: {error.get('message', 'no reason given')}",
                            field=error.get("field"))
    if job.get("state") == "cancelled":
        return ServiceError("tracking was cancelled")
    return None


def wait_for_tracking(client: ServiceClient, job_id: str, *, timeout: float = 3600.0,
                      poll: float = 0.5, on_progress: Callable[[dict], None] | None = None
                      ) -> dict:
    """Poll the job until it ends (scripts and tests; the operator polls from a timer)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_job(job_id)
        if on_progress is not None:
            on_progress(job)
        if job_finished(job):
            return job
        if time.monotonic() > deadline:
            raise ServiceError(f"tracking job {job_id} did not finish within {timeout:.0f} s")
        time.sleep(poll)


def fetch_motion(client: ServiceClient, job: dict, folder: str | os.PathLike) -> Path:
    """Download the finished job's motion ``.npz`` into ``folder``; a failed job raises."""
    failure = job_failure(job)
    if failure is not None:
        raise failure
    return client.download_job_result(job["id"], Path(folder) / f"{job['id']}.motion.npz")
