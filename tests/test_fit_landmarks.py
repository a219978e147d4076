"""The fit from a detector's landmarks: synthetic people photographed with a known camera and
pose, detected by MediaPipe Holistic, fitted; the body pose, finger curl and jaw come back,
the standing person stands upright in the side view; the face-mesh correspondences exist on
the open body and are stable; missing parts drop their terms with a note."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from oneshot_avatar.fit import FitConfig, fit_body
from oneshot_avatar.fit.fitter import CAMERA_ROTATION, _fold_tilt
from oneshot_avatar.fit.landmarks import Landmarks
from oneshot_avatar.fit.lean import fit_lean

pytest.importorskip("mediapipe")

PHOTO = 512  # the synthetic photo's side, pixels
SIZE = 256  # the fit's working image
FOV = 35.0  # the synthetic camera's vertical field of view (subject_camera's default)
FIST = 1.0  # radians of curl at each finger joint of the fist


def lit_photo(body, params: dict, size: int) -> tuple[np.ndarray, object]:
    """The synthetic subject's outfit, lit by one light in the posed frame (MediaPipe's hand
    model needs shading to see fingers), over the studio backdrop. Returns (rgb float [H, W, 3],
    camera)."""
    from oneshot_avatar.reconstruct.synthetic import (
        LOOKS,
        background_image,
        outfit_function,
        subject_camera,
    )
    from oneshot_avatar.render.mesh import SurfaceTexture, downsample, face_normals, rasterize_mesh

    with torch.no_grad():
        rest = body(betas=params["betas"])
        paint = outfit_function(rest.rest_vertices[0], rest.rest_joints[0], body.lbs_weights,
                                LOOKS["blue-stripes"])
        texture = SurfaceTexture.from_function(rest.rest_vertices[0], body.faces, paint, 3)
        camera = subject_camera(body, params, size, size, fov_y_degrees=FOV)
        vertices = body(**params).vertices[0]
        raster = rasterize_mesh(vertices, body.faces, camera, supersample=2)
        hit = raster.mask
        rgb = torch.zeros(*hit.shape, 3)
        rgb[hit] = texture.sample(raster.face_id[hit], raster.bary[hit]).float()
        normals = face_normals(vertices, body.faces)[raster.face_id[hit]]
        light = torch.tensor([0.3, 0.5, 1.0])
        rgb[hit] *= (0.3 + 0.8 * (normals.abs() @ (light / light.norm())).clamp(0, 1))[:, None]
        rgb = downsample(rgb, 2).numpy()
        coverage = downsample(hit.float(), 2).numpy()
    image = rgb + background_image(size, size) * (1 - coverage[..., None])
    return np.clip(image, 0, 1).astype(np.float32), camera


def subject_pose(body, *, jaw_open: float, fist: str) -> dict:
    """Standing, arms lowered with the palms to the camera, head a little turned; one hand in
    a fist (every finger joint curled by FIST), the other open; the jaw open by ``jaw_open``
    (the open body's ``jawOpen`` unit)."""
    from oneshot_avatar.reconstruct.synthetic import standing_pose

    pose = standing_pose(arms_down=1.0, elbow_bend=0.4, head_turn=0.15)
    for side, sign in (("left", -1.0), ("right", 1.0)):
        rotation = Rotation.from_rotvec([0.0, 0.0, sign]) * Rotation.from_euler("x", -90,
                                                                               degrees=True)
        pose["body_pose"][0, JOINT_INDEX[f"{side}_shoulder"] - 1] = torch.tensor(
            rotation.as_rotvec(), dtype=torch.float32)
    pose[f"{fist}_hand_pose"][0, :12, 2] = (-1.0 if fist == "left" else 1.0) * FIST
    names = body.expression_names
    expression = torch.zeros(1, len(names))
    expression[0, names.index("jawOpen")] = jaw_open
    pose["expression"] = expression
    pose["betas"] = torch.zeros(1, body.num_betas)
    return pose


def finger_curl(params: dict, side: str) -> float:
    """Mean curl (radians, towards the palm) of the four fingers' joints."""
    sign = -1.0 if side == "left" else 1.0
    return float(sign * params[f"{side}_hand_pose"][0, :12, 2].mean())


def camera_joints(body, params: dict, camera) -> np.ndarray:  # [55, 3], pelvis at 0
    with torch.no_grad():
        joints = body(**params).joints[0].double()
    rotation = camera.world_to_cam[:3, :3].double()
    out = (joints @ rotation.T).numpy()
    return out - out[0]


def lip_gap(body, params: dict, correspondence) -> float:
    """Metres between MediaPipe's inner-lip midpoints (13 upper, 14 lower) on the posed body."""
    with torch.no_grad():
        vertices = body(**params).vertices[0].double().numpy()
    points = correspondence.positions(vertices, body.faces.numpy())
    return float(np.linalg.norm(points[13] - points[14]))


@pytest.fixture(scope="module")
def correspondence_cache(tmp_path_factory, monkeypatch_module):
    folder = tmp_path_factory.mktemp("face-cache")
    monkeypatch_module.setenv("ONESHOT_AVATAR_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def monkeypatch_module():
    patcher = pytest.MonkeyPatch()
    yield patcher
    patcher.undo()


@pytest.fixture(scope="module")
def subjects(open_body, correspondence_cache):
    """Two photographed, detected and fitted people: jaw open with a left fist, jaw closed
    with a right fist."""
    from oneshot_avatar.detect import HolisticDetector

    config = replace(FitConfig.fast(), fov_degrees=FOV, silhouette_iterations=0)
    out = {}
    for name, jaw, fist in (("open", 0.9, "left"), ("closed", 0.0, "right")):
        pose = subject_pose(open_body, jaw_open=jaw, fist=fist)
        image, camera = lit_photo(open_body, pose, PHOTO)
        with HolisticDetector() as detector:  # the product's detector, as reconstruct runs it
            landmarks = detector.detect(image)
        working = landmarks.mapped(lambda xy: xy * (SIZE / PHOTO), (SIZE, SIZE))
        fit = fit_body(open_body, SIZE, keypoints=None, mask=None, init=None, config=config,
                       device="cpu", landmarks=working)
        out[name] = {"pose": pose, "camera": camera, "landmarks": working, "fit": fit,
                     "fist": fist}
    return out


def test_detected_landmarks_of_the_synthetic_people(subjects):
    for subject in subjects.values():
        landmarks = subject["landmarks"]
        names = landmarks.keypoints.names
        assert landmarks.face is not None and landmarks.world is not None
        assert "left_hand_index4" in names and "right_hand_index4" in names
        assert landmarks.hand_depth is not None and np.isfinite(landmarks.hand_depth).all()
        # Holistic's "left" hand is the person's left: on the image's right here.
        wrist = landmarks.keypoints.get("left_hand_wrist")[0]
        assert wrist[0] > SIZE / 2


def test_fit_from_detected_landmarks_recovers_the_body_pose(open_body, subjects):
    for subject in subjects.values():
        fit = subject["fit"]
        true = camera_joints(open_body, subject["pose"], subject["camera"])
        fitted = camera_joints(open_body, fit.params, fit.camera)
        body_error = np.linalg.norm(true[:22] - fitted[:22], axis=1).mean()
        assert body_error < 0.07, f"mean body joint error {100 * body_error:.1f} cm"
        assert fit.report["keypoint_errors_by_group_px"]["face"] < 1.5
        assert fit.report["landmarks"]["face_mesh_points"] > 200  # every 2nd of ~450


def test_fit_from_detected_landmarks_curls_the_fist(subjects):
    for subject in subjects.values():
        fist = subject["fist"]
        other = "right" if fist == "left" else "left"
        params = subject["fit"].params
        curled, straight = finger_curl(params, fist), finger_curl(params, other)
        assert curled > 0.4, f"{fist} fist curl {curled:.2f} rad (true {FIST})"
        assert curled > straight + 0.3, f"fist {curled:.2f} vs open hand {straight:.2f} rad"


def test_fit_from_detected_landmarks_opens_the_jaw(open_body, subjects):
    from oneshot_avatar.fit.face_correspondence import face_correspondence

    correspondence = face_correspondence(open_body)
    gaps = {}
    for name, subject in subjects.items():
        true = lip_gap(open_body, subject["pose"], correspondence)
        fitted = lip_gap(open_body, subject["fit"].params, correspondence)
        gaps[name] = (true, fitted)
        assert abs(fitted - true) < 0.015, f"{name}: lip gap {fitted * 1000:.1f} mm, true " \
                                           f"{true * 1000:.1f} mm"
    assert gaps["open"][1] > gaps["closed"][1] + 0.010, gaps


def test_a_standing_person_is_fitted_upright(open_body, subjects):
    for subject in subjects.values():
        fit = subject["fit"]
        lean = fit_lean(open_body, fit.params, fit.camera)
        assert fit.report["landmarks"]["standing"] and fit.report["landmarks"]["ground_contact"]
        assert abs(lean["torso"]) < 4.0 and abs(lean["legs"]) < 4.0, lean
        assert abs(lean["left_leg"]) < 6.0 and abs(lean["right_leg"]) < 6.0, lean


def test_missing_parts_drop_their_terms_with_notes(open_body, subjects, correspondence_cache):
    landmarks = subjects["closed"]["landmarks"]
    keypoints = landmarks.keypoints
    # what the detector gives without hands, face and feet: none of their points
    keep = [not (n.startswith(("left_hand_", "right_hand_", "face_")) or "heel" in n
                 or "toe" in n or n.endswith("ankle")) for n in keypoints.names]
    cut = replace(keypoints, xy=keypoints.xy[keep], conf=keypoints.conf[keep],
                  names=tuple(n for n, k in zip(keypoints.names, keep) if k))
    missing = replace(landmarks, keypoints=cut, face=None, face_conf=0.0, hand_depth=None)
    config = replace(FitConfig.fast(), fov_degrees=FOV, silhouette_iterations=0,
                     body_iterations=15, pose_prior_weights=(30.0, 3.0), orient_headings=(0.0,))
    fit = fit_body(open_body, SIZE, keypoints=None, mask=None, init=None, config=config,
                   device="cpu", landmarks=missing)
    notes = " | ".join(fit.report["notes"])
    assert "no face found" in notes
    assert "left hand was not found" in notes and "right hand was not found" in notes
    assert "feet not (fully) in the photo" in notes
    assert "face" not in fit.report["keypoint_errors_by_group_px"]
    assert not fit.report["landmarks"]["ground_contact"]
    # With everything there, nothing is noted.
    assert subjects["closed"]["fit"].report["notes"] == []


def test_face_correspondences_exist_and_are_stable(open_body, correspondence_cache):
    from oneshot_avatar.fit.face_correspondence import (
        compute_face_correspondence,
        face_correspondence,
    )
    from oneshot_avatar.fit.targets import find_landmark_vertices

    first = face_correspondence(open_body)  # computed (or cached by the other tests)
    assert first.body_sha256 == open_body.info.sha256
    assert first.valid.sum() >= 420
    assert np.median(first.spread[first.valid]) < 0.003  # the views agree to millimetres
    again = compute_face_correspondence(open_body)
    triangles = open_body.faces.numpy()
    with torch.no_grad():
        rest = open_body().vertices[0].double().numpy()
    a, b = first.positions(rest, triangles), again.positions(rest, triangles)
    both = first.valid & again.valid
    assert np.abs(a[both] - b[both]).max() < 1e-4
    cached = face_correspondence(open_body)
    np.testing.assert_array_equal(cached.faces, first.faces)
    # They mean what MediaPipe means: 1 nose tip, 33 / 263 the right / left eye's outer corner.
    landmarks = find_landmark_vertices(open_body)
    assert np.linalg.norm(a[1] - rest[landmarks["nose"]]) < 0.012
    assert np.linalg.norm(a[33] - rest[landmarks["face_36"]]) < 0.012
    assert np.linalg.norm(a[263] - rest[landmarks["face_45"]]) < 0.012
    # Lips between nose and chin, on the midline.
    assert abs(a[13, 0] - a[1, 0]) < 0.005 and a[13, 1] < a[1, 1] - 0.01


def test_fold_tilt_stands_the_body_up_and_keeps_every_projection(open_body):
    from oneshot_avatar.cameras import from_fit

    params = {"global_orient": torch.tensor([[0.25, 0.3, 0.0]]),
              "body_pose": torch.zeros(1, 21, 3), "betas": torch.zeros(1, open_body.num_betas)}
    params["betas"][0, 0] = 1.0
    camera = from_fit(300.0, (128.0, 128.0), torch.tensor(CAMERA_ROTATION),
                      torch.tensor([0.0, 0.2, 3.0]), SIZE, SIZE)
    before = fit_lean(open_body, params, camera)
    assert abs(before["torso"]) > 10
    folded, new_camera, tilt = _fold_tilt(open_body, params, camera)
    after = fit_lean(open_body, folded, new_camera)
    assert abs(after["torso"]) < 0.5 and abs(after["legs"]) < 0.5
    assert math.degrees(tilt) == pytest.approx(before["torso"], abs=2.0)
    with torch.no_grad():
        xy0, _ = camera.project(open_body(**params).vertices[0])
        xy1, _ = new_camera.project(open_body(**folded).vertices[0])
    assert (xy0 - xy1).abs().max() < 1e-3


def test_landmarks_mapped_scales_the_hand_depth():
    from oneshot_avatar.fit.keypoints import Keypoints

    keypoints = Keypoints(xy=np.zeros((1, 2)), conf=np.ones(1), names=("nose",), source="t",
                          image_size=(100, 100))
    depth = np.arange(42, dtype=np.float32).reshape(2, 21)
    landmarks = Landmarks(keypoints=keypoints, image_size=(100, 100), source="t",
                          hand_depth=depth)
    mapped = landmarks.mapped(lambda xy: xy * 2.5 + 3.0, (250, 250))
    np.testing.assert_allclose(mapped.hand_depth, depth * 2.5, rtol=1e-6)
