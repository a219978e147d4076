"""The add-on's error for files and values it cannot use (no bpy): the message, the file and
the field at fault, so operators can report what was wrong and where."""

from __future__ import annotations

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
