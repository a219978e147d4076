"""The SMPL-X skeleton as the add-on's rig sees it: joint names, parents, bone names and the
rig's conventions. Pure data (no bpy, no backend); mirrors ``oneshot_avatar.body.smplx_layout``
(a test checks they agree).

Rig conventions (the bpy layer builds exactly this):

- One armature object ``<name>_rig`` rotated +90 deg about X, so that armature space is SMPL-X's
  world (metres, +Y up, the body faces +Z, its left is +X) standing in Blender's Z-up world:
  Blender (x, y, z) = SMPL-X (x, -z, y).
- 56 bones: :data:`ROOT_BONE` at the origin, parent of ``pelvis``, then the 55 SMPL-X joints by
  name with the SMPL-X parents. Every bone's rest orientation is the identity in armature space
  (head at the rest joint, tail = head + (0, length, 0), roll 0), so an SMPL-X axis-angle
  (axis a, angle t) is the pose bone's quaternion ``Quaternion(a, t)`` directly.
- ``transl`` is the root bone's location; ``global_orient`` the pelvis bone's rotation.
- Expressions are custom float properties on the root pose bone, named as in the package's
  ``body_model.expression_names``.
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2",
    "right_middle3", "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2",
    "right_ring3", "right_thumb1", "right_thumb2", "right_thumb3",
)  # fmt: skip

PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)  # fmt: skip

NUM_JOINTS = 55
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

# SMPL-X parameter name -> (first joint, number of joints). ``global_orient`` drives the pelvis.
POSE_PARAM_JOINTS: dict[str, tuple[int, int]] = {
    "global_orient": (0, 1),
    "body_pose": (1, 21),
    "jaw_pose": (22, 1),
    "leye_pose": (23, 1),
    "reye_pose": (24, 1),
    "left_hand_pose": (25, 15),
    "right_hand_pose": (40, 15),
}

# Neutral SMPL-X rest pelvis (metres, Y-up), used when converting AMASS Z-up root translations
# (the same constant as the backend's ``NOMINAL_PELVIS_REST``).
NOMINAL_PELVIS_REST: tuple[float, float, float] = (0.0031, -0.3514, 0.0120)

ROOT_BONE = "root"
BONE_NAMES: tuple[str, ...] = (ROOT_BONE, *JOINT_NAMES)

# Custom properties the importer writes on the armature object; other parts of the add-on find
# rigs by RIG_TAG_PROPERTY.
RIG_TAG_PROPERTY = "oneshot_avatar_rig"  # value: RIG_TAG_VERSION
RIG_TAG_VERSION = 1
RIG_EXPRESSIONS_PROPERTY = "oneshot_avatar_expression_names"  # list of names, in order
RIG_BODY_SHA_PROPERTY = "oneshot_avatar_body_sha256"
RIG_BODY_KIND_PROPERTY = "oneshot_avatar_body_kind"
RIG_SOURCE_PROPERTY = "oneshot_avatar_source"  # the .avatar path it was imported from
RIG_AVATAR_ID_PROPERTY = "oneshot_avatar_avatar_id"  # server avatar id ("a_..."), or ""
RIG_SPLATS_PROPERTY = "oneshot_avatar_splats"  # the splats object (pointer)
RIG_FACE_PROPERTY = "oneshot_avatar_face"  # the face object (pointer; packages with offsets)

PCA_EXPRESSION_PREFIX = "expr_"  # SMPL-X has no expression names: expr_000, expr_001, ...
MIN_BONE_LENGTH = 0.01  # metres
MAX_BONE_LENGTH = 0.12


def bone_parent(name: str) -> str | None:
    """The parent bone of rig bone ``name`` (``root`` has none; ``pelvis``'s is ``root``)."""
    if name == ROOT_BONE:
        return None
    parent = PARENTS[JOINT_INDEX[name]]
    return ROOT_BONE if parent < 0 else JOINT_NAMES[parent]


def bone_lengths(rest_joints: np.ndarray) -> np.ndarray:
    """Display length (metres) of each joint's bone, ``(55,)``: half the distance to its
    farthest child, clamped to [MIN_BONE_LENGTH, MAX_BONE_LENGTH]; leaves get the minimum
    scaled up a bit. Lengths are cosmetic: every bone points along armature +Y at rest.

    rest_joints: ``(55, 3)`` rest joint positions in SMPL-X world (metres).
    """
    rest_joints = np.asarray(rest_joints, dtype=np.float64)
    lengths = np.full(NUM_JOINTS, 2 * MIN_BONE_LENGTH)
    for child, parent in enumerate(PARENTS):
        if parent >= 0:
            distance = float(np.linalg.norm(rest_joints[child] - rest_joints[parent]))
            lengths[parent] = max(lengths[parent], 0.5 * distance)
    return np.clip(lengths, MIN_BONE_LENGTH, MAX_BONE_LENGTH)


def rig_object_names(avatar_name: str) -> tuple[str, str]:
    """Names of the armature object and the splats object for an avatar called ``avatar_name``."""
    return f"{avatar_name}_rig", f"{avatar_name}_splats"


def expression_space(names) -> str | None:
    """Which expression space a body's expression names (a package's / a rig's) belong to:
    ``"smplx-pca"`` for SMPL-X's expression PCA (unnamed components, ``expr_000``,
    ``expr_001``, ...), ``"arkit52"`` for named face units (``jawOpen``, ...), None for a body
    without expressions. The add-on's one place that decides it; the twin of the backend's
    ``body.smplx_layout.expression_space``."""
    names = list(names)
    if not names:
        return None
    return "smplx-pca" if names[0] == f"{PCA_EXPRESSION_PREFIX}000" else "arkit52"
