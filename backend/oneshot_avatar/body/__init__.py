"""The body layer: SMPL-X layout, the ``BodyModel`` over ``smplx``, and the open default body."""

from oneshot_avatar._lazy import lazy_exports

# submodule -> the names it exports; imported on first use (so the CLI answers at once).
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".model": ("BodyModel", "BodyModelInfo", "BodyOutput", "default_cache_dir",
               "ensure_open_body", "load_body_model", "open_body_path", "resolve_body_model"),
    ".smplx_layout": ("JOINT_NAMES", "NUM_JOINTS", "PARENTS"),
})
