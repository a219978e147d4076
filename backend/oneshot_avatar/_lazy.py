"""Lazy package exports (PEP 562), in the style of gsplat and scipy: a package's ``__init__``
names what it exports and the module each comes from, and the module is imported on first use.
So ``import oneshot_avatar.render.cli`` does not load torch, and ``oneshot-avatar --help``
answers at once."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable


def lazy_exports(
    package: str, modules: dict[str, tuple[str, ...]]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``, which exports the names of
    each of its ``modules`` (``".model": ("BodyModel", ...)``, relative to the package) lazily.

    The first access imports the module and stores the value in the package, so later accesses
    are plain attribute lookups."""
    exports = {name: importlib.util.resolve_name(module, package)
               for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__, list(exports)
