"""The photo's field of view: read from the EXIF focal length a camera writes (else given with
--fov, else assumed), and used by the fit for the camera it places the body in."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from oneshot_avatar.errors import UserError
from oneshot_avatar.reconstruct.pipeline import (
    PHOTO_FOV_DEGREES,
    ReconstructOptions,
    fit_stage,
    prepare_subject,
)
from oneshot_avatar.reconstruct.presets import preset
from oneshot_avatar.reconstruct.synthetic import make_subject, save_photo
from oneshot_avatar.subject.photo import (
    exif_with_focal_length,
    field_of_view_from_35mm,
    focal_35mm_from_field_of_view,
    load_photo,
)


def test_a_35mm_equivalent_focal_length_gives_the_long_side_field_of_view():
    # A 3:2 frame is the full-frame sensor itself: 50 mm sees 2 atan(18 / 50) across 36 mm.
    assert math.isclose(field_of_view_from_35mm(50.0, 3000, 2000),
                        math.degrees(2 * math.atan(18 / 50)), rel_tol=1e-9)
    # The long side is what counts, in portrait as in landscape; a phone's 26 mm is wide.
    assert field_of_view_from_35mm(26.0, 3000, 4000) == field_of_view_from_35mm(26.0, 4000, 3000)
    assert 60 < field_of_view_from_35mm(26.0, 4000, 3000) < 70
    assert math.isclose(focal_35mm_from_field_of_view(
        field_of_view_from_35mm(85.0, 512, 512), 512, 512), 85.0, rel_tol=1e-9)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_the_photo_field_of_view_is_read_from_exif(tmp_path, suffix):
    image = Image.fromarray(np.full((300, 400, 3), 90, np.uint8))
    path = tmp_path / f"with{suffix}"
    image.save(path, exif=exif_with_focal_length(50.0, 400, 300))
    assert abs(load_photo(path).fov_degrees - 50.0) < 1.0  # whole millimetres in EXIF
    plain = tmp_path / f"plain{suffix}"
    image.save(plain)
    assert load_photo(plain).fov_degrees is None
    unknown = Image.Exif()
    unknown.get_ifd(0x8769)[0xA405] = 0  # EXIF's "unknown"
    zero = tmp_path / f"zero{suffix}"
    image.save(zero, exif=unknown.tobytes())
    assert load_photo(zero).fov_degrees is None


def test_the_fit_places_the_body_with_the_photo_field_of_view(tmp_path, open_body):
    """The working camera's focal length follows the photo's field of view (EXIF, else --fov,
    else the assumed one), and the report says where it came from."""
    subject = make_subject(open_body, "green-plain", size=256)
    photo = tmp_path / "photo.png"
    save_photo(subject, photo)
    chosen = preset("fast")

    def prepared(**extra):
        options = ReconstructOptions(photo=photo, out=tmp_path / "a.avatar", quiet=True, **extra)
        return prepare_subject(options, chosen, "cpu", lambda message: None)

    from_exif = prepared()
    assert abs(from_exif.fov_degrees - 35.0) < 0.5  # the synthetic camera's
    assert "EXIF" in from_exif.plugins["field_of_view"]
    given = prepared(fov_degrees=60.0)
    assert given.fov_degrees == 60.0 and "given" in given.plugins["field_of_view"]
    with pytest.raises(UserError, match="fov"):
        prepared(fov_degrees=400.0)
    save_photo(subject, photo, exif=False)
    assumed = prepared()
    assert assumed.fov_degrees == PHOTO_FOV_DEGREES and "assumed" in assumed.plugins["field_of_view"]

    fit, fitted = fit_stage(open_body, from_exif, chosen, "cpu", tmp_path, False,
                            lambda message: None)
    camera = fitted.box.camera_from_crop(fit.camera.to("cpu"), 256, 256)
    assert abs(camera.fx - subject.camera.fx) / subject.camera.fx < 0.02


def _root_in_camera(camera, params) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    root = Rotation.from_rotvec(params["global_orient"].reshape(3).double().numpy()).as_matrix()
    return camera.rotation.detach().cpu().double().numpy() @ root


def test_a_person_off_the_photo_centre_is_not_turned_to_fake_its_perspective(tmp_path,
                                                                              open_body):
    """The camera turned 12 degrees away, so the person stands in the left part of a wide
    photo: the fit's optical axis goes through the photo's centre, not the crop's, and the
    detector's 3D landmarks are turned from its view of the person onto the camera's axes, so
    the body keeps its orientation in the camera: 3.6 degrees off (8.3 of them yaw, 9.2 in all,
    when both took the crop's centre for the optical axis)."""
    import dataclasses

    import torch
    from scipy.spatial.transform import Rotation

    from oneshot_avatar.cameras import look_at
    from oneshot_avatar.render.mesh import render_textured

    subject = make_subject(open_body, "blue-stripes", size=256)
    eye = subject.camera.position.detach().cpu().double().numpy()
    turn = math.radians(12.0)
    target = eye + 3.0 * np.array([math.sin(turn), 0.0, -math.cos(turn)])
    camera = look_at(tuple(eye), tuple(target), width=384, height=256,
                     focal=(subject.camera.fx, subject.camera.fy))
    with torch.no_grad():
        vertices = open_body(**subject.params).vertices[0]
        rgb, alpha = render_textured(vertices, open_body.faces, subject.texture, camera,
                                     background=(0.0, 0.0, 0.0))
    alpha = alpha.numpy()[..., None]
    image = rgb.numpy() + (1 - alpha) * np.array([0.55, 0.6, 0.65], dtype=np.float32)
    columns = np.flatnonzero(alpha[..., 0].max(axis=0) > 0.5)
    assert columns.mean() < 384 / 2 - 40, "the person should stand left of the centre"
    photo = tmp_path / "wide.png"
    save_photo(dataclasses.replace(subject, image=image, camera=camera), photo)
    chosen = preset("fast")
    options = ReconstructOptions(photo=photo, out=tmp_path / "a.avatar", quiet=True)
    prepared = prepare_subject(options, chosen, "cpu", lambda message: None)
    fit, fitted = fit_stage(open_body, prepared, chosen, "cpu", tmp_path, False,
                            lambda message: None)
    fitted_camera = fitted.box.camera_from_crop(fit.camera.to("cpu"), 384, 256)
    assert abs(fitted_camera.cx - 192) < 1 and abs(fitted_camera.cy - 128) < 1
    error = Rotation.from_matrix(_root_in_camera(fitted_camera, fit.params)
                                 @ _root_in_camera(camera, subject.params).T)
    assert math.degrees(error.magnitude()) < 6.0, np.degrees(error.as_rotvec())


def test_the_detectors_view_ray_goes_to_the_hips_or_else_to_the_seen_body():
    """The photo fit and video tracking aim the world landmarks' view ray at the same points:
    both hips when both are seen, else the body points that are seen (never an unseen one,
    whose coordinates mean nothing)."""
    from oneshot_avatar.fit.depth_cues import ray_points

    names = ["nose", "left_hip", "right_hip", "left_ankle", "left_hand_0"]
    groups = ["body", "body", "body", "body", "hand"]
    assert ray_points(names, groups, [1, 1, 1, 1, 1]).tolist() == [1, 2]
    assert ray_points(names, groups, [1, 0, 1, 1, 1]).tolist() == [0, 2, 3]
    assert ray_points(names, groups, [0, 0, 0, 0, 1]).tolist() == []
