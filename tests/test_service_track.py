"""``POST /v1/tracking`` on a real server: video upload -> a tracking job with progress -> our
motion .npz, the report, camera and preview as artifacts; bad input -> 4xx naming the field."""

from __future__ import annotations

import io
import json
import subprocess
import time

import numpy as np
import pytest

from service_server import module_server
from shared_files import SHARED_DATA

pytest.importorskip("mediapipe.python.solutions.holistic")
OBAMA = SHARED_DATA / "video" / "obama_weekly_address_answers.mp4"


server = module_server("service")


def _post(server, fields, files):
    return server.post_form("/v1/tracking", fields, files)


def _wait(server, job_id, timeout=300):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, data = server.request("GET", f"/v1/jobs/{job_id}")
        job = json.loads(data)
        seen.append(job["progress"])
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job, seen
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_tracking_job_gives_motion_report_camera_and_preview(server):
    if not OBAMA.exists():
        pytest.skip(f"{OBAMA} is absent")
    status, _, data = _post(server, {"max_frames": "10", "size": "200"},
                            {"video": ("obama.mp4", OBAMA.read_bytes())})
    assert status == 202, data
    job = json.loads(data)
    assert job["kind"] == "track" and job["state"] in ("queued", "running")
    job, seen = _wait(server, job["id"])
    assert job["state"] == "succeeded", job
    assert seen == sorted(seen) and job["progress"] == 1.0
    assert set(job["artifacts"]) == {"track.json", "camera.json", "preview.mp4"}
    status, _, data = server.request("GET", f"/v1/jobs/{job['id']}/result")
    assert status == 200
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        assert str(arrays["schema"]) == "oneshot-motion/1"
        assert arrays["body_pose"].shape == (10, 21, 3)
    status, _, data = server.request("GET", f"/v1/jobs/{job['id']}/artifacts/preview.mp4")
    assert status == 200 and data[4:8] == b"ftyp"
    status, _, data = server.request("GET", f"/v1/jobs/{job['id']}/artifacts/track.json")
    assert status == 200 and json.loads(data)["frames"] == 10
    status, _, data = server.request("GET", "/v1/jobs?kind=track")
    assert status == 200 and json.loads(data)["jobs"][0]["id"] == job["id"]


def test_bad_videos_are_refused_naming_the_field(server, tmp_path):
    status, _, data = _post(server, {}, {"video": ("x.mp4", b"not a video at all")})
    assert status == 422 and json.loads(data)["error"]["field"] == "video"
    status, _, data = _post(server, {}, {"video": ("x.mp4", b"")})
    assert status == 422 and "empty" in json.loads(data)["error"]["message"]
    status, _, data = _post(server, {"fps": "0"}, {"video": ("x.mp4", b"x")})
    assert status == 422 and json.loads(data)["error"]["field"] == "fps"
    status, _, data = _post(server, {"avatar": "a_0123456789abcdef"}, {"video": ("x.mp4", b"x")})
    assert status == 404 and json.loads(data)["error"]["field"] == "avatar"


def test_a_video_without_a_person_fails_the_job_saying_so(server, tmp_path):
    import imageio_ffmpeg

    path = tmp_path / "empty.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=10:duration=1", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    status, _, data = _post(server, {}, {"video": ("empty.mp4", path.read_bytes())})
    assert status == 202, data
    job, _ = _wait(server, json.loads(data)["id"])
    assert job["state"] == "failed" and "no person" in job["error"]["message"]
    assert job["error"]["field"] == "video"


def test_cancelling_a_tracking_job_leaves_no_result(server):
    if not OBAMA.exists():
        pytest.skip(f"{OBAMA} is absent")
    status, _, data = _post(server, {"size": "360"}, {"video": ("obama.mp4", OBAMA.read_bytes())})
    assert status == 202, data
    job_id = json.loads(data)["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the landmarks stage is under way
        _, _, data = server.request("GET", f"/v1/jobs/{job_id}")
        job = json.loads(data)
        if job["state"] == "running" and job["progress"] > 0:
            break
        time.sleep(0.2)
    status, _, data = server.request("POST", f"/v1/jobs/{job_id}/cancel")
    assert status == 200, data
    job, _ = _wait(server, job_id)
    assert job["state"] == "cancelled" and job["artifacts"] == []
    status, _, _ = server.request("GET", f"/v1/jobs/{job_id}/result")
    assert status == 404
    status, _, _ = server.request("GET", f"/v1/jobs/{job_id}/artifacts/preview.mp4")
    assert status == 404
