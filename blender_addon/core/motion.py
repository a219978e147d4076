"""Motion files for the add-on, in numpy (no bpy, no backend): reading AMASS SMPL-X / SMPL+H
``.npz``, Meshcapade ``.smpl`` and our ``oneshot-motion/1`` ``.npz``; the backend's MotionJSON;
resampling to the scene's frame rate; writing ``oneshot-motion/1`` (export).

Everything is returned in SMPL-X's Y-up world (metres, body faces +Z), the rig's armature space.
The formats and conversions mirror ``oneshot_avatar.motion.io`` (the backend reads what
:func:`write_motion_npz` writes with ``load_motion``):

- ``oneshot``: keys ``schema`` ("oneshot-motion/1"), ``fps``, ``expression_space``, ``name``,
  ``source``, the per-frame fields ``global_orient (T,3)``, ``body_pose (T,21,3)``,
  ``jaw_pose``/``leye_pose``/``reye_pose (T,3)``, ``left_hand_pose``/``right_hand_pose (T,15,3)``,
  ``transl (T,3)``, ``expression (T,E)``, optional ``betas``.
- ``amass``: ``poses (T,165)`` SMPL-X or ``(T,156)`` SMPL+H, or split keys ``root_orient``,
  ``pose_body``, ``pose_hand``, ``pose_jaw``, ``pose_eye``; ``trans``; ``mocap_frame_rate`` or
  ``mocap_framerate``; optional ``expressions``. The up axis is decided from the data
  (``core/up_axis.py``; AMASS captures are Z-up) and converted with a world rotation Q:
  ``global_orient' = Q R``, ``transl' = Q (J0 + t) - J0`` with J0 = the nominal rest pelvis.
- ``talkshow``: TalkSHOW ``.npy (T, 265)``, camera-style (detected from the data, turned
  upright about the pelvis), hands relative to SMPL-X's mean hand (added here).
- ``smpl`` (Meshcapade, Y-up by convention, checked against the data): ``bodyPose (T,22|24,3)``, ``headPose (T,3,3)``,
  ``left/rightHandPose (T,15,3)``, ``bodyTranslation (T,3)``, ``frameRate``, ``frameCount``,
  ``expressionParameters (T,E)``, ``shapeParameters``.

Errors are :class:`MotionError` with ``field`` naming the key at fault. No pickle.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import pose as posemath
from . import rows
from .errors import FieldError
from .smplx_rig import NOMINAL_PELVIS_REST, NUM_JOINTS, POSE_PARAM_JOINTS, expression_space
from .up_axis import TO_Y_UP, UpAxis, decide_up_axis, given_up_axis

SCHEMA = "oneshot-motion/1"
EXPRESSION_SPACES = ("arkit52", "smplx-pca")
FRAME_FIELDS = (*POSE_PARAM_JOINTS, "transl", "expression")
_OURS_SCALARS = ("schema", "fps", "expression_space", "name", "source")
_SMPLCODEC_KEYS = {"codecVersion", "smplVersion", "frameCount", "frameRate", "bodyPose",
                   "bodyTranslation", "shapeParameters", "headPose", "leftHandPose",
                   "rightHandPose", "expressionParameters", "vertexOffsets"}
Z_UP_TO_Y_UP = TO_Y_UP["+z"]
_SNAP = 1e-6
# How a file's up axis may be stated on import instead of detected (operator enum values).
UP_AXIS_CHOICES = {"AUTO": None, "Y": "+y", "Z": "+z", "CAMERA": "-y"}
TALKSHOW_COLUMNS = 265
TALKSHOW_FPS = 30.0
# SMPL-X's mean hand pose (left 15 joints, then right 15), axis-angle: TalkSHOW's hand poses are
# relative to it. The numbers are mannequin-x 0.3.0's (Apache-2.0) assets/smplx_calibration.npz
# ``hand_mean``, which the backend reads; the parity test checks they are equal.
SMPLX_HAND_MEAN = np.array([
    (0.11167871, 0.04289218, -0.41644183),
    (0.10881133, -0.06598568, -0.75621998),
    (-0.09639297, -0.09091566, -0.18845929),
    (-0.11809504, 0.05094385, -0.52958453),
    (-0.14369841, 0.05524170, -0.70485711),
    (-0.01918292, -0.09233685, -0.33791351),
    (-0.45703298, -0.19628395, -0.62545753),
    (-0.21465237, -0.06599829, -0.50689423),
    (-0.36972436, -0.06034463, -0.07949023),
    (-0.14186969, -0.08585263, -0.63552827),
    (-0.30334160, -0.05788098, -0.63138920),
    (-0.17612089, -0.13209307, -0.37335458),
    (0.85096431, 0.27692273, -0.09154807),
    (-0.49983943, 0.02655647, 0.05288088),
    (0.53555918, 0.04596104, -0.27735803),
    (0.11167871, -0.04289218, 0.41644183),
    (0.10881133, 0.06598568, 0.75621998),
    (-0.09639297, 0.09091566, 0.18845929),
    (-0.11809504, -0.05094385, 0.52958453),
    (-0.14369841, -0.05524170, 0.70485711),
    (-0.01918292, 0.09233685, 0.33791351),
    (-0.45703298, 0.19628395, 0.62545753),
    (-0.21465237, 0.06599829, 0.50689423),
    (-0.36972436, 0.06034463, 0.07949023),
    (-0.14186969, 0.08585263, 0.63552827),
    (-0.30334160, 0.05788098, 0.63138920),
    (-0.17612089, 0.13209307, 0.37335458),
    (0.85096431, -0.27692273, 0.09154807),
    (-0.49983943, -0.02655647, -0.05288088),
    (0.53555918, -0.04596104, 0.27735803),
])


class MotionError(FieldError):
    """A motion that cannot be read or written; ``field`` names the key at fault (or None)."""


@dataclass
class Motion:
    """SMPL-X parameters for T frames at ``fps`` in the Y-up world.

    full_pose  (T, 55, 3) float64 axis-angle per joint (SMPL-X order; hands relative to the
               flat hand).
    transl     (T, 3) float64 metres (the root bone's location on the rig).
    expression (T, E) float64 (E may be 0) in ``expression_space`` ("arkit52", "smplx-pca",
               or None when E == 0).
    """

    fps: float
    full_pose: np.ndarray
    transl: np.ndarray
    expression: np.ndarray
    expression_space: str | None = None
    name: str = "motion"
    source: str = ""
    betas: np.ndarray | None = None
    up_axis: UpAxis | None = None  # how a file's up axis was decided (None: already ours)

    @property
    def num_frames(self) -> int:
        return int(self.full_pose.shape[0])

    def validate(self) -> Motion:
        """Check shapes and values; raise :class:`MotionError` naming the field."""
        source = self.source or None
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise MotionError(f"must be a positive frame rate, got {self.fps!r}", path=source,
                              field="fps")
        t = self.full_pose.shape[0] if self.full_pose.ndim == 3 else -1
        if self.full_pose.shape != (t, NUM_JOINTS, 3) or t < 1:
            raise MotionError(f"expected (T, 55, 3) with T >= 1, got {self.full_pose.shape}",
                              path=source, field="full_pose")
        if self.transl.shape != (t, 3):
            raise MotionError(f"expected ({t}, 3), got {self.transl.shape}", path=source,
                              field="transl")
        if self.expression.ndim != 2 or self.expression.shape[0] != t:
            raise MotionError(f"expected ({t}, E), got {self.expression.shape}", path=source,
                              field="expression")
        for key in ("full_pose", "transl", "expression"):
            if not np.isfinite(getattr(self, key)).all():
                raise MotionError("contains NaN or infinite values", path=source, field=key)
        width = self.expression.shape[1]
        if width and self.expression_space not in EXPRESSION_SPACES:
            raise MotionError(f"must be one of {', '.join(EXPRESSION_SPACES)} for {width} "
                              f"expression columns, got {self.expression_space!r}", path=source,
                              field="expression_space")
        if not width:
            self.expression_space = None
        return self


# ---------------------------------------------------------------------------- helpers
def _numbers(path: Path | None, key: str, value: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    array = np.asarray(value)
    text = "(" + ", ".join("T" if s is None and i == 0 else ("E" if s is None else str(s))
                           for i, s in enumerate(shape)) + ")"
    if array.dtype.kind not in "biuf":
        raise MotionError(f"expected numbers of shape {text}, got dtype {array.dtype}",
                          path=path, field=key)
    if array.ndim != len(shape) or any(s is not None and s != h
                                       for s, h in zip(shape, array.shape)):
        raise MotionError(f"expected shape {text}, got {array.shape}", path=path, field=key)
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise MotionError("contains NaN or infinite values", path=path, field=key)
    return array


def _positive(path: Path | None, key: str, value: Any) -> float:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf" or array.size != 1:
        raise MotionError(f"expected one number, got shape {array.shape} dtype {array.dtype}",
                          path=path, field=key)
    number = float(array.reshape(()))
    if not math.isfinite(number) or number <= 0:
        raise MotionError(f"expected a positive frame rate, got {number}", path=path, field=key)
    return number


def _text(path: Path | None, key: str, value: Any) -> str:
    array = np.asarray(value)
    if array.dtype.kind not in "US" or array.shape != ():
        raise MotionError(f"expected a text scalar, got shape {array.shape} dtype {array.dtype}",
                          path=path, field=key)
    item = array.item()
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise MotionError(f"not a readable .npz archive (corrupt or truncated?): {error}",
                          path=path) from error
    arrays = {}
    with npz:
        for key in npz.files:
            try:
                arrays[key] = npz[key]
            except ValueError as error:
                raise MotionError("holds pickled Python objects, which are never loaded; "
                                  "re-save it with plain arrays", path=path,
                                  field=key) from error
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
                raise MotionError(f"is damaged: {error}", path=path, field=key) from error
    return arrays


# ---------------------------------------------------------------------------- readers
def read_motion(path: str | Path, up: str = "AUTO") -> Motion:
    """Read a motion file (format detected from its content) into a :class:`Motion` in the
    Y-up world. ``.bvh`` files are not read here (the add-on imports them with Blender's BVH
    importer and retargets them). AMASS-style, ``.smpl`` and TalkSHOW files are turned upright
    as their data says (``motion.up_axis`` tells how and why) unless ``up`` (a key of
    :data:`UP_AXIS_CHOICES`) states the file's up axis."""
    path = Path(path)
    if up not in UP_AXIS_CHOICES:
        raise MotionError(f"unknown up axis {up!r}; choose one of {', '.join(UP_AXIS_CHOICES)}",
                          path=path, field="up_axis")
    given = None if UP_AXIS_CHOICES[up] is None else given_up_axis(
        UP_AXIS_CHOICES[up], f"stated on import (Up Axis: {up})")
    if not path.is_file():
        raise MotionError("file does not exist; check the path", path=path)
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"HIERARCH"):
        raise MotionError("is a BVH file; use Import BVH (retarget) instead", path=path)
    if head.startswith(b"\x93NUMPY"):
        return _read_talkshow(path, given).validate()
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise MotionError(f"is not a motion file we read (not an .npz/.smpl archive or .npy "
                          f"array; it starts with {head!r}). Supported: One-Shot Avatar .npz, "
                          "AMASS SMPL-X/SMPL+H .npz, Meshcapade .smpl, TalkSHOW .npy, BVH "
                          "(through Import BVH)", path=path)
    arrays = _read_npz(path)
    keys = set(arrays)
    if "schema" in keys:
        motion = _read_ours(path, arrays)
    elif keys & _SMPLCODEC_KEYS:
        motion = _place_upright(_read_smpl(path, arrays), given, "+y")
    elif "poses" in keys or "root_orient" in keys:
        motion = _place_upright(_read_amass(path, arrays), given, "+z")
    else:
        raise MotionError(f"unknown motion layout (keys: {', '.join(sorted(keys)) or 'none'}); "
                          "expected our format (key 'schema'), AMASS ('poses' or 'root_orient') "
                          "or a Meshcapade .smpl ('bodyPose')", path=path)
    return motion.validate()


def _read_ours(path: Path, arrays: Mapping[str, np.ndarray]) -> Motion:
    schema = _text(path, "schema", arrays["schema"])
    if schema != SCHEMA:
        raise MotionError(f"unsupported schema {schema!r}; this add-on reads {SCHEMA!r}",
                          path=path, field="schema")
    missing = [k for k in (*_OURS_SCALARS, *FRAME_FIELDS) if k not in arrays]
    if missing:
        raise MotionError("key is missing", path=path, field=missing[0])
    orient = _numbers(path, "global_orient", arrays["global_orient"], (None, 3))
    t = orient.shape[0]
    params = {}
    for name, (_, count) in POSE_PARAM_JOINTS.items():
        shape = (t, 3) if count == 1 else (t, count, 3)
        params[name] = _numbers(path, name, arrays[name], shape)
    space = _text(path, "expression_space", arrays["expression_space"]) or None
    betas = None
    if "betas" in arrays:
        betas = _numbers(path, "betas", arrays["betas"], (None,))
    return Motion(
        fps=_positive(path, "fps", arrays["fps"]),
        full_pose=posemath.full_pose_from_params(params, t),
        transl=_numbers(path, "transl", arrays["transl"], (t, 3)),
        expression=_numbers(path, "expression", arrays["expression"], (t, None)),
        expression_space=space, name=_text(path, "name", arrays["name"]), source=str(path),
        betas=betas)


def change_world(matrix: np.ndarray, global_orient: np.ndarray, transl: np.ndarray,
                 pelvis_rest: tuple[float, float, float] = NOMINAL_PELVIS_REST,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """SMPL-X root parameters after rotating the world by ``matrix`` (3, 3):
    ``(M R, M (J0 + t) - J0)`` for ``global_orient (T,3)`` and ``transl (T,3)``."""
    j0 = np.asarray(pelvis_rest, dtype=np.float64)
    rotation = np.asarray(matrix, dtype=np.float64) @ posemath.axis_angle_to_matrix(global_orient)
    return posemath.matrix_to_axis_angle(rotation), (np.asarray(transl) + j0) @ matrix.T - j0


def _read_amass(path: Path, arrays: Mapping[str, np.ndarray]) -> Motion:
    if "poses" in arrays:
        poses = np.asarray(arrays["poses"])
        width = poses.shape[1] if poses.ndim == 2 else None
        if width not in (165, 156):
            raise MotionError(f"expected shape (T, 165) for SMPL-X or (T, 156) for SMPL+H, got "
                              f"{poses.shape}", path=path, field="poses")
        poses = _numbers(path, "poses", poses, (None, width))
        t = poses.shape[0]
        full = np.zeros((t, NUM_JOINTS, 3))
        if width == 165:
            full[:] = poses.reshape(t, NUM_JOINTS, 3)
        else:
            joints = poses.reshape(t, 52, 3)
            full[:, :22] = joints[:, :22]
            full[:, 25:55] = joints[:, 22:52]
    else:
        if "pose_body" not in arrays:
            raise MotionError("has 'root_orient' but no 'pose_body' (T, 63)", path=path,
                              field="pose_body")
        root = _numbers(path, "root_orient", arrays["root_orient"], (None, 3))
        t = root.shape[0]
        full = np.zeros((t, NUM_JOINTS, 3))
        full[:, 0] = root
        for key, (first, count) in {"pose_body": (1, 21), "pose_jaw": (22, 1),
                                    "pose_eye": (23, 2), "pose_hand": (25, 30)}.items():
            if key in arrays:
                value = _numbers(path, key, arrays[key], (t, count * 3))
                full[:, first:first + count] = value.reshape(t, count, 3)
    if "trans" not in arrays:
        raise MotionError(f"root translation is missing; expected shape ({t}, 3)", path=path,
                          field="trans")
    trans = _numbers(path, "trans", arrays["trans"], (t, 3))
    rate_keys = [k for k in ("mocap_frame_rate", "mocap_framerate") if k in arrays]
    if not rate_keys:
        raise MotionError("no frame rate; AMASS files store it as 'mocap_frame_rate' or "
                          "'mocap_framerate'", path=path, field="mocap_frame_rate")
    fps = _positive(path, rate_keys[0], arrays[rate_keys[0]])
    expression = np.zeros((t, 0))
    for key in ("expressions", "expression"):
        if key in arrays:
            expression = _numbers(path, key, arrays[key], (t, None))
            break
    betas = None
    if "betas" in arrays:
        betas = _numbers(path, "betas", np.asarray(arrays["betas"]).reshape(-1), (None,))
    return Motion(fps=fps, full_pose=full, transl=trans, expression=expression,
                  expression_space="smplx-pca" if expression.shape[1] else None,
                  name=path.stem, source=str(path), betas=betas)


def _read_smpl(path: Path, arrays: Mapping[str, np.ndarray]) -> Motion:
    if "bodyPose" not in arrays:
        raise MotionError("holds no motion (no 'bodyPose'); it is a body shape only", path=path,
                          field="bodyPose")
    body = np.asarray(arrays["bodyPose"])
    if body.ndim != 3 or body.shape[1] not in (22, 24) or body.shape[2] != 3:
        raise MotionError(f"expected shape (T, 22, 3) (SMPL-X/SMPL+H) or (T, 24, 3) (SMPL), got "
                          f"{body.shape}", path=path, field="bodyPose")
    body = _numbers(path, "bodyPose", body, (None, body.shape[1], 3))
    t = body.shape[0]
    if "frameCount" in arrays and int(np.asarray(arrays["frameCount"]).reshape(-1)[0]) != t:
        raise MotionError(f"says {int(np.asarray(arrays['frameCount']).reshape(-1)[0])} frames "
                          f"but 'bodyPose' has {t}", path=path, field="frameCount")
    full = np.zeros((t, NUM_JOINTS, 3))
    full[:, :22] = body[:, :22]
    for key, first, count in (("headPose", 22, 3), ("leftHandPose", 25, 15),
                              ("rightHandPose", 40, 15)):
        if key in arrays:
            full[:, first:first + count] = _numbers(path, key, arrays[key], (t, count, 3))
    transl = np.zeros((t, 3))
    if "bodyTranslation" in arrays:
        transl = _numbers(path, "bodyTranslation", arrays["bodyTranslation"], (t, 3))
    fps = _positive(path, "frameRate", arrays["frameRate"]) if "frameRate" in arrays else 30.0
    expression = np.zeros((t, 0))
    if "expressionParameters" in arrays:
        expression = _numbers(path, "expressionParameters", arrays["expressionParameters"],
                              (t, None))
    betas = None
    if "shapeParameters" in arrays:
        betas = _numbers(path, "shapeParameters",
                         np.asarray(arrays["shapeParameters"]).reshape(-1), (None,))
    return Motion(fps=fps, full_pose=full, transl=transl, expression=expression,
                  expression_space="smplx-pca" if expression.shape[1] else None,
                  name=path.stem, source=str(path), betas=betas)


def _place_upright(motion: Motion, given: UpAxis | None, convention: str) -> Motion:
    """``motion`` read in its file's world, turned into ours (the root only)."""
    up = given or decide_up_axis(motion.full_pose[:, 0], motion.transl, convention)
    if up.axis != "+y":
        motion.full_pose[:, 0], motion.transl = change_world(
            up.matrix, motion.full_pose[:, 0], motion.transl)
    motion.up_axis = up
    return motion


def _read_talkshow(path: Path, given: UpAxis | None) -> Motion:
    """TalkSHOW ``(T, 265)`` ``.npy`` at 30 fps: jaw 0:3, eyes 3:9, global_orient 9:12, body
    12:75, hands 75:165 (relative to SMPL-X's mean hand), 100 PCA expressions 165:265;
    camera-style, turned upright about the pelvis (no translation), like the backend."""
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise MotionError("holds pickled Python objects or is damaged; re-save it as a plain "
                          f"numeric array ({error})", path=path, field="array") from error
    except (OSError, EOFError) as error:
        raise MotionError(f"not a readable .npy array: {error}", path=path) from error
    if array.ndim != 2 or array.shape[1] != TALKSHOW_COLUMNS:
        raise MotionError(f"the only .npy layout we read is TalkSHOW, which has shape "
                          f"(T, {TALKSHOW_COLUMNS}), got {array.shape}", path=path, field="array")
    data = _numbers(path, "array", array, (None, TALKSHOW_COLUMNS))
    t = data.shape[0]
    full = np.zeros((t, NUM_JOINTS, 3))
    full[:, 22:25] = data[:, 0:9].reshape(t, 3, 3)
    full[:, 0] = data[:, 9:12]
    full[:, 1:22] = data[:, 12:75].reshape(t, 21, 3)
    full[:, 25:55] = data[:, 75:165].reshape(t, 30, 3) + SMPLX_HAND_MEAN
    up = given or decide_up_axis(full[:, 0], np.zeros((t, 3)), "-y")
    if up.axis != "+y":  # about the pelvis: the file has no translation to keep
        full[:, 0] = posemath.matrix_to_axis_angle(
            up.matrix @ posemath.axis_angle_to_matrix(full[:, 0]))
    return Motion(fps=TALKSHOW_FPS, full_pose=full, transl=np.zeros((t, 3)),
                  expression=data[:, 165:265], expression_space="smplx-pca", name=path.stem,
                  source=str(path), up_axis=up)


def motion_from_json(data: Mapping[str, Any]) -> Motion:
    """A :class:`Motion` from the backend's MotionJSON (``GET /v1/motions/{name}``):
    ``{"name", "fps", "expression_space", "params": {"global_orient": [[3]..], "body_pose":
    [[63]..], ..., "transl": [[3]..], "expression": [[E]..]}}``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("params"), Mapping):
        raise MotionError("expected a JSON object with 'params'", field="params")
    try:
        full, transl, expression = rows.pose_from_rows(data["params"])
    except FieldError as error:
        raise MotionError(error.message, field=error.field) from error
    space = data.get("expression_space") or None
    try:
        fps = float(data.get("fps", 0))
    except (TypeError, ValueError):
        fps = float("nan")
    return Motion(fps=fps, full_pose=full, transl=transl, expression=expression,
                  expression_space=space, name=str(data.get("name", "motion")),
                  source=f"builtin:{data.get('name', 'motion')}").validate()


# ---------------------------------------------------------------------------- resampling
def resampled_frame_count(num_frames: int, fps_in: float, fps_out: float) -> int:
    """``floor(duration * fps_out) + 1`` with ``duration = (num_frames - 1) / fps_in``."""
    return math.floor((num_frames - 1) / fps_in * fps_out + _SNAP) + 1


def resample(motion: Motion, fps: float) -> Motion:
    """``motion`` at ``fps``, same duration (frame k at time k / fps), like the backend's
    ``resample``: joint rotations by quaternion slerp, translation and expression linearly;
    frames that fall on a source frame are copied exactly."""
    if not (math.isfinite(fps) and fps > 0):
        raise MotionError(f"target frame rate must be positive, got {fps}", field="fps")
    if fps == motion.fps:
        return motion
    num_out = resampled_frame_count(motion.num_frames, motion.fps, fps)
    position = np.arange(num_out, dtype=np.float64) * (motion.fps / fps)
    index0 = np.floor(position + _SNAP).astype(np.int64)
    weight = np.where(np.abs(position - index0) < _SNAP, 0.0, position - index0)
    index0 = np.clip(index0, 0, motion.num_frames - 1)
    index1 = np.minimum(index0 + 1, motion.num_frames - 1)
    weight = np.where(index1 == index0, 0.0, np.clip(weight, 0.0, 1.0))
    exact = weight == 0.0
    quats = posemath.axis_angle_to_quaternion(motion.full_pose)
    pose = posemath.quaternion_to_axis_angle(
        posemath.slerp(quats[index0], quats[index1], weight[:, None]))
    pose[exact] = motion.full_pose[index0[exact]]

    def lerp(values: np.ndarray) -> np.ndarray:
        w = weight.reshape(-1, *([1] * (values.ndim - 1)))
        out = (1.0 - w) * values[index0] + w * values[index1]
        out[exact] = values[index0[exact]]
        return out

    return Motion(fps=float(fps), full_pose=pose, transl=lerp(motion.transl),
                  expression=lerp(motion.expression), expression_space=motion.expression_space,
                  name=motion.name, source=motion.source, betas=motion.betas,
                  up_axis=motion.up_axis)


# ---------------------------------------------------------------------------- expressions
def expressions_for_rig(motion: Motion, rig_expression_names: list[str]) -> np.ndarray | None:
    """The motion's expression columns as values for the rig's expression properties
    ``(T, len(names))``, or None when the spaces do not fit (like the backend's renderer):
    "arkit52" fits a body with 52 named face units; "smplx-pca" fits a body whose names are
    ``expr_000...`` (extra columns dropped, missing ones zero)."""
    names = list(rig_expression_names)
    width = motion.expression.shape[1]
    if not width or not names:
        return None
    pca_body = expression_space(names) == "smplx-pca"
    if motion.expression_space == "arkit52" and not pca_body and width == len(names):
        return motion.expression
    if motion.expression_space == "smplx-pca" and pca_body:
        out = np.zeros((motion.num_frames, len(names)))
        out[:, :min(width, len(names))] = motion.expression[:, :len(names)]
        return out
    return None


# ---------------------------------------------------------------------------- writing
def motion_npz_arrays(motion: Motion) -> dict[str, np.ndarray]:
    """The arrays of ``motion`` as an ``oneshot-motion/1`` file (float32 per-frame fields)."""
    motion.validate()
    expression = motion.expression
    if motion.expression_space == "arkit52":
        expression = np.clip(expression, 0.0, 1.0)  # the backend requires 0..1 face units
    arrays: dict[str, np.ndarray] = {
        "schema": np.array(SCHEMA),
        "fps": np.array(float(motion.fps), dtype=np.float64),
        "expression_space": np.array(motion.expression_space or ""),
        "name": np.array(motion.name),
        "source": np.array(motion.source),
    }
    for name, values in posemath.params_from_full_pose(motion.full_pose).items():
        arrays[name] = values
    arrays["transl"] = np.ascontiguousarray(motion.transl, dtype=np.float32)
    arrays["expression"] = np.ascontiguousarray(expression, dtype=np.float32)
    if motion.betas is not None:
        arrays["betas"] = np.ascontiguousarray(motion.betas, dtype=np.float32)
    return arrays


def write_motion_npz(motion: Motion, path: str | Path) -> Path:
    """Write ``motion`` as ``oneshot-motion/1`` ``.npz`` atomically (temporary file in the same
    folder, then ``os.replace``). Raises :class:`MotionError` for a bad path."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise MotionError(f"motion files are written as .npz; give a path ending in .npz (got "
                          f"{path.suffix!r})", path=path, field="filepath")
    buffer = io.BytesIO()
    np.savez(buffer, **motion_npz_arrays(motion))
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(buffer.getvalue())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise MotionError(f"cannot write here: {error.strerror or error}", path=path,
                          field="filepath") from error
    return path
