"""The body layer: SMPL-X layout, the ``BodyModel`` over ``smplx``, and the open default body."""

from oneshot_avatar.body.model import (
    BodyModel,
    BodyModelInfo,
    BodyOutput,
    default_cache_dir,
    ensure_open_body,
    load_body_model,
    open_body_path,
    resolve_body_model,
)
from oneshot_avatar.body.smplx_layout import JOINT_NAMES, NUM_JOINTS, PARENTS

__all__ = [
    "JOINT_NAMES",
    "NUM_JOINTS",
    "PARENTS",
    "BodyModel",
    "BodyModelInfo",
    "BodyOutput",
    "default_cache_dir",
    "ensure_open_body",
    "load_body_model",
    "open_body_path",
    "resolve_body_model",
]
