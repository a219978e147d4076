"""Reading and writing body-model ``.npz`` files without pickle, deterministically.

``np.savez`` stamps the zip entries with the current time, so two builds of the same arrays give
different bytes. The open body must be reproducible, so we write the zip ourselves with fixed
entry metadata, and identify a model by a *content* hash over its arrays (names, dtypes, shapes,
bytes) that does not depend on compression or zip metadata.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from oneshot_avatar.atomic import write_bytes_atomic  # also imported from here
from oneshot_avatar.errors import BadFileError

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def _contiguous(array: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn 0-d arrays into 1-d ones.
    return array if array.flags.c_contiguous else array.copy(order="C")


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of a compressed ``.npz`` of ``arrays`` with fixed zip metadata.

    Object arrays are refused: everything we write must load with ``allow_pickle=False``.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name in sorted(arrays):
            array = np.asarray(arrays[name])
            if array.dtype.hasobject:
                raise ValueError(f"array '{name}' has dtype object; refusing to pickle it")
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, _contiguous(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue(), compresslevel=6)
    return out.getvalue()


def write_npz_deterministic(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed ``.npz`` with fixed zip metadata, atomically."""
    write_bytes_atomic(path, npz_bytes(arrays))


def content_sha256(arrays: Mapping[str, np.ndarray], names: Iterable[str] | None = None) -> str:
    """A hash of the arrays' names, dtypes, shapes and bytes, independent of how they are stored."""
    digest = hashlib.sha256()
    for name in sorted(names if names is not None else arrays):
        array = _contiguous(np.asarray(arrays[name]))
        digest.update(name.encode())
        digest.update(str(array.dtype.str).encode())
        digest.update(repr(tuple(array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def object_array_names(path: str | Path) -> list[str]:
    """Names of the arrays in an ``.npz`` whose dtype is ``object`` (they would need pickle).

    Only the ``.npy`` headers are read.
    """
    names = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    _, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    _, _, dtype = np.lib.format.read_array_header_2_0(member)
            if dtype.hasobject:
                names.append(info.filename[: -len(".npy")])
    return names


def open_npz(path: str | Path, what: str) -> np.lib.npyio.NpzFile:
    """Open an ``.npz`` with pickle disabled, turning every failure into a :class:`BadFileError`."""
    path = Path(path)
    if not path.exists():
        raise BadFileError(f"{what} file does not exist", path=path)
    if path.is_dir():
        raise BadFileError(f"expected a {what} .npz file, got a directory", path=path)
    if not zipfile.is_zipfile(path):
        raise BadFileError(
            f"not a valid .npz archive (corrupt, truncated, or another format); "
            f"expected a {what} file",
            path=path,
        )
    try:
        return np.load(path, allow_pickle=False)
    except Exception as error:  # zipfile/np raise many types for corrupt files
        raise BadFileError(f"could not read {what} file: {error}", path=path) from error


def read_array(npz: np.lib.npyio.NpzFile, key: str, path: str | Path) -> np.ndarray:
    """Read one array, naming the file and key in any error (pickled objects included)."""
    if key not in npz.files:
        raise BadFileError(f"missing array (the file has: {', '.join(npz.files)})", path=path, field=key)
    try:
        return npz[key]
    except ValueError as error:
        if "allow_pickle" in str(error) or "pickle" in str(error):
            raise BadFileError(
                "contains pickled Python objects, which we never load (they can run code); "
                "re-save the file with plain numeric arrays",
                path=path,
                field=key,
            ) from error
        raise BadFileError(f"unreadable array: {error}", path=path, field=key) from error
    except Exception as error:  # zipfile, zlib and numpy raise many types for damaged data
        raise BadFileError(f"corrupt or truncated archive: {error}", path=path, field=key) from error
