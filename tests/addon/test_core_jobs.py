"""The add-on's job model (blender_addon/core/jobs.py): parsing the API's Job, progress text,
and which jobs still need the add-on."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from blender_addon.core import jobs

API_JOB = {"id": "j_0123456789abcdef", "kind": "reconstruct", "state": "running",
           "stage": "train", "progress": 0.61, "stage_progress": 0.4237, "name": "me",
           "created": "2025-01-01T00:00:00Z", "updated": "2025-01-01T00:01:00Z",
           "log": ["step 10"], "error": None, "avatar_id": None, "result_url": None,
           "artifacts": []}


def test_parse_a_running_job():
    job = jobs.JobSnapshot.from_api(API_JOB)
    assert (job.id, job.kind, job.state, job.stage) == ("j_0123456789abcdef", "reconstruct",
                                                        "running", "train")
    assert job.progress == pytest.approx(0.61) and not job.finished
    assert jobs.progress_text(job.state, job.stage, job.stage_progress, job.progress) == "train 42%"


def test_parse_a_failed_job():
    job = jobs.JobSnapshot.from_api({**API_JOB, "state": "failed",
                                     "error": {"message": "no person found", "field": "photo"}})
    assert job.finished and job.failure_text == "'photo': no person found"
    no_message = jobs.JobSnapshot.from_api({**API_JOB, "state": "failed", "log": ["oom"]})
    assert no_message.failure_text == "oom"


@pytest.mark.parametrize("change, field", [
    ({"id": 5}, "id"), ({"kind": "bake"}, "kind"), ({"state": "paused"}, "state"),
    ({"progress": "half"}, "progress"), ({"error": "boom"}, "error"), ({"stage": 3}, "stage"),
    ({"log": "x"}, "log"),
])
def test_bad_jobs_name_the_field(change, field):
    with pytest.raises(jobs.JobFormatError) as caught:
        jobs.JobSnapshot.from_api({**API_JOB, **change})
    assert caught.value.field == field and f"'{field}'" in str(caught.value)


def test_progress_is_clamped_and_never_early_100():
    job = jobs.JobSnapshot.from_api({**API_JOB, "progress": 1.7, "stage_progress": 0.999})
    assert job.progress == 1.0
    assert jobs.progress_text("running", "train", 0.999) == "train 99%"
    assert jobs.progress_text("running", None, 0, 0.5) == "running 50%"


@pytest.mark.parametrize("state, delivered, message, text", [
    ("submitting", False, "", "sending"),
    ("queued", False, "", "queued"),
    ("succeeded", False, "", "fetching result"),
    ("succeeded", True, "", "done"),
    ("succeeded", False, "bad package", "failed: bad package"),
    ("failed", False, "no person", "failed: no person"),
    ("cancelled", False, "", "cancelled"),
])
def test_progress_text(state, delivered, message, text):
    assert jobs.progress_text(state, delivered=delivered, message=message) == text


@dataclass
class Record:
    state: str
    delivered: bool = False
    message: str = ""


def test_which_jobs_need_the_add_on():
    records = [Record("submitting"), Record("queued"), Record("running"), Record("succeeded"),
               Record("succeeded", delivered=True), Record("succeeded", message="import failed"),
               Record("failed", message="x"), Record("cancelled")]
    pending = jobs.unfinished(records)
    assert [r.state for r in pending] == ["submitting", "queued", "running", "succeeded"]
    assert len(jobs.finished(records)) == 4
    assert jobs.needs_polling("queued") and not jobs.needs_polling("succeeded")
    assert jobs.needs_delivery("succeeded", False) and not jobs.needs_delivery("failed", False)
    assert jobs.overall_fraction("succeeded", 0.5, delivered=True) == 1.0
    assert jobs.overall_fraction("running", 0.25) == 0.25
