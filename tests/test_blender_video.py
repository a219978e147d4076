"""Driver: Import Video Motion in real Blender (tests/blender/test_video_ops.py, run by Blender's
Python) against a real ``oneshot-avatar serve`` on loopback, with a shared video."""

from __future__ import annotations

import pytest

from addon_packages import build_test_package
from blender_runner import blender_python, run_blender_tests
from service_server import start_server
from shared_files import SHARED_DATA

TOKEN = "video-test-token-0123456789abcdef"


@pytest.mark.slow
def test_import_video_motion_in_blender(tmp_path, open_body, body_cache):
    blender_python()  # skip before building anything
    pytest.importorskip("mediapipe.python.solutions.holistic")
    video = SHARED_DATA / "video" / "obama_weekly_address_answers.mp4"
    if not video.exists():
        pytest.skip(f"{video} is absent")
    package = build_test_package(tmp_path / "actor.avatar", open_body, 500)
    env = {"ONESHOT_AVATAR_CACHE": str(body_cache)}
    server = start_server(tmp_path / "server-data", token=TOKEN, env=env)
    try:
        # PYTHONPATH cleared for Blender: a checkout's backend/ on it would shadow the add-on
        # (both are the module ``oneshot_avatar``); the server above keeps it.
        run_blender_tests(["tests/blender/test_video_ops.py"], tmp_path, {
            **env, "PYTHONPATH": "", "ONESHOT_AVATAR_TEST_SERVER_URL": server.url,
            "ONESHOT_AVATAR_TEST_SERVER_TOKEN": TOKEN,
            "ONESHOT_AVATAR_TEST_PACKAGE": str(package),
            "ONESHOT_AVATAR_TEST_VIDEO": str(video)})
    finally:
        server.stop()
