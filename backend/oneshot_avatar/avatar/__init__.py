"""The avatar representation: 3D Gaussians bound to the SMPL-X mesh, how they are posed, what
the package's rig carries (:mod:`oneshot_avatar.avatar.rig`), and a loaded avatar (Gaussians,
body shape and package metadata; read and written by :mod:`oneshot_avatar.package`)."""

from __future__ import annotations

from oneshot_avatar.avatar.gaussians import MeshGaussians, PosedGaussians, pose_gaussians
from oneshot_avatar.avatar.model import Avatar, check_body_matches

__all__ = ["Avatar", "MeshGaussians", "PosedGaussians", "check_body_matches", "pose_gaussians"]
