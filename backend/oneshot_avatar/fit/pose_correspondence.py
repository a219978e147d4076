"""Where the landmark detector puts a body's limb joints, measured on the body itself.

MediaPipe Pose learnt its landmarks from people marked by eye, and its joints are not SMPL-X's:
on the open body its hips sit about 2 cm lower, 2-3 cm nearer the middle and 3-5 cm further
forward than SMPL-X's hip joints (the femoral heads), its ankles 2 cm higher, its wrists 2-3 cm
further down the hand; its heels sit 2 cm above the sole and its ears 3 cm in front of the
body's outermost ear vertices. A fit that takes them for SMPL-X's joints and the body's landmark
vertices sees legs about 5 % short and a torso 8 % long, and explains both by tilting the body
towards the camera (perspective makes the nearer upper body larger): the lean of single-view
fits of people standing straight.

Any body (the open body, a real SMPL-X file) gets its own measurement, once, cached with the
body's checksum and the detector's version: the body is dressed in the synthetic subjects'
looks, posed in a few standing and gesturing poses (none from the ``idle`` clip the fidelity
benchmark holds out), turned to three headings and rendered by the project's mesh renderer;
the detector runs on each render. Each landmark is modelled as its SMPL-X joint (or, for the
heels, toe tips and ears, the body's own landmark vertex carried rigidly by its bone) moved by
a fixed offset that turns with a bone (``frame``: the joint's parent or the joint itself), and
the 3 numbers of each offset are the robust least-squares fit of the detections over all
renders, the left and right offsets mirror images (the turned views make the depth part
observable). A landmark the renders did not show well enough keeps its plain target. The
renders wear the synthetic looks of the fidelity benchmark, but not its pose or view.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from oneshot_avatar.atomic import atomic_output
from oneshot_avatar.body.smplx_layout import JOINT_INDEX

SCHEMA = "oneshot-avatar/pose-correspondence/2"

# (keypoint name, SMPL-X joint or VERTEX, frame joint whose rotation turns the offset). A
# VERTEX landmark starts from the body's own landmark vertex for that name (heel, toe tip, ear;
# see targets.find_landmark_vertices), carried rigidly by the frame joint.
VERTEX = "vertex"
LIMB_LANDMARKS: tuple[tuple[str, str, str], ...] = tuple(
    item for side in ("left", "right") for item in (
        (f"{side}_shoulder", f"{side}_shoulder", f"{side}_collar"),
        (f"{side}_elbow", f"{side}_elbow", f"{side}_shoulder"),
        (f"{side}_wrist", f"{side}_wrist", f"{side}_elbow"),
        (f"{side}_hip", f"{side}_hip", "pelvis"),
        (f"{side}_knee", f"{side}_knee", f"{side}_hip"),
        (f"{side}_ankle", f"{side}_ankle", f"{side}_knee"),
        (f"{side}_heel", VERTEX, f"{side}_ankle"),
        (f"{side}_big_toe", VERTEX, f"{side}_ankle"),
        (f"{side}_ear", VERTEX, "head"),
    )
)
HEADINGS = (-35.0, 0.0, 35.0)  # degrees the body is turned about the vertical per pose
# Poses (name, arms lowered from the T-pose, elbow bend; or a built-in clip and a fraction of it)
POSES: tuple[tuple[str, float, float], ...] = (
    ("stand", 0.8, 0.6), ("stand", 1.35, 0.1), ("talk", 0.4, 0.0), ("wave", 0.5, 0.0),
    ("shrug", 0.5, 0.0),
)
RENDER_SIZE = 512
MIN_CONFIDENCE = 0.5
MIN_RENDERS = 5  # a landmark seen confidently in fewer renders keeps no offset
OFFSET_PRIOR = 1.0e3  # on squared metres: holds an offset the renders barely constrain at 0
MAX_OFFSET = 0.08  # metres: a larger offset means the detector saw something else there
ROBUST_PX = 2.0  # pseudo-Huber scale of a reprojection residual, pixels at RENDER_SIZE


@dataclass
class PoseCorrespondence:
    """Offsets of the detector's limb landmarks from a body's joints."""

    names: tuple[str, ...]  # keypoint names, as LIMB_LANDMARKS
    joints: np.ndarray  # int64 [L] SMPL-X joint of each
    frames: np.ndarray  # int64 [L] joint whose rotation turns the offset
    offsets: np.ndarray  # float64 [L, 3] metres from the joint, rest-pose axes (Y up, +Z forward)
    base: np.ndarray  # float64 [L, 3] the body's own point (0 at a joint; a landmark vertex's
    #                   rest offset from its frame joint): offsets - base is what was measured
    valid: np.ndarray  # bool [L]: measured (else the fit keeps the plain target)
    error_before: np.ndarray  # float64 [L] mean reprojection error at the joint, pixels
    error_after: np.ndarray  # float64 [L] the same with the offset
    renders: int  # renders the detector found the person in
    body_sha256: str
    detector: str

    def offset_of(self, name: str) -> tuple[int, int, tuple[float, float, float]] | None:
        """``(joint, frame, offset)`` of a measured landmark, else None."""
        if name not in self.names:
            return None
        k = self.names.index(name)
        if not self.valid[k]:
            return None
        return int(self.joints[k]), int(self.frames[k]), tuple(float(v) for v in self.offsets[k])


def _cache_path(cache_dir: Path | str | None, body) -> Path:
    """The body's file in ``cache_dir`` (default: the project's cache folder)."""
    from oneshot_avatar.body.model import default_cache_dir
    from oneshot_avatar.detect import DETECTOR_NAME

    key = hashlib.sha256(f"{SCHEMA}|{body.info.sha256}|{DETECTOR_NAME}|{HEADINGS}|{POSES}|"
                         f"{RENDER_SIZE}".encode()).hexdigest()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / "pose_correspondence" / f"{key[:24]}.npz"


def is_measured(body, cache_dir: Path | str | None = None) -> bool:
    """Whether the body's measurement is in the cache (else the next fit to the detector's
    keypoints measures it first)."""
    return _cache_path(cache_dir, body).exists()


def pose_correspondence(body, vertices: dict[str, int], cache_dir: Path | str | None = None, *,
                        recompute: bool = False) -> PoseCorrespondence | None:
    """The body's limb-landmark offsets for the embedded detector, from ``cache_dir`` (default:
    the project's cache folder) or measured (about 15 s on a 2-core CPU) and stored there.
    ``vertices``: the body's landmark vertex ids by keypoint name
    (:func:`oneshot_avatar.fit.targets.landmark_vertices`). None when the detector is not
    installed."""
    from oneshot_avatar.detect.holistic import mediapipe_problem

    path = _cache_path(cache_dir, body)
    if path.exists() and not recompute:
        with np.load(path, allow_pickle=False) as data:
            if str(data["schema"]) == SCHEMA and str(data["body_sha256"]) == body.info.sha256:
                return PoseCorrespondence(
                    tuple(str(n) for n in data["names"]), data["joints"].astype(np.int64),
                    data["frames"].astype(np.int64), data["offsets"].astype(np.float64),
                    data["base"].astype(np.float64), data["valid"].astype(bool),
                    data["error_before"].astype(np.float64),
                    data["error_after"].astype(np.float64), int(data["renders"]),
                    body.info.sha256, str(data["detector"]))
    if mediapipe_problem() is not None:
        return None
    result = compute_pose_correspondence(body, vertices)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, schema=np.array(SCHEMA), body_sha256=np.array(body.info.sha256),
                 detector=np.array(result.detector), names=np.array(result.names),
                 joints=result.joints, frames=result.frames, offsets=result.offsets,
                 base=result.base,
                 valid=result.valid, error_before=result.error_before,
                 error_after=result.error_after, renders=np.array(result.renders))
    return result


def calibration_poses() -> list[dict[str, torch.Tensor]]:
    """The SMPL-X parameters (batch 1) of the renders: :data:`POSES` at each of
    :data:`HEADINGS`."""
    from oneshot_avatar.motion import builtin_clip
    from oneshot_avatar.reconstruct.synthetic import standing_pose

    out = []
    for name, a, b in POSES:
        pose = standing_pose(arms_down=a, elbow_bend=b) if name == "stand" else standing_pose()
        if name != "stand":
            clip = builtin_clip(name).to_torch()
            k = int(clip["body_pose"].shape[0] * a)
            for part in ("body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose"):
                if part in clip:
                    pose[part] = clip[part][k : k + 1].clone().float()
        for heading in HEADINGS:
            turned = {key: value.clone() for key, value in pose.items()}
            turned["global_orient"] = torch.tensor([[0.0, math.radians(heading), 0.0]])
            out.append(turned)
    return out


def compute_pose_correspondence(body, vertices: dict[str, int], detector=None
                                ) -> PoseCorrespondence:
    """Render, detect and solve (see the module's docstring). ``vertices``: the body's landmark
    vertex ids by keypoint name; ``detector``: a
    :class:`~oneshot_avatar.detect.HolisticDetector` (default: a new one)."""
    from oneshot_avatar.detect import DETECTOR_NAME, HolisticDetector
    from oneshot_avatar.detect.holistic import NoPersonError
    from oneshot_avatar.reconstruct.synthetic import (
        LOOKS,
        background_image,
        outfit_function,
        subject_camera,
    )
    from oneshot_avatar.render.mesh import SurfaceTexture, render_textured

    spec = [(n, a, f) for n, a, f in LIMB_LANDMARKS if a != VERTEX or n in vertices]
    names = tuple(n for n, _, _ in spec)
    frames = np.array([JOINT_INDEX[f] for _, _, f in spec], dtype=np.int64)
    # A vertex landmark is anchored at its frame joint, the vertex's rest offset from it first.
    joints = np.array([JOINT_INDEX[f if a == VERTEX else a] for _, a, f in spec], dtype=np.int64)
    looks = list(LOOKS.values())
    triangles = body.faces.detach().cpu()
    with torch.no_grad():
        rest = body()
        rest_vertices = rest.rest_vertices[0].detach().cpu().float()
        rest_joints = rest.rest_joints[0].detach().cpu().float()
    base = np.zeros((len(names), 3))  # the offset the measurement starts from
    for k, (name, anchor, frame) in enumerate(spec):
        if anchor == VERTEX:
            vertex = vertices[name]
            base[k] = (rest_vertices[vertex] - rest_joints[JOINT_INDEX[frame]]).double().numpy()
    textures = [SurfaceTexture.from_function(
        rest_vertices, triangles, outfit_function(rest_vertices, rest_joints,
                                                  body.lbs_weights.detach().cpu(), look), 3)
        for look in looks]
    backdrop = background_image(RENDER_SIZE, RENDER_SIZE, 0)
    own = detector is None
    detector = detector or HolisticDetector()
    observed = []  # (posed joints [L, 3], frame rotations [L, 3, 3], camera, xy [L, 2], conf [L])
    try:
        for index, params in enumerate(calibration_poses()):
            params = {key: value.to(body.device, body.dtype) for key, value in params.items()}
            with torch.no_grad():
                out = body(**params)
            vertices = out.vertices[0].detach().cpu().float()
            camera = subject_camera(body, params, RENDER_SIZE, RENDER_SIZE)
            rgb, mask = render_textured(vertices, triangles, textures[index % len(textures)],
                                        camera, background=(0.0, 0.0, 0.0))
            image = rgb.cpu().numpy() + backdrop * (1 - mask.cpu().numpy()[..., None])
            try:
                found = detector.detect((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
            except NoPersonError:
                continue
            xy = np.full((len(names), 2), np.nan)
            conf = np.zeros(len(names))
            for k, name in enumerate(names):
                point = found.keypoints.get(name)
                if point is not None and np.isfinite(point[0]).all():
                    xy[k], conf[k] = point[0], point[1]
            turn = out.joint_transforms[0, frames, :3, :3].detach().cpu().double()
            start = out.joints[0, joints].detach().cpu().double() + (
                turn @ torch.as_tensor(base)[..., None])[..., 0]
            observed.append((start, turn, camera.to(dtype=torch.float64), xy, conf))
    finally:
        if own:
            detector.close()
    offsets, valid, before, after = _solve(observed, names)
    offsets = offsets + base  # (an unmeasured vertex landmark stays at its vertex)
    return PoseCorrespondence(names, joints, frames, offsets, base, valid, before, after,
                              len(observed),
                              body.info.sha256, DETECTOR_NAME)


def _solve(observed: list, names: tuple[str, ...]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Offsets ``[L, 3]``, valid ``[L]``, mean error before / after ``[L]`` (pixels)."""
    count = len(names)
    if not observed:
        zeros = np.zeros(count)
        return np.zeros((count, 3)), np.zeros(count, bool), zeros, zeros
    posed = torch.stack([o[0] for o in observed])  # [R, L, 3]
    turn = torch.stack([o[1] for o in observed])  # [R, L, 3, 3]
    xy = torch.as_tensor(np.stack([o[3] for o in observed]))  # [R, L, 2]
    conf = np.stack([o[4] for o in observed])
    used = torch.as_tensor((conf >= MIN_CONFIDENCE) & np.isfinite(xy.numpy()).all(-1))
    target = torch.where(used[..., None], xy, torch.zeros_like(xy))

    def residuals(offset: torch.Tensor) -> torch.Tensor:  # [R, L] pixels
        points = posed + (turn @ offset[None, :, :, None])[..., 0]
        projected = torch.stack([o[2].project(points[r])[0] for r, o in enumerate(observed)])
        return torch.where(used, (projected - target).norm(dim=-1), torch.zeros(()))

    # The body is left-right symmetric, and so is the detector's idea of a joint: each right
    # landmark's offset is its left twin's mirrored (x negated), which halves the noise.
    twin = [names.index(n.replace("right_", "left_")) for n in names]
    mirror = torch.tensor([[1.0, 1.0, 1.0] if n.startswith("left_") else [-1.0, 1.0, 1.0]
                           for n in names], dtype=torch.float64)
    half = torch.zeros(count, 3, dtype=torch.float64, requires_grad=True)  # rows of left_*

    def symmetric(values: torch.Tensor) -> torch.Tensor:
        return values[twin] * mirror

    optimizer = torch.optim.LBFGS([half], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        offset = symmetric(half)
        r = residuals(offset)
        loss = (torch.sqrt(r.pow(2) + ROBUST_PX**2) - ROBUST_PX).sum()
        loss = loss + OFFSET_PRIOR * offset.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        seen = used.sum(0).clamp_min(1).double()
        before = (residuals(torch.zeros_like(half)).sum(0) / seen).numpy()
        offsets = symmetric(half).detach().numpy().copy()
        after = (residuals(torch.as_tensor(offsets)).sum(0) / seen).numpy()
    valid = ((used.sum(0).numpy() >= MIN_RENDERS) & (np.linalg.norm(offsets, axis=1) <= MAX_OFFSET)
             & (after <= before))
    offsets[~valid] = 0.0
    return offsets, valid, before, np.where(valid, after, before)
