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
    chosen = preset("fast", device="cpu")

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
