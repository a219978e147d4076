"""Checking uploaded files before anything is done with them.

The content decides what a file is (its first bytes), never its name or the client's
Content-Type; files are stored under names the server chooses. Sizes are limited while the
request streams in (see ``app.BodyLimit``), pixels from the image header before decoding, and
zip members from the archive's directory before inflating anything.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from oneshot_avatar.errors import UserError

IMAGE_KINDS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
# Inflated size of a .avatar package: 150k Gaussians at SH degree 3 take ~40 MB; this leaves room
# for 1M+ Gaussians while refusing zip bombs.
MAX_PACKAGE_INFLATED_BYTES = 2_000_000_000
MAX_PACKAGE_RATIO = 200  # inflated / compressed, per member


def sniff(data: bytes) -> str | None:
    """``png``, ``jpeg``, ``webp``, ``zip``, ``json`` or None, from the leading bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return "json"
    return None


def check_image(data: bytes, field: str) -> str:
    """The file suffix for an uploaded PNG/JPEG/WebP; raises naming ``field`` otherwise."""
    kind = sniff(data)
    if kind not in IMAGE_KINDS:
        raise UserError(f"'{field}' must be a PNG, JPEG or WebP image (its content is not one of "
                        "those)", field=field)
    return IMAGE_KINDS[kind]


def check_json(data: bytes, field: str) -> None:
    if sniff(data) != "json":
        raise UserError(f"'{field}' must be a JSON file", field=field)
    try:
        json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"'{field}' is not valid JSON: {error}", field=field) from None


def init_suffix(data: bytes, field: str = "init") -> str:
    """``.json`` or ``.npz`` for an initial-pose upload (an ``.npz`` is a zip archive)."""
    kind = sniff(data)
    if kind == "json":
        check_json(data, field)
        return ".json"
    if kind == "zip":
        check_zip_members(data, field, max_inflated=64_000_000)
        return ".npz"
    raise UserError(f"'{field}' must be SMPL-X parameters as .json or .npz", field=field)


def check_zip_members(path_or_bytes: bytes | Path, field: str, *,
                      max_inflated: int = MAX_PACKAGE_INFLATED_BYTES) -> None:
    """Refuse archives whose directory promises more than ``max_inflated`` bytes or an
    implausible compression ratio (zip bombs), before anything is inflated."""
    import io

    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    try:
        with zipfile.ZipFile(source) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise UserError(f"'{field}' is not a readable zip archive: {error}", field=field) from None
    total = 0
    for info in infos:
        total += info.file_size
        if info.compress_size and info.file_size / info.compress_size > MAX_PACKAGE_RATIO \
                and info.file_size > 10_000_000:
            raise UserError(f"'{field}': member {info.filename!r} inflates {info.file_size} bytes "
                            f"from {info.compress_size} (a zip bomb?); refusing", field=field)
    if total > max_inflated:
        raise UserError(f"'{field}' would inflate to {total} bytes, over the limit of "
                        f"{max_inflated}", field=field)
