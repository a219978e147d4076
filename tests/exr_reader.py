"""A reader for the uncompressed scanline OpenEXR files the render-engine tests write
(Blender's multilayer EXR with codec None, 32-bit float; single- or multi-part):
``{channel name: [H, W] float32}``. Enough for tests; not a general EXR reader (no
compression, tiles or deep data)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_TYPES = {0: (4, np.uint32), 1: (2, np.float16), 2: (4, np.float32)}
MULTIPART = 0x1000


def _header(data: bytes, pos: int) -> tuple[dict, int]:
    """One header's attributes we need, and the position after its terminating 0."""
    def cstring(at: int) -> tuple[str, int]:
        end = data.index(b"\0", at)
        return data[at:end].decode(), end + 1

    header: dict = {"channels": []}
    while data[pos] != 0:
        name, pos = cstring(pos)
        _kind, pos = cstring(pos)
        size = struct.unpack_from("<i", data, pos)[0]
        value = data[pos + 4:pos + 4 + size]
        pos += 4 + size
        if name == "channels":
            at = 0
            while value[at] != 0:
                end = value.index(b"\0", at)
                header["channels"].append((value[at:end].decode(),
                                           struct.unpack_from("<i", value, end + 1)[0]))
                at = end + 1 + 16
        elif name == "dataWindow":
            header["window"] = struct.unpack("<4i", value)
        elif name == "compression":
            header["compression"] = value[0]
        elif name == "chunkCount":
            header["chunks"] = struct.unpack("<i", value)[0]
    return header, pos + 1


def read_exr(path: str | Path) -> dict[str, np.ndarray]:
    data = Path(path).read_bytes()
    if data[:4] != b"\x76\x2f\x31\x01":
        raise ValueError(f"{path} is not an OpenEXR file")
    multipart = bool(struct.unpack_from("<i", data, 4)[0] & MULTIPART)
    pos, headers = 8, []
    while True:
        header, pos = _header(data, pos)
        headers.append(header)
        if not multipart or data[pos] == 0:
            pos += 1 if multipart else 0
            break
    out: dict[str, np.ndarray] = {}
    tables = []
    for header in headers:
        if header.get("compression") != 0:
            raise ValueError(f"{path}: compression {header.get('compression')}; write it "
                             "with codec None")
        x0, y0, x1, y1 = header["window"]
        count = header.get("chunks", y1 - y0 + 1)
        tables.append(struct.unpack_from(f"<{count}Q", data, pos))
        pos += 8 * count
    for part, (header, offsets) in enumerate(zip(headers, tables)):
        x0, y0, x1, y1 = header["window"]
        width, height = x1 - x0 + 1, y1 - y0 + 1
        channels = sorted(header["channels"])
        for name, _ in channels:
            out[name] = np.zeros((height, width), np.float32)
        for offset in offsets:
            if multipart:
                assert struct.unpack_from("<i", data, offset)[0] == part
                offset += 4
            y, _size = struct.unpack_from("<ii", data, offset)
            at = offset + 8
            for name, pixel_type in channels:
                nbytes, dtype = _TYPES[pixel_type]
                out[name][y - y0] = np.frombuffer(data, dtype, width, at)
                at += nbytes * width
    return out
