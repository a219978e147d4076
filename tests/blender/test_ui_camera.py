"""In real Blender: the camera the add-on sends projects the rig's joints to the pixels where
Blender itself draws them (``world_to_camera_view``), wherever the rig and the camera are.

The cases (payload, rig-space points, Blender's pixels) are written to
``$ONESHOT_AVATAR_TEST_OUT/camera_cases.json``; the driver checks them with the backend's own
``oneshot_avatar.cameras.from_blender``."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from conftest import env_path

JOINTS = ("pelvis", "head", "left_wrist", "right_ankle", "left_foot", "right_index3")
CASES = {
    "standing_rig_front_camera": {
        "rig": {}, "camera": {"location": (0.2, -4.5, -0.3), "rotation": (89.0, 0.0, 4.0)},
        "data": {"lens": 42.0, "sensor_fit": "AUTO", "shift_x": 0.07, "shift_y": -0.04},
        "render": {"resolution_x": 640, "resolution_y": 480, "resolution_percentage": 50}},
    "moved_rig_portrait_vertical_fit": {
        "rig": {"location": (1.5, 2.0, 0.3), "rotation": (90.0, 0.0, 35.0), "scale": 1.3},
        "camera": {"location": (4.37, -2.1, -0.1), "rotation": (88.0, 0.0, 35.0)},
        "data": {"lens": 20.0, "sensor_fit": "VERTICAL", "sensor_height": 20.0,
                 "shift_y": 0.12},
        "render": {"resolution_x": 300, "resolution_y": 500, "resolution_percentage": 100}},
    "parented_camera_non_square_pixels": {
        "rig": {"rotation": (90.0, 0.0, -20.0)},
        "camera": {"location": (0.0, -4.5, 0.0), "rotation": (90.0, 0.0, 0.0),
                   "parent_rotation": (0.0, 0.0, -25.0), "parent_location": (0.0, 0.0, -0.4)},
        "data": {"lens": 50.0, "sensor_fit": "HORIZONTAL"},
        "render": {"resolution_x": 400, "resolution_y": 300, "resolution_percentage": 100,
                   "pixel_aspect_y": 1.25}},
}


@pytest.fixture(scope="module")
def rig(addon):
    package = env_path("ONESHOT_AVATAR_TEST_PACKAGE")
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.oneshot_avatar.import_avatar(filepath=str(package)) == {"FINISHED"}
    return bpy.context.view_layer.objects.active


def _place(obj, settings) -> None:
    obj.location = settings.get("location", obj.location)
    if "rotation" in settings:
        obj.rotation_euler = [math.radians(a) for a in settings["rotation"]]
    if "scale" in settings:
        obj.scale = (settings["scale"],) * 3


def _blender_pixels(scene, camera, world_points) -> tuple[np.ndarray, np.ndarray]:
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    render = scene.render
    width = render.resolution_x * render.resolution_percentage // 100
    height = render.resolution_y * render.resolution_percentage // 100
    uv, depth = [], []
    for point in world_points:
        x, y, z = world_to_camera_view(scene, camera, Vector(point))
        uv.append((x * width, (1.0 - y) * height))
        depth.append(z)
    return np.array(uv), np.array(depth)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sent_camera_projects_like_blender(rig, case):
    from oneshot_avatar.core import camera as camera_export

    from oneshot_avatar import render_ops

    spec = CASES[case]
    scene = bpy.context.scene
    rig.location, rig.scale = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    rig.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    _place(rig, spec["rig"])
    camera = bpy.data.objects.new(f"camera_{case}", bpy.data.cameras.new(f"camera_{case}"))
    scene.collection.objects.link(camera)
    _place(camera, spec["camera"])
    if "parent_rotation" in spec["camera"]:
        parent = bpy.data.objects.new(f"parent_{case}", None)
        scene.collection.objects.link(parent)
        _place(parent, {"location": spec["camera"]["parent_location"],
                        "rotation": spec["camera"]["parent_rotation"]})
        camera.parent = parent
    for key, value in spec["data"].items():
        setattr(camera.data, key, value)
    render = scene.render
    render.pixel_aspect_x, render.pixel_aspect_y = 1.0, 1.0
    for key, value in spec["render"].items():
        setattr(render, key, value)
    scene.camera = camera
    bpy.context.view_layer.update()

    rig_points = np.array([tuple(rig.data.bones[name].head_local) for name in JOINTS])
    world_points = [rig.matrix_world @ bpy_vector(p) for p in rig_points]
    blender_uv, blender_depth = _blender_pixels(scene, camera, world_points)

    payload = render_ops.camera_for_frame(scene, camera, rig,
                                          bpy.context.evaluated_depsgraph_get())
    uv, depth = camera_export.project_points(payload["blender"], rig_points)
    assert (depth > 0).all() and (blender_depth > 0).all()
    np.testing.assert_allclose(uv, blender_uv, atol=1e-3)
    # The points are in the picture (so the comparison covers what a render shows).
    width, height = camera_export.render_size(render.resolution_x, render.resolution_y,
                                              render.resolution_percentage)
    assert ((uv > 0) & (uv < [width, height])).all(), uv
    # The depth along the axis scales with the rig (the backend works in rig units).
    np.testing.assert_allclose(depth * max(rig.scale), blender_depth, rtol=1e-5)

    out = os.environ.get("ONESHOT_AVATAR_TEST_OUT")
    if out:
        path = os.path.join(out, "camera_cases.json")
        cases = {}
        if os.path.exists(path):
            with open(path) as handle:
                cases = json.load(handle)
        cases[case] = {"payload": payload, "points": rig_points.tolist(),
                       "blender_pixels": blender_uv.tolist()}
        with open(path, "w") as handle:
            json.dump(cases, handle)


def bpy_vector(values):
    from mathutils import Vector

    return Vector(values)


def test_orthographic_camera_is_refused(rig):
    from oneshot_avatar import render_ops

    scene = bpy.context.scene
    camera = bpy.data.objects.new("ortho", bpy.data.cameras.new("ortho"))
    scene.collection.objects.link(camera)
    camera.data.type = "ORTHO"
    with pytest.raises(ValueError, match="camera 'type'.*Perspective"):
        render_ops.camera_for_frame(scene, camera, rig, bpy.context.evaluated_depsgraph_get())
