"""Import Video Motion's Blender-free part: checking the video and the settings, following a job."""

from __future__ import annotations

import pytest
from blender_addon.core.client import ServiceError
from blender_addon.core.video import (
    VideoInputError,
    check_video_path,
    job_failure,
    job_finished,
    tracking_fields,
    wait_for_tracking,
)


def test_video_path_checks_name_the_field(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for path, message in [("", "pick a video file"), (tmp_path / "none.mp4", "no such video"),
                          (tmp_path / "notes.txt", "not a video file type")]:
        with pytest.raises(VideoInputError, match=message) as caught:
            check_video_path(path)
        assert caught.value.field == "video"
    (tmp_path / "clip.MOV").write_bytes(b"x")
    assert check_video_path(tmp_path / "clip.MOV").name == "clip.MOV"


def test_tracking_fields_are_checked():
    assert tracking_fields(fps=24) == {"fps": "24", "size": None, "max_frames": None}
    assert tracking_fields(fps=29.97, size=360, max_frames=90)["size"] == 360
    for kwargs, field in [({"fps": 0}, "fps"), ({"fps": 120}, "fps"),
                          ({"fps": 24, "size": 10}, "size"),
                          ({"fps": 24, "max_frames": 40_000}, "max_frames")]:
        with pytest.raises(VideoInputError) as caught:
            tracking_fields(**kwargs)
        assert caught.value.field == field


class _Jobs:
    def __init__(self, states):
        self.states = list(states)

    def get_job(self, job_id):
        return self.states.pop(0)


def test_following_a_job_until_it_ends():
    seen = []
    job = wait_for_tracking(_Jobs([{"state": "queued", "progress": 0.0},
                                   {"state": "running", "progress": 0.4},
                                   {"state": "succeeded", "progress": 1.0, "id": "j_1"}]),
                            "j_1", poll=0.0, on_progress=lambda j: seen.append(j["progress"]))
    assert job_finished(job) and seen == [0.0, 0.4, 1.0] and job_failure(job) is None
    failed = {"state": "failed", "error": {"message": "no person found", "field": "video"}}
    error = job_failure(failed)
    assert isinstance(error, ServiceError) and "no person found" in str(error)
    assert "cancelled" in str(job_failure({"state": "cancelled"}))
