"""Depth cues and standing priors for a single-view fit: what 2D points leave free.

2D keypoints fix a body only up to depth: legs raked towards or away from the camera, a torso
bent forward or back, project almost the same in a frontal photo. Three cues settle it:

* **World landmarks** (MediaPipe's 33 pose world landmarks: metres, hip-centred, camera-aligned
  axes x right, y down, z away): the fitted body's bone *directions* in the camera frame
  against the detector's, robust (Geman-McClure on unit vectors), weighted by the landmarks'
  visibility. The detector's own overall pitch is unreliable (it reads a person photographed
  from a little above as leaning), so the landmarks may rotate as a whole about the camera's
  x axis (``world_pitch``, fitted): they decide the body's posture, not its overall tilt.
* **Upright standing**: when the 2D points show a standing person (both legs seen, straight and
  near vertical in the image), the torso and the mean leg direction are held near vertical in
  the side plane of the (level) fit camera.
* **Ground contact**: a standing person with both feet in the photo has both soles on one
  floor: heels and toes at one height (up to their heights above the sole at rest).

Everything works on the body's joints ``[B, 55, 3]`` and a few landmark vertices, world frame
(Y-up); the fit camera's rotation is ``diag(1, -1, -1)``, so a world direction ``(x, y, z)`` is
``(x, -y, -z)`` in the camera frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from oneshot_avatar.fit.landmarks import MEDIAPIPE_POSE_NAMES, Landmarks
from oneshot_avatar.fit.losses import gmof

_MP = {name: i for i, name in enumerate(MEDIAPIPE_POSE_NAMES)}
_J = JOINT_INDEX

# A body point: ("joint", index) or ("vertex", keypoint target name); the mean of a tuple.
_Point = tuple[tuple[str, object], ...]


def _joint(*names: str) -> _Point:
    return tuple(("joint", _J[n]) for n in names)


def _vertex(*names: str) -> _Point:
    return tuple(("vertex", n) for n in names)


# (name, MediaPipe from-points, to-points, body from-point, to-point, weight)
WORLD_BONES: tuple[tuple[str, tuple[str, ...], tuple[str, ...], _Point, _Point, float], ...] = (
    ("torso", ("left_hip", "right_hip"), ("left_shoulder", "right_shoulder"),
     _joint("left_hip", "right_hip"), _joint("left_shoulder", "right_shoulder"), 2.0),
    ("hips", ("right_hip",), ("left_hip",), _joint("right_hip"), _joint("left_hip"), 1.0),
    ("shoulders", ("right_shoulder",), ("left_shoulder",), _joint("right_shoulder"),
     _joint("left_shoulder"), 1.0),
    ("head", ("left_shoulder", "right_shoulder"), ("left_ear", "right_ear"),
     _joint("left_shoulder", "right_shoulder"), _vertex("left_ear", "right_ear"), 0.5),
    *((f"{s}_upper_arm", (f"{s}_shoulder",), (f"{s}_elbow",), _joint(f"{s}_shoulder"),
       _joint(f"{s}_elbow"), 1.0) for s in ("left", "right")),
    *((f"{s}_forearm", (f"{s}_elbow",), (f"{s}_wrist",), _joint(f"{s}_elbow"),
       _joint(f"{s}_wrist"), 1.0) for s in ("left", "right")),
    *((f"{s}_thigh", (f"{s}_hip",), (f"{s}_knee",), _joint(f"{s}_hip"), _joint(f"{s}_knee"), 2.0)
      for s in ("left", "right")),
    *((f"{s}_shin", (f"{s}_knee",), (f"{s}_ankle",), _joint(f"{s}_knee"), _joint(f"{s}_ankle"),
       2.0) for s in ("left", "right")),
    *((f"{s}_hand_across", (f"{s}_pinky",), (f"{s}_index",), _joint(f"{s}_pinky1"),
       _joint(f"{s}_index1"), 1.0) for s in ("left", "right")),
    *((f"{s}_foot", (f"{s}_heel",), (f"{s}_foot_index",), _vertex(f"{s}_heel"),
       _vertex(f"{s}_big_toe"), 0.5) for s in ("left", "right")),
)  # fmt: skip
FOOT_VERTICES = ("left_heel", "left_big_toe", "right_heel", "right_big_toe")
VERTEX_NAMES = ("left_ear", "right_ear", *FOOT_VERTICES)


@dataclass
class DepthCueConfig:
    """Weights of :class:`DepthCues` (residuals: unit-vector differences, metres)."""

    world_weight: float = 60.0  # per bone, x bone weight x visibility, on |d_fit - d_mp|^2
    world_sigma: float = 0.7  # Geman-McClure scale of a unit-vector difference (~40 deg)
    world_min_visibility: float = 0.5  # both ends of a bone at least this visible
    world_pitch_prior: float = 2.0  # on the landmarks' overall pitch (radians^2)
    upright_weight: float = 300.0  # on the squared side-plane angle between torso and legs
    level_fraction: float = 0.1  # x upright_weight on the whole body's side-plane tilt
    ground_weight: float = 3000.0  # on squared metres of sole-height disagreement
    standing_max_leg_degrees: float = 30.0  # 2D: legs within this of the image vertical
    standing_min_straightness: float = 0.92  # 2D: |hip-ankle| / (|hip-knee| + |knee-ankle|)
    min_point_confidence: float = 0.5  # 2D points that decide "standing" and "feet seen"


def side_angle(direction: Tensor) -> Tensor:  # [B, 3] world -> [B] radians
    """Tilt from the world vertical in the level fit camera's side plane (world y-z), positive
    with the upper end towards the camera (+z)."""
    return torch.atan2(direction[:, 2], direction[:, 1].clamp_min(1e-6))


def _bone_matrix(bones, vertex_column: dict[str, int], width: int, like: Tensor) -> Tensor:
    """Rows that turn posed points ``[55 + M, 3]`` into the bones' vectors (to minus from)."""
    matrix = torch.zeros(len(bones), width, dtype=like.dtype, device=like.device)
    for row, (_, a, b, _) in enumerate(bones):
        for items, sign in ((a, -1.0), (b, 1.0)):
            for kind, index in items:
                column = index if kind == "joint" else 55 + vertex_column[index]
                matrix[row, column] += sign / len(items)
    return matrix


def to_camera(direction: Tensor) -> Tensor:  # [..., 3] world -> fit-camera axes
    return direction * direction.new_tensor([1.0, -1.0, -1.0])


@dataclass
class DepthCues:
    """The active cues for one photo (see the module docstring), with ``notes`` saying which
    were dropped and why."""

    config: DepthCueConfig
    vertex_column: dict[str, int]  # landmark-vertex name -> column among the extra vertices
    bones: list[tuple[str, _Point, _Point, float]] = field(default_factory=list)
    world_dirs: Tensor | None = None  # [nb, 3] unit, camera axes
    world_weights: Tensor | None = None  # [nb]
    standing: bool = False
    ground: bool = False
    sole_offsets: Tensor | None = None  # [4] rest heights of FOOT_VERTICES above the soles
    notes: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    _bone_matrix: Tensor | None = None  # [nb, 55 + M]: bone vectors from the posed points

    @property
    def uses_pitch(self) -> bool:
        return self.world_dirs is not None

    def loss(self, points: Tensor, world_pitch: Tensor | None) -> Tensor:
        """``[B]`` total of the active cues for ``points [B, 55 + M, 3]``."""
        c = self.config
        total = points.new_zeros(points.shape[0])
        if self.world_dirs is not None:
            if self._bone_matrix is None or self._bone_matrix.shape[1] != points.shape[1]:
                self._bone_matrix = _bone_matrix(self.bones, self.vertex_column,
                                                 points.shape[1], points)
            fitted = self._bone_matrix @ points  # [B, nb, 3]
            fitted = to_camera(fitted)
            fitted = fitted / fitted.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            pitch = (world_pitch if world_pitch is not None
                     else points.new_zeros(points.shape[0]))
            cos, sin = pitch.cos()[:, None], pitch.sin()[:, None]
            d = self.world_dirs[None]
            rotated = torch.stack([d[..., 0].expand_as(cos * d[..., 1]),
                                   cos * d[..., 1] - sin * d[..., 2],
                                   sin * d[..., 1] + cos * d[..., 2]], dim=-1)
            residual = gmof(fitted - rotated, c.world_sigma)
            total = total + c.world_weight * (self.world_weights * residual).sum(-1)
            total = total + c.world_pitch_prior * pitch.pow(2)
        if self.standing:
            j = _J
            hips = 0.5 * (points[:, j["left_hip"]] + points[:, j["right_hip"]])
            shoulders = 0.5 * (points[:, j["left_shoulder"]] + points[:, j["right_shoulder"]])
            ankles = 0.5 * (points[:, j["left_ankle"]] + points[:, j["right_ankle"]])
            torso = side_angle(shoulders - hips)
            legs = side_angle(hips - ankles)
            # Straight: torso in line with the legs. Level: the whole body near the camera's
            # vertical (the rest of its tilt becomes the camera's pitch, see fold_tilt).
            total = total + c.upright_weight * ((torso - legs).pow(2)
                                                + c.level_fraction * (0.5 * (torso + legs)).pow(2))
        if self.ground:
            heights = torch.stack([points[:, 55 + self.vertex_column[n], 1]
                                   for n in FOOT_VERTICES], dim=1) - self.sole_offsets
            total = total + c.ground_weight * (heights - heights.mean(dim=1, keepdim=True)
                                               ).pow(2).sum(-1)
        return total


def _conf(keypoints, name: str) -> float:
    found = keypoints.get(name)
    return 0.0 if found is None or not np.isfinite(found[0]).all() else found[1]


def is_standing(keypoints, config: DepthCueConfig) -> tuple[bool, str]:
    """Whether 2D keypoints show a person standing: both legs seen, straight and near the
    image's vertical, ankles below hips. Returns the answer and why."""
    threshold = config.min_point_confidence
    for side in ("left", "right"):
        names = [f"{side}_{p}" for p in ("hip", "knee", "ankle")]
        if min(_conf(keypoints, n) for n in names) < threshold:
            return False, f"the {side} leg is not seen"
        hip, knee, ankle = (np.asarray(keypoints.get(n)[0], dtype=np.float64) for n in names)
        along = np.linalg.norm(ankle - hip)
        path = np.linalg.norm(knee - hip) + np.linalg.norm(ankle - knee)
        if path <= 0 or along / path < config.standing_min_straightness:
            return False, f"the {side} knee is bent in the image"
        d = ankle - hip
        if d[1] <= 0 or math.degrees(math.atan2(abs(d[0]), d[1])) > config.standing_max_leg_degrees:
            return False, f"the {side} leg is not upright in the image"
    return True, "both legs straight and upright in the image"


def turn_from_axis(ray: np.ndarray) -> np.ndarray:
    """The rotation (3x3) taking the optical axis ``(0, 0, 1)`` onto ``ray`` by the shortest
    turn: directions the detector's world landmarks give for a person it saw along ``ray``
    (camera axes), times its transpose on the right, are in the camera's axes."""
    ray = ray / np.linalg.norm(ray)
    axis = np.cross([0.0, 0.0, 1.0], ray)
    sine, cosine = float(np.linalg.norm(axis)), float(ray[2])
    if sine < 1e-12:
        return np.eye(3)
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(axis / sine * math.atan2(sine, cosine)).as_matrix()


def ray_points(names, groups, weight) -> np.ndarray:
    """Rows of the points the detector's person crop is centred on, as :func:`person_ray`
    wants them: both hips when both are seen (weight > 0), else every seen body point.
    ``names`` and ``groups`` ("body", "hand", "face") per row, ``weight`` [rows]."""
    names, weight = list(names), np.asarray(weight)
    hips = [names.index(n) for n in ("left_hip", "right_hip") if n in names]
    if len(hips) == 2 and (weight[hips] > 0).all():
        return np.array(hips)
    return np.flatnonzero((np.asarray(groups)[: len(weight)] == "body") & (weight > 0))


def person_ray(points: np.ndarray, principal_point: tuple[float, float],
               focal: float) -> np.ndarray:
    """The camera ray (camera axes, not normalised) to the middle of the box around image
    ``points [N, 2]`` (pixels): along it the detector saw the person its world landmarks
    describe (see :func:`turn_from_axis`)."""
    points = np.asarray(points)
    middle = 0.5 * (points.min(axis=0) + points.max(axis=0))
    return np.array([(float(middle[0]) - principal_point[0]) / focal,
                     (float(middle[1]) - principal_point[1]) / focal, 1.0])


def build_depth_cues(landmarks: Landmarks | None, keypoints, body, vertex_ids: dict[str, int],
                     vertex_column: dict[str, int], config: DepthCueConfig,
                     device, dtype, view_ray: np.ndarray | None = None) -> DepthCues:
    """The cues the detections support. ``vertex_ids`` are the landmark vertices of
    :data:`VERTEX_NAMES` on ``body``; ``vertex_column`` their columns after the 55 joints.
    ``view_ray``: the fit camera's ray to the person (camera axes). The detector's world
    landmarks are seen along it, as if the person stood on its optical axis: off the photo's
    centre they are turned onto the camera's axes by the angle between the two."""
    cues = DepthCues(config=config, vertex_column=vertex_column)
    # World landmarks.
    world = None if landmarks is None else landmarks.world
    if world is None:
        cues.notes.append("no pose world landmarks: the depth cue on bone directions is off")
    else:
        visibility = (landmarks.world_conf if landmarks.world_conf is not None
                      else np.ones(len(world)))
        dirs, weights, bones = [], [], []
        for name, mp_a, mp_b, a, b, weight in WORLD_BONES:
            if any(kind == "vertex" and index not in vertex_column for kind, index in a + b):
                continue
            ia, ib = [_MP[n] for n in mp_a], [_MP[n] for n in mp_b]
            seen = float(min(visibility[i] for i in ia + ib))
            if seen < config.world_min_visibility:
                continue
            d = world[ib].mean(axis=0) - world[ia].mean(axis=0)
            norm = float(np.linalg.norm(d))
            if not np.isfinite(norm) or norm < 1e-4:
                continue
            dirs.append(d / norm), weights.append(weight * seen), bones.append((name, a, b, weight))
        if bones:
            cues.bones = bones
            dirs = np.asarray(dirs)
            if view_ray is not None:
                dirs = dirs @ turn_from_axis(np.asarray(view_ray, dtype=np.float64)).T
            cues.world_dirs = torch.as_tensor(dirs, dtype=dtype, device=device)
            cues.world_weights = torch.as_tensor(weights, dtype=dtype, device=device)
        else:
            cues.notes.append("pose world landmarks not visible enough: depth cue off")
        cues.summary["world_bones"] = [b[0] for b in bones]
    # Standing and ground contact (from the 2D points).
    if keypoints is not None:
        cues.standing, why = is_standing(keypoints, config)
        cues.summary["standing"] = cues.standing
        cues.summary["standing_reason"] = why
        feet = [n for n in ("left_ankle", "right_ankle", *FOOT_VERTICES)
                if _conf(keypoints, n) < config.min_point_confidence]
        if feet:
            cues.notes.append("feet not (fully) in the photo (" + ", ".join(feet)
                              + "): ground contact off")
        elif not cues.standing:
            cues.notes.append(f"not standing ({why}): upright and ground-contact priors off")
        cues.ground = cues.standing and not feet and all(n in vertex_column for n in FOOT_VERTICES)
        if cues.ground:
            with torch.no_grad():
                rest = body.v_template[[vertex_ids[n] for n in FOOT_VERTICES]]
                sole = body.v_template[:, 1].min()
                cues.sole_offsets = (rest[:, 1] - sole).to(device=device, dtype=dtype)
    cues.summary["ground_contact"] = cues.ground
    return cues
