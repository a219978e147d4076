"""One SMPL-X fit over a whole clip of per-frame landmarks.

Unknowns: per frame the body pose, global orientation, root translation, both hands' fingers,
the jaw (opening about +X), the eyes (gaze from the irises) and the face units (the body's
expression space, minus the jaw and gaze units, which the jaw and eye joints carry); shared by
all frames the body shape (or the avatar's, given) and one static camera (rotation
``diag(1, -1, -1)``: looking along world -Z at the body's front; focal from ``fov_degrees``;
its position estimated once, from the first frames, so the person's travel is root
translation).

Each frame's data term is the fit's (:mod:`oneshot_avatar.fit.fitter`): a Geman-McClure
reprojection loss on the body, feet, hand and face keypoints and on face-mesh points placed on
the body's surface (:func:`~oneshot_avatar.fit.face_correspondence.face_correspondence`),
weighted by confidence, measured in pixels of a 256 px image, plus the detector's metric 3D
body landmarks as bone directions (depth). Priors: quadratic pose prior, impossible knee /
elbow / finger bends, shape and expression L2. **Smoothness** is a robust penalty on the
joints' 3D acceleration (Geman-McClure, ``smooth_sigma`` metres per frame^2): it removes
detector jitter but saturates for real fast motion (a swing is kept), and, optimised over the
clip at once, it has no lag. Frames without a person or without hands or face get no data for
those parts; the smoothness bridges them from the frames around (a run of missing frames at
the clip's start or end holds the nearest tracked pose).

Everything is vectorised over frames (:class:`~oneshot_avatar.fit.sparse_body.SparseBody` poses
only the joints and the observed vertices) and optimised by Adam in chunks of ``chunk`` frames,
each warm-started from the previous one and tied to its last frames. Shoulders, elbows, hips
and knees start from the detector's 3D bone directions (a closed-form inverse kinematics), the
global orientation from its 3D hips and shoulders, so the few steps mostly refine.
"""

# The objective closures are called only inside the chunk iteration that defines them.
# ruff: noqa: B023

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor

from oneshot_avatar.body.smplx_layout import JOINT_INDEX, PARENTS
from oneshot_avatar.cameras import Camera, focal_from_fov, from_fit
from oneshot_avatar.fit.depth_cues import person_ray, ray_points, turn_from_axis
from oneshot_avatar.fit.face_correspondence import face_correspondence
from oneshot_avatar.fit.landmarks import MEDIAPIPE_POSE_NAMES, Landmarks
from oneshot_avatar.fit.losses import (
    bend_penalty,
    body_joint_prior_weights,
    finger_penalty,
    gmof,
    hinge_penalty,
)
from oneshot_avatar.fit.sparse_body import SparseBody
from oneshot_avatar.fit.targets import anchored_points, keypoint_targets

CAMERA_ROTATION = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))  # world -> camera
REFERENCE_SIZE = 256
# MediaPipe face-mesh points always used (lips, eyelids, brows, irises), beside every n-th.
FACE_MESH_KEY = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178,
                 181, 185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324,
                 375, 402, 405, 409, 415, 33, 133, 144, 145, 153, 158, 159, 160, 163, 173, 246,
                 7, 362, 263, 373, 374, 380, 385, 386, 387, 390, 398, 466, 249, 70, 105, 107,
                 336, 334, 300, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477)
# Face units the 2D face cannot tell from the jaw and eye joints, or cannot see: held at 0.
HELD_UNITS = ("jawOpen", "jawLeft", "jawRight", "jawForward", "eyeLookDownLeft",
              "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
              "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "tongueOut", "cheekPuff")
# MediaPipe world-landmark bones -> SMPL-X joints (depth cue).
_WORLD_BONES = (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
                ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
                ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
                ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
                ("right_shoulder", "left_shoulder"), ("right_hip", "left_hip"))
ProgressFn = Callable[[int], None]


@dataclass
class TrackFitConfig:
    """Settings of :func:`fit_clip` (pixels are pixels of a 256 px image)."""

    fov_degrees: float = 50.0  # field of view across the frame's long side
    chunk: int = 240  # frames optimised together
    orient_iterations: int = 30  # Adam steps, orientation and translation
    iterations: int = 120  # Adam steps, everything
    lr: float = 0.04  # Adam step of rotations (radians), shape and face units
    lr_transl: float = 0.02  # Adam step of the root translation (metres)
    min_confidence: float = 0.3
    robust_sigma: float = 30.0
    pose_prior: float = 3.0
    hand_prior: float = 1.0
    bend_weight: float = 50.0
    hinge_weight: float = 100.0
    beta_prior: float = 5.0
    expression_prior: float = 3.0
    jaw_prior: float = 2.0
    eye_prior: float = 20.0
    face_mesh_weight: float = 0.15
    face_mesh_stride: int = 4
    world_weight: float = 30.0
    world_sigma: float = 0.7
    smooth_weight: float = 2.0e4  # x squared metres per frame^2 (robust)
    smooth_sigma: float = 0.04  # metres per frame^2 at which the smoothness saturates
    smooth_face: float = 20.0  # on the second difference of jaw, eyes and face units
    continuity_frames: int = 2  # frames of the previous chunk held as context


@dataclass
class ClipFit:
    """The fit of a clip: per-frame SMPL-X parameters (numpy, frame-major), the shared shape and
    the static camera."""

    params: dict[str, np.ndarray]  # global_orient [T,3], body_pose [T,21,3], ..., transl [T,3]
    betas: np.ndarray  # [num_betas]
    camera: Camera
    expression_names: tuple[str, ...]
    present: np.ndarray  # bool [T]: a person was tracked in the frame
    errors_px: np.ndarray  # float [T]: mean body keypoint error in frame pixels (nan if absent)
    notes: list[str] = field(default_factory=list)


class _Observations:
    """Per-frame observation rows: ``xy [T, K, 2]`` frame pixels, ``weight [T, K]``."""

    def __init__(self, body, frames: Sequence[Landmarks | None], config: TrackFitConfig,
                 dtype):
        source = next((lm.source for lm in frames if lm is not None), None)
        targets = keypoint_targets(body, source)
        names = [n for n in _vocabulary() if n in targets]
        vertex_ids = sorted({v for n in names for v in targets[n].vertices})
        column = {v: 55 + k for k, v in enumerate(vertex_ids)}
        anchored = [n for n in names if targets[n].anchored]
        # face-mesh rows as surface points
        corr = face_correspondence(body)
        ids, blend = corr.vertex_blend(body.faces.detach().cpu().numpy())
        valid = np.asarray(corr.valid, bool)
        stride = max(1, config.face_mesh_stride)
        mesh_index = sorted({k for k in range(0, 478, stride) if valid[k]}
                            | {k for k in FACE_MESH_KEY if valid[k]})
        count = len(names) + len(mesh_index)
        width = 55 + len(vertex_ids) + len(mesh_index) + len(anchored)
        selector = torch.zeros(count, width, dtype=dtype)
        trust = np.zeros(count)
        anchor_column = {name: 55 + len(vertex_ids) + len(mesh_index) + k  # after the face mesh
                         for k, name in enumerate(anchored)}
        for row, name in enumerate(names):
            target = targets[name]
            if target.anchored:
                selector[row, anchor_column[name]] = 1.0
                trust[row] = target.weight
                continue
            columns = list(target.joints) + [column[v] for v in target.vertices]
            for col, coefficient in zip(columns, target.coefficients()):
                selector[row, col] += coefficient
            trust[row] = target.weight
        for k, index in enumerate(mesh_index):
            selector[len(names) + k, 55 + len(vertex_ids) + k] = 1.0
            trust[len(names) + k] = config.face_mesh_weight
        self.names = names
        self.mesh_index = mesh_index
        self.selector = selector
        self.vertex_ids = vertex_ids
        self.surface = (ids[mesh_index], blend[mesh_index])
        # the detector's limb landmarks where it puts them on this body (pose_correspondence)
        self.anchored = anchored_points([targets[n] for n in anchored])
        self.groups = np.array(["hand" if "_hand_" in n else "face" if n.startswith("face_")
                                else "body" for n in names] + ["face"] * len(mesh_index))
        total = len(frames)
        xy = np.zeros((total, count, 2))
        weight = np.zeros((total, count))
        world = np.full((total, len(_WORLD_BONES), 3), np.nan)
        world_w = np.zeros((total, len(_WORLD_BONES)))
        mp_index = {n: i for i, n in enumerate(MEDIAPIPE_POSE_NAMES)}
        for t, lm in enumerate(frames):
            if lm is None:
                continue
            kp = lm.keypoints
            where = {n: i for i, n in enumerate(kp.names)}
            for row, name in enumerate(names):
                i = where.get(name)
                if i is None or kp.conf[i] < config.min_confidence:
                    continue
                if not np.isfinite(kp.xy[i]).all():
                    continue
                xy[t, row] = kp.xy[i]
                weight[t, row] = kp.conf[i] * trust[row]
            if lm.face is not None and lm.face_conf >= 0.5:
                rows = slice(len(names), count)
                xy[t, rows] = lm.face[mesh_index, :2]
                weight[t, rows] = trust[rows] * lm.face_conf
            if lm.world is not None:
                conf = lm.world_conf if lm.world_conf is not None else np.ones(33)
                for b, (a, c) in enumerate(_WORLD_BONES):
                    ia, ic = mp_index[a], mp_index[c]
                    d = lm.world[ic] - lm.world[ia]
                    n = np.linalg.norm(d)
                    v = min(conf[ia], conf[ic])
                    if n > 1e-3 and v >= 0.5:
                        world[t, b] = d / n
                        world_w[t, b] = v
        self.xy = torch.as_tensor(xy, dtype=dtype)
        self.weight = torch.as_tensor(weight, dtype=dtype)
        self.world = torch.as_tensor(np.nan_to_num(world), dtype=dtype)
        self.world_weight = torch.as_tensor(world_w, dtype=dtype)
        self.present = np.array([lm is not None for lm in frames])


def _world_onto_camera(obs: _Observations, focal: float, width: int, height: int) -> None:
    """Turn each frame's world-landmark bone directions from the detector's head-on view of
    the person onto the camera's axes (:func:`~oneshot_avatar.fit.depth_cues.turn_from_axis`
    of the ray to the frame's mid-hip point): a person off the frame's centre is seen
    obliquely."""
    xy, weight = obs.xy.numpy(), obs.weight.numpy()
    world = obs.world.numpy().copy()
    for t in range(xy.shape[0]):
        if not obs.world_weight[t].any():
            continue
        seen = ray_points(obs.names, obs.groups, weight[t])
        if not len(seen):
            continue
        ray = person_ray(xy[t, seen], (width / 2, height / 2), focal)
        world[t] = world[t] @ turn_from_axis(ray).T
    obs.world = torch.as_tensor(world, dtype=obs.world.dtype)


def _vocabulary() -> list[str]:
    from oneshot_avatar.fit.keypoints import (
        COCO_BODY_NAMES,
        FACE_NAMES,
        FOOT_NAMES,
        LEFT_HAND_NAMES,
        RIGHT_HAND_NAMES,
    )

    return [*COCO_BODY_NAMES, *FOOT_NAMES, *LEFT_HAND_NAMES, *RIGHT_HAND_NAMES, *FACE_NAMES]


def _rotation() -> np.ndarray:
    return np.asarray(CAMERA_ROTATION)


def _initial_orient(lm: Landmarks | None) -> np.ndarray | None:
    """Global orientation from the detector's metric 3D landmarks (hips and shoulders)."""
    if lm is None or lm.world is None:
        return None
    index = {n: i for i, n in enumerate(MEDIAPIPE_POSE_NAMES)}
    conf = lm.world_conf if lm.world_conf is not None else np.ones(33)
    parts = ("left_hip", "right_hip", "left_shoulder", "right_shoulder")
    if min(conf[index[p]] for p in parts) < 0.3:
        return None
    p = {n: _rotation() @ lm.world[index[n]].astype(np.float64) for n in parts}  # -> world
    left = (p["left_hip"] - p["right_hip"]) + (p["left_shoulder"] - p["right_shoulder"])
    up = 0.5 * (p["left_shoulder"] + p["right_shoulder"]) - 0.5 * (p["left_hip"] + p["right_hip"])
    if np.linalg.norm(left) < 1e-4 or np.linalg.norm(up) < 1e-4:
        return None
    x = left / np.linalg.norm(left)
    y = up - x * (up @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    return Rotation.from_matrix(np.stack([x, y, z], axis=1)).as_rotvec()


class _Clip:
    """The optimised tensors of one chunk."""

    def __init__(self, frames: int, body, dtype):
        def zeros(*shape):
            return torch.zeros(frames, *shape, dtype=dtype)

        self.values = {
            "global_orient": zeros(3), "body_pose": zeros(21, 3), "left_hand_pose": zeros(15, 3),
            "right_hand_pose": zeros(15, 3), "jaw": zeros(1), "eyes": zeros(2, 2),
            "transl": zeros(3),
        }
        if body.expression_names:
            self.values["expression"] = zeros(len(body.expression_names))

    def body_params(self, betas: Tensor, unit_mask: Tensor | None) -> dict[str, Tensor]:
        v = self.values
        frames = v["transl"].shape[0]
        zero = torch.zeros_like(v["jaw"])
        eyes = torch.cat([v["eyes"], torch.zeros_like(v["eyes"][..., :1])], dim=-1)  # [T,2,3]
        out = {
            "betas": betas[None].expand(frames, -1),
            "global_orient": v["global_orient"], "body_pose": v["body_pose"],
            "left_hand_pose": v["left_hand_pose"], "right_hand_pose": v["right_hand_pose"],
            "jaw_pose": torch.cat([v["jaw"], zero, zero], dim=-1),
            "leye_pose": eyes[:, 0], "reye_pose": eyes[:, 1], "transl": v["transl"],
        }
        if "expression" in v:
            out["expression"] = v["expression"] * unit_mask
        return out


def fit_clip(body, frames: Sequence[Landmarks | None], image_size: tuple[int, int], *,
             config: TrackFitConfig | None = None, betas: np.ndarray | None = None,
             progress: ProgressFn | None = None) -> ClipFit:
    """Fit the clip (see the module docstring). ``frames``: one :class:`Landmarks` per frame in
    frame pixels (None where nobody was tracked); ``betas`` fixes the shape (an avatar's).
    ``progress`` is called with the number of frames done after each chunk."""
    config = config or TrackFitConfig()
    dtype = body.dtype
    width, height = image_size
    total = len(frames)
    obs = _Observations(body, frames, config, dtype)
    notes: list[str] = []
    if not obs.present.any():
        from oneshot_avatar.errors import UserError

        raise UserError("no person found in any frame of the video (the landmark detector saw "
                        "no body): give a video showing a person", field="video")
    sparse = SparseBody(body, obs.vertex_ids, obs.surface, obs.anchored)
    focal = focal_from_fov(config.fov_degrees, max(width, height))
    _world_onto_camera(obs, focal, width, height)
    scale = REFERENCE_SIZE / max(width, height)
    names = body.expression_names
    unit_mask = None
    if names:
        unit_mask = torch.tensor([0.0 if n in HELD_UNITS else 1.0 for n in names], dtype=dtype)
    arkit = body.expression_space == "arkit52"
    joint_weights = body_joint_prior_weights(None, dtype)
    fixed_betas = betas is not None
    shape = torch.zeros(body.num_betas, dtype=dtype)
    if betas is not None:
        given = torch.as_tensor(np.asarray(betas, dtype=np.float64).reshape(-1), dtype=dtype)
        shape[: min(len(given), body.num_betas)] = given[: body.num_betas]
    rot = torch.as_tensor(_rotation(), dtype=dtype)
    cam_t: Tensor | None = None
    out = {k: [] for k in ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose",
                           "jaw", "eyes", "transl", "expression")}
    previous: dict[str, Tensor] | None = None
    rest_pose = relaxed_pose(dtype)
    bones = torch.tensor([[JOINT_INDEX[a], JOINT_INDEX[b]] for a, b in _WORLD_BONES])

    def project(points: Tensor) -> Tensor:  # [T, N, 3] world -> [T, N, 2] frame pixels
        cam = points @ rot.T + cam_t
        z = cam[..., 2:].clamp_min(1e-3)
        return focal * cam[..., :2] / z + torch.tensor([width / 2.0, height / 2.0], dtype=dtype)

    first = int(np.argmax(obs.present))  # frames before the first person are held (below)
    start = first
    while start < total:
        stop = min(total, start + config.chunk)
        n = stop - start
        sl = slice(start, stop)
        xy, weight = obs.xy[sl], obs.weight[sl]
        world, world_w = obs.world[sl], obs.world_weight[sl]
        clip = _Clip(n, body, dtype)
        v = clip.values
        # -- initial values: warm start from the previous chunk, orientation from 3D landmarks
        if previous is not None:
            for key, value in previous.items():
                if key in v:
                    v[key][:] = value[-1]
        else:
            v["body_pose"][:] = rest_pose
        last = None if previous is None else previous["global_orient"][-1].numpy()
        for t in range(n):
            orient = _initial_orient(frames[start + t])
            if orient is None:
                orient = last
            if orient is not None:
                v["global_orient"][t] = torch.as_tensor(orient, dtype=dtype)
                last = orient
        with torch.no_grad():
            _ik_from_world(body, shape, v, world, world_w)
            joints, verts = sparse(**clip.body_params(shape, unit_mask))
            model = obs.selector @ torch.cat([joints, verts], dim=1)  # [n, K, 3]
        t_frames = _initial_translations(model, xy, weight, obs.groups, focal, width, height)
        seen = np.flatnonzero(obs.present[sl])
        if 0 < len(seen) < n:  # frames without a person start between their neighbours
            for axis in range(3):
                t_frames[:, axis] = np.interp(np.arange(n), seen, t_frames[seen, axis])
        if cam_t is None:
            cam_t = torch.as_tensor(np.median(t_frames[seen], axis=0), dtype=dtype)
        # transl_f = R^T (t_f - t_c)
        v["transl"][:] = (torch.as_tensor(t_frames, dtype=dtype) - cam_t) @ rot
        if previous is not None and len(seen) == 0:
            v["transl"][:] = previous["transl"][-1]
        context = None
        if previous is not None and config.continuity_frames > 0:
            k = min(config.continuity_frames, previous["transl"].shape[0])
            with torch.no_grad():
                ctx = _Clip(k, body, dtype)
                for key in ctx.values:
                    ctx.values[key] = previous[key][-k:].clone()
                context = sparse(**ctx.body_params(shape, unit_mask))[0]
                context_face = _face_vector(ctx.values)

        def objective(stage: str) -> Tensor:
            params = clip.body_params(shape, unit_mask)
            joints, verts = sparse(**params)
            stacked = torch.cat([joints, verts], dim=1)
            points = obs.selector @ stacked
            residual = (project(points) - xy) * scale
            data = (weight * gmof(residual, config.robust_sigma)).sum()
            d = joints[:, bones[:, 1]] - joints[:, bones[:, 0]]
            d = d @ rot.T
            d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            data = data + config.world_weight * (world_w * gmof(d - world,
                                                                config.world_sigma)).sum()
            # smoothness: joint accelerations (robust), face parameters
            path = joints if context is None else torch.cat([context, joints], dim=0)
            if path.shape[0] >= 3:
                acc = path[2:] - 2 * path[1:-1] + path[:-2]
                smooth = config.smooth_weight * gmof(acc, config.smooth_sigma).sum()
            else:
                smooth = joints.new_zeros(())
            total_loss = data + smooth
            if stage == "orient":
                return total_loss
            face = _face_vector(v)
            if context is not None:
                face = torch.cat([context_face, face], dim=0)
            if face.shape[0] >= 3:
                total_loss = total_loss + config.smooth_face * (
                    face[2:] - 2 * face[1:-1] + face[:-2]).pow(2).sum()
            prior = config.pose_prior * ((v["body_pose"] - rest_pose).pow(2).sum(-1)
                                         * joint_weights).sum()
            prior = prior + config.bend_weight * bend_penalty(v["body_pose"]).sum()
            prior = prior + config.hinge_weight * hinge_penalty(v["body_pose"]).sum()
            for side in ("left", "right"):
                pose = v[f"{side}_hand_pose"]
                prior = prior + config.hand_prior * pose.pow(2).sum()
                prior = prior + config.bend_weight * finger_penalty(pose, side).sum()
            prior = prior + config.jaw_prior * v["jaw"].pow(2).sum() + 100.0 * (
                torch.relu(-v["jaw"] - 0.05).pow(2).sum())
            prior = prior + config.eye_prior * v["eyes"].pow(2).sum()
            if "expression" in v:
                e = v["expression"]
                prior = prior + config.expression_prior * e.pow(2).sum()
                if arkit:
                    prior = prior + 50.0 * (torch.relu(-e).pow(2) + torch.relu(e - 1).pow(2)).sum()
            if not fixed_betas and start == 0:
                prior = prior + config.beta_prior * n / 8.0 * shape.pow(2).sum()
            return total_loss + prior

        _adam([(v["global_orient"], config.lr), (v["transl"], config.lr_transl)],
              lambda: objective("orient"), config.orient_iterations)
        tensors = [(value, config.lr_transl if key == "transl" else config.lr)
                   for key, value in v.items()]
        if not fixed_betas and start == 0:
            tensors.append((shape, config.lr))
        _adam(tensors, lambda: objective("all"), config.iterations)
        for key, value in v.items():
            out[key].append(value.detach().clone())
        previous = {k: val.detach().clone() for k, val in v.items()}
        start = stop
        if progress is not None:
            progress(stop)

    result = {k: torch.cat(vals).numpy().astype(np.float64) for k, vals in out.items() if vals}
    if first:
        result = {k: np.concatenate([np.repeat(val[:1], first, axis=0), val])
                  for k, val in result.items()}
    _hold_ends(result, obs.present)
    # errors in frame pixels (body points), and the parameters in SMPL-X form
    params = _smplx_params(result, body)
    with torch.no_grad():
        torch_params = {k: torch.as_tensor(val, dtype=dtype) for k, val in params.items()}
        joints, verts = sparse(betas=shape[None].expand(total, -1), **torch_params)
        points = obs.selector @ torch.cat([joints, verts], dim=1)
        error = (project(points) - obs.xy).norm(dim=-1).numpy()
    body_rows = obs.groups == "body"
    w = obs.weight.numpy()[:, body_rows] > 0
    errors = np.where(w.any(1), (error[:, body_rows] * w).sum(1) / np.maximum(w.sum(1), 1),
                      np.nan)
    absent = int((~obs.present).sum())
    if absent:
        notes.append(f"no person in {absent} of {total} frames: bridged from the frames around "
                     "(held at the clip's ends)")
    for group, label in (("hand", "hands"), ("face", "face")):
        rows = obs.groups == group
        frames_with = int((w_all := obs.weight.numpy()[:, rows] > 0).any(1).sum())
        del w_all
        if frames_with < total - absent:
            notes.append(f"{label} seen in {frames_with} of {total - absent} frames with a person:"
                         " bridged in the others")
    camera = from_fit(focal, (width / 2.0, height / 2.0), rot.double(), cam_t.double(), width,
                      height)
    return ClipFit(params=params, betas=shape.detach().numpy().astype(np.float32), camera=camera,
                   expression_names=tuple(names), present=obs.present, errors_px=errors,
                   notes=notes)


def _ik_from_world(body, shape: Tensor, values: dict[str, Tensor], world: Tensor,
                   world_w: Tensor) -> None:
    """Initial shoulders, elbows, hips and knees from the detector's 3D bone directions
    (``world [T, bones, 3]`` camera axes): each joint turned by the smallest rotation taking
    its rest bone onto the observed direction, parents first. Frames or bones without a
    confident direction keep their values."""
    from oneshot_avatar.body import lbs

    frames = world.shape[0]
    rest_joints = body.shape_rest(shape[None])[1][0]  # [55, 3]
    rot = torch.as_tensor(_rotation(), dtype=world.dtype)
    target_world = world @ rot  # camera -> world (R is its own inverse)
    for bone in (0, 2, 4, 6, 1, 3, 5, 7):  # upper limbs first, then their children
        a, b = (JOINT_INDEX[n] for n in _WORLD_BONES[bone])
        ok = world_w[:, bone] >= 0.5
        if not bool(ok.any()):
            continue
        params = {k: values[k] for k in ("global_orient", "body_pose")}
        pose = torch.cat([params["global_orient"][:, None], params["body_pose"],
                          torch.zeros(frames, 55 - 22, 3, dtype=world.dtype)], dim=1)
        rotations = lbs.axis_angle_to_matrix(pose)  # [T, 55, 3, 3]
        _, transforms = lbs.rigid_transforms(rotations, rest_joints[None].expand(frames, -1, -1),
                                             PARENTS)
        parent_rot = transforms[:, PARENTS[a], :3, :3]  # [T, 3, 3]
        rest_dir = rest_joints[b] - rest_joints[a]
        rest_dir = rest_dir / rest_dir.norm()
        local = torch.einsum("tji,tj->ti", parent_rot, target_world[:, bone])
        local = local / local.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        axis = torch.cross(rest_dir.expand_as(local), local, dim=-1)
        sin = axis.norm(dim=-1, keepdim=True)
        cos = (local * rest_dir).sum(-1, keepdim=True)
        angle = torch.atan2(sin, cos)
        rotvec = axis / sin.clamp_min(1e-9) * angle
        values["body_pose"][ok, a - 1] = rotvec[ok]


def relaxed_pose(dtype=torch.float32) -> Tensor:
    """``body_pose [21, 3]`` of a relaxed stance (arms down): the pose prior's mean, so parts
    the video never shows (arms below the frame) hang naturally instead of in the T-pose."""
    from oneshot_avatar.reconstruct.synthetic import standing_pose

    return standing_pose()["body_pose"][0].to(dtype)


def _face_vector(v: dict[str, Tensor]) -> Tensor:
    parts = [v["jaw"], v["eyes"].reshape(v["eyes"].shape[0], -1)]
    if "expression" in v:
        parts.append(v["expression"])
    return torch.cat(parts, dim=-1)


def _initial_translations(model: Tensor, xy: Tensor, weight: Tensor, groups: np.ndarray,
                          focal: float, width: int, height: int) -> np.ndarray:
    """Per-frame camera translation ``[T, 3]`` placing the model's observed points (posed at
    the initial values) over the image points at the right size."""
    body = torch.as_tensor(groups == "body")
    out = np.zeros((model.shape[0], 3))
    for t in range(model.shape[0]):
        seen = (weight[t] > 0) & body
        if int(seen.sum()) < 3:
            seen = weight[t] > 0
        if int(seen.sum()) < 2:
            out[t] = (0.0, 0.0, 3.0)
            continue
        m = model[t, seen].double().numpy()
        m = m @ _rotation().T  # camera axes, before translation
        p = xy[t, seen].double().numpy()
        mc, pc = m.mean(0), p.mean(0)
        ms = np.linalg.norm(m[:, :2] - mc[:2], axis=1).mean()
        ps = np.linalg.norm(p - pc, axis=1).mean()
        depth = 3.0 if ps < 1.0 else float(np.clip(focal * ms / ps, 0.3, 50.0))
        tz = depth - mc[2]
        tx = (pc[0] - width / 2) * depth / focal - mc[0]
        ty = (pc[1] - height / 2) * depth / focal - mc[1]
        out[t] = (tx, ty, tz)
    return out


def _adam(tensors: list[tuple[Tensor, float]], loss_fn: Callable[[], Tensor],
          iterations: int) -> None:
    """Adam with a cosine-decaying step: its per-parameter step sizes suit a clip's frames,
    which are nearly independent problems (one L-BFGS over all of them shares a single line
    search and curvature history, and crawls)."""
    if iterations <= 0:
        return
    for t, _ in tensors:
        t.requires_grad_(True)
    optimizer = torch.optim.Adam([{"params": [t], "lr": lr} for t, lr in tensors],
                                 betas=(0.9, 0.99))
    base = [group["lr"] for group in optimizer.param_groups]
    for step in range(iterations):
        factor = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / iterations))
        for group, lr in zip(optimizer.param_groups, base):
            group["lr"] = lr * factor
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
    for t, _ in tensors:
        t.requires_grad_(False)


def _hold_ends(result: dict[str, np.ndarray], present: np.ndarray) -> None:
    """Frames before the first and after the last tracked one hold those frames' values."""
    seen = np.flatnonzero(present)
    first, last = int(seen[0]), int(seen[-1])
    for value in result.values():
        value[:first] = value[first]
        value[last + 1:] = value[last]


def _smplx_params(result: dict[str, np.ndarray], body) -> dict[str, np.ndarray]:
    frames = result["transl"].shape[0]
    jaw = np.zeros((frames, 3))
    jaw[:, 0] = result["jaw"][:, 0]
    eyes = np.concatenate([result["eyes"], np.zeros((frames, 2, 1))], axis=-1)
    params = {"global_orient": result["global_orient"], "body_pose": result["body_pose"],
              "left_hand_pose": result["left_hand_pose"],
              "right_hand_pose": result["right_hand_pose"], "jaw_pose": jaw,
              "leye_pose": eyes[:, 0], "reye_pose": eyes[:, 1], "transl": result["transl"]}
    if "expression" in result:
        e = result["expression"].copy()
        names = body.expression_names
        e[:, [i for i, n in enumerate(names) if n in HELD_UNITS]] = 0.0
        if body.expression_space == "arkit52":  # activations in [0, 1]
            e = np.clip(e, 0.0, 1.0)
        params["expression"] = e
    return params
