"""The add-on's error for files and values it cannot use (no bpy): the message, the file and
the field at fault, so operators can report what was wrong and where; and the one check of a
media file the user picked for upload (audio for Add Speech, video for Import Video Motion)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


class FieldError(ValueError):
    """``str(error)`` reads ``FILE: field 'FIELD': MESSAGE`` (parts known); the parts are kept."""

    def __init__(self, message: str, *, path: str | Path | None = None, field: str | None = None):
        self.message = message
        self.path = None if path is None else Path(path)
        self.field = field
        where = f"{self.path.name}: " if self.path is not None else ""
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}{what}{message}")


def checked_media_file(path: str | os.PathLike, *, kind: str, examples: str,
                       extensions: Sequence[str], shown: int, max_bytes: int, too_large: str,
                       error: type[FieldError] = FieldError) -> Path:
    """The ``kind`` file (``"audio"``, ``"video"``; also its field) at ``path``, checked to be
    given, exist, have one of ``extensions`` (the first ``shown`` named in the message) and be
    at most ``max_bytes`` (else ``too_large`` says why); failures raise ``error``."""
    article = "an" if kind[:1] in "aeiou" else "a"
    if not str(path).strip():
        raise error(f"pick {article} {kind} file ({examples}, ...)", field=kind)
    file = Path(path)
    if not file.is_file():
        raise error(f"no such {kind} file", path=file, field=kind)
    if file.suffix.lower() not in extensions:
        raise error(f"{file.suffix or 'no extension'} is not {article} {kind} file type; use one "
                    f"of {', '.join(extensions[:shown])}, ...", path=file, field=kind)
    if file.stat().st_size > max_bytes:
        raise error(too_large, path=file, field=kind)
    return file
