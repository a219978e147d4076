"""One-Shot Avatar: from one photo, an animatable whole-body avatar of 3D Gaussians on SMPL-X."""

__version__ = "0.1.0"

from oneshot_avatar.errors import UserError

__all__ = ["UserError", "__version__"]
