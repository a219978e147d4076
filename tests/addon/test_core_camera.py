"""The add-on's camera export (blender_addon/core/camera.py, numpy only) against the backend's
own conversion (oneshot_avatar.cameras.from_blender): same pixels for the same points."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from blender_addon.core import camera as addon_camera

from oneshot_avatar import cameras as backend_cameras


def _rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    matrices = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
                "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}
    result = np.eye(4)
    result[:3, :3] = matrices[axis]
    return result


def _translation(x: float, y: float, z: float) -> np.ndarray:
    result = np.eye(4)
    result[:3, 3] = (x, y, z)
    return result


def _scale(factor: float) -> np.ndarray:
    return np.diag([factor, factor, factor, 1.0])


# A camera 3 m in front of the body (Blender -Y), 1 m up, looking at it (rotated 90 deg in X).
CAMERA = _translation(0.3, -3.0, 1.0) @ _rotation("z", 8.0) @ _rotation("x", 85.0)
RIG_STANDING = _rotation("x", 90.0)  # how the importer stands the rig up
RIG_MOVED = (_translation(2.0, 1.5, 0.2) @ _rotation("z", 40.0) @ _scale(1.7)
             @ _rotation("x", 90.0))
SETTINGS = {"lens_mm": 42.0, "sensor_width_mm": 36.0, "sensor_height_mm": 24.0,
            "sensor_fit": "AUTO", "shift_x": 0.07, "shift_y": -0.04, "clip_start": 0.1,
            "clip_end": 100.0, "resolution_x": 640, "resolution_y": 480,
            "resolution_percentage": 50, "pixel_aspect_x": 1.0, "pixel_aspect_y": 1.0}
POINTS = np.array([[0.0, 0.0, 0.0], [0.4, 0.3, 0.1], [-0.3, -0.8, 0.05], [0.1, 0.5, -0.2]])


def _backend_pixels(payload: dict, points: np.ndarray) -> np.ndarray:
    camera = backend_cameras.from_blender(**payload["blender"], dtype=torch.float64)
    uv, _ = camera.project(torch.as_tensor(points))
    return uv.numpy()


@pytest.mark.parametrize("settings", [
    SETTINGS,
    {**SETTINGS, "sensor_fit": "VERTICAL", "resolution_x": 300, "resolution_y": 500},
    {**SETTINGS, "sensor_fit": "HORIZONTAL", "pixel_aspect_x": 1.0, "pixel_aspect_y": 1.5},
    {**SETTINGS, "resolution_x": 320, "resolution_y": 640, "shift_y": 0.2},
])
def test_projection_matches_the_backend(settings):
    payload = addon_camera.blender_camera_payload(camera_matrix_world=CAMERA.tolist(),
                                                  rig_matrix_world=RIG_STANDING.tolist(),
                                                  **settings)
    uv, depth = addon_camera.project_points(payload["blender"], POINTS)
    assert (depth > 0).all()
    np.testing.assert_allclose(uv, _backend_pixels(payload, POINTS), atol=1e-6)


def test_a_moved_rig_keeps_the_picture():
    """Moving, turning and scaling the rig object together with the camera changes nothing."""
    still = addon_camera.blender_camera_payload(camera_matrix_world=CAMERA,
                                                rig_matrix_world=RIG_STANDING, **SETTINGS)
    carried = RIG_MOVED @ np.linalg.inv(RIG_STANDING)
    moved = addon_camera.blender_camera_payload(camera_matrix_world=carried @ CAMERA,
                                                rig_matrix_world=RIG_MOVED, **SETTINGS)
    # Scaling the rig scales the body: the camera's distance to it (in rig units) is the same.
    np.testing.assert_allclose(_backend_pixels(moved, POINTS), _backend_pixels(still, POINTS),
                               atol=1e-6)


def test_standing_rig_sends_the_camera_unchanged():
    payload = addon_camera.blender_camera_payload(camera_matrix_world=CAMERA,
                                                  rig_matrix_world=RIG_STANDING, **SETTINGS)
    np.testing.assert_allclose(payload["blender"]["matrix_world"], CAMERA, atol=1e-12)
    without_rig = addon_camera.blender_camera_payload(camera_matrix_world=CAMERA, **SETTINGS)
    np.testing.assert_allclose(without_rig["blender"]["matrix_world"], CAMERA, atol=1e-12)


def test_points_in_front_of_the_body_face_the_front_camera():
    """A camera on Blender -Y (in front of the standing rig) sees the body's +Z side nearer."""
    payload = addon_camera.blender_camera_payload(
        camera_matrix_world=_translation(0, -3, 0) @ _rotation("x", 90),
        rig_matrix_world=RIG_STANDING, **{**SETTINGS, "shift_x": 0.0, "shift_y": 0.0})
    uv, depth = addon_camera.project_points(payload["blender"], [[0, 0, 0.5], [0, 0, -0.5],
                                                                 [0.5, 0, 0], [0, 0.5, 0]])
    assert depth[0] < depth[1]
    width, height = 320, 240
    np.testing.assert_allclose(uv[0], [width / 2, height / 2], atol=1e-9)
    assert uv[2][0] > width / 2  # the body's left (+X) is on the image's right from the front
    assert uv[3][1] < height / 2  # up is up


@pytest.mark.parametrize("change, field", [
    ({"camera_type": "ORTHO"}, "type"),
    ({"sensor_fit": "DIAGONAL"}, "sensor_fit"),
    ({"clip_start": 5.0, "clip_end": 1.0}, "clip_end"),
    ({"lens_mm": 0.0}, "lens_mm"),
    ({"resolution_percentage": 1, "resolution_x": 20}, "resolution_percentage"),
    ({"shift_x": float("nan")}, "shift_x"),
])
def test_bad_cameras_name_the_setting(change, field):
    with pytest.raises(addon_camera.CameraExportError) as caught:
        addon_camera.blender_camera_payload(camera_matrix_world=CAMERA, **{**SETTINGS, **change})
    assert caught.value.field == field
    assert field in str(caught.value)


def test_zero_scale_rig_is_named():
    with pytest.raises(addon_camera.CameraExportError, match="zero scale"):
        addon_camera.rig_relative_matrix(CAMERA, np.diag([0.0, 0.0, 0.0, 1.0]))


def test_axis_angle_round_trip():
    rng = np.random.default_rng(3)
    for vector in [*rng.normal(size=(20, 3)), [0.0, 0.0, 0.0], [math.pi - 1e-7, 0.0, 0.0],
                   [0.0, 1e-9, 0.0]]:
        vector = np.asarray(vector, dtype=np.float64)
        angle = np.linalg.norm(vector)
        if angle > math.pi:  # the same rotation with the angle in [0, pi]
            vector = vector / angle * (angle - 2 * math.pi * math.floor((angle + math.pi)
                                                                        / (2 * math.pi)))
        matrix = addon_camera.axis_angle_to_matrix(vector)
        np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(addon_camera.axis_angle_to_matrix(
            addon_camera.matrix_to_axis_angle(matrix)), matrix, atol=1e-9)


def test_front_view_orientation():
    turn = [0.0, 0.4, 0.0]
    front = _translation(0, -3, 0) @ _rotation("x", 90)
    np.testing.assert_allclose(addon_camera.orient_for_front_view(turn, front), turn, atol=1e-12)
    # The camera orbits 90 deg to the body's left (+X = Blender +X): what it sees is the body
    # turned 90 deg to its right, i.e. -90 deg about +Y.
    side = _rotation("z", 90) @ front
    np.testing.assert_allclose(addon_camera.orient_for_front_view([0, 0, 0], side),
                               [0.0, -math.pi / 2, 0.0], atol=1e-12)
