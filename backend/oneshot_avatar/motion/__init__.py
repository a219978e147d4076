"""Motion: SMPL-X parameters per frame (``MotionClip``), file formats, built-in clips and
resampling. Numpy-only at import; torch is needed only by ``MotionClip.to_torch``."""

from oneshot_avatar._lazy import lazy_exports

# submodule -> the names it exports; imported on first use (so the CLI answers at once).
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".builtin": ("builtin_clip", "builtin_names"),
    ".clip": ("MotionClip",),
    ".face_units": ("ARKIT_FACE_UNITS",),
    ".io": ("load_motion", "save_motion"),
    # (its module is not called ``resample``: importing a submodule of an exported name would
    # turn the package attribute into the module)
    ".resampling": ("resample",),
})
