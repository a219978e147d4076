"""2D keypoints of the person in the photo: one vocabulary of names, and readers for the two
common files (OpenPose JSON, COCO-WholeBody JSON).

Vocabulary (``KEYPOINT_NAMES``): the COCO body 17 (``nose``, ``left_eye`` ... ``right_ankle``),
``neck`` and ``mid_hip`` (OpenPose only), the feet (``left_big_toe``, ``left_small_toe``,
``left_heel``, right likewise), the 68 face landmarks of the iBUG/300-W layout ``face_0`` ...
``face_67`` plus the two pupils OpenPose adds (``face_68`` right, ``face_69`` left), and per hand
21 points ``left_hand_wrist``, ``left_hand_thumb1..4``, ``left_hand_index1..4``, ... ``pinky4``
(1 = the knuckle nearest the wrist, 4 = the fingertip; for the thumb 1 is the CMC joint).
"Left" is always the person's left.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from oneshot_avatar.errors import BadFileError, UserError

COCO_BODY_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
FOOT_NAMES: tuple[str, ...] = (
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe",
    "right_heel",
)  # fmt: skip
FACE_NAMES: tuple[str, ...] = tuple(f"face_{i}" for i in range(70))
FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")


def hand_names(side: str) -> tuple[str, ...]:
    """The 21 OpenPose/COCO-WholeBody hand points of ``side`` ("left" or "right")."""
    return (f"{side}_hand_wrist",) + tuple(
        f"{side}_hand_{finger}{k}" for finger in FINGERS for k in range(1, 5)
    )


LEFT_HAND_NAMES = hand_names("left")
RIGHT_HAND_NAMES = hand_names("right")

KEYPOINT_NAMES: tuple[str, ...] = (
    COCO_BODY_NAMES + ("neck", "mid_hip") + FOOT_NAMES + FACE_NAMES + LEFT_HAND_NAMES
    + RIGHT_HAND_NAMES
)
KEYPOINT_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# COCO-WholeBody's 133 points in file order: body 17, feet 6, face 68, left hand, right hand.
COCO_WHOLEBODY_NAMES: tuple[str, ...] = (
    COCO_BODY_NAMES + FOOT_NAMES + FACE_NAMES[:68] + LEFT_HAND_NAMES + RIGHT_HAND_NAMES
)
# OpenPose body layouts (the person's left/right, as OpenPose writes them).
BODY_25_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe",
    "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip
OPENPOSE_COCO_18_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
OPENPOSE_FACE_NAMES: tuple[str, ...] = FACE_NAMES  # 68 landmarks + right, left pupil

# A confident point this far outside the image (as a fraction of its larger side) means the
# keypoints were made for another image.
OUTSIDE_TOLERANCE = 0.25
CONFIDENT = 0.3


@dataclass
class Keypoints:
    """2D keypoints in pixels of one image (continuous coordinates, see ``cameras``)."""

    xy: np.ndarray  # float32 [K, 2]
    conf: np.ndarray  # float32 [K] in [0, 1]; 0 = missing
    names: tuple[str, ...]  # K names from KEYPOINT_NAMES
    source: str  # "openpose-json" | "coco-wholebody-json" | "onnx:<file>"
    image_size: tuple[int, int] | None = None  # (W, H) of the image they were made for

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float32).reshape(-1, 2)
        self.conf = np.asarray(self.conf, dtype=np.float32).reshape(-1)
        self.names = tuple(self.names)
        if not len(self.xy) == len(self.conf) == len(self.names):
            raise ValueError(f"xy {self.xy.shape}, conf {self.conf.shape} and "
                             f"{len(self.names)} names disagree on the keypoint count")
        unknown = [n for n in self.names if n not in KEYPOINT_INDEX]
        if unknown:
            raise ValueError(f"unknown keypoint names {unknown[:5]}")

    def __len__(self) -> int:
        return len(self.names)

    def mapped(self, fn: Callable[[np.ndarray], np.ndarray],
               image_size: tuple[int, int] | None = None) -> Keypoints:
        """The same keypoints with ``xy`` mapped by ``fn`` (e.g. ``CropBox.to_crop``);
        ``image_size`` is that of the image they now belong to."""
        xy = np.asarray(fn(self.xy.astype(np.float64)), dtype=np.float32).reshape(-1, 2)
        return replace(self, xy=xy, conf=self.conf.copy(), image_size=image_size)

    def get(self, name: str) -> tuple[np.ndarray, float] | None:
        """``(xy [2], conf)`` of one point, or None when the set does not have it."""
        if name not in self.names:
            return None
        i = self.names.index(name)
        return self.xy[i], float(self.conf[i])

    def confident(self, threshold: float = CONFIDENT) -> np.ndarray:  # bool [K]
        return self.conf > threshold


# ---------------------------------------------------------------------------------------------
# Reading files


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise BadFileError("keypoints file does not exist", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadFileError(f"cannot read the keypoints file: {error}", path=path) from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadFileError(f"not valid JSON ({error}); expected an OpenPose or COCO-WholeBody "
                           "keypoints file", path=path) from error


def _triplets(values: Any, count: int | Sequence[int], path: Path, field: str) -> np.ndarray:
    """A flat list ``x, y, c, x, y, c, ...`` (or a list of triplets) as float [N, 3]."""
    if values is None:
        return np.zeros((0, 3), dtype=np.float64)
    if not isinstance(values, list) or any(
        isinstance(v, bool) or not isinstance(v, (int, float, list)) or v is None for v in values
    ):
        raise BadFileError("expected a list of numbers x, y, confidence per point",
                           path=path, field=field)
    if values and isinstance(values[0], list):
        values = [x for row in values for x in (row if isinstance(row, list) else [row])]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise BadFileError("expected numbers only", path=path, field=field)
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise BadFileError(f"value {bad} (point {bad // 3}) is NaN or infinite; fix or remove "
                           "the point (confidence 0 marks a missing point)",
                           path=path, field=field)
    counts = (count,) if isinstance(count, int) else tuple(count)
    if len(array) == 0:
        return array.reshape(0, 3)
    if len(array) % 3 or len(array) // 3 not in counts:
        want = " or ".join(f"{c} x 3 = {c * 3}" for c in counts)
        raise BadFileError(f"has {len(array)} numbers, expected {want} (x, y, confidence per "
                           "point)", path=path, field=field)
    return array.reshape(-1, 3)


def _check_size(points: np.ndarray, conf: np.ndarray, image_size: tuple[int, int], path: Path,
                field: str, file_size: tuple[int, int] | None) -> None:
    width, height = image_size
    if file_size is not None and tuple(file_size) != (width, height):
        raise UserError(
            f"the keypoints were made for a {file_size[0]}x{file_size[1]} image but the photo is "
            f"{width}x{height}; give keypoints detected on this photo (same size and "
            "orientation)", path=path, field=field)
    ok = conf > 0
    if not ok.any():
        return
    margin = OUTSIDE_TOLERANCE * max(width, height)
    xy = points[ok]
    outside = ((xy[:, 0] < -margin) | (xy[:, 0] > width + margin) | (xy[:, 1] < -margin)
               | (xy[:, 1] > height + margin))
    if outside.any():
        first = xy[outside][0]
        raise UserError(
            f"{int(outside.sum())} keypoint(s) lie far outside the {width}x{height} photo (e.g. "
            f"at ({first[0]:.0f}, {first[1]:.0f})): they were made for another image size or "
            "orientation; detect keypoints on this photo", path=path, field=field)


def _assemble(parts: list[tuple[tuple[str, ...], np.ndarray]]) -> tuple[np.ndarray, np.ndarray,
                                                                         tuple[str, ...]]:
    names: list[str] = []
    rows: list[np.ndarray] = []
    for part_names, array in parts:
        if len(array) == 0:
            continue
        names.extend(part_names[: len(array)])
        rows.append(array[: len(part_names)])
    if not rows:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32), ()
    table = np.concatenate(rows)
    conf = np.clip(table[:, 2], 0.0, 1.0)
    return table[:, :2].astype(np.float32), conf.astype(np.float32), tuple(names)


def _openpose_person_score(person: dict) -> float:
    body = person.get("pose_keypoints_2d") or []
    try:
        array = np.asarray(body, dtype=np.float64).reshape(-1, 3)
    except (ValueError, TypeError):
        return -1.0
    ok = np.isfinite(array).all(axis=1) & (array[:, 2] > 0.1)
    if ok.sum() < 2:
        return float(ok.sum())
    extent = array[ok, :2].max(axis=0) - array[ok, :2].min(axis=0)
    return float(extent[0] * extent[1]) + ok.sum()


def _read_openpose(data: dict, path: Path) -> tuple[list, tuple[int, int] | None]:
    people = data.get("people")
    if not isinstance(people, list) or not people:
        raise BadFileError("has no people (OpenPose found nobody in the image); give keypoints "
                           "of the person to reconstruct", path=path, field="people")
    # OpenPose does not sort people; take the one spanning the largest area.
    scores = [_openpose_person_score(p) if isinstance(p, dict) else -1.0 for p in people]
    index = int(np.argmax(scores))
    person = people[index]
    if not isinstance(person, dict):
        raise BadFileError("expected an object per person", path=path, field=f"people[{index}]")
    prefix = f"people[{index}]."
    body = _triplets(person.get("pose_keypoints_2d"), (25, 18), path,
                     prefix + "pose_keypoints_2d")
    body_names = BODY_25_NAMES if len(body) == 25 else OPENPOSE_COCO_18_NAMES
    face = _triplets(person.get("face_keypoints_2d"), 70, path, prefix + "face_keypoints_2d")
    left = _triplets(person.get("hand_left_keypoints_2d"), 21, path,
                     prefix + "hand_left_keypoints_2d")
    right = _triplets(person.get("hand_right_keypoints_2d"), 21, path,
                      prefix + "hand_right_keypoints_2d")
    # OpenPose writes 0, 0, 0 for a point it did not find; conf 0 already marks it missing.
    parts = [(body_names, body), (OPENPOSE_FACE_NAMES, face), (LEFT_HAND_NAMES, left),
             (RIGHT_HAND_NAMES, right)]
    size = None
    if "image_size" in data:  # not standard OpenPose; some tools add it
        size = _size_field(data["image_size"], path, "image_size")
    return parts, size


def _size_field(value: Any, path: Path, field: str) -> tuple[int, int]:
    if isinstance(value, dict):
        value = [value.get("width"), value.get("height")]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise BadFileError(f"expected [width, height] in pixels, got {value!r}", path=path,
                           field=field)
    return int(value[0]), int(value[1])


def _coco_visibility(table: np.ndarray) -> np.ndarray:
    """COCO flags (0 unlabelled, 1 labelled but hidden, 2 visible) or detector scores -> [0, 1].
    Labelled-but-hidden points keep their (annotated) position at half weight."""
    flags = table[:, 2]
    if np.all(np.isin(flags, (0.0, 1.0, 2.0))) and (flags == 2.0).any():
        out = np.where(flags == 2.0, 1.0, np.where(flags == 1.0, 0.5, 0.0))
    else:
        out = np.clip(flags, 0.0, 1.0)
    table = table.copy()
    table[:, 2] = out
    return table


def _read_coco_wholebody(data: Any, path: Path, image_size: tuple[int, int]
                         ) -> tuple[list, tuple[int, int] | None]:
    if isinstance(data, list):  # a flat 133 x 3 list (or 133 triplets)
        table = _coco_visibility(_triplets(data, 133, path, "keypoints"))
        return [(COCO_WHOLEBODY_NAMES, table)], None
    annotations = data.get("annotations")
    if not isinstance(annotations, list) or not annotations:
        raise BadFileError("has no annotations; expected COCO-WholeBody annotations with "
                           "keypoints, foot_kpts, face_kpts, lefthand_kpts, righthand_kpts",
                           path=path, field="annotations")
    images = {img.get("id"): img for img in data.get("images", []) if isinstance(img, dict)}
    candidates = list(range(len(annotations)))
    size = None
    if images:
        # A COCO file may hold several images: use the annotations of the one of this size.
        sizes = {i: (images[i].get("width"), images[i].get("height")) for i in images}
        matching = [k for k in candidates if isinstance(annotations[k], dict)
                    and sizes.get(annotations[k].get("image_id")) == tuple(image_size)]
        if not matching:
            found = sorted({f"{w}x{h}" for w, h in sizes.values()})
            raise UserError(
                f"no image in the file is {image_size[0]}x{image_size[1]} like the photo (it has "
                f"{', '.join(found)}): the keypoints were made for another image; give keypoints "
                "detected on this photo", path=path, field="images")
        candidates = matching
        size = tuple(image_size)

    def score(k: int) -> float:
        ann = annotations[k]
        box = ann.get("bbox") if isinstance(ann, dict) else None
        if isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float))
                                                           for v in box):
            return float(box[2] * box[3])
        return float(ann.get("num_keypoints", 0)) if isinstance(ann, dict) else -1.0

    index = max(candidates, key=score)  # the largest person
    ann = annotations[index]
    if not isinstance(ann, dict):
        raise BadFileError("expected an object", path=path, field=f"annotations[{index}]")
    prefix = f"annotations[{index}]."
    if "keypoints" in ann and isinstance(ann["keypoints"], list) and len(ann["keypoints"]) == 399:
        table = _coco_visibility(_triplets(ann["keypoints"], 133, path, prefix + "keypoints"))
        return [(COCO_WHOLEBODY_NAMES, table)], size
    parts = []
    for key, names, count in (("keypoints", COCO_BODY_NAMES, 17), ("foot_kpts", FOOT_NAMES, 6),
                              ("face_kpts", FACE_NAMES[:68], 68),
                              ("lefthand_kpts", LEFT_HAND_NAMES, 21),
                              ("righthand_kpts", RIGHT_HAND_NAMES, 21)):
        if key == "keypoints" and key not in ann:
            raise BadFileError("missing (COCO body keypoints, 17 x 3 numbers)", path=path,
                               field=prefix + key)
        table = _triplets(ann.get(key), count, path, prefix + key)
        valid_flag = {"foot_kpts": "foot_valid", "face_kpts": "face_valid",
                      "lefthand_kpts": "lefthand_valid", "righthand_kpts": "righthand_valid"}
        if len(table) == 0:
            table = np.zeros((count, 3))
        table = _coco_visibility(table)
        flag = valid_flag.get(key)
        if flag is not None and ann.get(flag) is False:
            table[:, 2] = 0.0  # the part is marked as not annotated
        parts.append((names, table))
    return parts, size


def load_keypoints(path: str | Path, image_size: tuple[int, int]) -> Keypoints:
    """Read an OpenPose JSON (``people[...]`` with ``pose_keypoints_2d`` BODY_25 or COCO-18,
    ``hand_left/right_keypoints_2d``, ``face_keypoints_2d`` 70) or a COCO-WholeBody JSON
    (``annotations`` with ``keypoints``/``foot_kpts``/``face_kpts``/``lefthand_kpts``/
    ``righthand_kpts``, or one flat 133 x 3 list), in pixels of the photo of
    ``image_size = (W, H)``.

    Of several people the largest is taken. COCO visibility 2 -> confidence 1, 1 (labelled but
    hidden) -> 0.5, 0 -> missing; OpenPose confidences are kept. NaN values, a size recorded in
    the file that differs from ``image_size``, or confident points far outside the image raise
    :class:`UserError` naming the field.
    """
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, dict) and "people" in data:
        parts, file_size = _read_openpose(data, path)
        source = "openpose-json"
    elif isinstance(data, list) or (isinstance(data, dict) and "annotations" in data):
        parts, file_size = _read_coco_wholebody(data, path, image_size)
        source = "coco-wholebody-json"
    else:
        keys = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise BadFileError(f"not a keypoints file this tool reads (top level: {keys}); expected "
                           "OpenPose JSON ('people') or COCO-WholeBody JSON ('annotations')",
                           path=path)
    xy, conf, names = _assemble(parts)
    if not (conf > 0).any():
        raise UserError("holds no detected keypoint (every confidence is 0)", path=path,
                        field="people" if source == "openpose-json" else "annotations")
    _check_size(xy, conf, image_size, path, "keypoints", file_size)
    return Keypoints(xy=xy, conf=conf, names=names, source=source,
                     image_size=(int(image_size[0]), int(image_size[1])))

