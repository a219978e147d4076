"""Backend jobs as the add-on tracks them: the API's Job parsed and checked, its progress as
short text ("train 42%"), and which jobs still need polling or delivering.

The add-on keeps one record per job in the .blend (a Scene collection); besides the backend's
``state`` it records ``delivered`` (the result is in Blender: the avatar imported, the frames
loaded) and a local state ``"submitting"`` for a job whose request is still being sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BACKEND_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
SUBMITTING = "submitting"  # local: the request creating the job is in flight
ACTIVE_STATES = frozenset({"queued", "running"})
FINISHED_STATES = frozenset({"succeeded", "failed", "cancelled"})
JOB_KINDS = ("reconstruct", "render")
STAGES = ("subject", "fit", "labels", "train", "package", "render")


class JobFormatError(ValueError):
    """The backend's Job JSON is not what API v1 describes; names the field."""

    def __init__(self, message: str, field: str):
        self.field = field
        super().__init__(f"job field '{field}': {message}; the backend and the add-on versions "
                         "may not match")


def _fraction(data: Mapping[str, Any], field: str) -> float:
    value = data.get(field, 0.0)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise JobFormatError(f"expected a number 0..1, got {value!r}", field)
    return min(max(float(value), 0.0), 1.0)


def _optional_text(data: Mapping[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise JobFormatError(f"expected text or null, got {value!r}", field)
    return value


@dataclass(frozen=True)
class JobSnapshot:
    """One ``GET /v1/jobs/{id}`` answer. ``progress`` / ``stage_progress``: 0..1."""

    id: str
    kind: str
    state: str
    stage: str | None = None
    progress: float = 0.0
    stage_progress: float = 0.0
    name: str = ""
    error_message: str | None = None
    error_field: str | None = None
    avatar_id: str | None = None
    log: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, data: Any) -> JobSnapshot:
        if not isinstance(data, Mapping):
            raise JobFormatError(f"expected a JSON object, got {data!r:.80}", "job")
        job_id = data.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise JobFormatError(f"expected a job id, got {job_id!r}", "id")
        kind = data.get("kind")
        if kind not in JOB_KINDS:
            raise JobFormatError(f"expected one of {JOB_KINDS}, got {kind!r}", "kind")
        state = data.get("state")
        if state not in BACKEND_STATES:
            raise JobFormatError(f"expected one of {BACKEND_STATES}, got {state!r}", "state")
        error = data.get("error")
        if error is not None and not isinstance(error, Mapping):
            raise JobFormatError(f"expected an object or null, got {error!r}", "error")
        error = error or {}
        log = data.get("log") or []
        if not isinstance(log, list):
            raise JobFormatError(f"expected a list of lines, got {log!r:.80}", "log")
        return cls(
            id=job_id, kind=kind, state=state, stage=_optional_text(data, "stage"),
            progress=_fraction(data, "progress"),
            stage_progress=_fraction(data, "stage_progress"),
            name=_optional_text(data, "name") or "",
            error_message=_optional_text(error, "message"),
            error_field=_optional_text(error, "field"),
            avatar_id=_optional_text(data, "avatar_id"),
            log=tuple(str(line) for line in log),
        )

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def failure_text(self) -> str:
        """The backend's error as one sentence (empty unless failed)."""
        if self.state != "failed":
            return ""
        message = self.error_message or (self.log[-1] if self.log else "no message")
        return f"'{self.error_field}': {message}" if self.error_field else message


def is_finished(state: str) -> bool:
    return state in FINISHED_STATES


def needs_polling(state: str) -> bool:
    """The backend is still working on it (queued or running)."""
    return state in ACTIVE_STATES


def needs_delivery(state: str, delivered: bool) -> bool:
    """Succeeded on the backend but its result is not in Blender yet."""
    return state == "succeeded" and not delivered


def percent(fraction: float) -> int:
    """0..1 -> a whole percentage, never showing 100 before the end (99.6 % -> 99)."""
    return min(math.floor(fraction * 100.0), 100)


def progress_text(state: str, stage: str | None = None, stage_progress: float = 0.0,
                  progress: float = 0.0, *, delivered: bool = False, message: str = "") -> str:
    """Short status for the panel and status bar: ``"queued"``, ``"train 42%"``,
    ``"importing"``, ``"done"``, ``"failed: <message>"``."""
    if state == SUBMITTING:
        return "sending"
    if state == "queued":
        return "queued"
    if state == "running":
        if stage:
            return f"{stage} {percent(stage_progress)}%"
        return f"running {percent(progress)}%"
    if state == "succeeded":
        return "done" if delivered else ("failed: " + message if message else "fetching result")
    if state == "failed":
        return f"failed: {message}" if message else "failed"
    if state == "cancelled":
        return "cancelled"
    return state


def overall_fraction(state: str, progress: float, *, delivered: bool = False) -> float:
    """What a progress bar shows for the whole job (0..1)."""
    if state == "succeeded":
        return 1.0 if delivered else 0.99
    if state in ("queued", SUBMITTING):
        return 0.0
    return min(max(progress, 0.0), 1.0)


def unfinished(records: Iterable[Any]) -> list[Any]:
    """Records (anything with ``state`` and ``delivered``) that still need the add-on: the
    backend is working on them, they are being sent, or their result is not fetched yet."""
    return [record for record in records
            if record.state == SUBMITTING or needs_polling(record.state)
            or needs_delivery(record.state, bool(record.delivered) or bool(record.message))]


def finished(records: Iterable[Any]) -> list[Any]:
    """Records that need nothing more (finished on the backend and delivered or given up)."""
    records = list(records)
    pending = {id(record) for record in unfinished(records)}
    return [record for record in records if id(record) not in pending]


def count_text(count: int, noun: str) -> str:
    """``"1 frame"``, ``"3 frames"``: a count with its noun in the right number."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
