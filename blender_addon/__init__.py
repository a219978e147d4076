"""One-Shot Avatar for Blender: reconstruct an avatar from one photo on a `oneshot-avatar serve`
backend, import it as an SMPL-X rig with Gaussian splats, pose/animate it, render it back.

Loads as a Blender 4.2+ extension (``blender_manifest.toml``) or as a legacy add-on
(``bl_info``). Nothing here imports ``bpy`` at module level: ``core/`` is plain Python that
tests import without Blender; the bpy modules are imported by :func:`register`.
"""

from __future__ import annotations

import functools
import importlib

bl_info = {
    "name": "One-Shot Avatar",
    "author": "One-Shot Avatar contributors",
    "version": (0, 1, 0),
    "blender": (5, 0, 0),
    "location": "3D Viewport > Sidebar > Avatar",
    "description": "Reconstruct, pose and render Gaussian avatars from one photo",
    "doc_url": "",
    "category": "Animation",
}

# Registered in this order, unregistered in reverse.
MODULE_NAMES: tuple[str, ...] = (
    "preferences", "properties", "splats", "importer", "controls", "motion_ops", "speech_ops",
    "video_ops",
    "background", "service_ops", "render_ops", "render_engine", "compositing", "ui",
)

# What register() did, undone last-first by unregister().
_undo: list = []


def register() -> None:
    """Register each module's ``CLASSES`` (in order), add its ``MENUS`` entries (``(menu type
    name, draw function)``: appended to that menu), then run its ``register()`` where it has one
    (handlers, timers: what goes beyond its classes and menus); on a failure, undo what was
    registered and re-raise."""
    import bpy

    try:
        for name in MODULE_NAMES:
            module = importlib.import_module(f"{__package__}.{name}")
            for cls in getattr(module, "CLASSES", ()):
                bpy.utils.register_class(cls)
                _undo.append(functools.partial(bpy.utils.unregister_class, cls))
            for menu_name, draw in getattr(module, "MENUS", ()):
                menu = getattr(bpy.types, menu_name)
                menu.append(draw)
                _undo.append(functools.partial(menu.remove, draw))
            if hasattr(module, "register"):
                module.register()
                _undo.append(module.unregister)
    except Exception:
        unregister()
        raise


def unregister() -> None:
    """Undo :func:`register`: each module's ``unregister()`` runs before its classes go."""
    while _undo:
        _undo.pop()()
