"""Motion: SMPL-X parameters per frame (``MotionClip``), file formats, built-in clips and
resampling. Numpy-only at import; torch is needed only by ``MotionClip.to_torch``."""

from oneshot_avatar._lazy import lazy_exports

# name -> the module it lives in; imported on first use (so the CLI answers at once).
_EXPORTS = {
    "builtin_clip": "oneshot_avatar.motion.builtin",
    "builtin_names": "oneshot_avatar.motion.builtin",
    "MotionClip": "oneshot_avatar.motion.clip",
    "ARKIT_FACE_UNITS": "oneshot_avatar.motion.face_units",
    "load_motion": "oneshot_avatar.motion.io",
    "save_motion": "oneshot_avatar.motion.io",
    # (its module is not called ``resample``: importing a submodule of an exported name would
    # turn the package attribute into the module)
    "resample": "oneshot_avatar.motion.resampling",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
