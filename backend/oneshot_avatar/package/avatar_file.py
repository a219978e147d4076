"""The ``.avatar`` package: the contract between the backend and the Blender add-on. This module
only reads and writes it; what a loaded avatar is and does lives in :mod:`oneshot_avatar.avatar`.

A zip holding:

- ``avatar.json``: ``schema`` ("oneshot-avatar/1"), tool version, body model (id, kind, sha256,
  vertex/face counts, expression names), betas, Gaussian count, SH degree, fit camera, training
  report, source photo sha256, and the sha256 of the other members.
- ``gaussians.ply``: standard 3DGS columns (``x y z nx ny nz f_dc_* f_rest_* opacity scale_*
  rot_*``; rotations wxyz, scales and opacity as logs/logits) in the rest pose of these betas,
  so any splat viewer opens it, plus binding columns: ``face_id`` and the Gaussian's parameters
  in its triangle's frame (``local_u local_w local_d local_rot_0..3 local_scale_0..2``).
- ``rig.npz``: what Blender needs without torch (``expression_gaussians (M,)`` and
  ``expression_offsets (E, M, 3)`` float16: the Gaussians the face units move and how, see
  :func:`oneshot_avatar.avatar.rig.expression_offsets`): ``joint_names``, ``parents``, ``rest_joints``
  (55, 3) for these betas, ``gaussian_joint_indices``/``gaussian_joint_weights`` (N, 4) top-4
  skinning, ``vertex_offsets`` (V, 3), ``rest_vertices`` (V, 3), ``faces`` (F, 3), ``betas``.

Readers validate everything and name the member and field that is wrong; nothing is unpickled.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oneshot_avatar import __version__
from oneshot_avatar.atomic import write_bytes_atomic
from oneshot_avatar.avatar.gaussians import MeshGaussians, PosedGaussians, num_sh_coefficients
from oneshot_avatar.avatar.model import Avatar, check_body_matches
from oneshot_avatar.avatar.rig import TOP_K_JOINTS, expression_offsets, gaussian_skinning
from oneshot_avatar.body.npz_io import npz_bytes
from oneshot_avatar.body.smplx_layout import JOINT_NAMES, NUM_JOINTS, PARENTS
from oneshot_avatar.errors import BadFileError, UserError
from oneshot_avatar.package.ply import PlyError, decode_ply, encode_ply

SCHEMA = "oneshot-avatar/1"
MEMBERS = ("avatar.json", "gaussians.ply", "rig.npz")
MAX_MEMBER_BYTES = 4 << 30  # refuse zip members that would inflate beyond 4 GiB


# ---------------------------------------------------------------------------------------------
# Writing


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _standard_columns(gaussians: MeshGaussians, posed: PosedGaussians, frame: int) -> dict[str, np.ndarray]:
    """The standard 3DGS columns of frame ``frame`` of posed Gaussians (world values)."""
    means, quats = _np32(posed.means[frame]), _np32(posed.quats[frame])
    log_scales = _np32(torch.log(posed.scales[frame].clamp_min(1e-30)))
    n = gaussians.num_gaussians
    columns: dict[str, np.ndarray] = {"x": means[:, 0], "y": means[:, 1], "z": means[:, 2]}
    for axis in "xyz":
        columns[f"n{axis}"] = np.zeros(n, np.float32)
    sh0 = _np32(gaussians.sh0[:, 0])
    for c in range(3):
        columns[f"f_dc_{c}"] = sh0[:, c]
    # Standard 3DGS order: channel-major, f_rest_{c * (K-1) + k}.
    rest_coeffs = _np32(gaussians.sh_rest).transpose(0, 2, 1).reshape(n, -1)
    for i in range(rest_coeffs.shape[1]):
        columns[f"f_rest_{i}"] = rest_coeffs[:, i]
    columns["opacity"] = _np32(gaussians.opacity_logits)
    for i in range(3):
        columns[f"scale_{i}"] = log_scales[:, i]
    for i in range(4):
        columns[f"rot_{i}"] = quats[:, i]
    return columns


def _package_columns(gaussians: MeshGaussians, rest: PosedGaussians) -> dict[str, np.ndarray]:
    """Standard columns in the rest pose plus the binding columns (exact parameters, so a round
    trip is lossless)."""
    columns = _standard_columns(gaussians, rest, 0)
    columns["face_id"] = gaussians.binding.cpu().numpy().astype(np.int32)
    local = _np32(gaussians.local_means)
    for i, name in enumerate(("local_u", "local_w", "local_d")):
        columns[name] = local[:, i]
    local_quats = _np32(gaussians.local_quats)
    for i in range(4):
        columns[f"local_rot_{i}"] = local_quats[:, i]
    local_scales = _np32(gaussians.log_scales)
    for i in range(3):
        columns[f"local_scale_{i}"] = local_scales[:, i]
    return columns


def avatar_bytes(
    gaussians: MeshGaussians,
    body,
    betas: torch.Tensor,
    *,
    fit_camera: dict | None = None,
    report: dict | None = None,
    source_photo_sha256: str | None = None,
) -> bytes:
    """The bytes of a ``.avatar`` package for these Gaussians on ``body`` with ``betas``."""
    if gaussians.num_faces != body.info.num_faces or gaussians.num_vertices != body.info.num_vertices:
        raise ValueError("the Gaussians are bound to a different mesh than this body model's")
    betas = torch.as_tensor(betas, dtype=body.dtype, device=body.device).reshape(-1)
    with torch.no_grad():
        out = body(betas=betas[None], vertex_offsets=gaussians.vertex_offsets.to(body.device))
        rest = gaussians.place(out.vertices, body.faces)
        joint_indices, joint_weights = gaussian_skinning(gaussians, body.faces, body.lbs_weights)
        face_gaussians, face_offsets = expression_offsets(gaussians, body, betas, rest.means[0])
    ply = encode_ply(_package_columns(gaussians, rest), comments=(f"{SCHEMA} rest-pose Gaussians",))
    rig = npz_bytes({
        "expression_gaussians": face_gaussians,
        "expression_offsets": face_offsets,
        "joint_names": np.array(JOINT_NAMES),
        "parents": np.array(PARENTS, dtype=np.int32),
        "rest_joints": out.joints[0].cpu().numpy().astype(np.float32),
        "gaussian_joint_indices": joint_indices.cpu().numpy().astype(np.int32),
        "gaussian_joint_weights": joint_weights.cpu().numpy().astype(np.float32),
        "vertex_offsets": gaussians.vertex_offsets.detach().cpu().numpy().astype(np.float32),
        "rest_vertices": out.vertices[0].cpu().numpy().astype(np.float32),
        "faces": body.faces.cpu().numpy().astype(np.int32),
        "betas": betas.cpu().numpy().astype(np.float32),
    })
    meta = {
        "schema": SCHEMA,
        "tool": {"name": "oneshot-avatar", "version": __version__},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "body_model": {
            "id": body.info.model_id,
            "kind": body.info.kind,
            "sha256": body.info.sha256,
            "num_vertices": body.info.num_vertices,
            "num_faces": body.info.num_faces,
            "expression_names": list(body.expression_names),
        },
        "betas": [float(b) for b in betas.cpu().float()],
        "gaussians": {"count": gaussians.num_gaussians, "sh_degree": gaussians.sh_degree},
        "fit_camera": fit_camera,
        "training": report or {},
        "source_photo_sha256": source_photo_sha256,
        "members": {"gaussians.ply": _sha256(ply), "rig.npz": _sha256(rig)},
    }
    out_zip = io.BytesIO()
    with zipfile.ZipFile(out_zip, "w") as zf:
        zf.writestr("avatar.json", json.dumps(meta, indent=2), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("gaussians.ply", ply, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("rig.npz", rig, compress_type=zipfile.ZIP_STORED)
    return out_zip.getvalue()


def save_avatar(path: str | Path, gaussians: MeshGaussians, body, betas, **kwargs) -> Path:
    """Write a ``.avatar`` package atomically (never half-written; an existing file is only
    replaced once the new one is complete)."""
    path = Path(path)
    if path.suffix != ".avatar":
        raise UserError(f"avatar packages end in .avatar, got {path.name!r}", path=path)
    data = avatar_bytes(gaussians, body, betas, **kwargs)
    try:
        write_bytes_atomic(path, data)
    except OSError as error:
        raise UserError(f"cannot write the avatar: {error.strerror or error}", path=path) from error
    return path


# ---------------------------------------------------------------------------------------------
# Reading


def _require(meta: dict, key: str, kind, path, where: str = ""):
    name = f"{where}{key}"
    if key not in meta:
        raise BadFileError(f"avatar.json lacks the field '{name}'", path=path, field=name)
    value = meta[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BadFileError(f"avatar.json field '{name}' has the wrong type ({type(value).__name__})",
                           path=path, field=name)
    return value


def _read_member(zf: zipfile.ZipFile, name: str, path) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise BadFileError(f"the package has no '{name}' (has: {', '.join(zf.namelist())})",
                           path=path, field=name) from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise BadFileError(f"'{name}' would inflate to {info.file_size} bytes; refusing", path=path,
                           field=name)
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
        raise BadFileError(f"'{name}' is damaged: {error}", path=path, field=name) from error


def _validate_meta(meta: Any, path) -> dict:
    if not isinstance(meta, dict):
        raise BadFileError("avatar.json is not a JSON object", path=path, field="avatar.json")
    schema = meta.get("schema")
    if schema != SCHEMA:
        raise BadFileError(
            f"unsupported package schema {schema!r}; this tool ({__version__}) reads {SCHEMA!r}",
            path=path, field="schema",
        )
    body_model = _require(meta, "body_model", dict, path)
    for key, kind in (("id", str), ("sha256", str), ("num_vertices", int), ("num_faces", int),
                      ("expression_names", list)):
        _require(body_model, key, kind, path, "body_model.")
    betas = _require(meta, "betas", list, path)
    if not all(isinstance(b, (int, float)) and math.isfinite(b) for b in betas):
        raise BadFileError("avatar.json 'betas' must be finite numbers", path=path, field="betas")
    gaussians = _require(meta, "gaussians", dict, path)
    count = _require(gaussians, "count", int, path, "gaussians.")
    degree = _require(gaussians, "sh_degree", int, path, "gaussians.")
    if count < 1 or not 0 <= degree <= 3:
        raise BadFileError(f"gaussians.count {count} / sh_degree {degree} out of range", path=path,
                           field="gaussians")
    _require(meta, "members", dict, path)
    return meta


def _column(columns: dict, name: str, path, count: int) -> np.ndarray:
    if name not in columns:
        raise BadFileError(f"gaussians.ply lacks the column '{name}'", path=path, field=f"gaussians.ply:{name}")
    values = columns[name]
    if len(values) != count:
        raise BadFileError(f"gaussians.ply has {len(values)} rows, avatar.json says {count}",
                           path=path, field="gaussians.count")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise BadFileError(f"gaussians.ply column '{name}' contains NaN or infinite values",
                           path=path, field=f"gaussians.ply:{name}")
    return values


def _rig_array(rig, key: str, shape: tuple, path) -> np.ndarray:
    if key not in rig.files:
        raise BadFileError(f"rig.npz lacks '{key}'", path=path, field=f"rig.npz:{key}")
    try:
        value = rig[key]
    except ValueError as error:
        raise BadFileError(f"rig.npz '{key}' holds pickled objects; refusing", path=path,
                           field=f"rig.npz:{key}") from error
    if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise BadFileError(f"rig.npz '{key}' has shape {value.shape}, expected {want}", path=path,
                           field=f"rig.npz:{key}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise BadFileError(f"rig.npz '{key}' contains NaN or infinite values", path=path,
                           field=f"rig.npz:{key}")
    return value


def read_avatar_members(path: str | Path) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Validated (meta, ply columns, rig arrays) of a ``.avatar`` file."""
    path = Path(path)
    if not path.is_file():
        raise BadFileError("avatar file does not exist", path=path)
    if not zipfile.is_zipfile(path):
        raise BadFileError("not an avatar package (not a zip archive; truncated or another file?)",
                           path=path)
    with zipfile.ZipFile(path) as zf:
        raw = {name: _read_member(zf, name, path) for name in MEMBERS}
    try:
        meta = json.loads(raw["avatar.json"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadFileError(f"avatar.json is not valid JSON: {error}", path=path, field="avatar.json") from error
    meta = _validate_meta(meta, path)
    for name in ("gaussians.ply", "rig.npz"):
        expected = meta["members"].get(name)
        if expected != _sha256(raw[name]):
            raise BadFileError(f"'{name}' does not match its checksum in avatar.json (damaged or edited)",
                               path=path, field=f"members.{name}")
    try:
        columns, _ = decode_ply(raw["gaussians.ply"])
    except PlyError as error:
        raise BadFileError(f"gaussians.ply: {error}", path=path, field="gaussians.ply") from error
    count = meta["gaussians"]["count"]
    num_faces = meta["body_model"]["num_faces"]
    num_vertices = meta["body_model"]["num_vertices"]
    k = num_sh_coefficients(meta["gaussians"]["sh_degree"])
    names = ["face_id", "local_u", "local_w", "local_d", "opacity"]
    names += [f"local_rot_{i}" for i in range(4)] + [f"local_scale_{i}" for i in range(3)]
    names += [f"f_dc_{i}" for i in range(3)] + [f"f_rest_{i}" for i in range(3 * (k - 1))]
    names += ["x", "y", "z"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    checked = {name: _column(columns, name, path, count) for name in names}
    faces = checked["face_id"]
    if faces.dtype.kind not in "iu" or faces.min() < 0 or faces.max() >= num_faces:
        raise BadFileError(f"gaussians.ply 'face_id' must be integers in [0, {num_faces})", path=path,
                           field="gaussians.ply:face_id")
    try:
        rig_npz = np.load(io.BytesIO(raw["rig.npz"]), allow_pickle=False)
    except Exception as error:
        raise BadFileError(f"rig.npz is damaged: {error}", path=path, field="rig.npz") from error
    with rig_npz:
        rig = {
            "joint_names": _rig_array(rig_npz, "joint_names", (NUM_JOINTS,), path),
            "parents": _rig_array(rig_npz, "parents", (NUM_JOINTS,), path),
            "rest_joints": _rig_array(rig_npz, "rest_joints", (NUM_JOINTS, 3), path),
            "gaussian_joint_indices": _rig_array(rig_npz, "gaussian_joint_indices", (count, TOP_K_JOINTS), path),
            "gaussian_joint_weights": _rig_array(rig_npz, "gaussian_joint_weights", (count, TOP_K_JOINTS), path),
            "vertex_offsets": _rig_array(rig_npz, "vertex_offsets", (num_vertices, 3), path),
            "rest_vertices": _rig_array(rig_npz, "rest_vertices", (num_vertices, 3), path),
            "faces": _rig_array(rig_npz, "faces", (num_faces, 3), path),
            "betas": _rig_array(rig_npz, "betas", (len(meta["betas"]),), path),
        }
    if [str(n) for n in rig["joint_names"]] != list(JOINT_NAMES):
        raise BadFileError("rig.npz 'joint_names' are not the 55 SMPL-X joints", path=path,
                           field="rig.npz:joint_names")
    indices = rig["gaussian_joint_indices"]
    if indices.min() < 0 or indices.max() >= NUM_JOINTS:
        raise BadFileError("rig.npz 'gaussian_joint_indices' out of range", path=path,
                           field="rig.npz:gaussian_joint_indices")
    return meta, checked, rig


def load_avatar(path: str | Path, *, body=None, device: torch.device | str = "cpu") -> Avatar:
    """Read and validate a ``.avatar`` package; with ``body``, also check it is the body model the
    avatar was made with."""
    meta, columns, rig = read_avatar_members(path)
    if body is not None:
        check_body_matches(meta, body)
    n = meta["gaussians"]["count"]
    k = num_sh_coefficients(meta["gaussians"]["sh_degree"])

    def stack(names: list[str]) -> torch.Tensor:
        if not names:
            return torch.zeros(n, 0)
        return torch.from_numpy(np.stack([columns[c].astype(np.float32) for c in names], axis=-1))

    sh_rest = stack([f"f_rest_{i}" for i in range(3 * (k - 1))]).reshape(n, 3, k - 1).transpose(1, 2)
    gaussians = MeshGaussians(
        binding=torch.from_numpy(columns["face_id"].astype(np.int64)),
        local_means=stack(["local_u", "local_w", "local_d"]),
        local_quats=stack([f"local_rot_{i}" for i in range(4)]),
        log_scales=stack([f"local_scale_{i}" for i in range(3)]),
        opacity_logits=torch.from_numpy(columns["opacity"].astype(np.float32)),
        sh0=stack([f"f_dc_{i}" for i in range(3)])[:, None, :],
        sh_rest=sh_rest.contiguous(),
        num_faces=meta["body_model"]["num_faces"],
        num_vertices=meta["body_model"]["num_vertices"],
        vertex_offsets=torch.from_numpy(rig["vertex_offsets"].astype(np.float32)),
    )
    betas = torch.tensor(meta["betas"], dtype=torch.float32)
    return Avatar(gaussians=gaussians, betas=betas, meta=meta, rig=rig).to(device)


def standard_ply_bytes(posed: PosedGaussians, gaussians: MeshGaussians, frame: int = 0) -> bytes:
    """A plain 3DGS PLY (standard columns only) of frame ``frame`` of posed Gaussians."""
    return encode_ply(_standard_columns(gaussians, posed, frame), comments=("exported by oneshot-avatar",))
