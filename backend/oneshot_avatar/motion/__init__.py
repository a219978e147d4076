"""Motion: SMPL-X parameters per frame (``MotionClip``), file formats, built-in clips and
resampling. Numpy-only at import; torch is needed only by ``MotionClip.to_torch``."""

from oneshot_avatar.motion.builtin import builtin_clip, builtin_names
from oneshot_avatar.motion.clip import MotionClip
from oneshot_avatar.motion.face_units import ARKIT_FACE_UNITS
from oneshot_avatar.motion.io import load_motion, save_motion
from oneshot_avatar.motion.resample import resample

__all__ = [
    "ARKIT_FACE_UNITS",
    "MotionClip",
    "builtin_clip",
    "builtin_names",
    "load_motion",
    "resample",
    "save_motion",
]
