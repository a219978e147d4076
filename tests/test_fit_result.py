"""The fit result on disk (fit/result.py): what a resumed reconstruction reads back is what
the fit made, and the file is the same bytes for the same fit."""

from __future__ import annotations

import numpy as np
import torch

from oneshot_avatar.cameras import front_camera
from oneshot_avatar.fit import FitResult, load_fit, save_fit


def _fit() -> FitResult:
    generator = torch.Generator().manual_seed(0)
    params = {"betas": torch.randn(1, 10, generator=generator),
              "body_pose": torch.randn(1, 63, generator=generator).requires_grad_(True),
              "transl": torch.tensor([[0.1, -0.2, 2.5]])}
    camera = front_camera((0.0, 1.0, 0.0), 2.5, 64, 96, 40.0)
    return FitResult(params=params, camera=camera,
                     report={"keypoint_error_px": np.float32(1.5), "mask_iou": 0.91,
                             "first_pass": {"seconds_total": 3.0}})


def test_saved_fit_loads_back_as_it_was(tmp_path):
    fit = _fit()
    mask = (np.arange(96 * 64).reshape(96, 64) % 7 == 0).astype(np.float32)
    save_fit(tmp_path / "fit.npz", fit, mask)
    loaded, loaded_mask = load_fit(tmp_path / "fit.npz", "cpu")
    assert set(loaded.params) == set(fit.params)
    for name, value in fit.params.items():
        torch.testing.assert_close(loaded.params[name], value.detach(), atol=0, rtol=0)
    assert loaded.camera.to_dict() == fit.camera.to_dict()
    assert loaded.report == {"keypoint_error_px": 1.5, "mask_iou": 0.91,
                             "first_pass": {"seconds_total": 3.0}}
    np.testing.assert_array_equal(loaded_mask, mask)


def test_fit_without_mask_and_same_fit_same_bytes(tmp_path):
    save_fit(tmp_path / "a.npz", _fit())
    save_fit(tmp_path / "b.npz", _fit())
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    _, mask = load_fit(tmp_path / "a.npz")
    assert mask is None


def test_fit_result_to_device_detaches_and_keeps_the_report():
    fit = _fit()
    moved = fit.to("cpu")
    assert not moved.params["body_pose"].requires_grad
    torch.testing.assert_close(moved.params["body_pose"], fit.params["body_pose"].detach())
    assert moved.report is fit.report
