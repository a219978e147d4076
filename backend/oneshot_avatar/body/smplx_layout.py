"""The SMPL-X skeleton layout: the 55 joints, their names (as in the ``smplx`` package), parents,
and how SMPL-X parameter groups map onto joints. Pure data, no torch, so the Blender add-on can
mirror it."""

from __future__ import annotations

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
NUM_BODY_JOINTS = 21  # joints 1..21, the rows of ``body_pose``
NUM_HAND_JOINTS = 15
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

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
POSE_PARAM_NAMES: tuple[str, ...] = tuple(POSE_PARAM_JOINTS)

# Neutral SMPL-X rest position of the pelvis joint (metres, Y-up), from the ``mannequin-x``
# calibration (``joint_rest[0]``). Used to convert root translations between up axes when the
# body the motion will drive is not known yet.
NOMINAL_PELVIS_REST: tuple[float, float, float] = (0.0031, -0.3514, 0.0120)

assert len(JOINT_NAMES) == NUM_JOINTS and len(PARENTS) == NUM_JOINTS
assert all(p < i for i, p in enumerate(PARENTS))


# ------------------------------------------------------------------ expression spaces
PCA_EXPRESSION_PREFIX = "expr_"  # SMPL-X files have no expression names: expr_000, expr_001, ...


def expression_space(names) -> str | None:
    """Which expression space a body's expression names belong to: ``"smplx-pca"`` for SMPL-X's
    expression PCA (unnamed components, called ``expr_000``, ``expr_001``, ...), ``"arkit52"``
    for the open body's named ARKit face units (``jawOpen``, ...), None for a body without
    expressions. The one place that decides it (motion clips carry the same names)."""
    names = list(names)
    if not names:
        return None
    return "smplx-pca" if names[0] == f"{PCA_EXPRESSION_PREFIX}000" else "arkit52"
