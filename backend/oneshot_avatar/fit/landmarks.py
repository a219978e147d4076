"""Whole-body landmarks of one person in one image: what a landmark detector gives the fit.

The contract between a detector (the embedded MediaPipe Holistic plug-in, or any other) and the
body fit. Everything the existing keypoint vocabulary can name (COCO body 17, feet, both hands'
21 points) travels as :class:`~oneshot_avatar.fit.keypoints.Keypoints`, so the fit's 2D terms
do not care where the points came from; the detector's extra cues travel beside them:

- ``face``: the dense face mesh (MediaPipe's 478 points: 468 + 10 iris points) in image
  pixels, with a relative depth (and ``hand_depth``, the hands' points' relative depth). Its
  correspondence with a body's surface is data computed per
  body (cached with the body's checksum), not a constant of this module.
- ``world``: metric 3D body landmarks (MediaPipe's 33 "pose world landmarks", metres, origin
  between the hips), a depth cue against the bent-knee / forward-lean ambiguity of one view.
- ``segmentation``: the detector's soft person mask.

Coordinates follow :mod:`oneshot_avatar.cameras` (continuous pixels: the centre of the top-left
pixel is (0.5, 0.5)). :meth:`Landmarks.mapped` carries every image-space field into another
image (e.g. the working crop) the way ``Keypoints.mapped`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from oneshot_avatar.fit.keypoints import Keypoints

# MediaPipe Pose's 33 landmark names, in its order (the "world" rows follow it).
MEDIAPIPE_POSE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
FACE_MESH_POINTS = 478


@dataclass
class Landmarks:
    """Landmarks of one person in one image (``image_size`` = (W, H) in pixels).

    ``keypoints`` carries every point the shared vocabulary names (photo pixels, confidences);
    the optional cues are None when the detector did not give them (face turned away, no
    world landmarks, no segmentation). ``notes`` are human-readable remarks for the report
    (several people, a part out of frame, ...); ``source`` names the detector.
    """

    keypoints: Keypoints
    image_size: tuple[int, int]
    source: str
    face: np.ndarray | None = None  # float32 [478, 3]: x, y pixels; z relative depth (pixels)
    face_conf: float = 0.0  # face presence in [0, 1]
    world: np.ndarray | None = None  # float32 [33, 3] metres, MediaPipe axes (x left->right
    #                                   of the image, y down, z away from the camera), hip-centred
    world_conf: np.ndarray | None = None  # float32 [33] visibility in [0, 1]
    segmentation: np.ndarray | None = None  # float32 [H, W] in [0, 1], 1 = person
    notes: list[str] = field(default_factory=list)
    people: int = 1  # people the detector found in the image (this is the one it chose)
    person_box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 pixels
    # float32 [2, 21]: relative depth of the left / right hand's 21 points (pixels, scaled like
    # x, the wrist at 0, larger = farther), in the keypoints' hand order; NaN where not found.
    hand_depth: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.face is not None:
            self.face = np.asarray(self.face, dtype=np.float32).reshape(FACE_MESH_POINTS, 3)
        if self.world is not None:
            self.world = np.asarray(self.world, dtype=np.float32).reshape(
                len(MEDIAPIPE_POSE_NAMES), 3)
            if self.world_conf is None:
                self.world_conf = np.ones(len(MEDIAPIPE_POSE_NAMES), dtype=np.float32)
        if self.world_conf is not None:
            self.world_conf = np.asarray(self.world_conf, dtype=np.float32).reshape(-1)
        if self.hand_depth is not None:
            self.hand_depth = np.asarray(self.hand_depth, dtype=np.float32).reshape(2, 21)
        if self.segmentation is not None:
            self.segmentation = np.asarray(self.segmentation, dtype=np.float32)
            height, width = self.segmentation.shape
            if (width, height) != tuple(self.image_size):
                raise ValueError(f"segmentation is {width}x{height}, the image "
                                 f"{self.image_size[0]}x{self.image_size[1]}")

    def mapped(self, fn: Callable[[np.ndarray], np.ndarray], image_size: tuple[int, int],
               segmentation: np.ndarray | None = None) -> Landmarks:
        """The same landmarks in another image: ``fn`` maps pixel ``xy [N, 2]`` (e.g.
        ``CropBox.to_crop``); the face's relative depth is scaled like its x/y spread. The
        segmentation cannot be mapped by a point function: pass it resampled (or None)."""
        keypoints = self.keypoints.mapped(fn, image_size=image_size)
        face = None
        if self.face is not None:
            xy = np.asarray(fn(self.face[:, :2].astype(np.float64)), dtype=np.float32)
            before = float(np.ptp(self.face[:, 0])) or 1.0
            scale = float(np.ptp(xy[:, 0])) / before
            face = np.concatenate([xy, self.face[:, 2:] * scale], axis=1)
        hand_depth = None
        if self.hand_depth is not None:
            probe = np.array([[0.0, 0.0], [1.0, 0.0]])
            moved = np.asarray(fn(probe), dtype=np.float64)
            hand_depth = self.hand_depth * float(np.linalg.norm(moved[1] - moved[0]))
        box = None
        if self.person_box is not None:
            x0, y0, x1, y1 = self.person_box
            corners = np.asarray(fn(np.array([[x0, y0], [x1, y1]], dtype=np.float64)))
            box = tuple(float(v) for v in corners.reshape(-1))
        return replace(self, keypoints=keypoints, image_size=tuple(image_size), face=face,
                       segmentation=segmentation, notes=list(self.notes), person_box=box,
                       hand_depth=hand_depth)

    def report(self) -> dict:
        """What the report says about the detection: source, notes, people, counts."""
        conf = self.keypoints.conf
        groups = {"body": 0, "hands": 0, "face": 0}
        for name, c in zip(self.keypoints.names, conf):
            if c > 0:
                key = "hands" if "_hand_" in name else "face" if name.startswith("face_") \
                    else "body"
                groups[key] += 1
        return {"source": self.source, "notes": list(self.notes), "people": self.people,
                "person_box": None if self.person_box is None else list(self.person_box),
                "points_found": groups, "face_mesh": self.face is not None,
                "world_landmarks": self.world is not None,
                "segmentation": self.segmentation is not None}
