"""Upload an avatar package to a backend once per package checksum, and reuse it afterwards.

Every import of the same ``.avatar`` makes a new rig without a backend id, so rendering each one
used to upload the package again (issue 17: six identical copies on the server after an
afternoon). :class:`UploadCache` remembers ``(backend URL, package sha256) -> avatar id`` in a
small JSON file (in Blender's user config folder), so any rig holding the same package reuses the
backend's copy while the backend still has it (checked with ``GET /v1/avatars/{id}``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

from .client import ServiceClient, ServiceError

CACHE_FILE_NAME = "oneshot_avatar_uploads.json"
_LOCK = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class UploadCache:
    """``(backend URL, package sha256) -> avatar id``, kept in ``path`` (JSON; None: in memory
    only). A damaged or unreadable file counts as empty; writes are atomic."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self._memory: dict[str, str] = {}

    @staticmethod
    def _key(url: str, sha256: str) -> str:
        return f"{url.rstrip('/')} {sha256}"

    def _load(self) -> dict[str, str]:
        if self.path is None:
            return dict(self._memory)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} \
            if isinstance(data, dict) else {}

    def _save(self, entries: dict[str, str]) -> None:
        if self.path is None:
            self._memory = dict(entries)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(entries, out, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except OSError:
            self._memory = dict(entries)  # a read-only config folder: remember for this session

    def get(self, url: str, sha256: str) -> str | None:
        with _LOCK:
            return self._load().get(self._key(url, sha256)) or self._memory.get(
                self._key(url, sha256))

    def put(self, url: str, sha256: str, avatar_id: str) -> None:
        with _LOCK:
            entries = self._load()
            entries[self._key(url, sha256)] = avatar_id
            self._save(entries)

    def forget(self, url: str, sha256: str) -> None:
        with _LOCK:
            entries = self._load()
            entries.pop(self._key(url, sha256), None)
            self._memory.pop(self._key(url, sha256), None)
            self._save(entries)


def ensure_uploaded(client: ServiceClient, cache: UploadCache, *, avatar_id: str, package: str,
                    name: str) -> str:
    """The backend's id for this avatar: ``avatar_id`` (the rig's) when the backend has it,
    else the id the cache holds for the package's checksum on this backend when the backend
    still has that one, else the id of the package uploaded now (and remembered)."""
    if avatar_id and client.find_avatar(avatar_id) is not None:
        return avatar_id
    if not package or not os.path.isfile(package):
        known = f"avatar {avatar_id}" if avatar_id else "this avatar"
        raise ServiceError(f"the backend does not have {known} and its package "
                           f"{package or '(unknown)'!r} is not on disk", field="avatar",
                           hint="import the .avatar file again or reconstruct it on this backend")
    try:
        checksum = file_sha256(package)
    except OSError as error:
        raise ServiceError(f"cannot read the package {package!r}: {error.strerror or error}",
                           field="avatar", hint="check the file's permissions") from error
    cached = cache.get(client.base_url, checksum)
    if cached:
        if client.find_avatar(cached) is not None:
            return cached
        cache.forget(client.base_url, checksum)
    uploaded = client.upload_avatar(package, name=name[:64])["id"]
    cache.put(client.base_url, checksum, uploaded)
    return uploaded
