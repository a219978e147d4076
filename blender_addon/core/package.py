"""Reading and validating a ``.avatar`` package with numpy only (no bpy, no torch, no backend).

The package (written by ``oneshot_avatar.package.avatar_file``) is a zip of:

- ``avatar.json``: ``schema`` "oneshot-avatar/1", ``body_model`` (id, kind, sha256, num_vertices,
  num_faces, expression_names), ``betas``, ``gaussians`` (count, sh_degree), ``members``
  (sha256 of the other members), ...
- ``gaussians.ply``: binary little-endian PLY, one ``vertex`` element: ``x y z`` (rest pose,
  SMPL-X world, metres), ``f_dc_0..2`` (SH degree-0), ``f_rest_*``, ``opacity`` (logit),
  ``scale_0..2`` (log, metres), ``rot_0..3`` (wxyz), plus binding columns.
- ``rig.npz``: ``joint_names (55,)``, ``parents (55,)``, ``rest_joints (55, 3)``,
  ``gaussian_joint_indices (N, 4)``, ``gaussian_joint_weights (N, 4)``, and mesh arrays.

:func:`read_avatar_package` validates everything the add-on uses and raises
:class:`PackageError` whose ``field`` names what is wrong. Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FieldError
from .smplx_rig import JOINT_NAMES, NUM_JOINTS, PARENTS

SCHEMA = "oneshot-avatar/1"
MEMBERS = ("avatar.json", "gaussians.ply", "rig.npz")
MAX_MEMBER_BYTES = 4 << 30
TOP_K_JOINTS = 4
SH_C0 = 0.28209479177387814  # degree-0 spherical harmonic: rgb = 0.5 + SH_C0 * f_dc

_PLY_TYPES = {
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
}  # fmt: skip


class PackageError(FieldError):
    """A ``.avatar`` file that cannot be imported. ``field`` names the member/field at fault
    (e.g. ``"rig.npz:rest_joints"``, ``"gaussians.ply:opacity"``, ``"schema"``) or is None."""


@dataclass
class AvatarPackage:
    """What the add-on needs from a package. N = Gaussian count. Positions are the rest pose in
    SMPL-X world (metres, +Y up)."""

    meta: dict[str, Any]
    positions: np.ndarray  # (N, 3) float32, Gaussian centres
    colors: np.ndarray  # (N, 4) float32 RGBA in 0..1 (alpha = 1), from f_dc
    opacities: np.ndarray  # (N,) float32 in (0, 1), sigmoid of the PLY logit
    scales: np.ndarray  # (N, 3) float32, metres (exp of the PLY log scale)
    rotations: np.ndarray  # (N, 4) float32 unit quaternions wxyz
    joint_indices: np.ndarray  # (N, 4) int32 in [0, 55)
    joint_weights: np.ndarray  # (N, 4) float32, rows sum to 1
    rest_joints: np.ndarray  # (55, 3) float32, metres
    # The Gaussians the face units move (M,) and how: (E, M, 3) metres per unit at 1, in the
    # rest pose (packages from before this existed have none: M = 0).
    expression_gaussians: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    expression_offsets: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 0, 3), np.float32))
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def expression_names(self) -> list[str]:
        return [str(n) for n in self.meta["body_model"]["expression_names"]]

    @property
    def body_model(self) -> dict[str, Any]:
        return dict(self.meta["body_model"])


# ---------------------------------------------------------------------------- PLY
def decode_ply(data: bytes) -> dict[str, np.ndarray]:
    """Columns of a binary little-endian PLY holding one ``vertex`` element of scalar
    properties. Raises :class:`PackageError` (field ``gaussians.ply``) otherwise."""
    def fail(message: str) -> PackageError:
        return PackageError(message, field="gaussians.ply")

    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise fail("not a PLY file (no 'ply' magic or no 'end_header')")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise fail("only binary_little_endian PLY is supported")
    fields: list[tuple[str, str]] = []
    count = None
    for line in header[1:]:
        parts = line.split()
        if not parts or parts[0] in ("format", "comment", "obj_info"):
            continue
        if parts[0] == "element":
            if count is not None or len(parts) != 3 or parts[1] != "vertex":
                raise fail(f"unsupported element line {line!r}: expected one 'element vertex N'")
            try:
                count = int(parts[2])
            except ValueError:
                raise fail(f"bad vertex count in {line!r}") from None
        elif parts[0] == "property":
            if len(parts) != 3 or parts[1] not in _PLY_TYPES:
                raise fail(f"unsupported property line {line!r} (lists are not supported)")
            fields.append((parts[2], _PLY_TYPES[parts[1]]))
        else:
            raise fail(f"unexpected header line {line!r}")
    if count is None or count < 0:
        raise fail("no 'element vertex N' in the header")
    names = [name for name, _ in fields]
    if len(set(names)) != len(names):
        raise fail("the header names a property twice")
    dtype = np.dtype(fields)
    body = memoryview(data)[end + len(b"end_header\n"):]
    if len(body) != count * dtype.itemsize:
        raise fail(f"body has {len(body)} bytes, expected {count} rows x {dtype.itemsize} bytes "
                   "(truncated or damaged file)")
    table = np.frombuffer(body, dtype=dtype, count=count)
    return {name: table[name] for name in names}


# ---------------------------------------------------------------------------- reading
def _require(meta: dict, key: str, kind: type | tuple[type, ...], path: Path,
             where: str = "") -> Any:
    name = f"{where}{key}"
    if key not in meta:
        raise PackageError(f"avatar.json lacks the field '{name}'", path=path, field=name)
    value = meta[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise PackageError(f"has the wrong type ({type(value).__name__})", path=path, field=name)
    return value


def _validate_meta(meta: Any, path: Path) -> dict:
    if not isinstance(meta, dict):
        raise PackageError("avatar.json is not a JSON object", path=path, field="avatar.json")
    schema = meta.get("schema")
    if schema != SCHEMA:
        raise PackageError(f"unsupported package schema {schema!r}; this add-on reads {SCHEMA!r} "
                           "(update the add-on, or re-export the avatar)", path=path,
                           field="schema")
    body_model = _require(meta, "body_model", dict, path)
    for key, kind in (("id", str), ("sha256", str), ("num_vertices", int), ("num_faces", int),
                      ("expression_names", list)):
        _require(body_model, key, kind, path, "body_model.")
    if not all(isinstance(n, str) and n for n in body_model["expression_names"]):
        raise PackageError("must be a list of non-empty names", path=path,
                           field="body_model.expression_names")
    betas = _require(meta, "betas", list, path)
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
               for b in betas):
        raise PackageError("must be finite numbers", path=path, field="betas")
    gaussians = _require(meta, "gaussians", dict, path)
    count = _require(gaussians, "count", int, path, "gaussians.")
    degree = _require(gaussians, "sh_degree", int, path, "gaussians.")
    if count < 1:
        raise PackageError(f"must be at least 1, got {count}", path=path, field="gaussians.count")
    if not 0 <= degree <= 3:
        raise PackageError(f"must be 0..3, got {degree}", path=path, field="gaussians.sh_degree")
    _require(meta, "members", dict, path)
    return meta


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise PackageError(f"the package has no '{name}' (it has: "
                           f"{', '.join(archive.namelist()) or 'nothing'})", path=path,
                           field=name) from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise PackageError(f"would inflate to {info.file_size} bytes; refusing", path=path,
                           field=name)
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, RuntimeError) as error:
        raise PackageError(f"is damaged: {error}", path=path, field=name) from error


def _column(columns: dict, name: str, count: int, path: Path) -> np.ndarray:
    key = f"gaussians.ply:{name}"
    if name not in columns:
        raise PackageError("column is missing", path=path, field=key)
    values = columns[name]
    if len(values) != count:
        raise PackageError(f"gaussians.ply has {len(values)} rows, avatar.json says {count}",
                           path=path, field="gaussians.count")
    if values.dtype.kind != "f":
        raise PackageError(f"must be floating point, got {values.dtype}", path=path, field=key)
    if not np.isfinite(values).all():
        raise PackageError("contains NaN or infinite values", path=path, field=key)
    return values


def _stack(columns: dict, names: list[str], count: int, path: Path) -> np.ndarray:
    return np.stack([_column(columns, n, count, path) for n in names], axis=-1).astype(np.float32)


def _rig_array(rig: Any, key: str, shape: tuple[int | None, ...], kind: str,
               path: Path) -> np.ndarray:
    name = f"rig.npz:{key}"
    if key not in rig.files:
        raise PackageError("array is missing", path=path, field=name)
    try:
        value = rig[key]
    except ValueError as error:
        raise PackageError("holds pickled objects; refusing to load them", path=path,
                           field=name) from error
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise PackageError(f"is damaged: {error}", path=path, field=name) from error
    if value.ndim != len(shape) or any(s is not None and s != v
                                       for s, v in zip(shape, value.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise PackageError(f"has shape {value.shape}, expected {want}", path=path, field=name)
    if value.dtype.kind not in kind:
        raise PackageError(f"has dtype {value.dtype}", path=path, field=name)
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise PackageError("contains NaN or infinite values", path=path, field=name)
    return value


def read_avatar_package(path: str | Path) -> AvatarPackage:
    """Read and validate the ``.avatar`` file at ``path``.

    Raises :class:`PackageError` naming the field for anything wrong: not a zip, a missing or
    damaged member, bad JSON, another schema, a checksum mismatch, a missing PLY column, wrong
    shapes, NaN values, out-of-range joint indices.
    """
    path = Path(path)
    if not path.is_file():
        raise PackageError("file does not exist; check the path", path=path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise PackageError(f"not an avatar package (not a zip archive; truncated or another "
                           f"file?): {error}", path=path) from error
    with archive:
        raw = {name: _read_member(archive, name, path) for name in MEMBERS}
    try:
        meta = json.loads(raw["avatar.json"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PackageError(f"is not valid JSON: {error}", path=path,
                           field="avatar.json") from error
    meta = _validate_meta(meta, path)
    for name in ("gaussians.ply", "rig.npz"):
        if meta["members"].get(name) != hashlib.sha256(raw[name]).hexdigest():
            raise PackageError(f"'{name}' does not match its checksum in avatar.json (damaged "
                               "or edited); export the avatar again", path=path,
                               field=f"members.{name}")
    try:
        columns = decode_ply(raw["gaussians.ply"])
    except PackageError as error:
        raise PackageError(error.message, path=path, field=error.field) from None
    count = meta["gaussians"]["count"]
    positions = _stack(columns, ["x", "y", "z"], count, path)
    f_dc = _stack(columns, [f"f_dc_{i}" for i in range(3)], count, path)
    opacity_logit = _column(columns, "opacity", count, path).astype(np.float64)
    log_scales = _stack(columns, [f"scale_{i}" for i in range(3)], count, path)
    rotations = _stack(columns, [f"rot_{i}" for i in range(4)], count, path)
    norms = np.linalg.norm(rotations, axis=-1, keepdims=True)
    if (norms < 1e-12).any():
        raise PackageError("has a zero-length quaternion", path=path, field="gaussians.ply:rot_0")
    colors = np.ones((count, 4), np.float32)
    colors[:, :3] = np.clip(0.5 + SH_C0 * f_dc, 0.0, 1.0)
    opacities = (1.0 / (1.0 + np.exp(-np.clip(opacity_logit, -60, 60)))).astype(np.float32)
    try:
        rig_npz = np.load(io.BytesIO(raw["rig.npz"]), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise PackageError(f"is not a readable .npz: {error}", path=path,
                           field="rig.npz") from error
    with rig_npz:
        joint_names = _rig_array(rig_npz, "joint_names", (NUM_JOINTS,), "US", path)
        parents = _rig_array(rig_npz, "parents", (NUM_JOINTS,), "iu", path)
        rest_joints = _rig_array(rig_npz, "rest_joints", (NUM_JOINTS, 3), "f", path)
        indices = _rig_array(rig_npz, "gaussian_joint_indices", (count, TOP_K_JOINTS), "iu", path)
        weights = _rig_array(rig_npz, "gaussian_joint_weights", (count, TOP_K_JOINTS), "f", path)
        face, offsets = np.zeros(0, np.int32), np.zeros((0, 0, 3), np.float32)
        if "expression_gaussians" in rig_npz.files:
            face = _rig_array(rig_npz, "expression_gaussians", (None,), "iu", path)
            units = len(meta["body_model"]["expression_names"])
            offsets = _rig_array(rig_npz, "expression_offsets", (units, face.shape[0], 3), "f",
                                 path).astype(np.float32)
            if face.size and (face.min() < 0 or face.max() >= count):
                raise PackageError(f"must lie in [0, {count}), got {face.min()}..{face.max()}",
                                   path=path, field="rig.npz:expression_gaussians")
    if [str(n) for n in joint_names] != list(JOINT_NAMES):
        raise PackageError("are not the 55 SMPL-X joints in SMPL-X order", path=path,
                           field="rig.npz:joint_names")
    if [int(p) for p in parents] != list(PARENTS):
        raise PackageError("are not the SMPL-X kinematic tree", path=path, field="rig.npz:parents")
    if indices.min() < 0 or indices.max() >= NUM_JOINTS:
        raise PackageError(f"must lie in [0, {NUM_JOINTS}), got {indices.min()}..{indices.max()}",
                           path=path, field="rig.npz:gaussian_joint_indices")
    sums = weights.sum(-1)
    if (weights < -1e-6).any() or (np.abs(sums - 1.0) > 1e-3).any():
        raise PackageError("must be non-negative with rows summing to 1", path=path,
                           field="rig.npz:gaussian_joint_weights")
    return AvatarPackage(
        meta=meta,
        positions=np.ascontiguousarray(positions),
        colors=colors,
        opacities=opacities,
        scales=np.exp(log_scales).astype(np.float32),
        rotations=(rotations / norms).astype(np.float32),
        joint_indices=indices.astype(np.int32),
        joint_weights=(weights / sums[:, None]).astype(np.float32),
        rest_joints=rest_joints.astype(np.float32),
        expression_gaussians=face.astype(np.int32),
        expression_offsets=offsets,
        source=str(path),
    )


def avatar_display_name(package: AvatarPackage, fallback: str = "avatar") -> str:
    """A short object name for the avatar: the file's stem, else ``fallback``."""
    stem = Path(package.source).stem if package.source else ""
    return stem or fallback
