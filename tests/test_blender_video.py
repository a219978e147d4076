"""Driver: Import Video Motion in real Blender (tests/blender/test_video_ops.py, run by Blender's
Python) against a real ``oneshot-avatar serve`` on loopback, with a shared video."""

from __future__ import annotations

import pytest

from addon_packages import build_test_package
from blender_runner import blender_python, run_blender_tests
from service_server import running_server
from shared_files import shared_file

TOKEN = "video-test-token-0123456789abcdef"


@pytest.mark.slow
def test_import_video_motion_in_blender(tmp_path, open_body, body_cache):
    blender_python()  # skip before building anything
    pytest.importorskip("mediapipe.python.solutions.holistic")
    video = shared_file("video/obama_weekly_address_answers.mp4")
    package = build_test_package(tmp_path / "actor.avatar", open_body, 500)
    with running_server(tmp_path / "server-data", body_cache=body_cache, token=TOKEN) as server:
        run_blender_tests(["tests/blender/test_video_ops.py"], tmp_path, {
            **server.blender_env(), "ONESHOT_AVATAR_TEST_PACKAGE": str(package),
            "ONESHOT_AVATAR_TEST_VIDEO": str(video)})
