"""``--init FILE``: initial SMPL-X parameters as .npz or .json, their shapes, the optional
camera, and the errors a user can cause."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from oneshot_avatar.cameras import look_at
from oneshot_avatar.errors import BadFileError
from oneshot_avatar.fit.init_params import load_init


def test_npz_with_the_accepted_shapes(tmp_path, open_body):
    rng = np.random.default_rng(0)
    body_pose = rng.normal(size=(21, 3)) * 0.2
    path = tmp_path / "init.npz"
    np.savez(path, global_orient=np.array([0.1, 0.2, 0.3]), body_pose=body_pose.reshape(63),
             left_hand_pose=rng.normal(size=(1, 15, 3)), right_hand_pose=np.zeros((1, 45)),
             jaw_pose=np.zeros((1, 3)), betas=np.arange(10, dtype=np.float32),
             gender=np.array("neutral"))
    init = load_init(path, open_body)
    assert init["global_orient"].shape == (1, 3)
    torch.testing.assert_close(init["body_pose"][0], torch.tensor(body_pose, dtype=torch.float32))
    assert init["left_hand_pose"].shape == (1, 15, 3)
    assert init["right_hand_pose"].shape == (1, 15, 3)
    # 10 betas for a 16-beta body: padded with zeros.
    assert init["betas"].shape == (1, 16)
    torch.testing.assert_close(init["betas"][0, :10], torch.arange(10, dtype=torch.float32))
    assert (init["betas"][0, 10:] == 0).all()
    assert "gender" not in init
    for value in init.values():
        assert value.dtype == torch.float32 and value.device.type == "cpu"


def test_json_with_camera_and_unknown_keys(tmp_path, open_body, caplog):
    camera = look_at([0, 0, 3], [0, 0, 0], width=256, height=256, fov_y_degrees=50)
    data = {"body_pose": np.zeros((21, 3)).tolist(), "expression": [0.5, 0.25],
            "camera": camera.to_dict(), "mocap_framerate": 30}
    path = tmp_path / "init.json"
    path.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        init = load_init(path, open_body)
    assert "mocap_framerate" in caplog.text
    assert init["expression"].shape == (1, 52)
    assert init["expression"][0, :2].tolist() == [0.5, 0.25]
    torch.testing.assert_close(init["camera"].K, camera.K)
    assert init["camera"].width == 256


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"body_pose": [[0.0, float("nan"), 0.0]] * 21}, "body_pose", "NaN"),
        ({"global_orient": [0.0, 0.0]}, "global_orient", r"\[3\]"),
        ({"body_pose": np.zeros((5, 63)).tolist()}, "body_pose", "5 frames"),
        ({"left_hand_pose": "flat"}, "left_hand_pose", "numbers"),
        ({"betas": [1.0] * 20}, "betas", "16"),
        ({"camera": {"schema": "oneshot-avatar/camera/1"}}, "camera", "width"),
    ],
)
def test_bad_values_name_the_field(tmp_path, open_body, data, field, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BadFileError, match=message) as info:
        load_init(path, open_body)
    assert field in str(info.value)


def test_files_that_are_not_an_initial_pose(tmp_path, open_body):
    with pytest.raises(BadFileError, match="does not exist"):
        load_init(tmp_path / "none.npz", open_body)
    text = tmp_path / "pose.txt"
    text.write_text("0 0 0")
    with pytest.raises(BadFileError, match=".npz or .json"):
        load_init(text, open_body)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"fps": 30}))
    with pytest.raises(BadFileError, match="no SMPL-X parameter"):
        load_init(empty, open_body)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, body_pose=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BadFileError, match="pickle"):
        load_init(pickled, open_body)
    # Extra betas that are zero are fine.
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"betas": [0.5] + [0.0] * 299}))
    assert load_init(ok, open_body)["betas"][0, 0] == 0.5
