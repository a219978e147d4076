"""``POST /v1/speech`` on a real server: audio upload -> motion JSON or .npz; bad input -> 4xx
naming the field."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from service_server import module_server
from shared_files import SHARED_DATA

SAM = SHARED_DATA / "audio" / "espeak_en_sam.wav"


server = module_server("service")


def _post(server, fields, files):
    return server.post_form("/v1/speech", fields, files)


def test_speech_route_gives_motion_json_and_npz(server):
    if not SAM.exists():
        pytest.skip(f"{SAM} is absent")
    audio = SAM.read_bytes()
    transcript = SAM.with_suffix(".txt").read_text()
    status, _, data = _post(server, {"transcript": transcript, "style": "lively", "seed": "2"},
                            {"audio": ("sam.wav", audio)})
    assert status == 200, data
    answer = json.loads(data)
    assert answer["expression_space"] == "arkit52" and len(answer["expression_names"]) == 52
    assert answer["report"]["recognizer"] == "transcript" and answer["report"]["style"] == "lively"
    assert [w["text"] for w in answer["report"]["words"]][:3] == ["hello", "there", "my"]
    frames = len(answer["params"]["jaw_pose"])
    assert frames == 311 and len(answer["params"]["expression"][0]) == 52
    assert max(row[0] for row in answer["params"]["jaw_pose"]) > 0.1

    status, _, data = _post(server, {"format": "npz", "fps": "24"},
                                  {"audio": ("sam.wav", audio)})
    assert status == 200, data
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        assert str(arrays["schema"]) == "oneshot-motion/1" and float(arrays["fps"]) == 24.0
        assert arrays["jaw_pose"].shape == (249, 3) and arrays["expression_names"][24] == "jawOpen"


@pytest.mark.parametrize("fields, files, field, message", [
    ({}, {"audio": ("x.wav", b"not audio at all")}, "audio", "not an audio file"),
    ({}, {"audio": ("x.wav", b"")}, "audio", "empty"),
    ({"style": "wild"}, {"audio": ("x.wav", b"RIFF")}, "style", ""),
    ({"fps": "0"}, {"audio": ("x.wav", b"RIFF")}, "fps", ""),
    ({"format": "xml"}, {"audio": ("x.wav", b"RIFF")}, "format", ""),
    ({}, {}, "audio", ""),
])
def test_speech_route_bad_input_names_the_field(server, fields, files, field, message):
    status, _, data = _post(server, fields, files)
    assert status == 422, data
    error = json.loads(data)["error"]
    assert error["field"] == field and message in error["message"]
