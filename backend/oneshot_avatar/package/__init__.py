"""The ``.avatar`` package format (see :mod:`oneshot_avatar.package.avatar_file`)."""

from oneshot_avatar.package.avatar_file import (
    SCHEMA,
    Avatar,
    avatar_bytes,
    check_body_matches,
    load_avatar,
    save_avatar,
    standard_ply_bytes,
)

__all__ = ["SCHEMA", "Avatar", "avatar_bytes", "check_body_matches", "load_avatar", "save_avatar",
           "standard_ply_bytes"]
