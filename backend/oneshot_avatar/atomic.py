"""Writing output files atomically, one way for every writer: a temporary file next to the target,
renamed over it only once complete (readers never see half a file; a failure leaves any previous
file untouched), with the permissions a plain ``open()`` would give (``0666 & ~umask``; temporary
files are private by default and that mode must not leak into outputs), and a clear error when the
disk is full.

    with atomic_output(path) as tmp:      # any writer that takes a path (PIL, ffmpeg, torch.save)
        image.save(tmp, format="PNG")
    write_bytes_atomic(path, data)        # bytes in memory
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oneshot_avatar.errors import UserError

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_umask_lock = threading.Lock()
_umask: int | None = None


def current_umask() -> int:
    """The process umask. On Linux it is read from ``/proc`` each time (no side effects);
    elsewhere ``os.umask`` can only be read by setting it, so that is done once and cached rather
    than flipped while other threads create files."""
    global _umask
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _umask_lock:
        if _umask is None:
            _umask = os.umask(0o022)
            os.umask(_umask)
        return _umask


def public_mode() -> int:
    return 0o666 & ~current_umask()


def new_temporary(path: str | Path, suffix: str = ".tmp") -> Path:
    """A new, empty temporary file next to ``path`` (hidden, same folder so the rename is atomic)
    with the output permissions already set; the folder is created if needed. ``suffix``: for
    writers that choose the format by the name (ffmpeg)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.fchmod(fd, public_mode())
        os.close(fd)
    except OSError as error:
        if error.errno in _NO_SPACE:
            raise output_error(error, path) from error
        raise
    return Path(name)


def commit(temporary: str | Path, path: str | Path, *, sync: bool = True) -> Path:
    """Give ``temporary`` the output permissions, flush it to disk and rename it over ``path``.
    On failure the temporary file is removed and ``path`` is left as it was."""
    temporary, path = Path(temporary), Path(path)
    try:
        os.chmod(temporary, public_mode())  # a writer may have replaced the file
        if sync:
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            raise output_error(error, path) from error
        raise
    return path


def discard(temporary: str | Path) -> None:
    Path(temporary).unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | Path, *, sync: bool = True, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``; on any error it is removed
    (a full disk becomes a :class:`UserError` saying so)."""
    temporary = new_temporary(path, suffix)
    try:
        yield temporary
    except BaseException as error:
        discard(temporary)
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            raise output_error(error, path) from error
        raise
    commit(temporary, path, sync=sync)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        handle.write(data)


def is_no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in _NO_SPACE


def output_error(error: OSError, path: str | Path) -> UserError:
    """A full disk (or quota, or file size limit) as a :class:`UserError` that says what to do."""
    folder = Path(path).parent
    try:
        free = f"; {shutil.disk_usage(folder).free / 1e6:.1f} MB free there"
    except OSError:
        free = ""
    return UserError(f"no space left to write this file ({os.strerror(error.errno)}{free}); "
                     "free some space or choose another folder, then try again (nothing was "
                     "replaced)", path=path)
