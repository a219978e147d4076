"""The avatar representation: 3D Gaussians bound to the SMPL-X mesh, how they are posed, what
the package's rig carries (:mod:`oneshot_avatar.avatar.rig`), and a loaded avatar (Gaussians,
body shape and package metadata; read and written by :mod:`oneshot_avatar.package`)."""

from __future__ import annotations

from oneshot_avatar.avatar.gaussians import (
    FixedPose,
    MeshGaussians,
    PosedGaussians,
    pose_gaussians,
    pose_gaussians_fixed,
)
from oneshot_avatar.avatar.model import Avatar, check_body_matches

__all__ = ["Avatar", "FixedPose", "MeshGaussians", "PosedGaussians", "check_body_matches",
           "pose_gaussians", "pose_gaussians_fixed"]
