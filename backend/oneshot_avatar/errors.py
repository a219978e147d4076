"""Errors meant for users: they name the file, the field and what to do, and the CLI prints
them without a traceback."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with something the user gave us (a file, a value, an option).

    ``str(error)`` is a complete sentence naming the file and field where known.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, field: str | None = None):
        self.path = str(path) if path is not None else None
        self.field = field
        self.message = message  # without the file and field (the HTTP API reports those apart)
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if field is not None:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class BadFileError(UserError):
    """A file that is missing, unreadable, of the wrong kind, or has wrong contents."""
