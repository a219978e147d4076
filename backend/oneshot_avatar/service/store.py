"""Jobs and avatars on disk: one SQLite database plus an artifact folder per job and one file
per avatar, under the server's data folder::

    DATA/service.db                 jobs and avatars (SQLite, WAL)
    DATA/jobs/<job id>/inputs/      the uploaded files, under names the server chose
    DATA/jobs/<job id>/out/         the reconstruction's outputs and its work folder (checkpoints)
    DATA/avatars/<avatar id>.avatar finished or uploaded packages (written atomically)

Every write is a single SQLite transaction, and an avatar's row is added only after its file is
complete, so a crash at any point leaves either no avatar or a whole one.
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED_STATES = ("succeeded", "failed", "cancelled")
JOB_KINDS = ("reconstruct", "render", "track")
JOB_ID = re.compile(r"^j_[0-9a-f]{16}$")
AVATAR_ID = re.compile(r"^a_[0-9a-f]{16}$")
LOG_LINES = 50

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    stage TEXT,
    progress REAL NOT NULL DEFAULT 0,
    stage_progress REAL NOT NULL DEFAULT 0,
    name TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    request TEXT NOT NULL DEFAULT '{}',
    log TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    avatar_id TEXT,
    result TEXT,
    artifacts TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS avatars (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    gaussians INTEGER NOT NULL,
    sh_degree INTEGER NOT NULL,
    body_id TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    job_id TEXT
);
"""


class DataDirLock:
    """One server per data folder: an OS lock (``flock``) on ``DATA/server.lock``, held while the
    server runs and released by the kernel when the process ends, however it ends (kill -9
    included), so a stale lock file never blocks a restart."""

    def __init__(self, data_dir: Path):
        import fcntl
        import os

        from oneshot_avatar.errors import UserError

        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "server.lock"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise UserError(f"another oneshot-avatar server (pid {holder}) is using the data "
                            f"folder {str(data_dir)!r}; stop it first, or give this one another "
                            "--data-dir", field="data-dir") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        import os

        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def new_job_id() -> str:
    return "j_" + secrets.token_hex(8)


def new_avatar_id() -> str:
    return "a_" + secrets.token_hex(8)


@dataclass
class Job:
    id: str
    kind: str
    state: str
    name: str = ""
    stage: str | None = None
    progress: float = 0.0
    stage_progress: float = 0.0
    created: str = ""
    updated: str = ""
    request: dict = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    error: dict | None = None
    avatar_id: str | None = None
    result: str | None = None  # file name inside the job folder holding the result
    artifacts: list[str] = field(default_factory=list)
    attempts: int = 0

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "state": self.state, "stage": self.stage,
            "progress": round(self.progress, 4), "stage_progress": round(self.stage_progress, 4),
            "created": self.created, "updated": self.updated, "name": self.name,
            "log": self.log[-20:], "error": self.error, "avatar_id": self.avatar_id,
            "result_url": f"/v1/jobs/{self.id}/result" if self.result else None,
            "artifacts": list(self.artifacts),
        }


@dataclass
class AvatarRecord:
    id: str
    name: str
    created: str
    gaussians: int
    sh_degree: int
    body_id: str
    body_sha256: str
    size_bytes: int
    job_id: str | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "created": self.created, "gaussians": self.gaussians,
            "sh_degree": self.sh_degree, "body_model": {"id": self.body_id, "sha256": self.body_sha256},
            "size_bytes": self.size_bytes, "job_id": self.job_id,
        }


_JOB_JSON = ("request", "log", "error", "artifacts")


class Store:
    """Thread-safe access to the database and the folders (one connection, one lock)."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.jobs_dir = self.data_dir / "jobs"
        self.avatars_dir = self.data_dir / "avatars"
        for folder in (self.data_dir, self.jobs_dir, self.avatars_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.data_dir / "service.db", check_same_thread=False,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- paths (ids are validated before they become paths)

    def job_dir(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.jobs_dir / job_id

    def avatar_path(self, avatar_id: str) -> Path:
        if not AVATAR_ID.match(avatar_id):
            raise ValueError(f"not an avatar id: {avatar_id!r}")
        return self.avatars_dir / f"{avatar_id}.avatar"

    # ---- jobs

    def add_job(self, job: Job) -> Job:
        job.created = job.updated = now()
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, kind, state, stage, progress, stage_progress, name, created, "
                "updated, request, log, error, avatar_id, result, artifacts, attempts) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job.id, job.kind, job.state, job.stage, job.progress, job.stage_progress, job.name,
                 job.created, job.updated, json.dumps(job.request), json.dumps(job.log),
                 json.dumps(job.error) if job.error else None, job.avatar_id, job.result,
                 json.dumps(job.artifacts), job.attempts))
        return job

    def _row_to_job(self, row: sqlite3.Row) -> Job:
        data = dict(row)
        for key in _JOB_JSON:
            data[key] = json.loads(data[key]) if data[key] is not None else None
        data["log"] = data["log"] or []
        data["artifacts"] = data["artifacts"] or []
        data["request"] = data["request"] or {}
        return Job(**data)

    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._row_to_job(row) if row else None

    def list_jobs(self, *, states: tuple[str, ...] | None = None, kind: str | None = None,
                  limit: int = 200) -> list[Job]:
        query, args = "SELECT * FROM jobs", []
        where = []
        if states:
            where.append("state IN (" + ",".join("?" * len(states)) + ")")
            args += list(states)
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created DESC, id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [self._row_to_job(row) for row in rows]

    def update_job(self, job_id: str, *, log_line: str | None = None, **changes: Any) -> Job:
        """Change fields of a job (and append a log line) in one transaction."""
        with self._lock:
            job = self.get_job(job_id)
            if job is None:
                raise KeyError(job_id)
            for key, value in changes.items():
                setattr(job, key, value)
            if log_line is not None:
                job.log = (job.log + [log_line])[-LOG_LINES:]
            job.updated = now()
            self._db.execute(
                "UPDATE jobs SET state=?, stage=?, progress=?, stage_progress=?, name=?, updated=?, "
                "request=?, log=?, error=?, avatar_id=?, result=?, artifacts=?, attempts=? WHERE id=?",
                (job.state, job.stage, job.progress, job.stage_progress, job.name, job.updated,
                 json.dumps(job.request), json.dumps(job.log),
                 json.dumps(job.error) if job.error else None, job.avatar_id, job.result,
                 json.dumps(job.artifacts), job.attempts, job.id))
        return job

    # ---- avatars

    def add_avatar(self, record: AvatarRecord) -> AvatarRecord:
        with self._lock:
            self._db.execute(
                "INSERT INTO avatars (id, name, created, gaussians, sh_degree, body_id, body_sha256, "
                "size_bytes, job_id) VALUES (?,?,?,?,?,?,?,?,?)",
                (record.id, record.name, record.created, record.gaussians, record.sh_degree,
                 record.body_id, record.body_sha256, record.size_bytes, record.job_id))
        return record

    def get_avatar(self, avatar_id: str) -> AvatarRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM avatars WHERE id = ?", (avatar_id,)).fetchone()
        return AvatarRecord(**dict(row)) if row else None

    def list_avatars(self) -> list[AvatarRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM avatars ORDER BY created DESC, id DESC").fetchall()
        return [AvatarRecord(**dict(row)) for row in rows]

    def delete_avatar(self, avatar_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM avatars WHERE id = ?", (avatar_id,))
        if cursor.rowcount:
            self.avatar_path(avatar_id).unlink(missing_ok=True)
        return bool(cursor.rowcount)
