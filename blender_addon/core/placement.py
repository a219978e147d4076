"""Where an imported motion starts: facing the scene's front and standing where the avatar stands.

Motion files put the body anywhere (AMASS captures start metres from the origin, facing +X;
BVH files are in centimetres somewhere in the capture volume). The add-on starts every imported
clip at the avatar: frame 0 turned about the vertical (SMPL-X +Y) so the pelvis faces
``forward``, and moved horizontally so the pelvis is above the rest pelvis. The whole clip moves
rigidly with it (one rotation about the vertical through the world origin, one translation), so
the motion itself is unchanged. The height (feet on the floor) is set by the Blender layer from
the posed points (``motion_ops``).
"""

from __future__ import annotations

import math

import numpy as np

from . import pose as posemath
from .motion import Motion, change_world


def rotation_about_y(angle: float) -> np.ndarray:
    """``(3, 3)``: ``angle`` radians about +Y (+Z turns towards +X)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def facing_angle(direction) -> float | None:
    """Heading of ``direction`` (3,) on the horizontal plane, ``atan2(x, z)``; None when it is
    (nearly) vertical."""
    x, z = float(direction[0]), float(direction[2])
    if math.hypot(x, z) < 1e-3:
        return None
    return math.atan2(x, z)


def face_and_centre(motion: Motion, rest_pelvis, forward=(0.0, 0.0, 1.0)) -> Motion:
    """``motion`` turned about +Y so that frame 0's pelvis faces ``forward`` (its +Z axis,
    projected on the floor), and moved so that frame 0's pelvis is above ``rest_pelvis`` (x and
    z); heights are kept. ``rest_pelvis``: the rig's rest pelvis joint (3,), armature space."""
    rest_pelvis = np.asarray(rest_pelvis, dtype=np.float64)
    first = posemath.axis_angle_to_matrix(motion.full_pose[0, 0])
    heading = facing_angle(first[:, 2])
    if heading is None:  # lying face up or down: use the direction of the head instead
        heading = facing_angle(first[:, 1])
    target = facing_angle(np.asarray(forward, dtype=np.float64))
    turn = rotation_about_y(0.0 if heading is None or target is None else target - heading)
    full = motion.full_pose.copy()
    full[:, 0], transl = change_world(turn, full[:, 0], motion.transl, tuple(rest_pelvis))
    transl[:, [0, 2]] -= transl[0, [0, 2]]  # frame 0's pelvis (rest_pelvis + transl) above rest
    return Motion(fps=motion.fps, full_pose=full, transl=transl, expression=motion.expression,
                  expression_space=motion.expression_space, name=motion.name,
                  source=motion.source, betas=motion.betas, up_axis=motion.up_axis)
