"""Shared pieces of the Blender-side rig tests (run inside .venv-blender, ``import bpy``): a clean
scene, reading evaluated point positions, the driver's paths. The add-on itself is enabled by
the ``addon`` fixture of tests/blender/conftest.py (Blender's add-on system, legacy mode), so
its modules are ``addon.importer``, ``addon.motion_ops``, ... of the module it yields."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def env_path(name: str) -> Path:
    """A path the driver (tests/test_blender_rig.py) passes in ``name``, or skip."""
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"${name} is not set: run these through tests/test_blender_rig.py")
    return Path(value)


def fresh_scene(fps: int = 30):
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, 1.0
    scene.frame_start = 1
    return scene


def evaluated_positions(obj) -> np.ndarray:
    """``(N, 3)`` vertex positions of ``obj`` after its modifiers, in its local space (for the
    splats object: the rig's armature space = SMPL-X world, metres)."""
    import bpy

    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    vertices = obj.evaluated_get(depsgraph).data.vertices
    out = np.empty(3 * len(vertices), np.float32)
    vertices.foreach_get("co", out)
    return out.reshape(-1, 3).astype(np.float64)


def datablock_counts() -> dict[str, int]:
    import bpy

    return {kind: len(getattr(bpy.data, kind)) for kind in
            ("objects", "meshes", "armatures", "actions", "node_groups", "materials")}
