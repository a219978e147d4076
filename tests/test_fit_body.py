"""The body fit: a known pose seen by a known camera is recovered from its keypoints (and mask),
the person seen from behind is turned round, and inputs that cannot be fitted are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from oneshot_avatar.cameras import from_fit
from oneshot_avatar.errors import UserError
from oneshot_avatar.fit import (
    FitConfig,
    Keypoints,
    fit_body,
    keypoint_targets,
    render_silhouette,
    silhouette_gaussians,
)
from oneshot_avatar.fit.fitter import CAMERA_ROTATION
from oneshot_avatar.fit.keypoints import COCO_WHOLEBODY_NAMES

SIZE = 256


def _rotvec(*steps) -> torch.Tensor:
    rotation = Rotation.identity()
    for axis, degrees in steps:
        rotation = rotation * Rotation.from_euler(axis, degrees, degrees=True)
    return torch.tensor(rotation.as_rotvec(), dtype=torch.float32)


def _row(name: str) -> int:
    return JOINT_INDEX[name] - 1


def known_pose(heading_degrees: float = 14.0) -> dict[str, torch.Tensor]:
    """Waving: left arm raised, forearm up; right arm down, bent; left leg in a tree pose (knee
    out, foot in); the whole body turned a little, and a non-average shape."""
    pose = torch.zeros(1, 21, 3)
    pose[0, _row("left_shoulder")] = _rotvec(("z", 25), ("x", -90))
    pose[0, _row("left_elbow")] = torch.tensor([0.0, -1.4, 0.0])
    pose[0, _row("right_shoulder")] = _rotvec(("z", 45), ("x", 90))
    pose[0, _row("right_elbow")] = torch.tensor([0.0, 0.9, 0.0])
    pose[0, _row("left_hip")] = _rotvec(("y", 80), ("z", 15))
    pose[0, _row("left_knee")] = torch.tensor([1.5, 0.0, 0.0])
    pose[0, _row("right_hip")] = _rotvec(("z", -8))
    betas = torch.zeros(1, 16)
    betas[0, :3] = torch.tensor([0.5, -0.3, 0.2])
    orient = _rotvec(("y", heading_degrees), ("x", 3), ("z", 3))[None]
    return {"body_pose": pose, "global_orient": orient, "betas": betas}


def known_camera(distance: float = 3.0):
    focal = SIZE / (2 * math.tan(math.radians(25)))
    return from_fit(focal, (SIZE / 2, SIZE / 2), torch.tensor(CAMERA_ROTATION),
                    torch.tensor([0.05, -0.35, distance]), SIZE, SIZE)


def synthetic_keypoints(body, params, camera) -> Keypoints:
    """COCO-WholeBody keypoints of the posed body, projected (all confident)."""
    targets = keypoint_targets(body)
    out = body(**params)
    names = [n for n in COCO_WHOLEBODY_NAMES if n in targets]
    points = []
    for name in names:
        target = targets[name]
        parts = torch.cat([out.joints[0, list(target.joints)],
                           out.vertices[0, list(target.vertices)]])
        weights = torch.tensor(target.coefficients(), device=parts.device)
        points.append((weights[:, None] * parts).sum(dim=0))
    xy, _ = camera.project(torch.stack(points))
    return Keypoints(xy=xy.detach().cpu().numpy(), conf=np.ones(len(names)), names=tuple(names),
                     source="synthetic", image_size=(SIZE, SIZE))


def _angle(joints, a, b, c) -> float:
    u = joints[JOINT_INDEX[a]] - joints[JOINT_INDEX[b]]
    v = joints[JOINT_INDEX[c]] - joints[JOINT_INDEX[b]]
    return math.degrees(math.acos(float(u @ v / (u.norm() * v.norm()))))


BENDS = (("left_shoulder", "left_elbow", "left_wrist"),
         ("right_shoulder", "right_elbow", "right_wrist"),
         ("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"))


@pytest.fixture(scope="module")
def scene(open_body):
    params = known_pose()
    camera = known_camera()
    return params, camera, synthetic_keypoints(open_body, params, camera)


def test_fit_recovers_a_known_pose_from_keypoints(open_body, scene):
    params, _camera, keypoints = scene
    messages = []
    result = fit_body(open_body, SIZE, keypoints=keypoints, mask=None, init=None,
                      config=FitConfig.fast(), device="cpu", progress=messages.append,
                      photo_scale=2.0)
    report = result.report
    assert report["keypoint_error_px"] < 3.0
    assert report["keypoint_error_photo_px"] == pytest.approx(2 * report["keypoint_error_px"])
    assert report["keypoints_used"] == len(keypoints)
    assert report["mask_iou"] is None and report["keypoint_source"] == "synthetic"
    assert [s["name"] for s in report["stages"]] == ["orient", "body-1", "body-2", "body-3"]
    assert messages and report["seconds"] > 0

    # Output layout as BodyModel takes it; the camera is the working image's.
    p = result.params
    assert p["body_pose"].shape == (1, 21, 3) and p["betas"].shape == (1, 16)
    assert p["left_hand_pose"].shape == (1, 15, 3) and p["expression"].shape == (1, 52)
    assert (p["transl"] == 0).all()
    assert result.camera.width == result.camera.height == SIZE
    torch.testing.assert_close(result.camera.rotation, torch.tensor(CAMERA_ROTATION))
    assert result.camera.cx == result.camera.cy == SIZE / 2

    # The fitted body, seen by the fitted camera, lands on the keypoints; its limbs bend as
    # the true ones do (the bends are in the image plane, where 2D keypoints tell the angle).
    truth = open_body(**params).joints[0]
    fitted = open_body(**p).joints[0]
    for a, b, c in BENDS:  # measured: within 2 degrees, the tree-pose knee within 9
        assert abs(_angle(truth, a, b, c) - _angle(fitted, a, b, c)) < 12.0, b
    # Turned the right way: the body's forward axis agrees within 15 degrees.
    forward = Rotation.from_rotvec(p["global_orient"][0].numpy()).apply([0, 0, 1])
    true_forward = Rotation.from_rotvec(params["global_orient"][0].numpy()).apply([0, 0, 1])
    assert math.degrees(math.acos(np.clip(forward @ true_forward, -1, 1))) < 15.0


def test_fit_of_a_person_seen_from_behind(open_body):
    params = known_pose(heading_degrees=170.0)
    camera = known_camera()
    keypoints = synthetic_keypoints(open_body, params, camera)
    config = FitConfig(body_iterations=30, pose_prior_weights=(30.0, 3.0))
    result = fit_body(open_body, SIZE, keypoints=keypoints, mask=None, init=None,
                      config=config, device="cpu")
    forward = Rotation.from_rotvec(result.params["global_orient"][0].numpy()).apply([0, 0, 1])
    assert forward[2] < -0.9  # facing away from the camera (which looks along -Z)
    assert result.report["keypoint_error_px"] < 5.0


def test_fit_with_a_mask_adds_the_silhouette(open_body, scene):
    params, camera, keypoints = scene
    mask = (render_silhouette(open_body, params, camera, SIZE).detach().numpy() > 0.5)
    config = FitConfig(body_iterations=40, pose_prior_weights=(30.0, 3.0),
                       silhouette_iterations=4, silhouette_resolution=96,
                       silhouette_gaussians=1500)
    result = fit_body(open_body, SIZE, keypoints=keypoints, mask=mask.astype(np.float32),
                      init=None, config=config, device="cpu")
    report = result.report
    assert report["stages"][-1]["name"] == "silhouette"
    assert report["mask_iou"] > 0.85
    assert report["keypoint_error_px"] < 3.0


def test_initial_pose_without_keypoints(open_body, scene):
    params, camera, _ = scene
    mask = render_silhouette(open_body, params, camera, SIZE).detach().numpy()
    mask = (mask > 0.5).astype(np.float32)
    init = {k: v.clone() for k, v in params.items()}
    config = FitConfig(silhouette_iterations=3, silhouette_resolution=96,
                       silhouette_gaussians=1500)
    # No camera: the body is framed to the mask's box, then refined on the outline.
    result = fit_body(open_body, SIZE, keypoints=None, mask=mask, init=init, config=config,
                      device="cpu")
    assert result.report["keypoint_error_px"] is None
    assert result.report["mask_iou"] > 0.7
    torch.testing.assert_close(result.params["body_pose"], params["body_pose"], atol=0.1,
                               rtol=0)
    # Without a mask either: framed in the image centre, 80 % of its height.
    plain = fit_body(open_body, SIZE, keypoints=None, mask=None, init=init, config=config,
                     device="cpu")
    vertices = open_body(**plain.params).vertices[0]
    uv, depth = plain.camera.project(vertices)
    assert (depth > 0).all()
    height = float(uv[:, 1].max() - uv[:, 1].min())
    assert 0.75 * SIZE < height < 0.85 * SIZE
    assert abs(float(uv[:, 0].mean()) - SIZE / 2) < 0.15 * SIZE
    # With the camera given, the fit keeps it.
    with_camera = dict(init, camera=camera)
    kept = fit_body(open_body, SIZE, keypoints=None, mask=None, init=with_camera, config=config,
                    device="cpu")
    torch.testing.assert_close(kept.camera.world_to_cam, camera.world_to_cam)
    assert kept.camera.fx == pytest.approx(camera.fx)


def test_an_initial_camera_from_any_angle_is_folded_into_the_body(open_body):
    """A camera from Blender need not look along -Z: its rotation goes into global_orient and
    the initial transl into the camera, and every vertex projects where it did."""
    from oneshot_avatar.cameras import look_at

    params = known_pose()
    params["transl"] = torch.tensor([[0.3, -0.1, 0.2]])
    camera = look_at([1.5, 0.8, 2.0], [0.2, -0.3, 0.1], width=512, height=512,
                     fov_y_degrees=40)
    before, _ = camera.project(open_body(**params).vertices[0])
    init = {k: v.clone() for k, v in params.items()}
    init["camera"] = camera
    result = fit_body(open_body, SIZE, keypoints=None, mask=None, init=init,
                      config=FitConfig(silhouette_iterations=0), device="cpu")
    torch.testing.assert_close(result.camera.rotation, torch.tensor(CAMERA_ROTATION))
    assert (result.params["transl"] == 0).all()
    after, _ = result.camera.project(open_body(**result.params).vertices[0])
    torch.testing.assert_close(after, before * SIZE / 512, atol=1e-2, rtol=0)


def test_nothing_to_fit_lists_the_three_ways(open_body):
    with pytest.raises(UserError) as info:
        fit_body(open_body, SIZE, keypoints=None, mask=None, init=None,
                 config=FitConfig.fast(), device="cpu")
    message = str(info.value)
    for way in ("--keypoints FILE", "--keypoint-model FILE.onnx", "--init FILE"):
        assert way in message


def test_too_few_keypoints_are_refused(open_body):
    keypoints = Keypoints(xy=np.array([[100.0, 50.0], [120.0, 50.0], [0.0, 0.0]]),
                          conf=np.array([0.9, 0.9, 0.0]),
                          names=("nose", "left_eye", "left_knee"), source="test")
    with pytest.raises(UserError, match="only 2 usable body keypoints"):
        fit_body(open_body, SIZE, keypoints=keypoints, mask=None, init=None,
                 config=FitConfig.fast(), device="cpu")


def test_render_silhouette_is_differentiable_and_in_place(open_body):
    camera_t = torch.tensor([0.0, -0.3, 3.0], requires_grad=True)
    focal = SIZE / (2 * math.tan(math.radians(25)))
    camera = from_fit(focal, (SIZE / 2, SIZE / 2), torch.tensor(CAMERA_ROTATION), camera_t,
                      SIZE, SIZE)
    gaussians = silhouette_gaussians(open_body, 1500)
    alpha = render_silhouette(open_body, {}, camera, 64, gaussians=gaussians)
    assert alpha.shape == (64, 64)
    values = alpha.detach()
    assert 0.0 <= float(values.min()) and float(values.max()) <= 1.0
    assert float(values.max()) > 0.9 and float(values[0, 0]) < 0.01  # body inside, corner empty
    # The rest body (arms out) is centred left-right.
    columns = (values > 0.5).any(dim=0).nonzero().squeeze(1).float()
    assert abs(float(columns.mean()) - 31.5) < 2.0
    # Moving the camera right moves the silhouette left: the gradient says so.
    left_mass = (alpha * torch.linspace(-1, 1, 64)[None]).sum()
    left_mass.backward()
    assert camera_t.grad is not None and float(camera_t.grad[0]) > 0


def test_presets():
    fast, quality = FitConfig.fast(), FitConfig.quality()
    assert quality.body_iterations > fast.body_iterations
    assert quality.silhouette_resolution > fast.silhouette_resolution
    assert FitConfig(**fast.to_dict()) == fast


def test_fit_to_real_openpose_keypoints(open_body, shared_data):
    """The man in pifuhd_test.png (BODY_25 from OpenPose): a square crop around him, the fast
    preset; the body lands on his keypoints, upright and facing the camera."""
    from oneshot_avatar.fit import load_keypoints

    path = shared_data / "keypoints" / "pifuhd_test_keypoints.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    photo = load_keypoints(path, (512, 512))
    seen = photo.conf > 0.2
    low, high = photo.xy[seen].min(axis=0), photo.xy[seen].max(axis=0)
    side = float((high - low).max()) * 1.25
    corner = (low + high) / 2 - side / 2
    scale = SIZE / side
    keypoints = photo.mapped(lambda xy: (xy - corner) * scale, image_size=(SIZE, SIZE))
    result = fit_body(open_body, SIZE, keypoints=keypoints, mask=None, init=None,
                      config=FitConfig.fast(), device="cpu", photo_scale=1 / scale)
    report = result.report
    assert report["keypoints_used"] == 25
    assert report["keypoint_error_px"] < 3.0  # measured ~1 px (hips and neck differ most)
    world = open_body(**result.params).joints[0]
    torso = world[JOINT_INDEX["neck"]] - world[JOINT_INDEX["pelvis"]]
    shoulders = world[JOINT_INDEX["left_shoulder"]] - world[JOINT_INDEX["right_shoulder"]]
    facing = torch.linalg.cross(shoulders, torso)  # the chest's forward direction
    assert float(torso[1] / torso.norm()) > 0.9  # upright
    assert float(facing[2] / facing.norm()) > 0.7  # towards the camera (+Z)
    joints, _ = result.camera.project(world)
    head, ankle = joints[JOINT_INDEX["head"]], joints[JOINT_INDEX["left_ankle"]]
    assert float(ankle[1] - head[1]) > 0.6 * SIZE
