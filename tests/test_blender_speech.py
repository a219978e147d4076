"""Driver: Add Speech in real Blender (tests/blender/test_speech_ops.py, run by Blender's Python)
against a real ``oneshot-avatar serve`` on loopback, with the shared espeak sample."""

from __future__ import annotations

import pytest

from addon_packages import build_test_package
from blender_runner import blender_python, run_blender_tests
from service_server import running_server
from shared_files import shared_file

TOKEN = "speech-test-token-0123456789abcdef"


@pytest.mark.slow
def test_add_speech_in_blender(tmp_path, open_body, body_cache):
    blender_python()  # skip before building anything
    audio = shared_file("audio/espeak_en_sam.wav")
    from oneshot_avatar.speech import load_audio

    package = build_test_package(tmp_path / "speaker.avatar", open_body, 500)
    with running_server(tmp_path / "server-data", body_cache=body_cache, token=TOKEN) as server:
        run_blender_tests(["tests/blender/test_speech_ops.py"], tmp_path, {
            **server.blender_env(), "ONESHOT_AVATAR_TEST_PACKAGE": str(package),
            "ONESHOT_AVATAR_TEST_AUDIO": str(audio),
            "ONESHOT_AVATAR_TEST_AUDIO_SECONDS": repr(load_audio(audio).duration),
            "ONESHOT_AVATAR_TEST_TRANSCRIPT": str(audio.with_suffix(".txt"))})
