"""Shared pieces of the Blender-side rig tests (run inside .venv-blender, ``import bpy``): a clean
scene, reading evaluated point positions, the driver's paths. The add-on itself is enabled by
the ``addon`` fixture of tests/blender/conftest.py (Blender's add-on system, legacy mode), so
its modules are ``addon.importer``, ``addon.motion_ops``, ... of the module it yields."""

from __future__ import annotations

import math
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


def scene_camera(scene, location, rotation_euler, *, name: str = "camera", **data):
    """A new camera object at ``location`` turned by ``rotation_euler``, made ``scene``'s
    camera; ``data`` sets its camera data (``lens=40.0``, ``type="ORTHO"``, ...)."""
    import bpy

    camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    scene.collection.objects.link(camera)
    camera.location = location
    camera.rotation_euler = rotation_euler
    for key, value in data.items():
        setattr(camera.data, key, value)
    scene.camera = camera
    return camera


def key_arm_swing(rig, frames, angles) -> None:
    """Key the rig's left shoulder turned by ``angles`` (radians, about its local Z) at
    ``frames``: an arm that waves."""
    shoulder = rig.pose.bones["left_shoulder"]
    for frame, angle in zip(frames, angles, strict=True):
        shoulder.rotation_quaternion = (math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2))
        shoulder.keyframe_insert("rotation_quaternion", frame=frame)


def render_still(scene, path: Path, width: int, height: int) -> np.ndarray:
    """F12 of ``scene`` written to ``path`` and read back: ``(height, width, 4)`` float RGBA,
    rows bottom to top (like the render result)."""
    import bpy

    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    return pixels.reshape(height, width, 4)


def camera_view(scene, width: int, height: int):
    """(depsgraph, view matrix, window matrix) of a 3D view looking through ``scene``'s camera
    at ``width`` x ``height``: the matrices Blender gives such a view."""
    import bpy

    depsgraph = bpy.context.evaluated_depsgraph_get()
    camera = scene.camera.evaluated_get(depsgraph)
    return (depsgraph, camera.matrix_world.inverted(),
            camera.calc_matrix_camera(depsgraph, x=width, y=height))


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
