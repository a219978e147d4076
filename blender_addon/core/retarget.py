"""Retargeting a skeleton's animation (e.g. a BVH imported by Blender) onto the SMPL-X rig by
bone names, in numpy (no bpy).

Method (rest-pose aware, world-frame differences): for each mapped SMPL-X joint j with source
bone b, the world rotation the source bone has gained since its rest pose,
``D_b(t) = S_b(t) S_b(rest)^T``, becomes the SMPL-X joint's world rotation (the SMPL-X rest
has identity bone frames, so a world delta *is* its world rotation), after a yaw alignment A
that turns the source's facing into SMPL-X's (+Z forward, +X left): ``W_j = A D_b A^T``.
Unmapped joints follow their parent (``W_j = W_parent``). Local rotations are
``L_j = W_parent^T W_j``.

Rest poses differ (CMU's rest has the legs splayed, Mixamo's may be an A-pose), so each mapped
joint also gets a rest correction ``C_j``: the smallest rotation taking the SMPL-X rest
direction of the bone (joint -> its main child joint) onto the aligned source rest direction
(mapped bone -> mapped child bone). Then ``W_j = A D_b A^T C_j``, so the bone points where the
source bone points in every frame.

All source matrices passed in must already be expressed in the rig's armature space (SMPL-X
world, +Y up): the bpy layer converts with the rig object's inverse world matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .smplx_rig import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS

# SMPL-X joint -> source bone name (compared after :func:`normalize_bone_name`).
_SIDES = (("left", "Left"), ("right", "Right"))
_MIXAMO: dict[str, str] = {
    "pelvis": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2",
    "neck": "Neck", "head": "Head",
}
_CMU: dict[str, str] = {
    "pelvis": "Hips", "spine1": "LowerBack", "spine2": "Spine", "spine3": "Spine1",
    "neck": "Neck", "head": "Head",
}
for _side, _Side in _SIDES:
    _limbs = {
        f"{_side}_hip": f"{_Side}UpLeg", f"{_side}_knee": f"{_Side}Leg",
        f"{_side}_ankle": f"{_Side}Foot", f"{_side}_foot": f"{_Side}ToeBase",
        f"{_side}_collar": f"{_Side}Shoulder", f"{_side}_shoulder": f"{_Side}Arm",
        f"{_side}_elbow": f"{_Side}ForeArm", f"{_side}_wrist": f"{_Side}Hand",
    }
    _MIXAMO.update(_limbs)
    _CMU.update(_limbs)
    for _finger, _mixamo_finger in (("index", "Index"), ("middle", "Middle"), ("ring", "Ring"),
                                    ("pinky", "Pinky"), ("thumb", "Thumb")):
        for _k in (1, 2, 3):
            _MIXAMO[f"{_side}_{_finger}{_k}"] = f"{_Side}Hand{_mixamo_finger}{_k}"
# The CMU mocap database's own ASF joint names (BVH conversions that kept them).
_CMU_ASF: dict[str, str] = {
    "pelvis": "hip", "spine1": "lowerback", "spine2": "upperback", "spine3": "thorax",
    "neck": "lowerneck", "head": "head",
}
for _side, _letter in (("left", "l"), ("right", "r")):
    _CMU_ASF.update({
        f"{_side}_hip": f"{_letter}femur", f"{_side}_knee": f"{_letter}tibia",
        f"{_side}_ankle": f"{_letter}foot", f"{_side}_foot": f"{_letter}toes",
        f"{_side}_collar": f"{_letter}clavicle", f"{_side}_shoulder": f"{_letter}humerus",
        f"{_side}_elbow": f"{_letter}radius", f"{_side}_wrist": f"{_letter}wrist",
    })

BONE_MAPS: dict[str, dict[str, str]] = {"mixamo": _MIXAMO, "cmu": _CMU, "cmu-asf": _CMU_ASF}
BONE_MAP_LABELS: dict[str, str] = {
    "mixamo": "Mixamo (mixamorig:Hips, Spine, Spine1, Spine2, LeftUpLeg, LeftHandIndex1, ...)",
    "cmu": "CMU BVH (Hips, LowerBack, Spine, Spine1, LeftUpLeg, ...)",
    "cmu-asf": "CMU ASF names (hip, lowerback, upperback, thorax, lfemur, ...)",
}
BODY_JOINTS = 22  # pelvis + 21 body joints (SMPL-X joints 0..21); the rest are face and hands
# Without these a retarget is meaningless.
REQUIRED_JOINTS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee")


class RetargetError(ValueError):
    """A source skeleton that cannot be retargeted; ``field`` names what is missing."""

    def __init__(self, message: str, *, field: str | None = None):
        self.message = message
        self.field = field
        super().__init__(f"field '{field}': {message}" if field else message)


def normalize_bone_name(name: str) -> str:
    """Lower-case name without a namespace prefix (``mixamorig:``, ``mixamorig1:``) and without
    ``_``, ``-``, ``.`` and spaces."""
    base = name.rsplit(":", 1)[-1]
    return "".join(ch for ch in base.lower() if ch not in "_-. ")


def resolve_bone_map(map_name: str, source_bones: Iterable[str]) -> dict[str, str]:
    """SMPL-X joint -> actual source bone name for ``map_name`` (one of :data:`BONE_MAPS`),
    keeping only bones present in ``source_bones``."""
    if map_name not in BONE_MAPS:
        raise RetargetError(f"unknown bone map {map_name!r}; choose one of "
                            f"{', '.join(BONE_MAPS)}", field="bone_map")
    by_key = {normalize_bone_name(b): b for b in source_bones}
    out = {}
    for joint, bone in BONE_MAPS[map_name].items():
        actual = by_key.get(normalize_bone_name(bone))
        if actual is not None:
            out[joint] = actual
    return out


def detect_bone_map(source_bones: Iterable[str]) -> tuple[str, dict[str, str]]:
    """The bone map matching the most of ``source_bones`` and its resolved mapping. Raises
    :class:`RetargetError` when none maps the pelvis, hips and knees."""
    bones = list(source_bones)
    scored = []
    for name in BONE_MAPS:
        mapping = resolve_bone_map(name, bones)
        # The body joints decide; fingers only break ties. (A CMU BVH has LeftHandIndex1 too,
        # so counting fingers made Mixamo's map win on CMU files and drop LowerBack.)
        body = sum(1 for joint in mapping if JOINT_INDEX[joint] < BODY_JOINTS)
        scored.append((body, len(mapping), name, mapping))
    scored.sort(key=lambda item: (-item[0], -item[1]))
    _, _, name, mapping = scored[0]
    missing = [j for j in REQUIRED_JOINTS if j not in mapping]
    if missing:
        raise RetargetError(
            f"no known skeleton: the best map ({name}) finds no bone for {', '.join(missing)}; "
            f"source bones: {', '.join(bones[:12])}{'...' if len(bones) > 12 else ''}. Supported "
            f"skeletons: {'; '.join(BONE_MAP_LABELS.values())}", field="bone_map")
    return name, mapping


def facing_alignment(left_hip: np.ndarray, right_hip: np.ndarray) -> np.ndarray:
    """Yaw rotation ``(3, 3)`` about +Y taking the source's left direction (right hip -> left
    hip, projected on the floor) to SMPL-X's +X. Positions in SMPL-X world (Y-up)."""
    left = np.asarray(left_hip, np.float64) - np.asarray(right_hip, np.float64)
    left[1] = 0.0
    norm = np.linalg.norm(left)
    if norm < 1e-9:
        return np.eye(3)
    x, z = left[0] / norm, left[2] / norm
    # Rotation about +Y by angle a maps (x, 0, z) to (x cos a + z sin a, 0, -x sin a + z cos a);
    # choose a so the result is (1, 0, 0): cos a = x, sin a = z.
    return np.array([[x, 0.0, z], [0.0, 1.0, 0.0], [-z, 0.0, x]])


# The child joint that gives a joint's bone direction (joints with several children).
_MAIN_CHILD = {"spine3": "neck", "left_wrist": "left_middle1", "right_wrist": "right_middle1"}
_NO_DIRECTION = {"pelvis", "head"}  # orientation comes from the facing / has no main child


def main_child(joint: str) -> str | None:
    """The SMPL-X joint whose rest position gives ``joint``'s bone direction, or None."""
    if joint in _NO_DIRECTION:
        return None
    if joint in _MAIN_CHILD:
        return _MAIN_CHILD[joint]
    children = [JOINT_NAMES[c] for c, p in enumerate(PARENTS) if p == JOINT_INDEX[joint]]
    return children[0] if len(children) == 1 else None


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation ``(3, 3)`` taking direction ``a`` onto direction ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis), float(np.dot(a, b))
    if sin < 1e-9:
        if cos > 0:
            return np.eye(3)
        other = np.eye(3)[np.argmin(np.abs(a))]
        axis = np.cross(a, other)
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = axis / sin
    skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sin * skew + (1 - cos) * skew @ skew


def rest_corrections(
    source_rest_positions: Mapping[str, np.ndarray],  # bone -> (3,) head position at rest
    target_rest_joints: np.ndarray,  # (55, 3) the rig's rest joints
    mapping: Mapping[str, str],  # SMPL-X joint -> source bone
    alignment: np.ndarray | None = None,  # (3, 3)
) -> np.ndarray:
    """Per-joint rest corrections ``(55, 3, 3)`` (identity where a direction is unknown)."""
    align = np.eye(3) if alignment is None else np.asarray(alignment, np.float64)
    out = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
    target = np.asarray(target_rest_joints, np.float64)
    for joint, bone in mapping.items():
        child = main_child(joint)
        if child is None or child not in mapping:
            continue
        source_dir = align @ (np.asarray(source_rest_positions[mapping[child]], np.float64)
                              - np.asarray(source_rest_positions[bone], np.float64))
        target_dir = target[JOINT_INDEX[child]] - target[JOINT_INDEX[joint]]
        if np.linalg.norm(source_dir) > 1e-9 and np.linalg.norm(target_dir) > 1e-9:
            out[JOINT_INDEX[joint]] = _rotation_between(target_dir, source_dir)
    return out


def retarget_rotations(
    source_rest: Mapping[str, np.ndarray],  # bone -> (3, 3) rest world rotation
    source_pose: Mapping[str, np.ndarray],  # bone -> (T, 3, 3) posed world rotations
    mapping: Mapping[str, str],  # SMPL-X joint -> source bone
    alignment: np.ndarray | None = None,  # (3, 3) yaw alignment, see facing_alignment
    corrections: np.ndarray | None = None,  # (55, 3, 3), see rest_corrections
) -> np.ndarray:
    """Local SMPL-X joint rotations ``(T, 55, 3, 3)`` (the rig's pose bone rotations)."""
    align = np.eye(3) if alignment is None else np.asarray(alignment, np.float64)
    fix = np.tile(np.eye(3), (NUM_JOINTS, 1, 1)) if corrections is None else corrections
    num_frames = next(iter(source_pose.values())).shape[0]
    world = np.zeros((num_frames, NUM_JOINTS, 3, 3))
    local = np.zeros((num_frames, NUM_JOINTS, 3, 3))
    for j, parent in enumerate(PARENTS):
        bone = mapping.get(JOINT_NAMES[j])
        if bone is not None:
            delta = np.asarray(source_pose[bone], np.float64) @ np.asarray(
                source_rest[bone], np.float64).T
            world[:, j] = align @ delta @ align.T @ fix[j]
        elif parent >= 0:
            world[:, j] = world[:, parent]
        else:
            world[:, j] = np.eye(3)
        parent_world = np.eye(3) if parent < 0 else world[:, parent]
        local[:, j] = np.swapaxes(parent_world, -1, -2) @ world[:, j]
    return local


def leg_length(positions: Mapping[str, np.ndarray], hip: str, knee: str, ankle: str) -> float:
    """Hip-knee plus knee-ankle distance from rest positions (any unit)."""
    p = {k: np.asarray(positions[k], np.float64) for k in (hip, knee, ankle)}
    return float(np.linalg.norm(p[knee] - p[hip]) + np.linalg.norm(p[ankle] - p[knee]))


def root_translation(
    hips_rest: np.ndarray,  # (3,) source hips rest position, SMPL-X world axes, source units
    hips_pose: np.ndarray,  # (T, 3) posed hips positions
    scale: float,  # target length / source length
    alignment: np.ndarray | None = None,  # (3, 3)
) -> np.ndarray:
    """The rig's ``transl`` ``(T, 3)`` metres: the source hips' displacement from rest, scaled
    and yaw-aligned (the SMPL-X pelvis joint sits at its rest position plus ``transl``)."""
    align = np.eye(3) if alignment is None else np.asarray(alignment, np.float64)
    moved = np.asarray(hips_pose, np.float64) - np.asarray(hips_rest, np.float64)
    return scale * moved @ align.T


def smplx_leg_length(rest_joints: np.ndarray) -> float:
    """Left leg length of the rig's rest skeleton ``(55, 3)`` (metres)."""
    positions = {name: rest_joints[JOINT_INDEX[name]]
                 for name in ("left_hip", "left_knee", "left_ankle")}
    return leg_length(positions, "left_hip", "left_knee", "left_ankle")
