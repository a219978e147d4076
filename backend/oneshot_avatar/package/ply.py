"""Binary little-endian PLY with one ``vertex`` element of scalar columns: the layout 3D Gaussian
Splatting files use. Written with numpy structured arrays (the common PLY library is GPL, and
this subset is a header plus one array)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

_PLY_TYPES = {
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
}  # fmt: skip
_NUMPY_TO_PLY = {"<f4": "float", "<f8": "double", "<i4": "int", "<u4": "uint", "<i2": "short",
                 "<u2": "ushort", "|i1": "char", "|u1": "uchar"}


class PlyError(ValueError):
    """A PLY file that is not the binary vertex-table layout we read, or is damaged."""


def encode_ply(columns: Mapping[str, np.ndarray], comments: tuple[str, ...] = ()) -> bytes:
    """Bytes of a PLY file whose vertex element has one property per column (in order)."""
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns differ in length: {sorted(lengths)}")
    count = lengths.pop()
    dtype = np.dtype([(name, np.asarray(v).dtype.newbyteorder("<") if np.asarray(v).dtype.itemsize > 1
                       else np.asarray(v).dtype) for name, v in columns.items()])
    table = np.empty(count, dtype=dtype)
    for name, values in columns.items():
        table[name] = values
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {count}")
    for name in columns:
        key = table.dtype[name].str
        if key not in _NUMPY_TO_PLY:
            raise ValueError(f"column {name!r} has unsupported dtype {table.dtype[name]}")
        lines.append(f"property {_NUMPY_TO_PLY[key]} {name}")
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii") + table.tobytes()


def decode_ply(data: bytes) -> tuple[dict[str, np.ndarray], list[str]]:
    """Columns and comments of a binary little-endian PLY with a single ``vertex`` element."""
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise PlyError("not a PLY file (no 'ply' magic or no 'end_header')")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    body = data[end + len(b"end_header\n"):]
    if "format binary_little_endian 1.0" not in header:
        raise PlyError("only binary_little_endian PLY is supported")
    fields: list[tuple[str, str]] = []
    comments: list[str] = []
    count = None
    for line in header[1:]:
        parts = line.split()
        if not parts or parts[0] == "format":
            continue
        if parts[0] == "comment":
            comments.append(line[len("comment "):])
        elif parts[0] == "element":
            if count is not None or len(parts) != 3 or parts[1] != "vertex":
                raise PlyError(f"unsupported element line {line!r}: expected one 'element vertex N'")
            try:
                count = int(parts[2])
            except ValueError as error:
                raise PlyError(f"bad vertex count in {line!r}") from error
        elif parts[0] == "property":
            if len(parts) != 3 or parts[1] not in _PLY_TYPES:
                raise PlyError(f"unsupported property line {line!r} (lists are not supported)")
            fields.append((parts[2], _PLY_TYPES[parts[1]]))
        else:
            raise PlyError(f"unexpected header line {line!r}")
    if count is None or count < 0:
        raise PlyError("no 'element vertex N' in the header")
    dtype = np.dtype(fields)
    if len(body) != count * dtype.itemsize:
        raise PlyError(
            f"body has {len(body)} bytes, expected {count} rows x {dtype.itemsize} bytes "
            f"= {count * dtype.itemsize} (truncated or damaged file)"
        )
    table = np.frombuffer(body, dtype=dtype, count=count)
    return {name: np.array(table[name]) for name, _ in fields}, comments
