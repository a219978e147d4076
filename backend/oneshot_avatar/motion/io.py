"""Reading motion files into :class:`MotionClip` and writing our own format.

Formats (detected from the content, not only the extension):

``oneshot``      Our ``.npz`` (key ``schema`` = ``"oneshot-motion/1"``), already in our world.
``amass-smplx``  AMASS SMPL-X ``.npz``: ``poses (T,165)`` [global 0:3, body 3:66, jaw 66:69,
                 leye 69:72, reye 72:75, lhand 75:120, rhand 120:165] or the split keys
                 ``root_orient (T,3), pose_body (T,63), pose_hand (T,90), pose_jaw (T,3),
                 pose_eye (T,6)``; ``trans (T,3)``; ``betas``; ``mocap_frame_rate`` or
                 ``mocap_framerate``; optional ``expressions``/``expression`` (SMPL-X PCA).
``amass-smplh``  AMASS SMPL+H ``.npz``: ``poses (T,156)`` = 52 joints [global 0:3, body 3:66,
                 left hand 66:111, right hand 111:156]; jaw and eyes become zero.
``smpl``         Meshcapade ``.smpl`` (an ``.npz`` read through ``smplcodec``).
``talkshow``     TalkSHOW ``.npy`` ``(T,265)`` at 30 fps [jaw 0:3, leye 3:6, reye 6:9,
                 global_orient 9:12, body 12:75, lhand 75:120, rhand 120:165, expression 165:265].

Up axes. Files rarely say which way is up, so AMASS-style, ``.smpl`` and TalkSHOW files are
turned upright from their data (the pelvis's up direction under the root rotation, then the
spread of ``trans``, then the format's convention: see :mod:`oneshot_avatar.motion.up_axis`);
:func:`load_motion_described` returns the decision and why. For AMASS, ``layout="amass"``
states Z-up and ``layout="amass-yup"`` states Y-up. Every world change below is exact.
AMASS captures are Z-up; we convert exactly to the Y-up world with Q = -90 deg about +X
((x, y, z) -> (x, z, -y)). SMPL-X rotates the body about the rest pelvis joint J0 and then adds
``transl``, so a world rotation Q maps the parameters to ``global_orient' = Q R`` and
``transl' = Q (J0 + t) - J0``. J0 depends on the body shape; we use the neutral SMPL-X value
``NOMINAL_PELVIS_REST`` because the avatar that will play the clip is not known when reading.
For another body the result is then off by ``(Q - I)(J0_body - J0_nominal)``, a constant shift of
at most a few centimetres (no effect on rotations). Checked on the AMASS SMPL+H sample: the root's
+Y axis points along world +Z in the file (z component ~0.91 on every frame) and along world +Y
after conversion (y ~0.91), and forward kinematics on the neutral rest skeleton puts the head
0.60 m above the pelvis and the lowest joint at y = -0.014 m, i.e. AMASS's floor z = 0 lands on
y = 0 (that sample is a seated, almost still subject facing world +X).
Files with AMASS-style keys that are already Y-up (some datasets export so) are detected as
such and not converted.

Meshcapade ``.smpl`` files are Y-up by convention (glTF; ``smplcodec``'s ``.mcs`` export
puts ``.smpl`` bodies into a glTF scene without any axis change), so no conversion.

TalkSHOW output is camera-style, detected from the data as up = -Y (its demo sets ``global_orient`` ~ (3.0747, -0.0158, -0.0152),
176 deg about +X: the body's +Y axis points along world -Y, upside down). We premultiply the root
by 180 deg about +X and keep ``transl`` zero (the file has none), i.e. we rotate about the pelvis.
Checked on ``talkshow_french.npy``: afterwards the root's +Y axis is (-0.01, 0.998, -0.067) on
every frame (upright, 4 deg of forward lean), its +Z axis (facing) is (-0.01, 0.067, 0.998),
and forward kinematics on the neutral SMPL-X rest skeleton puts the head 0.57 m above the pelvis
(0.19 m in front of it: the speaker leans forward). TalkSHOW builds SMPL-X with
``flat_hand_mean=False`` (its ``scripts/demo.py``), so its hand poses are relative to SMPL-X's
mean hand; we add that mean (from ``mannequin-x``'s calibration, the same numbers as SMPL-X's
``hands_mean``) so hands are relative to the flat hand like every other clip. The clip is
seated (hips and knees flexed ~70 deg in every frame).

Safety: nothing is ever unpickled (``allow_pickle=False``); files holding object arrays are
refused with a :class:`BadFileError`. Every user mistake becomes a :class:`UserError` naming the
file, the field and the expected shape.
"""

from __future__ import annotations

import functools
import logging
import zipfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from oneshot_avatar.atomic import write_bytes_atomic
from oneshot_avatar.body.npz_io import npz_bytes, read_array
from oneshot_avatar.body.smplx_layout import NOMINAL_PELVIS_REST
from oneshot_avatar.errors import BadFileError, UserError
from oneshot_avatar.motion import _rotations as rot
from oneshot_avatar.motion.clip import FRAME_FIELDS, MotionClip
from oneshot_avatar.motion.face_units import ARKIT_FACE_UNITS
from oneshot_avatar.motion.formats import FORMATS, LAYOUTS, SCHEMA
from oneshot_avatar.motion.up_axis import UpAxis, decide_up_axis, given_up_axis

TALKSHOW_FPS = 30.0
TALKSHOW_COLUMNS = 265


_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
_SMPLCODEC_KEYS = {"codecVersion", "smplVersion", "frameCount", "frameRate", "bodyPose",
                   "bodyTranslation", "shapeParameters", "headPose", "leftHandPose",
                   "rightHandPose", "expressionParameters", "vertexOffsets", "gender"}
_FRAME_RATE_KEYS = ("mocap_frame_rate", "mocap_framerate")
_OURS_SCALARS = {"schema", "fps", "expression_space", "name", "source"}
_OURS_OPTIONAL = {"betas", "expression_names"}
_OURS_KEYS = _OURS_SCALARS | set(FRAME_FIELDS) | _OURS_OPTIONAL


# ---------------------------------------------------------------------------- public API
def load_motion(path: str | Path, *, layout: str | None = None) -> MotionClip:
    """Read a motion file into a :class:`MotionClip` in our Y-up world.

    ``layout``: None (detect from the content) or one of :data:`LAYOUTS` to force a reader
    (``"talkshow"`` for a TalkSHOW ``.npy``; ``"amass-yup"`` for AMASS keys already Y-up).
    ``clip.source`` is set to ``str(path)``.
    """
    return load_motion_with_format(path, layout=layout)[0]


def load_motion_with_format(path: str | Path,
                            *, layout: str | None = None) -> tuple[MotionClip, str]:
    """Like :func:`load_motion`, also returning the format key (one of :data:`FORMATS`)."""
    clip, fmt, _ = load_motion_described(path, layout=layout)
    return clip, fmt


def load_motion_described(path: str | Path, *, layout: str | None = None,
                          ) -> tuple[MotionClip, str, UpAxis | None]:
    """Like :func:`load_motion_with_format`, also returning the up-axis decision (None for our
    own format, which is in our world by definition). See :mod:`oneshot_avatar.motion.up_axis`:
    AMASS-style, ``.smpl`` and TalkSHOW files are turned upright from what their data says
    unless ``layout`` states the axis (``"amass"``: Z-up, ``"amass-yup"``: Y-up)."""
    path = Path(path)
    if layout is not None and layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)} "
                        "(or leave it out to detect the format)", path=path, field="layout")
    kind = _file_kind(path)
    if kind == "npy":
        if layout not in (None, "talkshow"):
            raise BadFileError(f"layout {layout!r} needs an .npz file, but this is a .npy array",
                               path=path, field="layout")
        clip, up = _read_talkshow(path, _read_npy(path), forced=layout == "talkshow")
        return clip, "talkshow", up
    if layout == "talkshow":
        raise BadFileError("layout 'talkshow' needs a .npy array of shape (T, 265), but this is "
                           "an .npz archive", path=path, field="layout")
    arrays = _read_npz(path)
    detected = _detect_npz_layout(path, arrays) if layout is None else layout
    if detected == "oneshot":
        return _read_ours(path, arrays), "oneshot", None
    if detected == "smpl":
        clip, up = _read_smplcodec(path, arrays)
        return clip, "smpl", up
    given = {"amass": given_up_axis("+z", "--layout amass (AMASS captures are Z-up)"),
             "amass-yup": given_up_axis("+y", "--layout amass-yup")}.get(layout or "")
    clip, body, up = _read_amass(path, arrays, up=given)
    return clip, f"amass-{body}" + ("-yup" if up.axis == "+y" else ""), up


def save_motion(clip: MotionClip, path: str | Path) -> Path:
    """Write ``clip`` as our ``.npz`` (schema ``oneshot-motion/1``), atomically.

    The file is written to a temporary file in the same folder and moved into place with
    ``os.replace``, so a reader never sees half a file. Every :class:`MotionClip` field is stored
    (``expression_space`` None as ""; ``betas`` only when present; texts as unicode arrays),
    plus ``expression_names`` (one per expression column, see :func:`expression_names`) when the
    clip has expressions; reading it back gives the same clip (``source`` becomes the file's path).
    """
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise UserError(f"motion files are written as One-Shot Avatar .npz; give a path ending "
                        f"in .npz (got suffix {path.suffix!r})", path=path, field="path")
    if path.is_dir():
        raise UserError("is a folder; give a file name ending in .npz", path=path)
    arrays: dict[str, np.ndarray] = {
        "schema": np.array(SCHEMA),
        "fps": np.array(float(clip.fps), dtype=np.float64),
        "expression_space": np.array(clip.expression_space or ""),
        "name": np.array(clip.name),
        "source": np.array(clip.source),
    }
    for name in FRAME_FIELDS:
        arrays[name] = np.ascontiguousarray(getattr(clip, name), dtype=np.float32)
    if clip.betas is not None:
        arrays["betas"] = np.ascontiguousarray(clip.betas, dtype=np.float32)
    if clip.num_expressions:
        arrays["expression_names"] = np.array(expression_names(clip))
    try:
        write_bytes_atomic(path, npz_bytes(arrays))
    except OSError as error:
        raise UserError(f"cannot write here: {error.strerror or error}", path=path) from error
    return path


def expression_names(clip: MotionClip) -> list[str]:
    """Names of the clip's expression columns: the ARKit face units for ``arkit52``,
    ``expr_000``, ``expr_001``, ... for SMPL-X's expression PCA."""
    if clip.expression_space == "arkit52":
        return list(ARKIT_FACE_UNITS)
    return [f"expr_{i:03d}" for i in range(clip.num_expressions)]


def _check_expression_names(path: Path, value: np.ndarray, space: str | None, width: int) -> None:
    if value.dtype.kind != "U" or value.ndim != 1 or value.size != width:
        raise BadFileError(f"expected {width} expression names (one per expression column), got "
                           f"an array of shape {value.shape} and type {value.dtype}", path=path,
                           field="expression_names")
    if space == "arkit52" and list(value) != list(ARKIT_FACE_UNITS):
        raise BadFileError("the names of 'arkit52' expression columns must be the 52 ARKit face "
                           "units in their standard order (see oneshot_avatar.motion.face_units)",
                           path=path, field="expression_names")


# ---------------------------------------------------------------------------- raw reading
def _file_kind(path: Path) -> str:
    """'npz' or 'npy' from the first bytes; a BadFileError for anything else."""
    if not path.exists():
        raise BadFileError("motion file does not exist; check the path", path=path)
    if path.is_dir():
        raise BadFileError("is a folder, expected a motion file (.npz, .smpl or .npy)", path=path)
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise BadFileError(f"cannot read: {error.strerror}", path=path) from error
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGICS):
        return "npz"
    if head[:1] == b"\x80":
        raise BadFileError("is a Python pickle, which we never load (it can run code); export "
                           "the motion as .npz with plain arrays", path=path)
    hint = " BVH files are not supported yet." if head.startswith(b"HIERARCH") else ""
    raise BadFileError(f"is not a motion file we can read (neither an .npz/.smpl archive nor "
                       f"an .npy array; it starts with {head!r}).{hint} Supported formats: "
                       f"{'; '.join(FORMATS.values())}", path=path)


def _pickle_refusal(path: Path, key: str) -> BadFileError:
    return BadFileError("the file contains pickled Python objects, which we refuse to load "
                        "(unpickling can run code); re-save it with plain numeric arrays",
                        path=path, field=key)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` with pickle disabled; any failure is a BadFileError."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise BadFileError(f"not a readable .npz archive (corrupt or truncated?): {error}",
                           path=path) from error
    with npz:
        return {key: read_array(npz, key, path) for key in npz.files}


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise _pickle_refusal(path, "array") from error
        raise BadFileError(f"not a readable .npy array (corrupt or truncated?): {error}",
                           path=path) from error
    except (OSError, EOFError) as error:
        raise BadFileError(f"not a readable .npy array: {error}", path=path) from error


def _detect_npz_layout(path: Path, arrays: Mapping[str, np.ndarray]) -> str:
    keys = set(arrays)
    if "schema" in keys:
        return "oneshot"
    if keys & (_SMPLCODEC_KEYS - {"gender"}):
        return "smpl"
    if "poses" in keys or "root_orient" in keys:
        return "amass"
    raise BadFileError(
        f"unknown motion .npz layout (keys: {', '.join(sorted(keys)) or 'none'}). Expected our "
        f"format (key 'schema'), AMASS (key 'poses' (T,165)/(T,156) or 'root_orient' + "
        f"'pose_body'), or a Meshcapade .smpl (keys 'bodyPose', 'frameCount', ...)", path=path)


def _numbers(path: Path, key: str, value: Any, shape: tuple[int | None, ...],
             shape_text: str) -> np.ndarray:
    """``value`` as float64, checked numeric, of ``shape`` (None = any) and finite."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise BadFileError(f"expected numbers of shape {shape_text}, got dtype {array.dtype}",
                           path=path, field=key)
    ok = array.ndim == len(shape) and all(
        w is None or w == h for h, w in zip(array.shape, shape, strict=True))
    if not ok:
        raise BadFileError(f"expected shape {shape_text}, got {array.shape}", path=path,
                           field=key)
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise BadFileError(f"contains NaN or infinite values (first at index {first}); the "
                           "file is damaged or was exported wrongly", path=path, field=key)
    return array


def _scalar(path: Path, key: str, value: Any) -> float:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf" or array.size != 1:
        raise BadFileError(f"expected one number, got shape {array.shape} dtype {array.dtype}",
                           path=path, field=key)
    number = float(array.reshape(()))
    if not np.isfinite(number) or number <= 0:
        raise BadFileError(f"expected a positive frame rate, got {number}", path=path, field=key)
    return number


def _text(path: Path, key: str, value: Any) -> str:
    array = np.asarray(value)
    if array.dtype.kind not in "US" or array.shape != ():
        raise BadFileError(f"expected a text scalar, got shape {array.shape} dtype "
                           f"{array.dtype}", path=path, field=key)
    item = array.item()
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)


# ---------------------------------------------------------------------------- our format
def _read_ours(path: Path, arrays: Mapping[str, np.ndarray]) -> MotionClip:
    if "schema" not in arrays:
        raise BadFileError("missing key 'schema' (expected 'oneshot-motion/1')", path=path,
                           field="schema")
    schema = _text(path, "schema", arrays["schema"])
    if schema != SCHEMA:
        raise BadFileError(f"unsupported schema {schema!r}; this version reads {SCHEMA!r} "
                           "(was the file written by a newer One-Shot Avatar?)", path=path,
                           field="schema")
    unknown = sorted(set(arrays) - _OURS_KEYS)
    if unknown:
        raise BadFileError(f"unknown key(s) {', '.join(unknown)} in a {SCHEMA} file; expected "
                           f"only {', '.join(sorted(_OURS_KEYS))}", path=path, field=unknown[0])
    missing = sorted((_OURS_KEYS - _OURS_OPTIONAL) - set(arrays))
    if missing:
        raise BadFileError(f"missing key(s) {', '.join(missing)}", path=path, field=missing[0])
    fields: dict[str, Any] = {}
    for name, per_frame in FRAME_FIELDS.items():
        shape = (None, *(None if s == "E" else s for s in per_frame))
        shape_text = "(" + ", ".join(["T", *(str(s) for s in per_frame)]) + ")"
        fields[name] = _numbers(path, name, arrays[name], shape, shape_text)
    if "betas" in arrays:
        fields["betas"] = _numbers(path, "betas", arrays["betas"], (None,), "(B,)")
    space = _text(path, "expression_space", arrays["expression_space"]) or None
    if "expression_names" in arrays:
        _check_expression_names(path, arrays["expression_names"], space,
                                fields["expression"].shape[1])
    return MotionClip(
        fps=_scalar(path, "fps", arrays["fps"]),
        expression_space=space,  # type: ignore[arg-type]  # validated by MotionClip
        name=_text(path, "name", arrays["name"]),
        source=str(path),
        **fields,
    )


# ---------------------------------------------------------------------------- AMASS
def _amass_frame_rate(path: Path, arrays: Mapping[str, np.ndarray]) -> float:
    for key in _FRAME_RATE_KEYS:
        if key in arrays:
            return _scalar(path, key, arrays[key])
    raise BadFileError(f"no frame rate: AMASS files store it as '{_FRAME_RATE_KEYS[0]}' or "
                       f"'{_FRAME_RATE_KEYS[1]}' and this file has neither; add one (frames per "
                       "second) or convert the file with an explicit rate",
                       path=path, field=" or ".join(_FRAME_RATE_KEYS))


def _amass_full_pose(path: Path, arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, str]:
    """``(T, 55, 3)`` SMPL-X full pose and the body kind ('smplx' or 'smplh')."""
    if "poses" in arrays:
        poses = np.asarray(arrays["poses"])
        width = poses.shape[1] if poses.ndim == 2 else None
        if width not in (165, 156):
            raise BadFileError(f"expected shape (T, 165) for SMPL-X or (T, 156) for SMPL+H, got "
                               f"{poses.shape}", path=path, field="poses")
        poses = _numbers(path, "poses", poses, (None, width), f"(T, {width})")
        num_frames = poses.shape[0]
        full = np.zeros((num_frames, 55, 3))
        if width == 165:
            full[:] = poses.reshape(num_frames, 55, 3)
            return full, "smplx"
        joints = poses.reshape(num_frames, 52, 3)
        full[:, :22] = joints[:, :22]  # pelvis + 21 body joints
        full[:, 25:55] = joints[:, 22:52]  # SMPL+H hands 22..51 -> SMPL-X hands 25..54
        return full, "smplh"
    if "root_orient" not in arrays:
        raise BadFileError(f"no AMASS pose arrays: expected 'poses' (T, 165) or (T, 156), or "
                           f"'root_orient' (T, 3) + 'pose_body' (T, 63); the file has "
                           f"{', '.join(sorted(arrays)) or 'no arrays'}", path=path, field="poses")
    if "pose_body" not in arrays:
        raise BadFileError("has 'root_orient' but no 'pose_body' (T, 63)", path=path,
                           field="pose_body")
    root = _numbers(path, "root_orient", arrays["root_orient"], (None, 3), "(T, 3)")
    num_frames = root.shape[0]
    full = np.zeros((num_frames, 55, 3))
    full[:, 0] = root
    parts = {  # key -> (first joint, joints); missing optional parts stay zero
        "pose_body": (1, 21), "pose_jaw": (22, 1), "pose_eye": (23, 2), "pose_hand": (25, 30),
    }
    for key, (first, count) in parts.items():
        if key not in arrays:
            continue
        value = _numbers(path, key, arrays[key], (num_frames, count * 3),
                         f"(T, {count * 3}) = ({num_frames}, {count * 3})")
        full[:, first:first + count] = value.reshape(num_frames, count, 3)
    return full, "smplx"


def _amass_expression(path: Path, arrays: Mapping[str, np.ndarray],
                      num_frames: int) -> np.ndarray | None:
    for key in ("expressions", "expression"):
        if key in arrays:
            value = _numbers(path, key, arrays[key], (num_frames, None),
                             f"(T, E) = ({num_frames}, E)")
            return value if value.shape[1] > 0 else None
    return None


def _read_amass(path: Path, arrays: Mapping[str, np.ndarray],
                *, up: UpAxis | None) -> tuple[MotionClip, str, UpAxis]:
    full, body = _amass_full_pose(path, arrays)
    num_frames = full.shape[0]
    if "trans" not in arrays:
        raise BadFileError(f"missing root translation 'trans' (T, 3) = ({num_frames}, 3)",
                           path=path, field="trans")
    trans = _numbers(path, "trans", arrays["trans"], (num_frames, 3),
                     f"(T, 3) = ({num_frames}, 3)")
    fps = _amass_frame_rate(path, arrays)
    betas = None
    if "betas" in arrays:
        betas = _numbers(path, "betas", np.asarray(arrays["betas"]).reshape(-1), (None,), "(B,)")
    expression = _amass_expression(path, arrays, num_frames)
    if up is None:
        up = decide_up_axis(full[:, 0], trans, "+z")
    if up.axis != "+y":
        full[:, 0], trans = change_world(up.matrix, full[:, 0], trans)
    clip = MotionClip.from_full_pose(
        full, trans, fps, expression=expression,
        expression_space="smplx-pca" if expression is not None else None,
        betas=betas, name=path.stem, source=str(path))
    return clip, body, up


def z_up_to_y_up(global_orient: np.ndarray,  # (T, 3) axis-angle in the Z-up world
                 transl: np.ndarray,  # (T, 3) metres in the Z-up world
                 pelvis_rest: tuple[float, float, float] = NOMINAL_PELVIS_REST,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """SMPL-X root parameters from a Z-up world to our Y-up world (exact for ``pelvis_rest``).

    Returns ``(Q R, Q (J0 + t) - J0)`` with Q = :data:`Z_UP_TO_Y_UP`, J0 = ``pelvis_rest``.
    """
    return change_world(rot.Z_UP_TO_Y_UP, global_orient, transl, pelvis_rest)


def change_world(matrix: np.ndarray,  # (3, 3) rotation, old world -> new world
                 global_orient: np.ndarray,  # (T, 3)
                 transl: np.ndarray,  # (T, 3)
                 pelvis_rest: tuple[float, float, float] = NOMINAL_PELVIS_REST,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Re-express SMPL-X root parameters after rotating the world by ``matrix``.

    SMPL-X places joint/vertex x as ``R (x - J0) + J0 + t``; applying ``M`` to that gives
    ``(M R)(x - J0) + J0 + [M (J0 + t) - J0]``, hence the new parameters.
    """
    j0 = np.asarray(pelvis_rest, dtype=np.float64)
    new_orient = rot.premultiply(matrix, global_orient)
    new_transl = (np.asarray(transl, np.float64) + j0) @ np.asarray(matrix).T - j0
    return new_orient, new_transl


# ---------------------------------------------------------------------------- .smpl
_SMPLCODEC_VERSIONS = {0: "SMPL", 1: "SMPLH", 2: "SMPLX"}


def _import_smplcodec() -> tuple[Any, Any, Any]:
    """Import ``smplcodec`` lazily, undoing the ``logging.basicConfig(level=INFO)`` it runs at
    import time so that it does not change the host program's logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from smplcodec import SMPLCodec
        from smplcodec.utils import extract_item, to_snake
    except ModuleNotFoundError as error:
        raise UserError("reading .smpl files needs the 'smplcodec' package; install it with "
                        "`pip install 'smplcodec>=2.3,<3'`") from error
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return SMPLCodec, extract_item, to_snake


def _read_smplcodec(path: Path, arrays: Mapping[str, np.ndarray]) -> tuple[MotionClip, UpAxis]:
    """A Meshcapade ``.smpl`` via ``smplcodec`` (Y-up, hands relative to the flat hand).

    ``bodyPose (T,22,3)`` is pelvis + 21 body joints (SMPL: ``(T,24,3)``, whose two hand joints
    we drop); ``headPose (T,3,3)`` jaw, left eye, right eye; ``left/rightHandPose (T,15,3)``;
    ``bodyTranslation (T,3)``; ``frameRate``; ``shapeParameters`` (betas);
    ``expressionParameters (T,E)`` (SMPL-X expression coefficients -> "smplx-pca").
    A single-pose file without ``frameRate`` gets 30 fps.
    """
    SMPLCodec, extract_item, to_snake = _import_smplcodec()
    data = {to_snake(key): extract_item(value) for key, value in arrays.items()}
    data.setdefault("codec_version", 1)
    for key in ("frame_count", "codec_version", "smpl_version", "gender"):
        if isinstance(data.get(key), float) and float(data[key]).is_integer():
            data[key] = int(data[key])
    try:
        codec = SMPLCodec(**data)
    except TypeError as error:
        raise BadFileError(f"not a valid Meshcapade .smpl file: {error}", path=path) from error
    version = int(codec.smpl_version)
    if version not in _SMPLCODEC_VERSIONS:
        raise BadFileError(f"body model {codec.smpl_version.name} is not supported; we read "
                           "SMPL, SMPL+H and SMPL-X motion", path=path, field="smplVersion")
    if codec.frame_count is None or codec.body_pose is None:
        raise BadFileError("holds no motion (no 'frameCount'/'bodyPose'); it is a body shape "
                           "only", path=path, field="bodyPose")
    num_frames = int(codec.frame_count)
    fps = float(codec.frame_rate) if codec.frame_rate is not None else 30.0
    full = np.zeros((num_frames, 55, 3))
    body_pose = _numbers(path, "bodyPose", codec.body_pose, (num_frames, None, 3), "(T, 22, 3)")
    full[:, :22] = body_pose[:, :22]
    optional = {"headPose": (codec.head_pose, 22, 3),
                "leftHandPose": (codec.left_hand_pose, 25, 15),
                "rightHandPose": (codec.right_hand_pose, 40, 15)}
    for key, (value, first, count) in optional.items():
        if value is not None:
            full[:, first:first + count] = _numbers(path, key, value, (num_frames, count, 3),
                                                    f"(T, {count}, 3)")
    transl = np.zeros((num_frames, 3))
    if codec.body_translation is not None:
        transl = _numbers(path, "bodyTranslation", codec.body_translation, (num_frames, 3),
                          "(T, 3)")
    expression = None
    if codec.expression_parameters is not None:
        expression = _numbers(path, "expressionParameters", codec.expression_parameters,
                              (num_frames, None), f"(T, E) = ({num_frames}, E)")
        expression = expression if expression.shape[1] else None
    betas = None
    if codec.shape_parameters is not None:
        betas = _numbers(path, "shapeParameters", codec.shape_parameters, (None,), "(B,)")
    up = decide_up_axis(full[:, 0], transl, "+y")
    if up.axis != "+y":
        full[:, 0], transl = change_world(up.matrix, full[:, 0], transl)
    return MotionClip.from_full_pose(
        full, transl, fps, expression=expression,
        expression_space="smplx-pca" if expression is not None else None,
        betas=betas, name=path.stem, source=str(path)), up


# ---------------------------------------------------------------------------- TalkSHOW
@functools.lru_cache(maxsize=1)
def smplx_hand_mean() -> np.ndarray:
    """SMPL-X's mean hand pose, ``(30, 3)`` axis-angle (left 15 then right 15), from the
    ``mannequin-x`` calibration. Read on first use, not at import."""
    try:
        source = resources.files("mannequin") / "assets" / "smplx_calibration.npz"
        with resources.as_file(source) as file, np.load(file, allow_pickle=False) as data:
            mean = np.asarray(data["hand_mean"], dtype=np.float64)
    except (ModuleNotFoundError, FileNotFoundError, KeyError) as error:
        raise UserError("the 'mannequin-x' package (SMPL-X calibration data) is missing or "
                        "damaged; reinstall it with `pip install 'mannequin-x>=0.3,<0.4'`") \
            from error
    mean.setflags(write=False)
    return mean


def _read_talkshow(path: Path, array: np.ndarray, *, forced: bool) -> tuple[MotionClip, UpAxis]:
    """A TalkSHOW ``(T, 265)`` array: camera-style root, mean-relative hands, 100 PCA
    expressions, 30 fps. See the module docstring for the conversion and what was checked."""
    if array.ndim != 2 or array.shape[1] != TALKSHOW_COLUMNS:
        what = "layout 'talkshow' expects" if forced else "the only .npy layout we read is " \
                                                          "TalkSHOW, which has"
        raise BadFileError(f"{what} shape (T, {TALKSHOW_COLUMNS}), got {array.shape}",
                           path=path, field="array")
    data = _numbers(path, "array", array, (None, TALKSHOW_COLUMNS), f"(T, {TALKSHOW_COLUMNS})")
    num_frames = data.shape[0]
    full = np.zeros((num_frames, 55, 3))
    full[:, 22:25] = data[:, 0:9].reshape(num_frames, 3, 3)  # jaw, leye, reye
    full[:, 0] = data[:, 9:12]
    full[:, 1:22] = data[:, 12:75].reshape(num_frames, 21, 3)
    full[:, 25:55] = data[:, 75:165].reshape(num_frames, 30, 3) + smplx_hand_mean()
    up = decide_up_axis(full[:, 0], np.zeros((num_frames, 3)), "-y")
    if up.axis != "+y":  # rotate about the pelvis: the file has no translation to keep
        full[:, 0] = rot.premultiply(up.matrix, full[:, 0])
    return MotionClip.from_full_pose(
        full, np.zeros((num_frames, 3)), TALKSHOW_FPS, expression=data[:, 165:265],
        expression_space="smplx-pca", name=path.stem, source=str(path)), up
