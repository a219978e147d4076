"""Where each keypoint name sits on the body: an SMPL-X joint, a mesh vertex, or the mean of a
few joints.

Real SMPL-X meshes (10,475 vertices) use ``smplx``'s own vertex ids (nose, eyes, ears, toes,
heels, fingertips) and the model file's face landmarks. Any other mesh, the open default body
in particular, gets its landmark vertices found on the rest mesh by geometry (deterministic;
see :func:`find_landmark_vertices`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from torch import Tensor

from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from oneshot_avatar.fit.keypoints import FINGERS

SMPLX_NUM_VERTICES = 10475

# Keypoint landmarks that are mesh vertices (not joints). Face points use the 68-point layout.
VERTEX_LANDMARKS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe",
    "right_heel",
    *(f"{side}_hand_{finger}4" for side in ("left", "right") for finger in FINGERS),
    "face_30", "face_36", "face_39", "face_42", "face_45", "face_48", "face_54",
)  # fmt: skip

# Relative trust of each kind of correspondence. COCO/OpenPose hips sit lower than SMPL-X's hip
# joints (about a fifth of the way down the thigh), and are less precise; OpenPose's neck is
# between the shoulders rather than at SMPL-X's neck.
HIP_WEIGHT = 0.5
HIP_DOWN_THE_THIGH = 0.2
NECK_WEIGHT = 0.5
EAR_WEIGHT = 0.5
FACE_WEIGHT = 0.5
HAND_WEIGHT = 0.6

_SMPLX_VERTEX_KEYS = {
    "nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear",
    "right_ear": "rear", "left_big_toe": "LBigToe", "left_small_toe": "LSmallToe",
    "left_heel": "LHeel", "right_big_toe": "RBigToe", "right_small_toe": "RSmallToe",
    "right_heel": "RHeel",
    **{f"{side}_hand_{finger}4": f"{side[0]}{finger}" for side in ("left", "right")
       for finger in FINGERS},
}  # fmt: skip


@dataclass(frozen=True)
class KeypointTarget:
    """The body point a keypoint observes: a weighted mean of ``joints`` (SMPL-X joint indices)
    and ``vertices`` (mesh vertex ids), with ``blend`` the weights of the joints then the
    vertices (equal when empty; they sum to one); ``weight`` is how much the correspondence is
    trusted.

    An *anchored* target (``offset`` given) is one joint moved by ``offset`` (metres, rest-pose
    axes) turned with the joint ``frame`` (the joint itself or its parent): where a detector
    puts a landmark a little off SMPL-X's joint (see
    :mod:`oneshot_avatar.fit.pose_correspondence`)."""

    joints: tuple[int, ...] = ()
    vertices: tuple[int, ...] = ()
    weight: float = 1.0
    blend: tuple[float, ...] = ()
    frame: int = -1
    offset: tuple[float, ...] = ()

    @property
    def anchored(self) -> bool:
        return len(self.offset) == 3

    def coefficients(self) -> tuple[float, ...]:
        count = len(self.joints) + len(self.vertices)
        return self.blend if self.blend else (1.0 / count,) * count

    def position(self, joints: Tensor, vertices: Tensor,
                 rotations: Tensor | None = None) -> Tensor:
        """The observed point ``[3]`` on one posed body (``joints [55, 3]``, ``vertices [V, 3]``;
        ``rotations [55, 3, 3]``, the joints' world rotations, for an anchored target)."""
        if self.anchored:
            if rotations is None:
                raise ValueError("an anchored keypoint target needs the joints' rotations")
            offset = torch.tensor(self.offset, dtype=joints.dtype, device=joints.device)
            return joints[self.joints[0]] + rotations[self.frame] @ offset
        parts = torch.cat([joints[list(self.joints)], vertices[list(self.vertices)]])
        weights = torch.tensor(self.coefficients(), dtype=parts.dtype, device=parts.device)
        return (parts * weights[:, None]).sum(0)


def anchored_points(targets) -> tuple[Tensor, Tensor, Tensor] | None:
    """:class:`~oneshot_avatar.fit.sparse_body.SparseBody`'s ``anchored`` argument (joints,
    frames, offsets) for anchored ``targets``; None when there are none."""
    if not targets:
        return None
    return (torch.tensor([t.joints[0] for t in targets]), torch.tensor([t.frame for t in targets]),
            torch.tensor([t.offset for t in targets], dtype=torch.float64))


# MediaPipe's limb landmarks are measured on each body (pose_correspondence); without that
# measurement its hips are taken at the hip joints (the COCO-style blend down the thigh left
# the fitted hips ~2 px low at 256 px on photos, and the legs compensated by raking).
MEDIAPIPE_HIP_DOWN_THE_THIGH = 0.0


def is_mediapipe(source: str | None) -> bool:
    return bool(source) and source.startswith("mediapipe")


def hip_blend_for(source: str | None) -> float:
    """How far down the thigh a detector's hip points sit (0 = at the SMPL-X hip joint)."""
    if is_mediapipe(source):
        return MEDIAPIPE_HIP_DOWN_THE_THIGH
    return HIP_DOWN_THE_THIGH


def _joint_targets(hip_down: float = HIP_DOWN_THE_THIGH) -> dict[str, KeypointTarget]:
    j = JOINT_INDEX
    out: dict[str, KeypointTarget] = {}
    for side in ("left", "right"):
        for part in ("shoulder", "elbow", "wrist", "knee", "ankle"):
            out[f"{side}_{part}"] = KeypointTarget(joints=(j[f"{side}_{part}"],))
        out[f"{side}_hip"] = KeypointTarget(
            joints=(j[f"{side}_hip"], j[f"{side}_knee"]), weight=HIP_WEIGHT,
            blend=(1.0 - hip_down, hip_down))
        out[f"{side}_hand_wrist"] = KeypointTarget(joints=(j[f"{side}_wrist"],),
                                                   weight=HAND_WEIGHT)
        for finger in FINGERS:
            for k in (1, 2, 3):
                out[f"{side}_hand_{finger}{k}"] = KeypointTarget(
                    joints=(j[f"{side}_{finger}{k}"],), weight=HAND_WEIGHT)
    out["neck"] = KeypointTarget(joints=(j["left_shoulder"], j["right_shoulder"]),
                                 weight=NECK_WEIGHT)
    hip, knee = 0.5 * (1.0 - hip_down), 0.5 * hip_down
    out["mid_hip"] = KeypointTarget(
        joints=(j["left_hip"], j["right_hip"], j["left_knee"], j["right_knee"]),
        weight=HIP_WEIGHT, blend=(hip, hip, knee, knee))
    return out


def _vertex_weight(name: str) -> float:
    if name.endswith("_ear"):
        return EAR_WEIGHT
    if name.startswith("face_"):
        return FACE_WEIGHT
    if "_hand_" in name:
        return HAND_WEIGHT
    return 1.0


def keypoint_targets(body, source: str | None = None) -> dict[str, KeypointTarget]:
    """Keypoint name -> :class:`KeypointTarget` for ``body`` (a ``BodyModel``). Names without a
    target on this body (e.g. face contour points) are absent. ``source`` (the keypoints'
    source) picks detector-specific placements: the embedded detector's limb landmarks are
    anchored where it puts them on this body (see
    :mod:`oneshot_avatar.fit.pose_correspondence`; measured once per body, then cached), other
    sources' hips as :func:`hip_blend_for` says."""
    targets = _joint_targets(hip_blend_for(source))
    vertices = landmark_vertices(body)
    for name, vertex in vertices.items():
        targets[name] = KeypointTarget(vertices=(int(vertex),), weight=_vertex_weight(name))
    if "face_68" not in targets and "right_eye" in vertices:  # OpenPose pupils
        targets["face_68"] = KeypointTarget(vertices=(int(vertices["right_eye"]),),
                                            weight=FACE_WEIGHT)
        targets["face_69"] = KeypointTarget(vertices=(int(vertices["left_eye"]),),
                                            weight=FACE_WEIGHT)
    if is_mediapipe(source):
        from oneshot_avatar.fit.pose_correspondence import pose_correspondence

        measured = pose_correspondence(body, vertices)
        for name in (measured.names if measured is not None else ()):
            anchor = measured.offset_of(name)
            if anchor is not None and name in targets:
                joint, frame, offset = anchor
                targets[name] = KeypointTarget(joints=(joint,), weight=targets[name].weight,
                                               frame=frame, offset=offset)
    return targets


def landmark_vertices(body) -> dict[str, int]:
    """Keypoint name -> landmark vertex id on ``body``: ``smplx``'s ids on a real SMPL-X mesh,
    else found by geometry."""
    if body.info.num_vertices == SMPLX_NUM_VERTICES:
        return smplx_landmark_vertices(body)
    return find_landmark_vertices(body)


def smplx_landmark_vertices(body) -> dict[str, int]:
    """Landmark vertices of a real SMPL-X mesh: ``smplx``'s vertex ids, and face landmarks
    (68-point indices 17..67) from the file's ``lmk_faces_idx`` / ``lmk_bary_coords`` (the
    corner with the largest barycentric weight)."""
    from smplx.vertex_ids import vertex_ids

    ids = vertex_ids["smplx"]
    out = {name: int(ids[key]) for name, key in _SMPLX_VERTEX_KEYS.items()}
    out["face_30"] = out["nose"]
    faces_idx = getattr(body.smplx, "lmk_faces_idx", None)
    bary = getattr(body.smplx, "lmk_bary_coords", None)
    if faces_idx is not None and bary is not None and faces_idx.numel() == 51:
        faces = body.faces.detach().cpu().numpy()
        corner = bary.detach().cpu().numpy().argmax(axis=1)
        for k, (face, c) in enumerate(zip(faces_idx.cpu().numpy(), corner)):
            index = 17 + k
            if index in (30, 36, 39, 42, 45, 48, 54):
                out[f"face_{index}"] = int(faces[face, c])
    return out


# ---------------------------------------------------------------------------------------------
# Geometric landmarks on any SMPL-X-layout mesh


def _main_component(num_vertices: int, faces: np.ndarray) -> np.ndarray:  # bool [V]
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    graph = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                          shape=(num_vertices, num_vertices))
    _, labels = connected_components(graph, directed=False)
    return labels == np.bincount(labels).argmax()


def find_landmark_vertices(body) -> dict[str, int]:
    """Landmark vertex ids found on ``body``'s rest mesh (Y-up, facing +Z, SMPL-X rest pose):

    * nose tip: the most forward vertex of the head;
    * eyes (pupils): the most forward vertex of the region skinned to each eye joint (the
      eyeballs), else the skin vertex in front of the eye joint;
    * ears: the mean of the outermost head vertices at ear height behind the eyes;
    * heels: the most backward foot vertex within 3 cm of the sole; big / small toe: the
      foremost foot vertex weighted towards the inside / outside of the foot;
    * fingertips: the farthest vertex of each last finger segment along that segment;
    * face: nose tip (30); eye corners (36, 39, 42, 45) as the inner and outer ends of the
      eyelid region that ``eyeBlinkLeft/Right`` moves (when the body has those expressions);
      mouth corners (48, 54) as the points where the lip contours converge (densest vertices
      beside the mouth).
    """
    v = body.v_template.detach().cpu().double().numpy()
    faces = body.faces.detach().cpu().numpy()
    joints = body.shape_rest()[1][0].detach().cpu().double().numpy()
    dominant = body.lbs_weights.detach().cpu().numpy().argmax(axis=1)
    main = _main_component(len(v), faces)
    j = JOINT_INDEX

    def region(*names: str, on_main: bool = True) -> np.ndarray:
        mask = np.isin(dominant, [j[n] for n in names])
        if on_main:
            mask &= main
        return np.flatnonzero(mask)

    out: dict[str, int] = {}
    head = region("head", "jaw")
    nose = int(head[np.argmax(v[head, 2])])
    out["nose"] = out["face_30"] = nose
    centre_x = v[nose, 0]
    for side, eye_joint in (("left", "left_eye_smplhf"), ("right", "right_eye_smplhf")):
        eyeball = region(eye_joint, on_main=False)
        eyeball = eyeball[~main[eyeball]] if (~main[eyeball]).any() else eyeball
        if len(eyeball):
            out[f"{side}_eye"] = int(eyeball[np.argmax(v[eyeball, 2])])
        else:
            ahead = joints[j[eye_joint]] + np.array([0.0, 0.0, 0.03])
            out[f"{side}_eye"] = int(head[np.argmin(np.linalg.norm(v[head] - ahead, axis=1))])

    eye_y = 0.5 * (joints[j["left_eye_smplhf"], 1] + joints[j["right_eye_smplhf"], 1])
    eye_z = 0.5 * (joints[j["left_eye_smplhf"], 2] + joints[j["right_eye_smplhf"], 2])
    band = head[(np.abs(v[head, 1] - (eye_y - 0.02)) < 0.03) & (v[head, 2] < eye_z - 0.06)]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        lateral = sign * (v[band, 0] - centre_x)
        outer = band[lateral > lateral.max() - 0.012]
        centre = v[outer].mean(axis=0)
        out[f"{side}_ear"] = int(outer[np.argmin(np.linalg.norm(v[outer] - centre, axis=1))])

    for side, sign in (("left", 1.0), ("right", -1.0)):
        foot = region(f"{side}_ankle", f"{side}_foot")
        sole = v[foot, 1].min()
        low = foot[v[foot, 1] < sole + 0.03]
        out[f"{side}_heel"] = int(low[np.argmin(v[low, 2])])
        toes = region(f"{side}_foot")
        medial = -sign * (v[toes, 0] - joints[j[f"{side}_foot"], 0])
        out[f"{side}_big_toe"] = int(toes[np.argmax(v[toes, 2] + 0.35 * medial)])
        outside = toes[-medial > (-medial).max() - 0.015]  # the little toe's side
        out[f"{side}_small_toe"] = int(outside[np.argmax(v[outside, 2])])
        for finger in FINGERS:
            last, before = j[f"{side}_{finger}3"], j[f"{side}_{finger}2"]
            segment = region(f"{side}_{finger}3")
            direction = joints[last] - joints[before]
            direction /= np.linalg.norm(direction)
            reach = (v[segment] - joints[last]) @ direction
            out[f"{side}_hand_{finger}4"] = int(segment[np.argmax(reach)])

    out.update(_eye_corners(body, v, main, joints))
    out.update(_mouth_corners(v, head, nose))
    return out


def _eye_corners(body, v: np.ndarray, main: np.ndarray, joints: np.ndarray) -> dict[str, int]:
    names = body.info.expression_names
    if "eyeBlinkLeft" not in names or "eyeBlinkRight" not in names:
        return {}
    dirs = body.expression_directions.detach().cpu().double().numpy()
    out = {}
    # 68-point layout: 36 right outer, 39 right inner, 42 left inner, 45 left outer.
    for unit, eye, sign, inner, outer in (
        ("eyeBlinkLeft", "left_eye_smplhf", 1.0, 42, 45),
        ("eyeBlinkRight", "right_eye_smplhf", -1.0, 39, 36),
    ):
        centre = joints[JOINT_INDEX[eye]]
        moved = np.linalg.norm(dirs[:, :, names.index(unit)], axis=1)
        near = np.linalg.norm(v[:, :2] - centre[:2], axis=1) < 0.025
        lid = np.flatnonzero(main & near & (moved > 0.1 * moved.max())
                             & (v[:, 1] > centre[1] - 0.012))
        if len(lid) < 2:
            continue
        lateral = sign * (v[lid, 0] - centre[0])
        out[f"face_{inner}"] = int(lid[np.argmin(lateral)])
        out[f"face_{outer}"] = int(lid[np.argmax(lateral)])
    return out


def _mouth_corners(v: np.ndarray, head: np.ndarray, nose: int) -> dict[str, int]:
    centre_x, nose_y, nose_z = v[nose]
    area = head[(v[head, 1] < nose_y - 0.015) & (v[head, 1] > nose_y - 0.06)
                & (v[head, 2] > nose_z - 0.04)]
    tree = cKDTree(v[head])
    out = {}
    for index, sign in ((54, 1.0), (48, -1.0)):  # 54: left corner, 48: right corner
        lateral = sign * (v[area, 0] - centre_x)
        side = area[(lateral > 0.01) & (lateral < 0.04)]
        if not len(side):
            continue
        density = np.array([len(n) for n in tree.query_ball_point(v[side], 0.003)])
        out[f"face_{index}"] = int(side[np.argmax(density)])
    return out
