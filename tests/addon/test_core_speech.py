"""Add Speech's Blender-free part: checking the audio and transcript, the request it sends."""

from __future__ import annotations

import email.parser
import email.policy

import pytest
from blender_addon.core.client import ServiceClient
from blender_addon.core.speech import (
    SpeechInputError,
    check_audio_path,
    read_transcript,
    request_speech_motion,
    speech_fields,
)


def test_audio_path_checks_name_the_field(tmp_path):
    for path, message in [("", "pick an audio file"), (tmp_path / "none.wav", "no such audio"),
                          (tmp_path / "notes.txt", "not an audio file type")]:
        if str(path).endswith(".txt"):
            path.write_text("x")
        with pytest.raises(SpeechInputError, match=message) as error:
            check_audio_path(path)
        assert error.value.field == "audio"
    ok = tmp_path / "voice.MP3"
    ok.write_bytes(b"ID3")
    assert check_audio_path(ok) == ok


def test_transcript_and_fields(tmp_path):
    assert read_transcript(None) is None and read_transcript("") is None
    text = tmp_path / "t.txt"
    text.write_text("\ufeffHello there.", encoding="utf-8")
    assert read_transcript(text) == "Hello there."
    text.write_text(" ... ")
    assert read_transcript(text) is None
    text.write_bytes(b"\xff\xfe\x81")
    with pytest.raises(SpeechInputError, match="UTF-8") as error:
        read_transcript(text)
    assert error.value.field == "transcript"
    assert speech_fields(fps=23.976, style="lively", seed=4)["fps"] == "23.976"
    for kwargs, field in [({"fps": 0.5}, "fps"), ({"fps": 30, "style": "wild"}, "style"),
                          ({"fps": 30, "seed": -1}, "seed")]:
        with pytest.raises(SpeechInputError) as error:
            speech_fields(**kwargs)
        assert error.value.field == field


def test_request_sends_the_audio_and_fields(tmp_path):
    audio = tmp_path / "line.wav"
    audio.write_bytes(b"RIFF....WAVEfmt ")
    sent = {}

    class Recorder(ServiceClient):
        def _json(self, method, path, *, body=None, content_type=None, timeout=None, **_):
            sent.update(method=method, path=path, body=body, type=content_type, timeout=timeout)
            return {"params": {}, "report": {}}

    client = Recorder("http://127.0.0.1:9", None, timeout=5)
    request_speech_motion(client, audio, fps=24.0, style="calm", seed=7, transcript="Hi there")
    assert (sent["method"], sent["path"]) == ("POST", "/v1/speech") and sent["timeout"] >= 60
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {sent['type']}\r\n\r\n".encode() + sent["body"])
    parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
    assert parts["audio"].get_content() == audio.read_bytes()
    assert parts["audio"].get_filename() == "line.wav"
    assert {k: parts[k].get_content().strip() for k in ("fps", "style", "seed", "transcript")} \
        == {"fps": "24", "style": "calm", "seed": "7", "transcript": "Hi there"}
