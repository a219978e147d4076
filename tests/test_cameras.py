"""The camera model: projection, constructors, Blender conversion and JSON files."""

from __future__ import annotations

import json
import math

import pytest
import torch

from oneshot_avatar.cameras import (
    SCHEMA,
    Camera,
    blender_intrinsics,
    from_blender,
    from_fit,
    front_camera,
    intrinsics,
    load_cameras_json,
    look_at,
    orbit_cameras,
    save_cameras_json,
    stack_cameras,
    to_blender,
)
from oneshot_avatar.errors import BadFileError, UserError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
F64 = torch.float64


def rotation_x(degrees: float) -> torch.Tensor:  # [3, 3]
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return torch.tensor([[1.0, 0, 0], [0, c, -s], [0, s, c]], dtype=F64)


def random_rotation(seed: int) -> torch.Tensor:  # [3, 3]
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=F64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.linalg.det(q) > 0 else -q


def rigid(rotation: torch.Tensor, translation) -> torch.Tensor:  # [4, 4]
    m = torch.eye(4, dtype=F64)
    m[:3, :3] = rotation
    m[:3, 3] = torch.as_tensor(translation, dtype=F64)
    return m


def simple_camera(world_to_cam=None, dtype=F64, device="cpu") -> Camera:
    K = intrinsics(500.0, 400.0, 330.0, 250.0, dtype=dtype, device=device)
    w2c = torch.eye(4, dtype=F64) if world_to_cam is None else world_to_cam
    return Camera(K, w2c.to(device=device, dtype=dtype), 640, 480)


def blender_front_matrix() -> torch.Tensor:
    """The usual Blender front camera: at Blender (0, -5, 1), rotated 90 degrees about X, so it
    looks along Blender +Y with Blender +Z up."""
    return rigid(rotation_x(90.0), [0.0, -5.0, 1.0])


def blender_to_world(point) -> torch.Tensor:  # Blender (x, y, z) -> world (x, z, -y)
    x, y, z = point
    return torch.tensor([x, z, -y], dtype=F64)


BLENDER_DEFAULTS = {"lens_mm": 50.0, "sensor_width_mm": 36.0, "sensor_height_mm": 24.0,
                    "sensor_fit": "AUTO", "shift_x": 0.0, "shift_y": 0.0, "clip_start": 0.1,
                    "clip_end": 100.0, "resolution_x": 1920, "resolution_y": 1080}


def blender_camera(**changes) -> Camera:
    params = {**BLENDER_DEFAULTS, "matrix_world": blender_front_matrix(), **changes}
    return from_blender(**params, dtype=F64)


# ------------------------------------------------------------------------------- projection


@pytest.mark.parametrize("device", DEVICES)
def test_project_known_points_identity_pose(device):
    camera = simple_camera(device=device)
    points = torch.tensor([[0.0, 0.0, 2.0], [1.0, -1.0, 4.0], [-0.5, 0.25, 1.0]], dtype=F64,
                          device=device)
    pixels, depth = camera.project(points)
    assert pixels.device.type == device
    expected = torch.tensor([[330.0, 250.0], [330.0 + 500 / 4, 250.0 - 400 / 4],
                             [330.0 - 250.0, 250.0 + 100.0]], dtype=F64)
    torch.testing.assert_close(pixels.cpu(), expected)
    torch.testing.assert_close(depth.cpu(), torch.tensor([2.0, 4.0, 1.0], dtype=F64))


def test_project_with_pose_and_batch_dims():
    world_to_cam = rigid(random_rotation(3), [0.2, -0.1, 3.0])
    camera = simple_camera(world_to_cam)
    d = 2.5
    # 1 m right and 1 m up of the optical axis at depth d, in camera space, taken to world.
    cam_points = torch.tensor([[0.0, 0.0, d], [1.0, -1.0, d]], dtype=F64)
    world = (cam_points - world_to_cam[:3, 3]) @ world_to_cam[:3, :3]
    pixels, depth = camera.project(world.expand(4, 5, 2, 3))
    assert pixels.shape == (4, 5, 2, 2) and depth.shape == (4, 5, 2)
    torch.testing.assert_close(pixels[2, 3, 0], torch.tensor([camera.cx, camera.cy], dtype=F64))
    torch.testing.assert_close(pixels[2, 3, 1], torch.tensor(
        [camera.cx + camera.fx / d, camera.cy - camera.fy / d], dtype=F64))
    torch.testing.assert_close(depth[0, 0], torch.full((2,), d, dtype=F64))


def test_pose_properties_are_consistent():
    world_to_cam = rigid(random_rotation(7), [0.3, 0.4, 2.0])
    camera = simple_camera(world_to_cam)
    torch.testing.assert_close(camera.cam_to_world @ camera.world_to_cam,
                               torch.eye(4, dtype=F64))
    # The centre maps to the camera origin; forward/up/right are the camera's +z, -y, +x.
    centre = camera.world_to_camera_points(camera.position[None])[0]
    torch.testing.assert_close(centre, torch.zeros(3, dtype=F64))
    c2w = camera.cam_to_world[:3, :3]
    torch.testing.assert_close(camera.forward, c2w[:, 2])
    torch.testing.assert_close(camera.up, -c2w[:, 1])
    torch.testing.assert_close(camera.right, c2w[:, 0])


def test_project_behind_camera_is_not_nan_and_rejects_bad_shape():
    camera = simple_camera()
    pixels, depth = camera.project(torch.tensor([[0.1, 0.1, 0.0], [0.1, 0.1, -1.0]], dtype=F64))
    assert torch.isfinite(pixels).all() and (depth <= 0).all()
    with pytest.raises(UserError, match="points"):
        camera.project(torch.zeros(5, 2, dtype=F64))


def test_gradients_flow_through_a_fitted_camera():
    rotation = random_rotation(1).requires_grad_(True)
    translation = torch.tensor([0.0, 0.0, 3.0], dtype=F64, requires_grad=True)
    camera = from_fit(torch.tensor(800.0, dtype=F64), (320.0, 240.0), rotation, translation,
                      640, 480)
    pixels, _ = camera.project(torch.randn(10, 3, dtype=F64) * 0.3)
    pixels.sum().backward()
    assert translation.grad is not None and torch.isfinite(translation.grad).all()
    assert rotation.grad is not None and rotation.grad.abs().sum() > 0


# --------------------------------------------------------------------------------- look_at


def test_look_at_centres_target_and_keeps_up():
    camera = look_at((1.0, 2.0, 4.0), (0.0, 1.0, 0.0), width=800, height=600, fov_y_degrees=40)
    pixels, depth = camera.project(torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.2, 0.0]]))
    torch.testing.assert_close(pixels[0], torch.tensor([400.0, 300.0]))
    assert depth[0] == pytest.approx(math.sqrt(1 + 1 + 16), rel=1e-6)
    assert pixels[1, 1] < 300.0 - 5  # a point above the target is higher in the image
    assert abs(pixels[1, 0] - 400.0) < 1e-3  # and not sideways
    assert camera.up[1] > 0.9 and abs(float(camera.up @ camera.forward)) < 1e-6
    torch.testing.assert_close(camera.position, torch.tensor([1.0, 2.0, 4.0]))


def test_look_at_field_of_view_reaches_the_image_edges():
    # 90 degrees vertical: a point 45 degrees up sits on the top edge v = 0 (pixel edges span
    # [0, H]); focal = H / 2.
    camera = look_at((0.0, 0.0, 5.0), (0.0, 0.0, 0.0), width=200, height=100, fov_y_degrees=90)
    assert camera.fy == pytest.approx(50.0) and camera.fx == pytest.approx(50.0)
    assert (camera.cx, camera.cy) == (100.0, 50.0)
    pixels, _ = camera.project(torch.tensor([[0.0, 5.0, 0.0], [-5.0, 0.0, 0.0]]))
    torch.testing.assert_close(pixels[0], torch.tensor([100.0, 0.0]))
    # Seen from the front (+Z), world -X (the body's right) is on the image's left.
    torch.testing.assert_close(pixels[1], torch.tensor([50.0, 50.0]))


def test_look_at_with_focal_pair():
    camera = look_at((0, 0, 3), (0, 0, 0), width=64, height=48, focal=(70.0, 60.0))
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (70.0, 60.0, 32.0, 24.0)


@pytest.mark.parametrize("kwargs, field", [
    ({"eye": (0, 1, 2), "target": (0, 1, 2), "fov_y_degrees": 50}, "target"),
    ({"eye": (0, 3, 0), "target": (0, 0, 0), "fov_y_degrees": 50}, "up"),
    ({"eye": (0, 0, 3), "target": (0, 0, 0)}, "focal"),
    ({"eye": (0, 0, 3), "target": (0, 0, 0), "fov_y_degrees": 50, "focal": 100.0}, "focal"),
    ({"eye": (0, 0, 3), "target": (0, 0, 0), "fov_y_degrees": 180}, "fov_y_degrees"),
    ({"eye": (0, 0), "target": (0, 0, 0), "fov_y_degrees": 50}, "eye"),
])
def test_look_at_errors(kwargs, field):
    with pytest.raises(UserError) as info:
        look_at(width=64, height=64, **kwargs)
    assert info.value.field == field


def test_front_camera_is_on_plus_z():
    camera = front_camera((0.0, 1.0, 0.0), 3.0, 512, 512, 30.0)
    torch.testing.assert_close(camera.position, torch.tensor([0.0, 1.0, 3.0]))
    torch.testing.assert_close(camera.forward, torch.tensor([0.0, 0.0, -1.0]))
    torch.testing.assert_close(camera.up, torch.tensor([0.0, 1.0, 0.0]))


# ---------------------------------------------------------------------------------- orbit


def test_orbit_cameras_surround_the_target_evenly():
    target = (0.1, 1.0, -0.2)
    cameras = orbit_cameras(8, radius=3.0, height=1.5, target=target, width=320,
                            height_px=240, fov_y_degrees=35)
    assert len(cameras) == 8
    target_t = torch.tensor(target)
    azimuths = []
    for camera in cameras:
        pixels, _ = camera.project(target_t[None])
        torch.testing.assert_close(pixels[0], torch.tensor([160.0, 120.0]), atol=1e-3, rtol=0)
        offset = camera.position - target_t
        assert camera.position[1] == pytest.approx(1.5)
        assert math.hypot(offset[0], offset[2]) == pytest.approx(3.0, rel=1e-6)
        assert camera.up[1] > 0.9  # upright
        azimuths.append(math.degrees(math.atan2(offset[0], offset[2])))
    # Azimuth 0 is in front (+Z); the next camera is 45 degrees towards +X (counter-clockwise
    # seen from above).
    assert azimuths[0] == pytest.approx(0.0, abs=1e-4)
    steps = [(b - a) % 360 for a, b in zip(azimuths, azimuths[1:] + azimuths[:1], strict=True)]
    assert steps == pytest.approx([45.0] * 8, abs=1e-4)
    assert cameras[2].position[0] - target[0] == pytest.approx(3.0, rel=1e-6)  # 90 deg: +X


def test_orbit_start_angle_and_errors():
    (camera,) = orbit_cameras(1, radius=2.0, height=1.0, target=(0, 1, 0), width=64,
                              height_px=64, fov_y_degrees=40, start_degrees=-90)
    torch.testing.assert_close(camera.position, torch.tensor([-2.0, 1.0, 0.0]), atol=1e-6,
                               rtol=0)
    with pytest.raises(UserError, match="count"):
        orbit_cameras(0, radius=2.0, height=1.0, target=(0, 1, 0), width=64, height_px=64,
                      fov_y_degrees=40)


# ------------------------------------------------------------------------------- from_fit


def test_from_fit_builds_k_and_pose():
    rotation = random_rotation(11)
    camera = from_fit(900.0, (310.0, 255.0), rotation, (0.1, 0.2, 2.5), 640, 480)
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (900.0, 900.0, 310.0, 255.0)
    torch.testing.assert_close(camera.world_to_cam[:3, :3], rotation)  # dtype kept
    camera = from_fit((900.0, 880.0), (310.0, 255.0), rotation, (0.1, 0.2, 2.5), 640, 480)
    assert camera.fy == 880.0
    with pytest.raises(UserError, match="focal"):
        from_fit((1.0, 2.0, 3.0), (310.0, 255.0), rotation, (0, 0, 1), 640, 480)
    with pytest.raises(UserError, match="world_to_cam"):
        from_fit(900.0, (310.0, 255.0), rotation * 1.1, (0, 0, 1), 640, 480)


# ---------------------------------------------------------------------------------- Blender


def test_blender_front_camera_pose():
    camera = blender_camera()
    # Blender (0, -5, 1) = world (0, 1, 5), looking along Blender +Y = world -Z, Blender +Z up.
    torch.testing.assert_close(camera.position, torch.tensor([0.0, 1.0, 5.0], dtype=F64))
    torch.testing.assert_close(camera.forward, torch.tensor([0.0, 0.0, -1.0], dtype=F64))
    torch.testing.assert_close(camera.up, torch.tensor([0.0, 1.0, 0.0], dtype=F64))
    ahead, right, above = (blender_to_world(p) for p in [(0, 3, 1), (1, 3, 1), (0, 3, 2)])
    pixels, depth = camera.project(torch.stack([ahead, right, above]))
    torch.testing.assert_close(pixels[0], torch.tensor([camera.cx, camera.cy], dtype=F64))
    assert depth[0] == pytest.approx(8.0)
    assert pixels[1, 0] > camera.cx + 100 and pixels[1, 1] == pytest.approx(camera.cy)
    assert pixels[2, 1] < camera.cy - 100 and pixels[2, 0] == pytest.approx(camera.cx)


def test_blender_lens_to_focal_landscape():
    camera = blender_camera()
    assert camera.fx == pytest.approx(50 / 36 * 1920)
    assert camera.fy == pytest.approx(50 / 36 * 1920)
    assert (camera.cx, camera.cy, camera.width, camera.height) == (960.0, 540.0, 1920, 1080)
    assert (camera.near, camera.far) == (0.1, 100.0)


@pytest.mark.parametrize("fit, resolution, expected_fx", [
    ("AUTO", (1920, 1080), 50 / 36 * 1920),  # landscape: width fitted to sensor_width
    ("AUTO", (1080, 1920), 50 / 36 * 1920),  # portrait: height fitted, still sensor_width
    ("HORIZONTAL", (1920, 1080), 50 / 36 * 1920),
    ("HORIZONTAL", (1080, 1920), 50 / 36 * 1080),
    ("VERTICAL", (1920, 1080), 50 / 24 * 1080),  # height fitted to sensor_height
    ("VERTICAL", (1080, 1920), 50 / 24 * 1920),
])
def test_blender_sensor_fit(fit, resolution, expected_fx):
    camera = blender_camera(sensor_fit=fit, resolution_x=resolution[0],
                            resolution_y=resolution[1])
    assert camera.fx == pytest.approx(expected_fx)
    assert camera.fy == pytest.approx(expected_fx)
    assert (camera.cx, camera.cy) == (resolution[0] / 2, resolution[1] / 2)


@pytest.mark.parametrize("fit, resolution, shift_px", [
    ("AUTO", (1920, 1080), 192.0),  # units of the larger dimension
    ("AUTO", (1080, 1920), 192.0),
    ("HORIZONTAL", (1080, 1920), 108.0),  # units of the fitted dimension
    ("VERTICAL", (1920, 1080), 108.0),
])
def test_blender_shift(fit, resolution, shift_px):
    width, height = resolution
    shifted_x = blender_camera(sensor_fit=fit, resolution_x=width, resolution_y=height,
                               shift_x=0.1)
    assert shifted_x.cx == pytest.approx(width / 2 - shift_px)
    assert shifted_x.cy == pytest.approx(height / 2)
    shifted_y = blender_camera(sensor_fit=fit, resolution_x=width, resolution_y=height,
                               shift_y=0.1)
    assert shifted_y.cy == pytest.approx(height / 2 + shift_px)
    # What was at the image centre moves left when the frame shifts right, and down when up.
    ahead = blender_to_world((0.0, 3.0, 1.0))[None]
    assert shifted_x.project(ahead)[0][0, 0] == pytest.approx(width / 2 - shift_px)
    assert shifted_y.project(ahead)[0][0, 1] == pytest.approx(height / 2 + shift_px)


def test_blender_pixel_aspect():
    # Pixels twice as wide as tall: width still fitted (2*1920 > 1080), fy doubles.
    camera = blender_camera(pixel_aspect_x=2.0)
    assert camera.fx == pytest.approx(50 / 36 * 1920)
    assert camera.fy == pytest.approx(2 * 50 / 36 * 1920)
    # Tall pixels flip AUTO to the vertical fit (1000 < 2 * 800): the sensor width spans the
    # image height; shifts are in units of that height.
    camera = blender_camera(resolution_x=1000, resolution_y=800, pixel_aspect_y=2.0,
                            shift_x=0.1, shift_y=0.1)
    assert camera.fy == pytest.approx(50 / 36 * 800)
    assert camera.fx == pytest.approx(2 * 50 / 36 * 800)
    assert camera.cy == pytest.approx(400 + 0.1 * 800)
    assert camera.cx == pytest.approx(500 - 0.1 * 800 * 2)


def test_blender_resolution_percentage():
    camera = blender_camera(resolution_percentage=50)
    assert (camera.width, camera.height) == (960, 540)
    assert camera.fx == pytest.approx(50 / 36 * 960)
    assert (camera.cx, camera.cy) == (480.0, 270.0)
    odd = blender_camera(resolution_x=1001, resolution_y=667, resolution_percentage=50)
    assert (odd.width, odd.height) == (500, 333)  # Blender rounds down


def test_blender_matrix_world_scale_is_removed():
    plain = blender_camera()
    scaled_matrix = blender_front_matrix()
    scaled_matrix[:3, :3] = scaled_matrix[:3, :3] @ torch.diag(torch.tensor([2.0, 3.0, 0.5],
                                                                            dtype=F64))
    scaled = blender_camera(matrix_world=scaled_matrix)
    torch.testing.assert_close(scaled.world_to_cam, plain.world_to_cam)
    mirrored = blender_front_matrix()
    mirrored[:3, 0] *= -1
    with pytest.raises(UserError, match="mirrored") as info:
        blender_camera(matrix_world=mirrored)
    assert info.value.field == "matrix_world"
    sheared = blender_front_matrix()
    sheared[:3, 0] += sheared[:3, 1] * 0.3
    with pytest.raises(UserError, match="shear"):
        blender_camera(matrix_world=sheared)


def test_blender_errors_name_the_setting():
    for changes, field in [({"sensor_fit": "DIAGONAL"}, "sensor_fit"),
                           ({"lens_mm": 0.0}, "lens_mm"),
                           ({"clip_end": 0.05}, "clip_end"),
                           ({"resolution_x": 0}, "resolution_x"),
                           ({"matrix_world": torch.eye(3)}, "matrix_world")]:
        with pytest.raises(UserError) as info:
            blender_camera(**changes)
        assert info.value.field == field


def _blender_viewplane_pixel(params: dict, point_blender_camera) -> tuple[float, float]:
    """Independent reference: a literal port of Blender's BKE_camera_params_compute_viewplane
    (perspective, zoom 1, no offset) and the raster mapping (pixels span the view plane edge to
    edge, raster y up, image rows top-down). Returns (u, v) for a point in Blender camera
    space."""
    winx = params["resolution_x"] * params["resolution_percentage"] // 100
    winy = params["resolution_y"] * params["resolution_percentage"] // 100
    aspx, aspy = params["pixel_aspect_x"], params["pixel_aspect_y"]
    ycor = aspy / aspx
    sensor = (params["sensor_height_mm"] if params["sensor_fit"] == "VERTICAL"
              else params["sensor_width_mm"])
    pixsize = sensor * params["clip_start"] / params["lens_mm"]
    fit = params["sensor_fit"]
    if fit == "AUTO":
        fit = "HORIZONTAL" if aspx * winx >= aspy * winy else "VERTICAL"
    viewfac = winx if fit == "HORIZONTAL" else ycor * winy
    pixsize /= viewfac
    xmin, xmax = -0.5 * winx, 0.5 * winx
    ymin, ymax = -0.5 * ycor * winy, 0.5 * ycor * winy
    dx, dy = params["shift_x"] * viewfac, params["shift_y"] * viewfac
    xmin, xmax, ymin, ymax = ((xmin + dx) * pixsize, (xmax + dx) * pixsize,
                              (ymin + dy) * pixsize, (ymax + dy) * pixsize)
    x, y, z = point_blender_camera
    near_x, near_y = x * params["clip_start"] / -z, y * params["clip_start"] / -z
    u = (near_x - xmin) / (xmax - xmin) * winx
    v_up = (near_y - ymin) / (ymax - ymin) * winy
    return u, winy - v_up


@pytest.mark.parametrize("seed", range(12))
def test_blender_matches_a_port_of_blenders_viewplane(seed):
    g = torch.Generator().manual_seed(seed)

    def uniform(low, high):
        return low + (high - low) * torch.rand((), generator=g, dtype=F64).item()

    stretch = uniform(1.0, 2.5)  # Blender keeps both pixel aspects >= 1
    aspect_x, aspect_y = (stretch, 1.0) if seed % 2 else (1.0, stretch)
    params = {"lens_mm": uniform(15, 120), "sensor_width_mm": uniform(20, 40),
              "sensor_height_mm": uniform(15, 30),
              "sensor_fit": ["AUTO", "HORIZONTAL", "VERTICAL"][seed % 3],
              "shift_x": uniform(-0.3, 0.3), "shift_y": uniform(-0.3, 0.3),
              "clip_start": uniform(0.01, 1.0), "clip_end": 200.0,
              "resolution_x": int(uniform(200, 2000)), "resolution_y": int(uniform(200, 2000)),
              "resolution_percentage": [100, 50, 37][seed % 3],
              "pixel_aspect_x": aspect_x, "pixel_aspect_y": aspect_y}
    matrix_world = rigid(random_rotation(seed), [uniform(-3, 3), uniform(-3, 3), uniform(0, 2)])
    camera = from_blender(**params, matrix_world=matrix_world, dtype=F64)
    point_camera = torch.tensor([uniform(-1, 1), uniform(-1, 1), uniform(-6, -2)], dtype=F64)
    point_blender_world = matrix_world[:3, :3] @ point_camera + matrix_world[:3, 3]
    pixels, depth = camera.project(blender_to_world(point_blender_world.tolist())[None])
    expected = _blender_viewplane_pixel(params, point_camera.tolist())
    torch.testing.assert_close(pixels[0], torch.tensor(expected, dtype=F64))
    assert depth[0] == pytest.approx(-point_camera[2].item())


def test_to_blender_round_trips():
    # From Blender settings (AUTO, square pixels) and back.
    params = {**BLENDER_DEFAULTS, "lens_mm": 35.0, "shift_x": 0.05, "shift_y": -0.12,
              "resolution_x": 1080, "resolution_y": 1350, "resolution_percentage": 100,
              "pixel_aspect_x": 1.0, "pixel_aspect_y": 1.0,
              "matrix_world": blender_front_matrix().tolist()}
    exported = to_blender(from_blender(**params, dtype=F64))
    json.dumps(exported)  # JSON-friendly
    for key, value in params.items():
        if key == "matrix_world":
            torch.testing.assert_close(torch.tensor(exported[key], dtype=F64),
                                       torch.tensor(value, dtype=F64))
        elif isinstance(value, float):
            assert exported[key] == pytest.approx(value, abs=1e-9), key
        else:
            assert exported[key] == value, key
    # From any camera (off-centre principal point, non-square pixels) and back.
    for focal in [(900.0, 900.0), (900.0, 1100.0), (1100.0, 900.0)]:
        camera = from_fit(focal, (300.0, 270.0), random_rotation(5), (0.1, -0.3, 2.0), 640,
                          480)
        back = from_blender(**to_blender(camera), dtype=F64)
        torch.testing.assert_close(back.K, camera.K)
        torch.testing.assert_close(back.world_to_cam, camera.world_to_cam, atol=1e-6, rtol=0)
        assert (back.width, back.height) == (640, 480)


def test_blender_intrinsics_matches_from_blender():
    fx, fy, cx, cy = blender_intrinsics(lens_mm=50.0, sensor_width_mm=36.0,
                                        sensor_height_mm=24.0, sensor_fit="AUTO", shift_x=0.1,
                                        shift_y=0.0, width=1920, height=1080)
    assert (fx, fy, cx, cy) == pytest.approx((50 / 36 * 1920, 50 / 36 * 1920, 768.0, 540.0))


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("change, field", [
    ({"K": torch.eye(4)}, "K"),
    ({"K": torch.tensor([[500.0, 0, 320], [0, float("nan"), 240], [0, 0, 1]])}, "K"),
    ({"K": torch.tensor([[-500.0, 0, 320], [0, 500, 240], [0, 0, 1]])}, "K"),
    ({"K": torch.tensor([[500.0, 3, 320], [0, 500, 240], [0, 0, 1]])}, "K"),
    ({"world_to_cam": torch.diag(torch.tensor([2.0, 1, 1, 1]))}, "world_to_cam"),
    ({"world_to_cam": torch.diag(torch.tensor([-1.0, 1, 1, 1]))}, "world_to_cam"),
    ({"world_to_cam": torch.eye(3)}, "world_to_cam"),
    ({"width": 0}, "width"),
    ({"height": 480.0}, "height"),
    ({"near": 0.0}, "near"),
    ({"far": 0.001}, "far"),
])
def test_camera_validation(change, field):
    args = {"K": intrinsics(500.0, 500.0, 320.0, 240.0), "world_to_cam": torch.eye(4),
            "width": 640, "height": 480}
    with pytest.raises(UserError) as info:
        Camera(**{**args, **change})
    assert info.value.field == field


def test_camera_accepts_lists_and_converts_dtype():
    camera = Camera([[500, 0, 320], [0, 500, 240], [0, 0, 1]], torch.eye(4).tolist(), 640, 480)
    assert camera.K.dtype == torch.float32 and camera.world_to_cam.dtype == torch.float32
    double = camera.to(dtype=F64)
    assert double.K.dtype == F64 and double.world_to_cam.dtype == F64


# ---------------------------------------------------------------------------- resize/stack


def test_scaled_and_resized_keep_the_image_of_the_scene():
    camera = simple_camera(rigid(random_rotation(2), [0.0, 0.1, 3.0]))
    points = torch.randn(20, 3, dtype=F64) * 0.4
    pixels, _ = camera.project(points)
    half = camera.scaled(0.5)
    assert (half.width, half.height) == (320, 240)
    torch.testing.assert_close(half.project(points)[0], pixels * 0.5)
    wide = camera.resized(1280, 240)
    torch.testing.assert_close(wide.project(points)[0],
                               pixels * torch.tensor([2.0, 0.5], dtype=F64))
    with pytest.raises(UserError, match="factor"):
        camera.scaled(0.0001)


def test_stack_cameras():
    cameras = orbit_cameras(3, radius=2.0, height=1.0, target=(0, 1, 0), width=64,
                            height_px=48, fov_y_degrees=40)
    viewmats, Ks, width, height = stack_cameras(cameras)
    assert viewmats.shape == (3, 4, 4) and Ks.shape == (3, 3, 3) and (width, height) == (64, 48)
    torch.testing.assert_close(viewmats[1], cameras[1].world_to_cam)
    with pytest.raises(UserError, match="64x48") as info:
        stack_cameras([*cameras, cameras[0].resized(32, 24)])
    assert info.value.field == "cameras[3]"
    with pytest.raises(UserError, match="no cameras"):
        stack_cameras([])


# ------------------------------------------------------------------------------------ JSON


def test_dict_and_json_round_trip(tmp_path):
    camera = from_fit((900.0, 880.0), (300.5, 270.25), random_rotation(9), (0.1, -0.3, 2.0),
                      640, 480, near=0.05, far=20.0)
    data = camera.to_dict()
    assert data["convention"] == "opencv" and data["schema"] == SCHEMA
    back = Camera.from_dict(json.loads(json.dumps(data)), dtype=F64)
    assert torch.equal(back.K, camera.K) and torch.equal(back.world_to_cam, camera.world_to_cam)
    assert (back.width, back.height, back.near, back.far) == (640, 480, 0.05, 20.0)

    camera.save_json(tmp_path / "one.json")
    loaded = Camera.load_json(tmp_path / "one.json", dtype=F64)
    assert torch.equal(loaded.world_to_cam, camera.world_to_cam)

    cameras = orbit_cameras(3, radius=2.0, height=1.0, target=(0, 1, 0), width=64,
                            height_px=48, fov_y_degrees=40)
    save_cameras_json(tmp_path / "many.json", cameras)
    many = load_cameras_json(tmp_path / "many.json")
    assert len(many) == 3 and torch.equal(many[2].K, cameras[2].K)
    assert len(load_cameras_json(tmp_path / "one.json")) == 1
    with pytest.raises(BadFileError, match="3 cameras"):
        Camera.load_json(tmp_path / "many.json")


def _good_dict() -> dict:
    return look_at((0, 1, 3), (0, 1, 0), width=64, height=48, fov_y_degrees=40).to_dict()


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("K"), "K"),
    (lambda d: d.pop("world_to_cam"), "world_to_cam"),
    (lambda d: d.__setitem__("K", [[1.0, 0, 0], [0, 1.0, 0]]), "K"),
    (lambda d: d["world_to_cam"][1].__setitem__(2, float("nan")), "world_to_cam"),
    (lambda d: d["world_to_cam"][0].__setitem__(0, "1"), "world_to_cam"),
    (lambda d: d["world_to_cam"][0].__setitem__(3, True), "world_to_cam"),
    (lambda d: d.__setitem__("width", -3), "width"),
    (lambda d: d.__setitem__("height", 48.5), "height"),
    (lambda d: d.__setitem__("near", float("inf")), "near"),
    (lambda d: d.__setitem__("convention", "opengl"), "convention"),
    (lambda d: d.__setitem__("schema", "oneshot-avatar/camera/9"), "schema"),
])
def test_from_dict_names_the_bad_field(mutate, field):
    data = _good_dict()
    mutate(data)
    with pytest.raises(UserError) as info:
        Camera.from_dict(data)
    assert info.value.field == field
    assert field in str(info.value)


def test_bad_files_name_file_and_field(tmp_path):
    good = _good_dict()
    bad = _good_dict()
    bad["K"][1][1] = float("nan")
    path = tmp_path / "cams.json"
    path.write_text(json.dumps({"cameras": [good, bad]}))  # json writes NaN as a bare token
    with pytest.raises(BadFileError) as info:
        load_cameras_json(path)
    assert info.value.field == "cameras[1].K" and str(path) in str(info.value)

    bad = _good_dict()
    bad["world_to_cam"][0][0] = 2.0  # scale in the rotation
    path.write_text(json.dumps(bad))
    with pytest.raises(BadFileError) as info:
        Camera.load_json(path)
    assert info.value.field == "world_to_cam"

    path.write_text("{not json")
    with pytest.raises(BadFileError, match="not valid JSON"):
        Camera.load_json(path)
    with pytest.raises(BadFileError, match="not found"):
        Camera.load_json(tmp_path / "missing.json")
    path.write_text(json.dumps({"cameras": []}))
    with pytest.raises(BadFileError) as info:
        load_cameras_json(path)
    assert info.value.field == "cameras"
