"""The rig's *evaluated* pose: what constraints, IK controls, the COG control and drivers make
of the keys, read from the pose bones' matrices through the depsgraph. The one reader that
Render Avatar / Preview (the request's motion), Motion Export and Align Pose (the fit's
starting pose) use, so what is exported is what is rendered."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import bpy
import numpy as np

from .core.client import ServiceError
from .core.pose import quaternion_to_axis_angle
from .core.rows import rows_from_pose
from .core.smplx_rig import JOINT_NAMES, PARENTS, RIG_EXPRESSIONS_PROPERTY, ROOT_BONE

T = TypeVar("T")


def rig_expression_names(rig: bpy.types.Object) -> list[str]:
    """The rig's expression properties (on its root bone), in the package's order."""
    return [str(name) for name in rig.get(RIG_EXPRESSIONS_PROPERTY, [])]


def read_rig_pose(rig: bpy.types.Object, depsgraph) -> dict[str, Any]:
    """The rig's current evaluated pose: ``quaternions`` (55, 4) wxyz per SMPL-X joint
    (relative to the parent joint; the pelvis relative to the armature, so a turned ``root``
    bone turns the body), ``transl`` (3,) = where the pelvis is minus its rest position, and
    ``expression`` (E,) in the rig's expression order."""
    evaluated = rig.evaluated_get(depsgraph)
    bones = evaluated.pose.bones
    missing = [name for name in (ROOT_BONE, *JOINT_NAMES) if name not in bones]
    if missing:
        raise ServiceError(f"the rig {rig.name!r} has no bone {missing[0]!r}", field="rig",
                           hint="use a rig made by One-Shot Avatar's importer (re-import the "
                                "avatar)")
    rotations = [bones[name].matrix.to_3x3().normalized() for name in JOINT_NAMES]
    quaternions = []
    for index, rotation in enumerate(rotations):
        parent = PARENTS[index]
        local = rotation if parent < 0 else rotations[parent].transposed() @ rotation
        quaternions.append(tuple(local.to_quaternion()))
    pelvis = JOINT_NAMES[0]
    transl = bones[pelvis].head - rig.data.bones[pelvis].head_local
    root, original_root = bones[ROOT_BONE], rig.pose.bones[ROOT_BONE]
    expression = [float(root.get(name, original_root.get(name, 0.0)))
                  for name in rig_expression_names(rig)]
    return {"quaternions": quaternions, "transl": tuple(transl), "expression": expression}


def at_frames(context, frames: Iterable[int], read: Callable[[Any], T]) -> list[T]:
    """``read(depsgraph)`` at each of the scene's ``frames``; the scene is returned to its
    current frame (and subframe) afterwards, also when ``read`` raises."""
    scene = context.scene
    current = scene.frame_current, scene.frame_subframe
    out = []
    try:
        for frame in frames:
            scene.frame_set(frame)
            out.append(read(context.evaluated_depsgraph_get()))
    finally:
        scene.frame_set(current[0], subframe=current[1])
    return out


def full_pose(poses: list[dict[str, Any]]) -> np.ndarray:
    """``(T, 55, 3)`` axis-angle rotations of the poses from :func:`read_rig_pose`."""
    quaternions = np.array([pose["quaternions"] for pose in poses], dtype=np.float64)
    return quaternion_to_axis_angle(quaternions)


def motion_params(poses: list[dict[str, Any]], expression_names: list[str]) -> dict[str, Any]:
    """The API's per-frame SMPL-X rows for the poses from :func:`read_rig_pose`."""
    expression = [pose["expression"] for pose in poses] if expression_names else None
    return rows_from_pose(full_pose(poses), [pose["transl"] for pose in poses], expression)
