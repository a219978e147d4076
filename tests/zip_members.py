"""Editing a zip (an ``.avatar`` package) member by member, for the tests of damaged packages.
Plain Python: the main suite and the Blender-side tests (tests/blender/, Blender's Python)
both import it."""

from __future__ import annotations

import zipfile
from pathlib import Path


def rewrite_zip(path: str | Path, out: str | Path, **members: bytes | str | None) -> Path:
    """A copy of zip ``path`` at ``out`` with the named members' data replaced (``None``: the
    member left out); returns ``out``."""
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            data = members.get(name, zin.read(name))
            if data is not None:
                zout.writestr(name, data)
    return Path(out)
