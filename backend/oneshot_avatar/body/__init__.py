"""The body layer: SMPL-X layout, the ``BodyModel`` over ``smplx``, and the open default body."""

from oneshot_avatar._lazy import lazy_exports

# name -> the module it lives in; imported on first use (so the CLI answers at once).
_EXPORTS = {
    "BodyModel": "oneshot_avatar.body.model",
    "BodyModelInfo": "oneshot_avatar.body.model",
    "BodyOutput": "oneshot_avatar.body.model",
    "default_cache_dir": "oneshot_avatar.body.model",
    "ensure_open_body": "oneshot_avatar.body.model",
    "load_body_model": "oneshot_avatar.body.model",
    "open_body_path": "oneshot_avatar.body.model",
    "resolve_body_model": "oneshot_avatar.body.model",
    "JOINT_NAMES": "oneshot_avatar.body.smplx_layout",
    "NUM_JOINTS": "oneshot_avatar.body.smplx_layout",
    "PARENTS": "oneshot_avatar.body.smplx_layout",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [*_EXPORTS]
