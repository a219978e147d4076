"""Synthetic subjects: people the project makes itself, with a known body, pose, camera and
texture, for the demo (no downloads) and for measuring fidelity against ground truth.

A subject is the open body (or any body model) with chosen shape coefficients, dressed by a
procedural texture evaluated on its rest surface (shirt with stripes and a chest badge,
trousers, shoes, skin, hair, eyes, brows and lips), posed in a relaxed standing pose and
rendered by the project's own mesh renderer in front of a soft textured background. A look may
also have volume beyond the body (hair standing off the head, trousers flaring from the hips to
the ankles), made by moving the rest mesh along its normals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from oneshot_avatar.body.smplx_layout import JOINT_INDEX, JOINT_NAMES
from oneshot_avatar.cameras import Camera, look_at

_SHIRT_JOINTS = {"spine1", "spine2", "spine3", "left_collar", "right_collar", "neck"}
_TROUSER_JOINTS = {"left_hip", "right_hip", "left_knee", "right_knee"}
_SHOE_JOINTS = {"left_ankle", "right_ankle", "left_foot", "right_foot"}
_HEAD_JOINTS = {"head", "jaw", "left_eye_smplhf", "right_eye_smplhf"}


@dataclass(frozen=True)
class Look:
    """Colours and pattern of a synthetic subject (sRGB in [0, 1])."""

    skin: tuple[float, float, float] = (0.87, 0.68, 0.56)
    shirt: tuple[float, float, float] = (0.16, 0.42, 0.70)
    stripe: tuple[float, float, float] = (0.93, 0.93, 0.90)
    stripe_period: float = 0.09  # metres
    badge: tuple[float, float, float] = (0.95, 0.75, 0.15)
    trousers: tuple[float, float, float] = (0.22, 0.24, 0.30)
    shoes: tuple[float, float, float] = (0.35, 0.20, 0.12)
    hair: tuple[float, float, float] = (0.20, 0.12, 0.07)
    lips: tuple[float, float, float] = (0.72, 0.35, 0.35)
    iris: tuple[float, float, float] = (0.25, 0.35, 0.22)
    sleeve: float = 0.45  # fraction of the upper arm the sleeve covers
    betas: tuple[float, ...] = ()
    hair_volume: float = 0.0  # metres the hair stands off the head
    flare: float = 0.0  # metres the trousers stand off the legs at the ankles


LOOKS: dict[str, Look] = {
    "blue-stripes": Look(),
    "red-check": Look(skin=(0.62, 0.45, 0.34), shirt=(0.70, 0.15, 0.14), stripe=(0.15, 0.12, 0.10),
                      stripe_period=0.06, badge=(0.9, 0.9, 0.9), trousers=(0.55, 0.48, 0.36),
                      shoes=(0.1, 0.1, 0.1), hair=(0.05, 0.04, 0.03), sleeve=0.9,
                      betas=(1.0, -0.5, 0.3)),
    "green-plain": Look(skin=(0.95, 0.80, 0.70), shirt=(0.20, 0.50, 0.30), stripe=(0.20, 0.50, 0.30),
                        badge=(0.85, 0.2, 0.2), trousers=(0.12, 0.14, 0.35), shoes=(0.85, 0.85, 0.85),
                        hair=(0.75, 0.58, 0.30), sleeve=0.2, betas=(-1.0, 0.8, -0.4, 0.5)),
    # Big hair and wide flared trousers: shape well beyond the body.
    "flared": Look(skin=(0.80, 0.60, 0.48), shirt=(0.85, 0.82, 0.75), stripe=(0.85, 0.82, 0.75),
                   badge=(0.20, 0.35, 0.60), trousers=(0.55, 0.12, 0.25), shoes=(0.15, 0.12, 0.10),
                   hair=(0.35, 0.20, 0.10), sleeve=0.6, betas=(-0.5, -0.3), hair_volume=0.035,
                   flare=0.10),
}


def _hash_noise(points: Tensor, scale: float, seed: int) -> Tensor:
    """Smooth-ish value noise in [0, 1] from a 3D lattice (trilinear), deterministic."""
    p = points / scale
    base = torch.floor(p)
    frac = p - base
    frac = frac * frac * (3 - 2 * frac)
    total = torch.zeros(points.shape[0], dtype=points.dtype, device=points.device)
    for corner in range(8):
        offset = torch.tensor([(corner >> 0) & 1, (corner >> 1) & 1, (corner >> 2) & 1],
                              dtype=points.dtype, device=points.device)
        lattice = (base + offset).to(torch.int64)
        h = (lattice[:, 0] * 73856093) ^ (lattice[:, 1] * 19349663) ^ (lattice[:, 2] * 83492791) ^ seed
        value = ((h * 2654435761) % 1_000_003).to(points.dtype) / 1_000_003.0
        weight = torch.prod(torch.where(offset.bool(), frac, 1 - frac), dim=-1)
        total = total + weight * value
    return total


def outfit_function(rest_vertices: Tensor, rest_joints: Tensor, lbs_weights: Tensor, look: Look):
    """``fn(points [N, 3], normals [N, 3]) -> rgb [N, 3]``: the look painted on a rest surface
    (``rest_vertices [V, 3]`` with joints ``[55, 3]`` and skinning weights ``[V, 55]``)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(rest_vertices.detach().cpu().numpy())
    dominant = lbs_weights.argmax(dim=-1).cpu()
    joints = rest_joints.detach().cpu()
    part_of = {name: JOINT_INDEX[name] for name in JOINT_NAMES}
    eye_l, eye_r = joints[part_of["left_eye_smplhf"]], joints[part_of["right_eye_smplhf"]]
    head = joints[part_of["head"]]
    eye_y = float((eye_l[1] + eye_r[1]) / 2)
    head_mask = torch.isin(dominant, torch.tensor([part_of[n] for n in _HEAD_JOINTS]))
    head_vertices = rest_vertices.detach().cpu()[head_mask]
    # The face's front surface height: the most forward head vertex near the midline.
    midline = head_vertices[head_vertices[:, 0].abs() < 0.01]
    face_front = float(midline[:, 2].max()) if len(midline) else float(head[2] + 0.09)
    chest_front = float(rest_vertices[:, 2].max())

    def colour(name: str) -> Tensor:
        return torch.tensor(getattr(look, name), dtype=torch.float32)

    def fn(points: Tensor, normals: Tensor) -> Tensor:
        pts = points.detach().cpu().float()
        nrm = normals.detach().cpu().float()
        _, nearest = tree.query(pts.numpy())
        part = dominant[torch.as_tensor(nearest)]
        names = np.asarray(JOINT_NAMES)[part.numpy()]
        rgb = colour("skin").expand(len(pts), 3).clone()

        def mask_of(group) -> Tensor:
            return torch.as_tensor(np.isin(names, list(group)))

        # Shirt: torso and the sleeve part of the upper arms; stripes; a badge on the chest.
        shirt = mask_of(_SHIRT_JOINTS) | (mask_of({"pelvis"}) & (pts[:, 1] > joints[0, 1] - 0.02))
        for side in ("left", "right"):
            shoulder, elbow = joints[part_of[f"{side}_shoulder"]], joints[part_of[f"{side}_elbow"]]
            along = ((pts - shoulder) @ (elbow - shoulder)) / (elbow - shoulder).square().sum()
            upper = mask_of({f"{side}_shoulder"})
            shirt |= upper & (along < look.sleeve)
        neck = mask_of({"neck"}) & (pts[:, 1] > joints[part_of["neck"], 1] - 0.02)
        shirt &= ~neck
        stripes = torch.sin(2 * math.pi * pts[:, 1] / look.stripe_period) > 0.55
        shirt_rgb = torch.where(stripes[:, None], colour("stripe"), colour("shirt"))
        chest = joints[part_of["spine3"]]
        badge = ((pts[:, 0] - (chest[0] + 0.08)) ** 2 + (pts[:, 1] - (chest[1] + 0.02)) ** 2
                 < 0.035 ** 2) & (nrm[:, 2] > 0.3) & (pts[:, 2] > chest_front - 0.12)
        shirt_rgb = torch.where(badge[:, None], colour("badge"), shirt_rgb)
        shading = 0.9 + 0.2 * _hash_noise(pts, 0.02, 1)[:, None]
        rgb = torch.where(shirt[:, None], shirt_rgb * shading, rgb)
        # Trousers (with a darker seam down the outside of each leg) and shoes.
        trousers = mask_of(_TROUSER_JOINTS) | (mask_of({"pelvis"}) & ~shirt)
        seam = (nrm[:, 0].abs() > 0.85)
        trouser_rgb = colour("trousers") * (0.85 + 0.3 * _hash_noise(pts, 0.012, 2))[:, None]
        trouser_rgb = torch.where(seam[:, None], trouser_rgb * 0.6, trouser_rgb)
        rgb = torch.where(trousers[:, None], trouser_rgb, rgb)
        rgb = torch.where(mask_of(_SHOE_JOINTS)[:, None], colour("shoes"), rgb)
        # Head: hair on top and back, then eyes, brows and lips on the face.
        in_head = mask_of(_HEAD_JOINTS)
        hair = _hair_mask(pts, joints, in_head)
        hair_rgb = colour("hair") * (0.8 + 0.4 * _hash_noise(pts * torch.tensor([1.0, 0.2, 1.0]), 0.004, 3))[:, None]
        rgb = torch.where(hair[:, None], hair_rgb, rgb)
        front = in_head & (nrm[:, 2] > 0.2) & ~hair
        for eye in (eye_l, eye_r):
            d = ((pts[:, 0] - eye[0]) ** 2 + ((pts[:, 1] - eye[1]) * 1.6) ** 2).sqrt()
            sclera = front & (d < 0.016)
            iris = front & (d < 0.0085)
            pupil = front & (d < 0.004)
            rgb = torch.where(sclera[:, None], torch.tensor([0.95, 0.95, 0.93]), rgb)
            rgb = torch.where(iris[:, None], colour("iris"), rgb)
            rgb = torch.where(pupil[:, None], torch.tensor([0.03, 0.03, 0.03]), rgb)
            brow = front & ((pts[:, 0] - eye[0]).abs() < 0.022) & ((pts[:, 1] - (eye[1] + 0.022)).abs() < 0.004)
            rgb = torch.where(brow[:, None], colour("hair"), rgb)
        mouth_y = eye_y - 0.075
        lips = front & ((pts[:, 0] / 0.026) ** 2 + ((pts[:, 1] - mouth_y) / 0.008) ** 2 < 1) & (pts[:, 2] > face_front - 0.05)
        rgb = torch.where(lips[:, None], colour("lips"), rgb)
        return rgb.clamp(0, 1).to(points)

    return fn


def _hair_mask(points: Tensor, joints: Tensor, head_mask: Tensor) -> Tensor:
    """Which of ``points`` (on head parts, ``head_mask``) are hair: above the brows, or on the
    back of the head above the ears."""
    eye_l, eye_r = joints[JOINT_INDEX["left_eye_smplhf"]], joints[JOINT_INDEX["right_eye_smplhf"]]
    head = joints[JOINT_INDEX["head"]]
    eye_y = float((eye_l[1] + eye_r[1]) / 2)
    return head_mask & ((points[:, 1] > eye_y + 0.035)
                        | ((points[:, 2] < head[2] - 0.01) & (points[:, 1] > eye_y - 0.06)))


def look_offsets(rest_vertices: Tensor, rest_joints: Tensor, lbs_weights: Tensor, faces: Tensor,
                 look: Look) -> Tensor | None:
    """Rest-mesh offsets ``[V, 3]`` giving ``look`` its volume beyond the body (None when it
    has none): the hair moved ``hair_volume`` along the normals, the trousers (hips, thighs and
    shins) by ``flare`` times how far down from the hips to the ankles it is (wide flared
    trousers; offsets of the body's own surface cannot join the legs into a skirt)."""
    if look.hair_volume <= 0 and look.flare <= 0:
        return None
    from oneshot_avatar.render.mesh import vertex_normals

    rest = rest_vertices.detach().cpu().float()
    joints = rest_joints.detach().cpu().float()
    normals = vertex_normals(rest, faces.cpu())
    dominant = lbs_weights.detach().argmax(dim=-1).cpu()
    names = np.asarray(JOINT_NAMES)[dominant.numpy()]
    offsets = torch.zeros_like(rest)
    if look.hair_volume > 0:
        hair = _hair_mask(rest, joints, torch.as_tensor(np.isin(names, list(_HEAD_JOINTS))))
        offsets[hair] = look.hair_volume * normals[hair]
    if look.flare > 0:
        hip_y = float(joints[JOINT_INDEX["pelvis"], 1])
        ankle_y = float((joints[JOINT_INDEX["left_ankle"], 1] + joints[JOINT_INDEX["right_ankle"], 1]) / 2)
        legs = torch.as_tensor(np.isin(names, list(_TROUSER_JOINTS | {"pelvis"})))
        down = ((hip_y - rest[:, 1]) / (hip_y - ankle_y)).clamp(0.0, 1.0)
        offsets[legs] = (look.flare * down[legs])[:, None] * normals[legs]
    return offsets.to(rest_vertices)


def standing_pose(*, arms_down: float = 1.15, elbow_bend: float = 0.25, head_turn: float = 0.0,
                  yaw: float = 0.0) -> dict[str, Tensor]:
    """SMPL-X parameters (batch 1) of a relaxed standing pose: arms lowered from the T-pose by
    ``arms_down`` radians, elbows slightly bent, an optional head turn and body yaw."""
    body_pose = torch.zeros(1, 21, 3)
    body_pose[0, JOINT_INDEX["left_shoulder"] - 1, 2] = -arms_down
    body_pose[0, JOINT_INDEX["right_shoulder"] - 1, 2] = arms_down
    body_pose[0, JOINT_INDEX["left_elbow"] - 1, 1] = -elbow_bend
    body_pose[0, JOINT_INDEX["right_elbow"] - 1, 1] = elbow_bend
    body_pose[0, JOINT_INDEX["head"] - 1, 1] = head_turn
    body_pose[0, JOINT_INDEX["left_hip"] - 1, 2] = 0.06
    body_pose[0, JOINT_INDEX["right_hip"] - 1, 2] = -0.06
    return {
        "global_orient": torch.tensor([[0.0, yaw, 0.0]]),
        "body_pose": body_pose,
        "left_hand_pose": torch.zeros(1, 15, 3),
        "right_hand_pose": torch.zeros(1, 15, 3),
        "jaw_pose": torch.zeros(1, 3),
        "leye_pose": torch.zeros(1, 3),
        "reye_pose": torch.zeros(1, 3),
        "transl": torch.zeros(1, 3),
    }


def background_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A soft studio backdrop: vertical gradient, a floor band and faint noise. float32 [H, W, 3]."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    top = np.array([0.80, 0.82, 0.85], np.float32)
    bottom = np.array([0.62, 0.60, 0.58], np.float32)
    image = top * (1 - y) + bottom * y
    image = np.broadcast_to(image, (height, width, 3)).copy()
    image += rng.normal(0, 0.01, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 1)


@dataclass
class SyntheticSubject:
    """A rendered synthetic person and everything known about it."""

    image: np.ndarray  # float32 [H, W, 3] the "photo" (person over the backdrop)
    mask: np.ndarray  # float32 [H, W] true coverage
    params: dict[str, Tensor]  # SMPL-X parameters of the photo (batch 1, betas included)
    camera: Camera  # the photo's camera
    texture: object  # SurfaceTexture on the body's faces
    look: Look
    name: str
    extra: dict = field(default_factory=dict)
    # The look's volume beyond the body: rest-mesh offsets [V, 3] (None: skin-tight).
    vertex_offsets: Tensor | None = None

    def truth_params(self, params: dict[str, Tensor]) -> dict[str, Tensor]:
        """``params`` with the subject's volume (``vertex_offsets``) added, for the body model."""
        if self.vertex_offsets is None:
            return dict(params)
        return {**params, "vertex_offsets": self.vertex_offsets}


def subject_camera(body, params: dict[str, Tensor], width: int, height: int,
                   fov_y_degrees: float = 35.0, fill: float = 0.86) -> Camera:
    """A front camera (looking along -Z) whose image the posed body fills to ``fill`` of its
    height."""
    with torch.no_grad():
        vertices = body(**params).vertices[0].cpu()
    lo, hi = vertices.min(0).values, vertices.max(0).values
    centre = (lo + hi) / 2
    half = float(hi[1] - lo[1]) / 2 / fill
    distance = half / math.tan(math.radians(fov_y_degrees) / 2)
    eye = (float(centre[0]), float(centre[1]), float(hi[2]) + distance)
    return look_at(eye, (float(centre[0]), float(centre[1]), 0.0), width=width, height=height,
                   fov_y_degrees=fov_y_degrees)


def make_subject(body, look: str | Look = "blue-stripes", *, size: int = 512,
                 pose: dict[str, Tensor] | None = None, texture_resolution: int = 6,
                 seed: int = 0) -> SyntheticSubject:
    """Dress, pose and photograph a synthetic person with ``body`` (CPU)."""
    from oneshot_avatar.render.mesh import SurfaceTexture, render_textured

    name = look if isinstance(look, str) else "custom"
    if isinstance(look, str):
        if look not in LOOKS:
            raise ValueError(f"unknown look {look!r}; known: {', '.join(LOOKS)}")
        look = LOOKS[look]
    betas = torch.zeros(1, body.num_betas)
    betas[0, : len(look.betas)] = torch.tensor(look.betas[: body.num_betas])
    params = dict(pose or standing_pose())
    params["betas"] = betas
    with torch.no_grad():
        rest = body(betas=betas)
        rest_vertices, rest_joints = rest.rest_vertices[0], rest.rest_joints[0]
        fn = outfit_function(rest_vertices, rest_joints, body.lbs_weights, look)
        texture = SurfaceTexture.from_function(rest_vertices, body.faces, fn, texture_resolution)
        offsets = look_offsets(rest_vertices, rest_joints, body.lbs_weights, body.faces, look)
        grown = params if offsets is None else {**params, "vertex_offsets": offsets}
        camera = subject_camera(body, grown, size, size)
        posed = body(**grown).vertices[0]
        rgb, mask = render_textured(posed, body.faces, texture, camera, background=(0.0, 0.0, 0.0))
    rgb, mask = rgb.cpu().numpy(), mask.cpu().numpy()
    backdrop = background_image(size, size, seed)
    image = rgb + backdrop * (1 - mask[..., None])  # rgb is premultiplied over black
    return SyntheticSubject(image=np.clip(image, 0, 1).astype(np.float32), mask=mask.astype(np.float32),
                            params=params, camera=camera, texture=texture, look=look, name=name,
                            vertex_offsets=offsets)


def save_photo(subject: SyntheticSubject, path, *, exif: bool = True) -> None:
    """Write the subject's photo as a PNG the way a camera would: with the focal length of its
    camera in EXIF (``FocalLengthIn35mmFilm``, from which the fit reads the field of view), or
    without (``exif=False``: the fit then assumes one)."""
    import math

    from PIL import Image

    from oneshot_avatar.subject.photo import exif_with_focal_length

    height, width = subject.image.shape[:2]
    focal = subject.camera.fx if width >= height else subject.camera.fy
    fov = math.degrees(2 * math.atan(max(width, height) / 2 / focal))
    extra = {"exif": exif_with_focal_length(fov, width, height)} if exif else {}
    Image.fromarray((np.clip(subject.image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path, **extra)
