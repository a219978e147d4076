"""The reconstruction's stages hand back new values: the fit stage returns the subject it fitted
(with the GrabCut mask it made or resumed) instead of writing it into the prepared subject, so a
caller holding ``prepared`` still sees what the subject stage made."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from oneshot_avatar.cameras import front_camera
from oneshot_avatar.fit import FitResult, save_fit
from oneshot_avatar.reconstruct.pipeline import Prepared, fit_stage
from oneshot_avatar.reconstruct.presets import preset
from oneshot_avatar.subject.crop import person_box
from oneshot_avatar.subject.photo import Photo
from oneshot_avatar.subject.working import make_subject

SIZE = 64


def _prepared() -> Prepared:
    rgb = np.full((80, 60, 3), 128, np.uint8)
    photo = Photo(rgb=rgb, alpha=None, path=Path("person.png"), sha256="0" * 64)
    points = np.array([[20.0, 10.0], [40.0, 70.0]])
    box = person_box(photo.size, SIZE, points=points, conf=np.ones(2))
    return Prepared(subject=make_subject(photo, box), keypoints=None, init_file=None, plugins={})


def _fit() -> FitResult:
    params = {"betas": torch.zeros(1, 10), "transl": torch.zeros(1, 3)}
    return FitResult(params=params, camera=front_camera((0.0, 1.0, 0.0), 2.5, SIZE, SIZE, 40.0),
                     report={"keypoint_error_px": 1.0})


def test_a_resumed_fit_returns_the_subject_with_its_grabcut_mask(tmp_path):
    prepared = _prepared()
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[10:50, 20:40] = 1.0
    save_fit(tmp_path / "fit.npz", _fit(), mask)
    fit, subject = fit_stage(None, prepared, preset("fast"), torch.device("cpu"), tmp_path,
                             True, lambda _: None)
    np.testing.assert_array_equal(subject.mask, mask)
    assert subject.mask_source == "grabcut"
    assert fit.report["keypoint_error_px"] == 1.0
    # The prepared subject is what the subject stage made: no mask.
    assert prepared.subject.mask is None and prepared.subject.mask_source == "none"
    np.testing.assert_array_equal(subject.image, prepared.subject.image)


def test_a_given_fit_is_timed_without_changing_the_one_given(tmp_path):
    prepared = _prepared()
    given = _fit()
    seen = []

    def oracle(subject):
        seen.append(subject)
        return given

    fit, subject = fit_stage(None, prepared, preset("fast"), torch.device("cpu"), tmp_path,
                             False, lambda _: None, oracle)
    assert seen == [prepared.subject] and subject is prepared.subject
    assert fit.report["seconds_total"] >= 0.0 and fit.report["keypoint_error_px"] == 1.0
    assert given.report == {"keypoint_error_px": 1.0}
