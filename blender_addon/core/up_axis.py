"""Which way is up in a motion file, decided from the data: the add-on's numpy twin of the
backend's ``oneshot_avatar.motion.up_axis`` (same rule, same wording; parity-tested in
``tests/addon/test_core_motion.py``).

1. The pelvis's up direction under the root rotation, averaged over the clip: when its largest
   component is at least :data:`MIN_EVIDENCE` that axis is up (Z-up captures: +Z; Y-up: +Y;
   camera-style, as TalkSHOW exports: -Y).
2. Otherwise the spread of ``trans``: a clip that travels at least :data:`MIN_TRAVEL_M` m along
   one of Y/Z and at most a third of that along the other has the narrow one vertical.
3. Otherwise the format's convention (AMASS +Z, ``.smpl`` +Y, TalkSHOW -Y).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# File up axis -> rotation of the file's world into our Y-up world (the axis goes to +Y).
TO_Y_UP: dict[str, np.ndarray] = {
    "+y": np.eye(3),
    "+z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),  # -90 deg about +X
    "-y": np.diag([1.0, -1.0, -1.0]),  # 180 deg about +X: camera-style (y down, z forward)
    "-z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),  # +90 deg about +X
    "+x": np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),  # +90 deg about +Z
    "-x": np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),  # -90 deg about +Z
}
DESCRIPTION = {"+y": "Y-up", "+z": "Z-up", "-y": "camera-style: y down, facing away",
               "-z": "Z-down", "+x": "X-up", "-x": "X-down"}
MIN_EVIDENCE = 0.5
MIN_TRAVEL_M = 0.5


@dataclass(frozen=True)
class UpAxis:
    """The decision: ``axis`` (the file's up direction, a key of :data:`TO_Y_UP`), ``matrix``
    (3, 3) file world -> our world, ``reason`` (one sentence for people), ``detected`` (False when
    the caller forced it)."""

    axis: str
    reason: str
    detected: bool = True

    @property
    def matrix(self) -> np.ndarray:
        return TO_Y_UP[self.axis]

    def summary(self) -> str:
        turned = "kept as is" if self.axis == "+y" else "turned upright"
        how = "detected" if self.detected else "given"
        return f"{self.axis.upper()} ({DESCRIPTION[self.axis]}; {how}, {turned}): {self.reason}"


def _pelvis_up(global_orient: np.ndarray) -> np.ndarray:
    """``(T, 3)`` axis-angle -> ``(T, 3)`` the second column of each rotation (Rodrigues)."""
    rotvec = np.asarray(global_orient, dtype=np.float64).reshape(-1, 3)
    angle = np.linalg.norm(rotvec, axis=1, keepdims=True)
    safe = np.where(angle > 1e-12, angle, 1.0)
    axis = np.where(angle > 1e-12, rotvec / safe, 0.0)
    e_y = np.array([0.0, 1.0, 0.0])
    cos, sin = np.cos(angle), np.sin(angle)
    # R e = e cos + (k x e) sin + k (k . e)(1 - cos)
    return (e_y * cos + np.cross(axis, e_y) * sin
            + axis * axis[:, 1:2] * (1.0 - cos))


def _fmt(vector: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:+.2f}" for v in vector) + ")"


def decide_up_axis(global_orient: np.ndarray,  # (T, 3) root axis-angle in the file's world
                   transl: np.ndarray,  # (T, 3) metres in the file's world
                   convention: str,  # the format's usual up axis, a key of TO_Y_UP
                   ) -> UpAxis:
    """Decide the file's up axis from the root rotations, then ``transl``, then the format's
    ``convention`` (see the module docstring)."""
    up = _pelvis_up(global_orient)
    mean = up.mean(axis=0)
    index = int(np.argmax(np.abs(mean)))
    if abs(mean[index]) >= MIN_EVIDENCE:
        axis = ("+" if mean[index] > 0 else "-") + "xyz"[index]
        share = float(np.mean(up[:, index] * np.sign(mean[index]) > 0.5))
        return UpAxis(axis, f"the pelvis's up direction averages {_fmt(mean)} in the file, "
                            f"along {axis.upper()} (within 60 degrees of it in {share:.0%} of "
                            f"the frames)")
    spread = np.ptp(np.asarray(transl, dtype=np.float64).reshape(-1, 3), axis=0)
    sign = convention[0]
    for vertical, other in ((1, 2), (2, 1)):
        if spread[other] >= MIN_TRAVEL_M and spread[vertical] <= spread[other] / 3:
            axis = sign + "xyz"[vertical]
            return UpAxis(axis, f"the pelvis's up direction is inconclusive ({_fmt(mean)}); the "
                                f"root travels {spread[other]:.2f} m along {'xyz'[other].upper()} "
                                f"but only {spread[vertical]:.2f} m along "
                                f"{'xyz'[vertical].upper()}, so {'xyz'[vertical].upper()} is "
                                f"vertical (sign from the format's convention)")
    return UpAxis(convention, f"the pelvis's up direction is inconclusive ({_fmt(mean)}) and the "
                              f"root's travel {_fmt(spread)} m shows no floor plane; using the "
                              f"format's convention {convention.upper()}")


def given_up_axis(axis: str, why: str) -> UpAxis:
    """An up axis the caller states (``--layout``), not detected."""
    return UpAxis(axis, why, detected=False)
