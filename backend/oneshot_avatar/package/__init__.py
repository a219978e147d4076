"""The ``.avatar`` package format, read and written (see :mod:`oneshot_avatar.package.avatar_file`;
the loaded :class:`oneshot_avatar.avatar.Avatar` lives in :mod:`oneshot_avatar.avatar`)."""

from oneshot_avatar.package.avatar_file import (
    SCHEMA,
    avatar_bytes,
    load_avatar,
    save_avatar,
    standard_ply_bytes,
)

__all__ = ["SCHEMA", "avatar_bytes", "load_avatar", "save_avatar", "standard_ply_bytes"]
