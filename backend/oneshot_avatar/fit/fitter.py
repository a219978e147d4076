"""Fit SMPL-X parameters and the camera to one photo: 2D keypoints, an optional person mask and
an optional initial pose.

The camera is the working image's (``size`` x ``size`` pixels, principal point at the centre
unless given: at the photo's centre for a crop around a person off it):
its world->camera rotation is fixed to ``diag(1, -1, -1)`` (looking along world -Z at the
body's front, image-up = world +Y); its translation and, optionally, its focal length are
fitted. The body's ``transl`` stays zero; ``global_orient`` turns the body.

Stages:

1. ``orient``: the camera distance from the torso's size in the image (focal from
   ``fov_degrees``), then global orientation and camera translation on the torso and head
   points, from several start headings (facing the camera, turned, from the back), keeping
   the best.
2. ``body`` (one step per entry of ``pose_prior_weights``, the prior relaxing step by step):
   body pose, shape, orientation and camera; hands, jaw and expression join when there are
   hand or face points. L-BFGS on a Geman-McClure reprojection loss weighted by confidence,
   with a quadratic pose prior (per-joint weights), penalties on impossible and off-hinge
   bends of knees, elbows and fingers, and L2 on shape, expression and the pelvis
   orientation's departure from stage 1.
3. ``silhouette`` (with a mask): L-BFGS on the same loss plus ``1 - soft IoU`` of the rendered
   body silhouette (:func:`render_silhouette`, low resolution) and the mask.

Keypoint stages pose only the joints and the landmark vertices (:class:`SparseBody`), so they
cost milliseconds per step; only the silhouette stage poses the whole mesh.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor

from oneshot_avatar.cameras import Camera, focal_from_fov, from_fit
from oneshot_avatar.errors import UserError
from oneshot_avatar.fit.depth_cues import (
    VERTEX_NAMES,
    DepthCueConfig,
    DepthCues,
    build_depth_cues,
    person_ray,
    ray_points,
)
from oneshot_avatar.fit.face_correspondence import face_correspondence
from oneshot_avatar.fit.keypoints import Keypoints, hand_names
from oneshot_avatar.fit.landmarks import Landmarks
from oneshot_avatar.fit.lean import fit_lean
from oneshot_avatar.fit.losses import (
    bend_penalty,
    body_joint_prior_weights,
    finger_penalty,
    gmof,
    hinge_penalty,
    mask_iou,
    soft_iou_loss,
)
from oneshot_avatar.fit.silhouette import (
    default_gaussian_count,
    render_silhouette,
    silhouette_gaussians,
)
from oneshot_avatar.fit.sparse_body import SparseBody
from oneshot_avatar.fit.targets import (
    KeypointTarget,
    anchored_points,
    keypoint_targets,
    landmark_vertices,
)

logger = logging.getLogger(__name__)

ProgressFn = Callable[[str], None]
CAMERA_ROTATION = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))  # world -> camera
REFERENCE_SIZE = 256  # residuals are measured in pixels of a 256 px image, whatever the size
NO_INPUT_MESSAGE = (
    "nothing to fit the body to: give 2D keypoints of the photo (--keypoints FILE, an "
    "OpenPose or COCO-WholeBody JSON), a keypoint detector model (--keypoint-model FILE.onnx, "
    "an RTMPose/RTMW/DWPose-style whole-body ONNX export), or an initial pose "
    "(--init FILE, SMPL-X parameters as .npz or .json, e.g. from the Blender add-on)"
)
TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "neck", "mid_hip")
HEAD = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")


@dataclass
class FitConfig:
    """Settings of :func:`fit_body`. Pixel quantities are in pixels of a 256 px working image
    (scaled to the actual size); angles in radians unless named otherwise."""

    fov_degrees: float = 50.0  # field of view of the working image when the focal is not known
    fit_focal: bool = False  # also fit the focal length (weakly held at fov_degrees)
    min_confidence: float = 0.2  # keypoints below this confidence are ignored
    orient_headings: tuple[float, ...] = (0.0, 45.0, -45.0, 90.0, -90.0, 135.0, -135.0, 180.0)
    orient_iterations: int = 25  # L-BFGS iterations of the orientation stage
    body_iterations: int = 100  # L-BFGS iterations per body step
    # The first body step (strongest prior, no hands or face) only starts the next ones: fewer
    # iterations there (at most body_iterations; None = body_iterations). Measured on the
    # synthetic fist subjects: 40 instead of 100 keeps joint, finger and jaw errors and saves
    # ~2 s of CPU per fit.
    first_body_iterations: int | None = 40
    pose_prior_weights: tuple[float, ...] = (30.0, 8.0, 3.0)  # one body step per entry
    bend_weight: float = 50.0  # penalty on impossible knee/elbow/finger bends
    hinge_weight: float = 100.0  # penalty on knee/elbow rotation off their hinge axis
    hand_prior_weight: float = 0.5  # quadratic prior on finger joints (x the pose weight)
    # pelvis orientation vs the orientation stage's (x pose). Strong: weaker, the pelvis drifts
    # (measured: 10 deg heading, 15 deg pitch on a synthetic frontal photo) while the hips turn
    # back to match the 2D hip points, which poses other than the photo's then show.
    orient_prior_weight: float = 20.0
    jaw_prior_weight: float = 5.0
    beta_prior_weight: float = 5.0
    expression_prior_weight: float = 1.0
    focal_prior_weight: float = 20.0  # on log(focal / default focal) when fit_focal
    robust_sigma: float = 30.0  # Geman-McClure sigma, pixels at 256 px
    body_weight: float = 1.0  # data weight of body and foot points
    hand_weight: float = 1.0  # data weight of hand points
    face_weight: float = 1.0  # data weight of face points
    silhouette_iterations: int = 10  # L-BFGS iterations of the silhouette stage (0 = skip)
    # Rendered silhouette side, pixels. Low resolutions fatten the outline by about a pixel
    # (the rasterizer's anti-aliasing), which biases the shape: keep it near the working size.
    silhouette_resolution: int = 192
    silhouette_gaussians: int = 4608  # Gaussians of the silhouette body (size^2 / 8: no holes)
    silhouette_weight: float = 300.0  # weight of 1 - soft IoU
    # Landmark cues (with ``landmarks``; see depth_cues.DepthCueConfig for their meaning).
    world_weight: float = 60.0
    world_sigma: float = 0.7
    world_min_visibility: float = 0.5
    world_pitch_prior: float = 2.0
    upright_weight: float = 300.0
    level_fraction: float = 0.1
    fold_tilt: bool = True  # a standing body's remaining side tilt becomes the camera's pitch
    ground_weight: float = 3000.0
    standing_max_leg_degrees: float = 30.0
    standing_min_straightness: float = 0.92
    min_point_confidence: float = 0.5
    hand_depth_weight: float = 10.0  # x hand point weight, on hand bone directions (3D)
    finger_bend_weight: float = 50.0  # x hand point weight, on each finger joint's bend (cos)
    face_mesh_weight: float = 0.1  # data weight of each face-mesh point used
    face_mesh_stride: int = 2  # use every n-th of the 478 face-mesh points (speed)
    face_mesh_min_conf: float = 0.5  # face presence below this: the face terms are dropped
    seed: int = 0

    @classmethod
    def fast(cls) -> FitConfig:
        return cls()

    @classmethod
    def quality(cls) -> FitConfig:
        return cls(orient_iterations=40, body_iterations=200, first_body_iterations=None,
                   pose_prior_weights=(30.0, 12.0, 6.0, 3.0), silhouette_iterations=25,
                   silhouette_resolution=256, silhouette_gaussians=8192)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    """The fitted body and camera; ``params`` have batch 1 (see ``BodyModel``)."""

    params: dict[str, Tensor]
    camera: Camera
    report: dict = field(default_factory=dict)

    def to(self, device: torch.device | str) -> FitResult:
        """A copy on ``device`` (detached parameters; the report is shared)."""
        return FitResult(params={k: v.detach().to(device) for k, v in self.params.items()},
                         camera=self.camera.to(device), report=self.report)


# ---------------------------------------------------------------------------------------------
# Observations


@dataclass(frozen=True)
class SurfacePoint:
    """A point on the body's surface observed in 2D: a blend of one triangle's vertices."""

    vertices: tuple[int, int, int]
    blend: tuple[float, float, float]
    weight: float = 1.0


@dataclass
class _Observations:
    names: list[str]
    xy: Tensor  # [K, 2] working-image pixels
    weight: Tensor  # [K] confidence x correspondence trust x group weight
    selector: Tensor  # [K, 55 + M + P] rows blending joints, landmark vertices, surface points
    vertex_ids: list[int]  # the M landmark vertices
    groups: list[str]  # "body" | "hand" | "face" per point
    surface_ids: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))
    surface_blend: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # [P, 3]
    # the A anchored points after them
    anchors: list[KeypointTarget] = field(default_factory=list)

    def subset(self, keep: list[bool]) -> _Observations:
        index = torch.tensor([i for i, k in enumerate(keep) if k], dtype=torch.long,
                             device=self.xy.device)
        return _Observations([self.names[i] for i in index.tolist()], self.xy[index],
                             self.weight[index], self.selector[index], self.vertex_ids,
                             [self.groups[i] for i in index.tolist()], self.surface_ids,
                             self.surface_blend, self.anchors)

    def compact(self) -> _Observations:
        """The same rows posing only the vertices, surface and anchored points they use."""
        used = (self.selector != 0).any(dim=0).cpu().numpy()
        used[:55] = True
        m, p = len(self.vertex_ids), len(self.surface_ids)
        keep_v = [i for i in range(m) if used[55 + i]]
        keep_s = [i for i in range(p) if used[55 + m + i]]
        keep_a = [i for i in range(len(self.anchors)) if used[55 + m + p + i]]
        columns = (list(range(55)) + [55 + i for i in keep_v] + [55 + m + i for i in keep_s]
                   + [55 + m + p + i for i in keep_a])
        return _Observations(self.names, self.xy, self.weight, self.selector[:, columns],
                             [self.vertex_ids[i] for i in keep_v], self.groups,
                             self.surface_ids[keep_s], self.surface_blend[keep_s],
                             [self.anchors[i] for i in keep_a])

    def sparse_body(self, body) -> SparseBody:
        """The body posed at the joints and at what these rows look at."""
        return SparseBody(body, self.vertex_ids, (self.surface_ids, self.surface_blend),
                          anchored_points(self.anchors))


def _group(name: str) -> str:
    if "_hand_" in name:
        return "hand"
    if name.startswith("face_"):
        return "face"
    return "body"


def _observations(keypoints: Keypoints | None, targets: dict[str, KeypointTarget],
                  config: FitConfig, device, dtype, extra: list[tuple] = (),
                  extra_vertices: tuple[int, ...] = ()) -> _Observations:
    """Observation rows of the usable ``keypoints`` and of ``extra`` rows ``(name, xy [2],
    confidence, KeypointTarget, group)``; ``extra_vertices`` are posed alongside (after the
    observed ones' vertices) for other terms."""
    rows = []
    if keypoints is not None:
        for i, name in enumerate(keypoints.names):
            if (name in targets and keypoints.conf[i] >= config.min_confidence
                    and np.isfinite(keypoints.xy[i]).all()):
                rows.append((name, keypoints.xy[i], float(keypoints.conf[i]), targets[name],
                             _group(name)))
    rows.extend(extra)
    plain = [row for row in rows if not isinstance(row[3], SurfacePoint)]
    surface = [row[3] for row in rows if isinstance(row[3], SurfacePoint)]
    anchors = [row[3] for row in plain if row[3].anchored]
    vertex_ids = sorted({v for row in plain for v in row[3].vertices} | set(extra_vertices))
    column = {v: 55 + k for k, v in enumerate(vertex_ids)}
    selector = torch.zeros(len(rows), 55 + len(vertex_ids) + len(surface) + len(anchors),
                           dtype=dtype)
    weights, names, groups = [], [], []
    group_weight = {"body": config.body_weight, "hand": config.hand_weight,
                    "face": config.face_weight}
    surface_column = 55 + len(vertex_ids)
    anchor_column = surface_column + len(surface)
    for row, (name, _, conf, target, group) in enumerate(rows):
        if isinstance(target, SurfacePoint):
            selector[row, surface_column] = 1.0
            surface_column += 1
        elif target.anchored:
            selector[row, anchor_column] = 1.0
            anchor_column += 1
        else:
            columns = list(target.joints) + [column[v] for v in target.vertices]
            for col, coefficient in zip(columns, target.coefficients()):
                selector[row, col] += coefficient
        weights.append(conf * target.weight * group_weight[group])
        names.append(name)
        groups.append(group)
    xy = torch.as_tensor(np.asarray([row[1] for row in rows], dtype=np.float64),
                         dtype=dtype).reshape(-1, 2)
    surface_ids = np.asarray([p.vertices for p in surface], dtype=np.int64).reshape(-1, 3)
    surface_blend = np.asarray([p.blend for p in surface], dtype=np.float64).reshape(-1, 3)
    return _Observations(names, xy.to(device), torch.tensor(weights, dtype=dtype, device=device),
                         selector.to(device), vertex_ids, groups, surface_ids, surface_blend,
                         anchors)


def _face_mesh_rows(body, landmarks: Landmarks, config: FitConfig, notes: list[str],
                    summary: dict) -> list[tuple]:
    """Observation rows of the 478 face-mesh points on the body's surface (empty, with a note,
    when the face is missing or hardly visible)."""
    if landmarks.face is None:
        notes.append("no face found (turned away or hidden): the face terms (head orientation "
                     "from the face mesh, jaw, eyelids, expression) are dropped")
        return []
    if landmarks.face_conf < config.face_mesh_min_conf:
        notes.append(f"the face is only {landmarks.face_conf:.0%} visible: the face terms are "
                     "dropped")
        return []
    correspondence = face_correspondence(body)
    ids, blend = correspondence.vertex_blend(body.faces.detach().cpu().numpy())
    rows = []
    for k in np.flatnonzero(correspondence.valid)[::max(config.face_mesh_stride, 1)]:
        xy = landmarks.face[k, :2]
        if not np.isfinite(xy).all():
            continue
        target = SurfacePoint(vertices=tuple(int(v) for v in ids[k]),
                              blend=tuple(float(w) for w in blend[k]),
                              weight=config.face_mesh_weight)
        rows.append((f"face_mesh_{k}", xy, float(landmarks.face_conf), target, "face"))
    summary["face_mesh_points"] = len(rows)
    return rows


def _hand_notes(keypoints: Keypoints | None, config: FitConfig, notes: list[str]) -> None:
    for side in ("left", "right"):
        seen = 0 if keypoints is None else sum(
            1 for i, n in enumerate(keypoints.names)
            if n.startswith(f"{side}_hand_") and keypoints.conf[i] >= config.min_confidence)
        if seen < 6:
            notes.append(f"the {side} hand was not found (out of the photo or hidden): its "
                         "fingers keep their prior pose")


# ---------------------------------------------------------------------------------------------
# Parameters


class _Params:
    """The optimised tensors (batch B), with the camera as translation + log focal."""

    def __init__(self, body, batch: int, size: int, focal: float, device, dtype,
                 centre: tuple[float, float] | None = None):
        def zeros(*shape):
            return torch.zeros(batch, *shape, device=device, dtype=dtype)

        self.values: dict[str, Tensor] = {
            "betas": zeros(body.num_betas),
            "expression": zeros(max(len(body.expression_names), 1)),
            "global_orient": zeros(3),
            "body_pose": zeros(21, 3),
            "jaw_pose": zeros(3),
            "leye_pose": zeros(3),
            "reye_pose": zeros(3),
            "left_hand_pose": zeros(15, 3),
            "right_hand_pose": zeros(15, 3),
            "camera_t": zeros(3),
            "world_pitch": torch.zeros(batch, device=device, dtype=dtype),
            "log_focal": torch.full((batch,), math.log(focal), device=device, dtype=dtype),
        }
        if not body.expression_names:
            del self.values["expression"]
        self.size = size
        # The principal point (working-image pixels): where the photo's centre is in the crop.
        self.centre = (size / 2.0, size / 2.0) if centre is None else (float(centre[0]),
                                                                       float(centre[1]))

    def body_params(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.values.items()
                if k not in ("camera_t", "log_focal", "world_pitch")}

    def project(self, points: Tensor) -> Tensor:  # [B, N, 3] world -> [B, N, 2] pixels
        t = self.values["camera_t"][:, None]
        x = points[..., 0] + t[..., 0]
        y = -points[..., 1] + t[..., 1]
        z = (-points[..., 2] + t[..., 2]).clamp_min(1e-3)
        focal = self.values["log_focal"].exp()[:, None]
        cx, cy = self.centre
        return torch.stack([focal * x / z + cx, focal * y / z + cy], dim=-1)

    def select(self, index: int) -> _Params:
        out = object.__new__(_Params)
        out.values = {k: v[index : index + 1].detach().clone() for k, v in self.values.items()}
        out.size = self.size
        out.centre = self.centre
        return out

    def camera(self) -> Camera:
        focal = float(self.values["log_focal"][0].exp())
        t = self.values["camera_t"][0].detach()
        rotation = torch.tensor(CAMERA_ROTATION, dtype=t.dtype, device=t.device)
        return from_fit(focal, self.centre, rotation, t, self.size, self.size)


def _prepare_init(init: dict | None, body, params: _Params) -> Camera | None:
    """Copy the initial parameters into ``params`` (batch 1); returns the initial camera."""
    if not init:
        return None
    camera = None
    for name, value in init.items():
        if name == "camera":
            camera = value if isinstance(value, Camera) else Camera.from_dict(value)
            continue
        if name == "transl":
            continue  # the fit keeps transl at zero and moves the camera instead
        if name not in params.values:
            raise UserError(f"unknown SMPL-X parameter {name!r} in the initial pose", field=name)
        target = params.values[name]
        tensor = torch.as_tensor(value, dtype=target.dtype).to(target.device)
        if name in ("betas", "expression"):
            flat = tensor.reshape(-1)
            n = min(flat.numel(), target.shape[1])
            target[:, :n] = flat[:n]
        else:
            if tensor.numel() != target[0].numel():
                raise UserError(f"expected {target[0].numel()} values, got {tensor.numel()}",
                                field=name)
            target[:] = tensor.reshape(target[0].shape)
    return camera


# ---------------------------------------------------------------------------------------------
# Losses


class _Objective:
    def __init__(self, body, obs: _Observations, config: FitConfig, size: int,
                 prior_mean: dict[str, Tensor], default_focal: float):
        self.sparse = obs.sparse_body(body)
        self.obs = obs
        self.config = config
        self.scale = REFERENCE_SIZE / size
        self.prior_mean = prior_mean
        self.joint_weights = body_joint_prior_weights(obs.xy.device, obs.xy.dtype)
        self.log_default_focal = math.log(default_focal)
        self.cues: DepthCues | None = None
        self.arkit = body.expression_space == "arkit52"

    def posed(self, params: _Params) -> Tensor:  # [B, 55 + M, 3] joints, landmark vertices
        joints, vertices = self.sparse(**params.body_params())
        return torch.cat([joints, vertices], dim=1)

    def points(self, params: _Params, stacked: Tensor | None = None) -> Tensor:  # [B, K, 2]
        """Projected keypoint targets."""
        stacked = self.posed(params) if stacked is None else stacked
        return params.project(self.obs.selector @ stacked)

    def data(self, params: _Params) -> Tensor:  # [B] robust reprojection loss + depth cues
        stacked = self.posed(params)
        world = self.obs.selector @ stacked  # [B, K, 3]
        residual = (params.project(world) - self.obs.xy) * self.scale
        total = (self.obs.weight * gmof(residual, self.config.robust_sigma)).sum(dim=-1)
        if self.cues is not None:
            total = total + self.cues.loss(stacked, params.values["world_pitch"])
        if self.hand_depth is not None:
            total = total + self._hand_depth_loss(params, world)
        if self.finger_bends is not None:
            total = total + self._finger_bend_loss(world)
        return total

    hand_depth: tuple[Tensor, Tensor, Tensor, Tensor] | None = None
    finger_bends: tuple[Tensor, Tensor, Tensor] | None = None

    def set_hand_depth(self, landmarks: Landmarks | None) -> None:
        """Hand bone directions from the detector's hand points with their relative depth
        (MediaPipe: ``x, y`` pixels, ``z`` pixels scaled like ``x``, camera axes): the palm's
        facing and the fingers' curl, which the 2D points alone leave ambiguous."""
        self.hand_depth = None
        self.finger_bends = None
        self.finger_curls: list[tuple[str, int, float]] = []  # (side, hand_pose row, angle)
        if landmarks is None or landmarks.hand_depth is None:
            return
        index = {n: i for i, n in enumerate(self.obs.names)}
        keypoints = landmarks.keypoints
        starts, ends, targets = [], [], []
        bend_rows, bend_cosines = [], []
        for h, side in enumerate(("left", "right")):
            names = hand_names(side)
            points = {}
            for k, name in enumerate(names):
                found = keypoints.get(name)
                z = float(landmarks.hand_depth[h, k])
                if found is not None and name in index and np.isfinite(z):
                    points[name] = np.array([found[0][0], found[0][1], z], dtype=np.float64)
            for a, b in _hand_bones(side):
                if a in points and b in points:
                    d = points[b] - points[a]
                    norm = np.linalg.norm(d)
                    if norm > 1e-3:
                        starts.append(index[a]), ends.append(index[b]), targets.append(d / norm)
            for a, b, c in _finger_joints(side):
                if a in points and b in points and c in points:
                    u, v = points[b] - points[a], points[c] - points[b]
                    norms = np.linalg.norm(u) * np.linalg.norm(v)
                    if norms > 1e-6:
                        bend_rows.append((index[a], index[b], index[c]))
                        bend_cosines.append(float(u @ v) / norms)
                        finger = b.removeprefix(f"{side}_hand_")
                        if not finger.startswith("thumb"):
                            row = _FINGER_ROWS[finger[:-1]] + int(finger[-1]) - 1
                            self.finger_curls.append((side, row, float(
                                np.arccos(np.clip(bend_cosines[-1], -1.0, 1.0)))))
        device, dtype = self.obs.xy.device, self.obs.xy.dtype
        if bend_rows and self.config.finger_bend_weight > 0:
            rows = torch.tensor(bend_rows, device=device)
            self.finger_bends = (rows, torch.tensor(bend_cosines, dtype=dtype, device=device),
                                 self.obs.weight[rows[:, 1]])
        if starts:
            start_t = torch.tensor(starts, device=device)
            self.hand_depth = (start_t, torch.tensor(ends, device=device),
                               torch.as_tensor(np.asarray(targets), dtype=dtype, device=device),
                               self.obs.weight[start_t])

    def _hand_depth_loss(self, params: _Params, world: Tensor) -> Tensor:  # [B]
        starts, ends, target, weight = self.hand_depth
        d = world[:, ends] - world[:, starts]
        d = d * d.new_tensor([1.0, -1.0, -1.0])  # world -> fit camera axes
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return self.config.hand_depth_weight * (weight * gmof(d - target, 0.7)).sum(-1)

    def curl_fingers(self, params: _Params, rest_angle: float = 0.1) -> None:
        """Start each finger joint curled towards the palm by the bend the detected hand
        shows there (less ``rest_angle``, the bend of a relaxed open hand): from straight
        fingers the 2D points cannot tell a curl towards the camera from one away from it,
        and the fit settles in whichever it meets first, often fingers bent back."""
        with torch.no_grad():
            for side, row, angle in self.finger_curls:
                sign = -1.0 if side == "left" else 1.0  # see losses.finger_penalty
                params.values[f"{side}_hand_pose"][:, row] = 0.0
                params.values[f"{side}_hand_pose"][:, row, 2] = sign * max(angle - rest_angle,
                                                                            0.0)

    def _finger_bend_loss(self, world: Tensor) -> Tensor:  # [B]
        """How far each finger joint bends (the cosine between its two bones, which no turn
        of the hand or the arm changes) against the detected hand's 3D points: a fist stays a
        fist whichever way the palm faces, which the 2D points and the bones' directions
        alone cannot settle."""
        rows, cosines, weight = self.finger_bends
        u = world[:, rows[:, 1]] - world[:, rows[:, 0]]
        v = world[:, rows[:, 2]] - world[:, rows[:, 1]]
        cos = (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1)).clamp_min(1e-9)
        return self.config.finger_bend_weight * (weight * (cos - cosines).pow(2)).sum(-1)

    def with_observations(self, obs: _Observations) -> _Objective:
        """The same objective on a subset of the observations (same landmark vertices)."""
        other = _Objective.__new__(_Objective)
        other.__dict__.update(self.__dict__)
        other.obs = obs
        other.cues = None
        other.hand_depth = None
        other.finger_bends = None
        return other

    def restricted(self, obs: _Observations) -> _Objective:
        """The reprojection objective of a subset of the observations, posing only what that
        subset looks at (no depth cues)."""
        compact = obs.compact()
        other = self.with_observations(compact)
        other.sparse = compact.sparse_body(self.sparse.body)
        return other

    def priors(self, params: _Params, pose_weight: float, *, hands: bool, face: bool) -> Tensor:
        c = self.config
        v = params.values
        m = self.prior_mean
        body = ((v["body_pose"] - m["body_pose"]).pow(2).sum(-1) * self.joint_weights).sum(-1)
        total = pose_weight * body + c.bend_weight * bend_penalty(v["body_pose"])
        total = total + c.hinge_weight * hinge_penalty(v["body_pose"])
        total = total + c.beta_prior_weight * (v["betas"] - m["betas"]).pow(2).sum(-1)
        total = total + c.orient_prior_weight * pose_weight * (
            v["global_orient"] - m["global_orient"]).pow(2).sum(-1)
        if hands:
            for side in ("left", "right"):
                pose = v[f"{side}_hand_pose"]
                total = total + c.hand_prior_weight * pose_weight * (
                    pose - m[f"{side}_hand_pose"]).pow(2).sum((-1, -2))
                total = total + c.bend_weight * finger_penalty(pose, side)
        if face:
            total = total + c.jaw_prior_weight * (v["jaw_pose"] - m["jaw_pose"]).pow(2).sum(-1)
            if "expression" in v:
                total = total + c.expression_prior_weight * v["expression"].pow(2).sum(-1)
                if self.arkit:  # ARKit units are activations in [0, 1]
                    e = v["expression"]
                    total = total + 50.0 * (torch.relu(-e).pow(2)
                                            + torch.relu(e - 1.0).pow(2)).sum(-1)
        if c.fit_focal:
            total = total + c.focal_prior_weight * (v["log_focal"] - self.log_default_focal) ** 2
        return total

    def errors_px(self, params: _Params) -> Tensor:  # [K] working-image pixels, batch 0
        with torch.no_grad():
            return (self.points(params)[0] - self.obs.xy).norm(dim=-1)


def _hand_bones(side: str) -> list[tuple[str, str]]:
    """Wrist to each finger's base, across the knuckles, and every finger segment."""
    out = []
    for finger in ("thumb", "index", "middle", "ring", "pinky"):
        chain = [f"{side}_hand_wrist"] + [f"{side}_hand_{finger}{k}" for k in range(1, 5)]
        out.extend(itertools.pairwise(chain))
    out.append((f"{side}_hand_index1", f"{side}_hand_pinky1"))
    return out


_FINGER_ROWS = {"index": 0, "middle": 3, "pinky": 6, "ring": 9}  # first hand_pose row


def _finger_joints(side: str) -> list[tuple[str, str, str]]:
    """Each finger's three bending joints as (point before, joint, point after)."""
    out = []
    for finger in ("thumb", "index", "middle", "ring", "pinky"):
        chain = [f"{side}_hand_wrist"] + [f"{side}_hand_{finger}{k}" for k in range(1, 5)]
        out.extend(zip(chain, chain[1:], chain[2:]))
    return out


def _lbfgs(tensors: list[Tensor], closure_loss: Callable[[], Tensor], iterations: int) -> float:
    for t in tensors:
        t.requires_grad_(True)
    optimizer = torch.optim.LBFGS(tensors, lr=1.0, max_iter=iterations, history_size=20,
                                  max_eval=iterations * 3,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                                  tolerance_change=1e-12)

    def closure():
        optimizer.zero_grad()
        loss = closure_loss()
        loss.backward()
        return loss

    optimizer.step(closure)
    for t in tensors:
        t.requires_grad_(False)
    with torch.no_grad():
        return float(closure_loss())


# ---------------------------------------------------------------------------------------------
# Initialisation


def _torso_direction(keypoints: _Observations) -> tuple[np.ndarray | None, np.ndarray | None]:
    """2D centres of the shoulders and of the hips (working px), when seen."""
    found = {n: keypoints.xy[i].detach().cpu().numpy() for i, n in enumerate(keypoints.names)}
    shoulders = [found[n] for n in ("left_shoulder", "right_shoulder") if n in found]
    hips = [found[n] for n in ("left_hip", "right_hip", "mid_hip") if n in found]
    return (np.mean(shoulders, axis=0) if shoulders else None,
            np.mean(hips, axis=0) if hips else None)


def _initial_orientations(obs: _Observations, headings: tuple[float, ...],
                          base: np.ndarray | None) -> np.ndarray:  # [H, 3] axis-angle
    shoulders, hips = _torso_direction(obs)
    roll = 0.0
    if shoulders is not None and hips is not None:
        up = shoulders - hips  # image coordinates, v down
        world_up = np.array([up[0], -up[1]])  # u -> world x, -v -> world y
        if np.linalg.norm(world_up) > 1e-6:
            roll = math.atan2(-world_up[0], world_up[1])
    out = []
    for heading in headings:
        rotation = Rotation.from_euler("z", roll) * Rotation.from_euler("y", heading,
                                                                        degrees=True)
        if base is not None:
            rotation = rotation * Rotation.from_rotvec(base)
        out.append(rotation.as_rotvec())
    return np.asarray(out)


def _initial_translation(objective: _Objective, params: _Params, obs: _Observations) -> None:
    """Camera translation putting the torso (or all seen points) at the right place and
    distance for the current focal length, for every batch entry."""
    with torch.no_grad():
        joints, vertices = objective.sparse(**params.body_params())
        model = obs.selector @ torch.cat([joints, vertices], dim=1)  # [B, K, 3]
        names = obs.names
        torso = [i for i, n in enumerate(names) if n in TORSO]
        chosen = torso if len(torso) >= 2 else list(range(len(names)))
        model_pts = model[:, chosen]  # [B, n, 3]
        image_pts = obs.xy[chosen]  # [n, 2]
        focal = params.values["log_focal"].exp()
        # Size: spread of the points about their centre, model (x, y) vs image.
        model_centre = model_pts.mean(dim=1)
        image_centre = image_pts.mean(dim=0)
        model_spread = (model_pts[..., :2] - model_centre[:, None, :2]).norm(dim=-1).mean(-1)
        image_spread = (image_pts - image_centre).norm(dim=-1).mean()
        if float(image_spread) < 1.0:
            depth = torch.full_like(focal, 2.5)
        else:
            depth = focal * model_spread / image_spread
        depth = depth.clamp(0.3, 50.0)
        cx, cy = params.centre
        t = params.values["camera_t"]
        t[:, 2] = depth + model_centre[:, 2]
        t[:, 0] = (image_centre[0] - cx) * depth / focal - model_centre[:, 0]
        t[:, 1] = (image_centre[1] - cy) * depth / focal + model_centre[:, 1]


def _frame_body(body, params: _Params, mask: np.ndarray | None) -> None:
    """Without keypoints: put the camera so the posed body fills the mask's box (or 80 % of the
    image height, centred)."""
    with torch.no_grad():
        vertices = body(**params.body_params()).vertices[0]
        lo, hi = vertices.min(dim=0).values, vertices.max(dim=0).values
        size = params.size
        if mask is not None and (mask > 0.5).any():
            rows = np.flatnonzero((mask > 0.5).any(axis=1))
            cols = np.flatnonzero((mask > 0.5).any(axis=0))
            box = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        else:
            box = (0.5 * size - 0.3 * size, 0.1 * size, 0.5 * size + 0.3 * size, 0.9 * size)
        focal = float(params.values["log_focal"][0].exp())
        height_px = max(box[3] - box[1], 1.0)
        depth = focal * float(hi[1] - lo[1]) / height_px
        centre_model = 0.5 * (lo + hi)
        u, v = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        t = params.values["camera_t"][0]
        t[2] = depth + float(hi[2])  # the nearest point at depth
        t[0] = (u - params.centre[0]) * depth / focal - float(centre_model[0])
        t[1] = (v - params.centre[1]) * depth / focal + float(centre_model[1])


# ---------------------------------------------------------------------------------------------
# The fit


def _camera_from_init(camera: Camera, size: int, params: _Params, body,
                      transl: Tensor | None) -> None:
    """Take an initial camera (any rotation, square image) into the fit's form: rotation
    ``diag(1, -1, -1)``, the rest folded into the body's global orientation (about the pelvis)
    and the camera translation, along with the initial ``transl``, so every point of the body
    projects where it did."""
    if camera.width != camera.height:
        raise UserError(f"the initial camera is {camera.width}x{camera.height}; the fit needs "
                        "the camera of the square working image", field="camera")
    camera = camera.resized(size, size)
    if abs(camera.fx - camera.fy) > 1e-3 * camera.fx:
        raise UserError(f"the initial camera must have square pixels (fx={camera.fx:g}, "
                        f"fy={camera.fy:g})", field="camera.K")
    params.centre = (float(camera.cx), float(camera.cy))  # its optical axis is the fit's
    values = params.values
    dtype = values["camera_t"].dtype
    fixed = np.asarray(CAMERA_ROTATION)
    rotation = camera.rotation.detach().cpu().double().numpy()
    orient = Rotation.from_rotvec(values["global_orient"][0].detach().cpu().double().numpy())
    pelvis = body.shape_rest(values["betas"][:1].detach(),
                             values["expression"][:1].detach() if "expression" in values
                             else None)[1][0, 0].detach().cpu().double().numpy()
    shift = np.zeros(3) if transl is None else np.asarray(transl, dtype=np.float64).reshape(3)
    new_orient = Rotation.from_matrix(fixed @ rotation) * orient
    t = (rotation @ (pelvis + shift) + camera.translation.detach().cpu().double().numpy()
         - fixed @ pelvis)
    values["global_orient"][:] = torch.as_tensor(new_orient.as_rotvec(), dtype=dtype)
    values["camera_t"][:] = torch.as_tensor(t, dtype=dtype)
    values["log_focal"][:] = math.log(camera.fx)


def fit_body(body, size: int, *, keypoints: Keypoints | None, mask: np.ndarray | None,
             init: dict | None, config: FitConfig, device, progress: ProgressFn | None = None,
             photo_scale: float | None = None, landmarks: Landmarks | None = None,
             principal_point: tuple[float, float] | None = None) -> FitResult:
    """Fit SMPL-X parameters and the camera of the ``size`` x ``size`` working image.

    ``principal_point``: where the camera's optical axis meets the working image (pixels;
    default its centre; an initial camera in ``init`` brings its own). A crop around a person
    who is not in the middle of the photo has it off-centre, at the photo's centre: taken at
    the crop's centre, the body is turned to fake the perspective of the side of the photo it
    stands in.

    ``keypoints`` are in working-image pixels; ``mask`` is float ``[size, size]`` (1 = person)
    or None; ``init`` holds initial SMPL-X parameters (see :func:`load_init`; an optional
    ``"camera"`` must be the working image's). ``photo_scale`` (photo pixels per working pixel)
    adds the keypoint error in photo pixels to the report. ``landmarks`` (in working-image
    pixels) are the detector's full output when it gave the keypoints: its source and notes go
    into the report. Without keypoints and without
    ``init`` a :class:`UserError` lists the three ways to give the pose.

    ``landmarks`` (a detector's :class:`Landmarks` in working-image pixels) add their cues:
    their keypoints (used when ``keypoints`` is None), the 478 face-mesh points on the body's
    surface (head orientation, jaw, eyelids, expression), and the pose world landmarks as a
    depth cue (see :mod:`oneshot_avatar.fit.depth_cues`). Whatever the photo lacks (a face
    turned away, hands or feet out of frame) drops its terms, with a note in the report's
    ``notes``. A person the 2D points show standing is held upright, both soles on one floor.
    """
    start = time.perf_counter()
    say = progress or (lambda message: None)
    device = torch.device(device)
    if body.device.type != device.type:
        raise ValueError(f"the body model is on {body.device} but the fit runs on {device}; "
                         "load the body on the same device")
    dtype = body.dtype
    torch.manual_seed(config.seed)
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float32)
        if mask.shape != (size, size):
            raise UserError(f"the mask is {mask.shape[1]}x{mask.shape[0]}, the working image "
                            f"{size}x{size}", field="mask")
    default_focal = focal_from_fov(config.fov_degrees, size)
    source = (keypoints.source if keypoints is not None
              else landmarks.keypoints.source if landmarks is not None else None)
    targets = keypoint_targets(body, source)
    obs = None
    notes: list[str] = []
    landmark_summary: dict = {}
    extra_rows: list[tuple] = []
    if landmarks is not None:
        if tuple(landmarks.image_size) != (size, size):
            width, height = landmarks.image_size
            raise ValueError(f"the landmarks are for a {width}x{height} image, the fit needs them "
                             f"in the {size}x{size} working image: map them with "
                             "Landmarks.mapped(box.to_crop, image_size=(size, size))")
        notes.extend(landmarks.notes)
        if keypoints is None:
            keypoints = landmarks.keypoints
        extra_rows = _face_mesh_rows(body, landmarks, config, notes, landmark_summary)
        _hand_notes(keypoints, config, notes)
    # The depth cues' ears and soles are the body's own vertices (a detector's heel point may be
    # anchored off the mesh: the floor touches the mesh).
    own = landmark_vertices(body)
    cue_vertices = {n: own[n] for n in VERTEX_NAMES if n in own}
    if keypoints is not None and keypoints.image_size not in (None, (size, size)):
        width, height = keypoints.image_size
        raise ValueError(f"the keypoints are for a {width}x{height} image, the fit needs them in "
                         f"the {size}x{size} working image: map them with "
                         "Keypoints.mapped(box.to_crop, image_size=(size, size))")
    if keypoints is not None:
        obs = _observations(keypoints, targets, config, device, dtype, extra_rows,
                            tuple(cue_vertices.values()))
        body_points = sum(1 for g in obs.groups if g == "body")
        if body_points < 4 and not init:
            seen = ", ".join(obs.names) or "none"
            raise UserError(
                f"only {body_points} usable body keypoints (confidence >= "
                f"{config.min_confidence}; used: {seen}): the person is not visible enough to "
                "fit; give a photo showing the body, other keypoints, or --init FILE",
                field="keypoints")
    if obs is None and not init:
        raise UserError(NO_INPUT_MESSAGE, field="keypoints")

    base = _Params(body, 1, size, default_focal, device, dtype, centre=principal_point)
    init_camera = _prepare_init(init, body, base)
    if init_camera is not None:
        _camera_from_init(init_camera, size, base, body, (init or {}).get("transl"))
    prior_mean = {k: v.detach().clone() for k, v in base.values.items()}
    if not init:
        prior_mean = {k: torch.zeros_like(v) for k, v in prior_mean.items()}
    stages: list[dict] = []
    iterations = 0
    report: dict = {"keypoint_source": keypoints.source if keypoints is not None else None}

    if obs is not None and len(obs.names):
        objective = _Objective(body, obs, config, size, prior_mean, default_focal)
        cue_config = DepthCueConfig(**{f.name: getattr(config, f.name)
                                       for f in dataclasses.fields(DepthCueConfig)})
        columns = {n: obs.vertex_ids.index(v) for n, v in cue_vertices.items()}
        # The detector sees the person along the ray to its crop's centre.
        rows = ray_points(obs.names, obs.groups, obs.weight.detach().cpu().numpy())
        view_ray = (person_ray(obs.xy[rows].detach().cpu().numpy(), base.centre, default_focal)
                    if len(rows) else None)
        objective.cues = build_depth_cues(landmarks, keypoints, body, cue_vertices, columns,
                                          cue_config, device, dtype, view_ray=view_ray)
        notes.extend(objective.cues.notes)
        objective.set_hand_depth(landmarks)
        landmark_summary.update(objective.cues.summary)
        has_hands = "hand" in obs.groups
        has_face = "face" in obs.groups
        if init_camera is None:
            params = _orient(objective, base, obs, config, init is not None, stages, say)
            iterations += config.orient_iterations
        else:
            params = base
        # The pelvis keeps near the orientation the torso points gave (or the initial one):
        # otherwise its pitch, which a front view hardly shows, trades freely against the hips.
        prior_mean["global_orient"] = params.values["global_orient"].detach().clone()
        for step, pose_weight in enumerate(config.pose_prior_weights):
            t0 = time.perf_counter()
            last = step == len(config.pose_prior_weights) - 1
            hands = has_hands and step > 0
            face = has_face and step > 0
            names = ["global_orient", "body_pose", "betas", "camera_t"]
            if hands:
                names += ["left_hand_pose", "right_hand_pose"]
            if face:
                names += ["jaw_pose"] + (["expression"] if "expression" in params.values else [])
            if config.fit_focal and last:
                names.append("log_focal")
            if objective.cues.uses_pitch:
                names.append("world_pitch")
            if hands and step == 1 and not init:
                objective.curl_fingers(params)
            tensors = [params.values[n] for n in names]

            def loss_fn(pw=pose_weight, h=hands, f=face):
                return (objective.data(params)
                        + objective.priors(params, pw, hands=h, face=f)).sum()

            count = (config.body_iterations if step or config.first_body_iterations is None
                     else min(config.first_body_iterations, config.body_iterations))
            loss = _lbfgs(tensors, loss_fn, count)
            iterations += count
            stages.append({"name": f"body-{step + 1}", "iterations": count,
                           "loss": loss, "seconds": round(time.perf_counter() - t0, 3)})
            say(f"fit: body step {step + 1}/{len(config.pose_prior_weights)}, loss {loss:.4g}")
    else:
        objective = None
        params = base
        if init_camera is None:
            _frame_body(body, params, mask)

    if mask is not None and config.silhouette_iterations > 0:
        t0 = time.perf_counter()
        loss = _silhouette_stage(body, params, objective, mask, config, size, say, prior_mean)
        iterations += config.silhouette_iterations
        stages.append({"name": "silhouette", "iterations": config.silhouette_iterations,
                       "loss": loss, "seconds": round(time.perf_counter() - t0, 3)})

    camera = params.camera()
    out_params = _output_params(params, body)
    report["camera_pitch_down_degrees"] = 0.0
    if (objective is not None and objective.cues is not None and objective.cues.standing
            and config.fold_tilt):
        out_params, camera, tilt = _fold_tilt(body, out_params, camera)
        report["camera_pitch_down_degrees"] = math.degrees(tilt)
    if objective is not None:
        errors = objective.errors_px(params)
        mean_error = float(errors.mean()) if len(errors) else None
        report["keypoint_error_px"] = mean_error
        report["keypoint_error_photo_px"] = (
            float(mean_error * photo_scale) if mean_error is not None and photo_scale
            else None)
        report["keypoints_used"] = len(objective.obs.names)
        report["keypoint_errors_by_group_px"] = {
            group: float(errors[[g == group for g in objective.obs.groups]].mean())
            for group in sorted(set(objective.obs.groups))}
    else:
        report.update(keypoint_error_px=None, keypoint_error_photo_px=None, keypoints_used=0,
                      keypoint_errors_by_group_px={})
    report["mask_iou"] = _final_iou(body, out_params, camera, mask, config)
    report["notes"] = notes
    report["landmarks"] = {**landmark_summary, "used": landmarks is not None,
                           "source": None if landmarks is None else landmarks.source,
                           "notes": [] if landmarks is None else list(landmarks.notes),
                           "world_pitch_degrees": math.degrees(
                               float(params.values["world_pitch"][0]))}
    report["lean_degrees"] = fit_lean(body, out_params, camera)
    report.update(iterations=iterations, seconds=round(time.perf_counter() - start, 3),
                  stages=stages, focal_px=camera.fx, fitted_focal=config.fit_focal,
                  initialised=bool(init))
    say(f"fit: done in {report['seconds']:.1f} s, keypoint error "
        f"{report['keypoint_error_px'] if report['keypoint_error_px'] is not None else '-'} px")
    return FitResult(params=out_params, camera=camera, report=report)


def _fold_tilt(body, params: dict[str, Tensor], camera: Camera
               ) -> tuple[dict[str, Tensor], Camera, float]:
    """Stand a standing body up: its remaining tilt in the camera's side plane (ankles to
    shoulders, from the world vertical) is taken out of ``global_orient`` and put into the
    camera's rotation instead (a photo taken from a little above or below), so every point
    projects where it did and the body is upright in the world. Returns the new parameters,
    camera and the tilt (radians, positive = the camera looks down)."""
    from oneshot_avatar.body.smplx_layout import JOINT_INDEX

    with torch.no_grad():
        joints = body(**params).joints[0].detach().cpu().double().numpy()
    ankles = 0.5 * (joints[JOINT_INDEX["left_ankle"]] + joints[JOINT_INDEX["right_ankle"]])
    shoulders = 0.5 * (joints[JOINT_INDEX["left_shoulder"]]
                       + joints[JOINT_INDEX["right_shoulder"]])
    world_to_cam = camera.world_to_cam.detach().cpu().double().numpy()
    rotation = world_to_cam[:3, :3]
    d = shoulders - ankles
    forward = rotation.T @ np.array([0.0, 0.0, 1.0])  # camera axis in the world
    toward = -np.array([forward[0], 0.0, forward[2]])
    toward /= max(np.linalg.norm(toward), 1e-9)  # horizontal, from the body to the camera
    tilt = math.atan2(float(d @ toward), float(d[1]))
    axis = np.cross(np.array([0.0, 1.0, 0.0]), toward)  # tilting about it moves up to toward
    q = Rotation.from_rotvec(-tilt * axis)
    dtype, device = params["global_orient"].dtype, params["global_orient"].device
    orient = Rotation.from_rotvec(params["global_orient"][0].detach().cpu().double().numpy())
    pelvis = body.shape_rest(params["betas"][:1], params.get("expression")[:1]
                             if params.get("expression") is not None
                             and params["expression"].numel() else None)[1][0, 0]
    pelvis = pelvis.detach().cpu().double().numpy()
    q_m = q.as_matrix()
    new_rotation = rotation @ q_m.T
    t = world_to_cam[:3, 3] + rotation @ pelvis - new_rotation @ pelvis
    out = dict(params)
    out["global_orient"] = torch.as_tensor((q * orient).as_rotvec(), dtype=dtype,
                                           device=device)[None]
    new_camera = from_fit(camera.fx, (camera.cx, camera.cy),
                          torch.as_tensor(new_rotation, dtype=dtype, device=device),
                          torch.as_tensor(t, dtype=dtype, device=device), camera.width,
                          camera.height)
    return out, new_camera, tilt


def _orient(objective: _Objective, base: _Params, obs: _Observations, config: FitConfig,
            has_init: bool, stages: list, say: ProgressFn) -> _Params:
    """Stage 1: global orientation + camera translation from several headings; the best."""
    t0 = time.perf_counter()
    headings = config.orient_headings or (0.0,)
    count = len(headings)
    params = _Params(objective.sparse.body, count, base.size, 1.0, obs.xy.device, obs.xy.dtype,
                     centre=base.centre)
    for name, value in base.values.items():
        params.values[name] = value.expand(count, *value.shape[1:]).clone()
    start = base.values["global_orient"][0].detach().cpu().double().numpy() if has_init else None
    orientations = _initial_orientations(obs, tuple(headings), start)
    params.values["global_orient"][:] = torch.as_tensor(orientations,
                                                        dtype=params.values["global_orient"].dtype)
    _initial_translation(objective, params, obs)
    keep = [n in TORSO or n in HEAD for n in obs.names]
    if sum(keep) < 3:
        keep = [g == "body" for g in obs.groups]
    torso_objective = objective.restricted(obs.subset(keep))
    tensors = [params.values["global_orient"], params.values["camera_t"]]

    def loss_fn():
        return torso_objective.data(params).sum()

    _lbfgs(tensors, loss_fn, config.orient_iterations)
    with torch.no_grad():
        per_candidate = torso_objective.data(params)
    best = int(torch.argmin(per_candidate))
    loss = float(per_candidate[best])
    stages.append({"name": "orient", "iterations": config.orient_iterations, "loss": loss,
                   "seconds": round(time.perf_counter() - t0, 3),
                   "heading_degrees": float(headings[best])})
    say(f"fit: orientation (heading {headings[best]:g} deg), loss {loss:.4g}")
    chosen = params.select(best)
    return chosen


def _silhouette_stage(body, params: _Params, objective: _Objective | None, mask: np.ndarray,
                      config: FitConfig, size: int, say: ProgressFn,
                      prior_mean: dict[str, Tensor]) -> float:
    """Refine orientation, body pose, shape and camera with the mask outline (L-BFGS, so the
    keypoint optimum it starts from is only left for a better total)."""
    import cv2

    res = config.silhouette_resolution
    target = cv2.resize(mask, (res, res), interpolation=cv2.INTER_AREA)
    target_t = torch.as_tensor(target, dtype=body.dtype, device=body.device)
    gaussians = silhouette_gaussians(body, config.silhouette_gaussians, seed=config.seed)
    rotation = torch.tensor(CAMERA_ROTATION, dtype=body.dtype, device=body.device)
    pose_weight = config.pose_prior_weights[-1] if config.pose_prior_weights else 1.0
    names = ["global_orient", "body_pose", "betas", "camera_t"]
    evaluations = [0]

    def loss_fn():
        camera = from_fit(params.values["log_focal"][0].exp().detach(), params.centre,
                          rotation, params.values["camera_t"][0], size, size)
        alpha = render_silhouette(body, params.body_params(), camera, res, gaussians=gaussians)
        loss = config.silhouette_weight * soft_iou_loss(alpha, target_t)
        if objective is not None:
            loss = loss + (objective.data(params) + objective.priors(
                params, pose_weight, hands=False, face=False)).sum()
        else:
            loss = loss + config.beta_prior_weight * params.values["betas"].pow(2).sum()
            loss = loss + pose_weight * (params.values["body_pose"]
                                         - prior_mean["body_pose"]).pow(2).sum()
        evaluations[0] += 1
        if evaluations[0] % 5 == 1:
            say(f"fit: silhouette evaluation {evaluations[0]}, loss {float(loss.detach()):.4g}")
        return loss

    return _lbfgs([params.values[n] for n in names], loss_fn, config.silhouette_iterations)


def _output_params(params: _Params, body) -> dict[str, Tensor]:
    out = {k: v.detach().clone() for k, v in params.body_params().items()}
    if "expression" not in out:
        out["expression"] = torch.zeros(1, 0, dtype=body.dtype, device=body.device)
    out["transl"] = torch.zeros(1, 3, dtype=body.dtype, device=body.device)
    return out


def _final_iou(body, params: dict[str, Tensor], camera: Camera, mask: np.ndarray | None,
               config: FitConfig) -> float | None:
    if mask is None:
        return None
    # Measured at the working size, where the rendered outline is sharper than at the low
    # resolution the fit renders at.
    res = mask.shape[0]
    target = torch.as_tensor(mask, device=body.device, dtype=body.dtype)
    with torch.no_grad():
        gaussians = silhouette_gaussians(body, default_gaussian_count(body, res),
                                         seed=config.seed)
        alpha = render_silhouette(body, params, camera, res, gaussians=gaussians)
    return mask_iou(alpha, target)


