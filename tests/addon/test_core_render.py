"""Render Avatar's Blender-free parts (blender_addon/core/render.py): the request body, where
the frames go, and the frames out of the backend's zip, tested without Blender."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from blender_addon.core.client import ServiceError
from blender_addon.core.render import (
    extract_frames,
    frame_file,
    render_request,
    split_output_path,
)

CAMERA = {"type": "PERSP", "lens_mm": 50.0}


def test_the_request_sends_one_camera_when_it_does_not_move():
    params = {"body_pose": [[0.0] * 63] * 2}
    request = render_request(params, [CAMERA, dict(CAMERA)], fps=24.0,
                             expression_space="arkit52", name="x" * 80, background=None)
    assert request == {"motion": {"params": params, "fps": 24.0, "expression_space": "arkit52",
                                  "name": "x" * 64},
                       "cameras": [CAMERA], "background": None}
    moving = [CAMERA, {**CAMERA, "lens_mm": 35.0}]
    request = render_request(params, moving, fps=30.0, expression_space=None, name="rig",
                             background=(0.25, 0.5, 1.0))
    assert request["cameras"] == moving  # one per frame
    assert request["background"] == [0.25, 0.5, 1.0]


def test_output_path_is_a_folder_or_a_folder_and_prefix(tmp_path):
    assert split_output_path(str(tmp_path) + "/", "/tmp", "rig_") == (str(tmp_path) + "/", "rig_")
    assert split_output_path(str(tmp_path), "/tmp", "rig_") == (str(tmp_path), "rig_")
    assert split_output_path(str(tmp_path / "shot_"), "/tmp", "rig_") == (str(tmp_path), "shot_")
    assert split_output_path("", "/fallback", "rig_") == ("/fallback", "rig_")
    assert frame_file("/out", "shot_", 7) == "/out/shot_0007.png"


def test_frames_come_out_of_the_zip_under_their_scene_numbers(tmp_path):
    archive = tmp_path / "frames.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("frame_00000.png", b"first")
        out.writestr("frame_00001.png", b"second")
    written = extract_frames(archive, [10, 12], str(tmp_path / "render"), "shot_")
    assert written == [str(tmp_path / "render" / "shot_0010.png"),
                       str(tmp_path / "render" / "shot_0012.png")]
    assert [Path(p).read_bytes() for p in written] == [b"first", b"second"]
    assert not list((tmp_path / "render").glob("*.part"))


def test_a_zip_with_too_few_frames_says_which_is_missing(tmp_path):
    archive = tmp_path / "frames.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("frame_00000.png", b"first")
    with pytest.raises(ServiceError, match="no frame_00001.png") as caught:
        extract_frames(archive, [1, 2], str(tmp_path / "render"), "f_")
    assert caught.value.field == "frames"
    assert not (tmp_path / "render" / "f_0002.png").exists()
