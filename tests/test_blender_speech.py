"""Driver: Add Speech in real Blender (tests/blender/test_speech_ops.py, run by Blender's Python)
against a real ``oneshot-avatar serve`` on loopback, with the shared espeak sample."""

from __future__ import annotations

import pytest

from addon_packages import build_test_package
from blender_runner import blender_python, run_blender_tests
from service_server import start_server
from shared_files import SHARED_DATA

TOKEN = "speech-test-token-0123456789abcdef"


@pytest.mark.slow
def test_add_speech_in_blender(tmp_path, open_body, body_cache):
    blender_python()  # skip before building anything
    audio = SHARED_DATA / "audio" / "espeak_en_sam.wav"
    if not audio.exists():
        pytest.skip(f"{audio} is absent")
    from oneshot_avatar.speech import load_audio

    package = build_test_package(tmp_path / "speaker.avatar", open_body, 500)
    env = {"ONESHOT_AVATAR_CACHE": str(body_cache)}
    server = start_server(tmp_path / "server-data", token=TOKEN, env=env)
    try:
        # PYTHONPATH cleared for Blender: a checkout's backend/ on it would shadow the add-on
        # (both are the module ``oneshot_avatar``); the server above keeps it.
        run_blender_tests(["tests/blender/test_speech_ops.py"], tmp_path, {
            **env, "PYTHONPATH": "", "ONESHOT_AVATAR_TEST_SERVER_URL": server.url,
            "ONESHOT_AVATAR_TEST_SERVER_TOKEN": TOKEN,
            "ONESHOT_AVATAR_TEST_PACKAGE": str(package),
            "ONESHOT_AVATAR_TEST_AUDIO": str(audio),
            "ONESHOT_AVATAR_TEST_AUDIO_SECONDS": repr(load_audio(audio).duration),
            "ONESHOT_AVATAR_TEST_TRANSCRIPT": str(audio.with_suffix(".txt"))})
    finally:
        server.stop()
