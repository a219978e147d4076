"""MediaPipe Holistic's results as :class:`~oneshot_avatar.fit.landmarks.Landmarks`.

A small bridge the fit's own tests and benchmarks use to get real detections; the detector
plug-in (``detect/holistic.py``) owns the product path. Everything here is a pure mapping of
MediaPipe's outputs into the shared vocabulary:

- body: the COCO 17 from MediaPipe Pose's 33 points; feet: ``*_heel`` and ``*_big_toe`` (Pose's
  ``foot_index``, the tip of the foot); MediaPipe has no small toe;
- hands: Holistic's ``left/right_hand_landmarks`` are the person's left/right hands, in the
  OpenPose order already (wrist, thumb 1..4, index 1..4, ...), with their relative depth;
- face: the 478 face-mesh points in pixels, ``z`` scaled like ``x`` (pixels, relative depth);
- world: the 33 pose world landmarks (metres, MediaPipe axes) with their visibility.
"""

from __future__ import annotations

import numpy as np

from oneshot_avatar.fit.keypoints import COCO_BODY_NAMES, Keypoints, hand_names
from oneshot_avatar.fit.landmarks import MEDIAPIPE_POSE_NAMES, Landmarks

_POSE_INDEX = {name: i for i, name in enumerate(MEDIAPIPE_POSE_NAMES)}
_FEET = {"left_heel": "left_heel", "left_big_toe": "left_foot_index",
         "right_heel": "right_heel", "right_big_toe": "right_foot_index"}
HAND_CONFIDENCE = 0.9  # MediaPipe gives no per-point hand confidence: a found hand is trusted


def _inside(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    return (xy[:, 0] >= 0) & (xy[:, 0] <= width) & (xy[:, 1] >= 0) & (xy[:, 1] <= height)


def landmarks_from_holistic(results, width: int, height: int,
                            source: str = "mediapipe-holistic") -> Landmarks:
    """Map one ``Holistic.process`` result of a ``width x height`` image."""
    names: list[str] = []
    xy: list[np.ndarray] = []
    conf: list[float] = []
    world = world_conf = None
    notes: list[str] = []
    scale = np.array([width, height], dtype=np.float64)
    pose = results.pose_landmarks
    if pose is not None:
        points = np.array([[p.x, p.y] for p in pose.landmark]) * scale
        visibility = np.array([p.visibility for p in pose.landmark])
        inside = _inside(points, width, height)
        visibility = np.where(inside, visibility, 0.0)  # a guessed point outside the photo
        for name in COCO_BODY_NAMES:
            i = _POSE_INDEX[name]
            names.append(name), xy.append(points[i]), conf.append(float(visibility[i]))
        for name, mp_name in _FEET.items():
            i = _POSE_INDEX[mp_name]
            names.append(name), xy.append(points[i]), conf.append(float(visibility[i]))
        if results.pose_world_landmarks is not None:
            world = np.array([[p.x, p.y, p.z] for p in results.pose_world_landmarks.landmark])
            world_conf = visibility.copy()
    hand_depth = np.full((2, 21), np.nan)
    for h, side in enumerate(("left", "right")):
        hand = getattr(results, f"{side}_hand_landmarks")
        if hand is None:
            continue
        hand_depth[h] = np.array([p.z for p in hand.landmark]) * width
        points = np.array([[p.x, p.y] for p in hand.landmark]) * scale
        inside = _inside(points, width, height)
        for name, point, ok in zip(hand_names(side), points, inside):
            names.append(name), xy.append(point), conf.append(HAND_CONFIDENCE * float(ok))
    face = None
    face_conf = 0.0
    if results.face_landmarks is not None and len(results.face_landmarks.landmark) == 478:
        face = np.array([[p.x * width, p.y * height, p.z * width]
                         for p in results.face_landmarks.landmark])
        face_conf = float(_inside(face[:, :2], width, height).mean())
    keypoints = Keypoints(xy=np.asarray(xy, dtype=np.float32).reshape(-1, 2),
                          conf=np.asarray(conf, dtype=np.float32), names=tuple(names),
                          source=source, image_size=(width, height))
    segmentation = None
    mask = getattr(results, "segmentation_mask", None)
    if mask is not None:
        segmentation = np.asarray(mask, dtype=np.float32)
    return Landmarks(keypoints=keypoints, image_size=(width, height), source=source, face=face,
                     face_conf=face_conf, world=world, world_conf=world_conf,
                     segmentation=segmentation, notes=notes,
                     hand_depth=None if np.isnan(hand_depth).all() else hand_depth)


def detect_landmarks(rgb: np.ndarray, *, model_complexity: int = 1) -> Landmarks:
    """Run MediaPipe Holistic (static image mode) on ``rgb`` (uint8 or float in [0, 1],
    ``[H, W, 3]``)."""
    import mediapipe as mp

    image = np.asarray(rgb)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    image = np.ascontiguousarray(image[..., :3])
    height, width = image.shape[:2]
    with mp.solutions.holistic.Holistic(static_image_mode=True, model_complexity=model_complexity,
                                        enable_segmentation=True,
                                        refine_face_landmarks=True) as holistic:
        results = holistic.process(image)
    return landmarks_from_holistic(results, width, height)


def detect_face_mesh(rgb: np.ndarray) -> np.ndarray | None:
    """The 478 face-mesh points ``[478, 3]`` (pixels; z relative, scaled like x) of the most
    prominent face in ``rgb``, or None when no face is found (MediaPipe FaceMesh, static)."""
    import mediapipe as mp

    image = np.asarray(rgb)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    image = np.ascontiguousarray(image[..., :3])
    height, width = image.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         max_num_faces=1) as mesh:
        results = mesh.process(image)
    if not results.multi_face_landmarks:
        return None
    return np.array([[p.x * width, p.y * height, p.z * width]
                     for p in results.multi_face_landmarks[0].landmark])
