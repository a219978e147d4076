"""In real Blender, against a fake backend in this process (``http.server``): Reconstruct sends
the photo, the job monitor shows progress ("fit 50%"), downloads and imports the result; failed
jobs, corrupt packages, cancel, a file reopened mid-job, and connection problems (refused,
wrong token, timeout) end in an error report naming the problem — nothing hangs, nothing is
half-imported."""

from __future__ import annotations

import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

bpy = pytest.importorskip("bpy")

from conftest import (
    addon_preferences,
    assert_backend_down_at_once,
    closed_port_url,
    env_path,
    use_backend,
)

TOKEN = "fake-token-0123456789"


def _answers() -> dict:
    """The service's answers built by its own schemas (tests/service_answers.py, written by the
    driver): the fake below only changes fields those answers have."""
    return json.loads(env_path("ONESHOT_AVATAR_TEST_SERVICE_ANSWERS").read_text())


def _error(status: int, message: str, field: str | None = None) -> dict:
    answer = json.loads(json.dumps(FakeBackend.answers["error"]))
    assert set(answer["error"]) == {"status", "field", "message"}, answer
    answer["error"].update(status=status, field=field, message=message)
    return answer


class FakeBackend(BaseHTTPRequestHandler):
    """The API's reconstruction routes. The job's ``name`` picks the scenario: ``good``,
    ``fails``, ``corrupt`` (result not a zip), ``badzip`` (a zip that is no avatar), ``slow``
    (runs until cancelled)."""

    jobs: ClassVar[dict[str, dict]] = {}
    answers: ClassVar[dict] = {}
    package_bytes = b""
    health_delay_s = 0.0

    def log_message(self, *args):
        pass

    def _send(self, status, body: bytes, kind="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status, data):
        self._send(status, json.dumps(data).encode())

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self._json(401, _error(401, "missing or wrong bearer token"))
        return False

    @staticmethod
    def _job_json(job_id: str) -> dict:
        job = FakeBackend.jobs[job_id]
        answer = dict(FakeBackend.answers["job"])
        fields = {"id": job_id, "kind": "reconstruct", "state": job["state"],
                  "name": job["name"], **{key: job[key] for key in
                                          ("stage", "progress", "stage_progress", "error",
                                           "avatar_id") if key in job}}
        assert set(fields) <= set(answer), sorted(set(fields) - set(answer))  # no drift
        if fields.get("error") is not None:
            assert set(fields["error"]) <= set(FakeBackend.answers["fields"]["job_error"])
        answer.update(fields)
        return answer

    def do_GET(self):
        if not self._authorised():
            return
        if self.path == "/v1/health":
            time.sleep(self.health_delay_s)
            self._json(200, FakeBackend.answers["health"])
            return
        parts = self.path.strip("/").split("/")
        job = FakeBackend.jobs.get(parts[2]) if len(parts) >= 3 else None
        if job is None:
            self._json(404, _error(404, "no such job"))
        elif len(parts) == 4 and parts[3] == "result":
            self._send(200, job["result"], "application/octet-stream")
        else:
            job["polls"] += 1
            scenario = job["name"]
            if job["state"] == "queued" or (scenario == "slow" and job["state"] == "running"):
                job.update(state="running", stage="fit", stage_progress=0.5, progress=0.2)
            elif job["state"] == "running":
                if scenario == "fails":
                    job.update(state="failed", error={"message": "no person found in the "
                                                                 "photo", "field": "photo"})
                else:
                    job.update(state="succeeded", stage="package", stage_progress=1.0,
                               progress=1.0, avatar_id="a_00112233445566ff")
            self._json(200, self._job_json(parts[2]))

    def do_POST(self):
        if not self._authorised():
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/reconstructions":
            name = body.split(b'name="name"\r\n\r\n', 1)[1].split(b"\r\n", 1)[0].decode()
            job_id = f"j_{len(FakeBackend.jobs):016x}"
            result = {"corrupt": b"this is not a zip", "badzip": _zip_without_avatar()}.get(
                name, FakeBackend.package_bytes)
            FakeBackend.jobs[job_id] = {"name": name, "state": "queued", "polls": 0,
                                        "result": result, "request": body}
            self._json(202, self._job_json(job_id))
        elif self.path.endswith("/cancel"):
            job_id = self.path.split("/")[3]
            FakeBackend.jobs[job_id]["state"] = "cancelled"
            self._json(200, self._job_json(job_id))
        else:
            self._json(404, _error(404, "no route"))


def _zip_without_avatar() -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "not an avatar")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fake_backend(addon):
    FakeBackend.package_bytes = env_path("ONESHOT_AVATAR_TEST_PACKAGE").read_bytes()
    FakeBackend.answers = _answers()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeBackend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def scene(fake_backend, empty_scene, tmp_path):
    use_backend(fake_backend, TOKEN, timeout_s=5.0)
    FakeBackend.health_delay_s = 0.0
    photo = tmp_path / "person.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n fake photo")
    empty_scene.oneshot_avatar.photo_path = str(photo)
    return empty_scene


def _background():
    from oneshot_avatar import background

    return background


def _rigs() -> list:
    return [obj for obj in bpy.data.objects if "oneshot_avatar_rig" in obj]


def _object_count() -> int:
    return len(bpy.data.objects)


def test_reconstruct_sends_the_field_of_view_when_set(scene):
    scene.oneshot_avatar.avatar_name = "good"
    scene.oneshot_avatar.field_of_view = 68.0
    assert bpy.ops.oneshot_avatar.reconstruct() == {"FINISHED"}
    request = FakeBackend.jobs[scene.oneshot_avatar.jobs[-1].job_id]["request"]
    assert b'name="fov"\r\n\r\n68.0\r\n' in request


def test_reconstruct_shows_progress_and_imports_the_avatar(scene):
    background = _background()
    settings = scene.oneshot_avatar
    settings.avatar_name = "good"
    assert bpy.ops.oneshot_avatar.reconstruct() == {"FINISHED"}
    record = settings.jobs[0]
    assert record.state == "queued" and record.job_id.startswith("j_")
    request = FakeBackend.jobs[record.job_id]["request"]
    assert b'name="photo"; filename="person.png"' in request and b"fast" in request
    # Only a photo was chosen: the backend's landmark detector does the rest.
    for part in (b'name="mask"', b'name="keypoints"', b'name="init"', b'name="fov"'):
        assert part not in request  # no field of view: the backend reads the photo's EXIF
    texts = []
    deadline = time.monotonic() + 30
    while not record.delivered and time.monotonic() < deadline:
        background.job_monitor.step()
        texts.append(background.record_text(record))
        time.sleep(0.05)
    assert "fit 50%" in texts and texts[-1] == "done", texts
    rig = bpy.data.objects[record.rig_name]
    assert rig["oneshot_avatar_avatar_id"] == "a_00112233445566ff"
    assert settings.render_rig == rig
    assert record.result_path.endswith(f"good_{record.job_id}.avatar")


def test_failed_job_reports_the_backends_message(scene):
    scene.oneshot_avatar.avatar_name = "fails"
    with pytest.raises(RuntimeError, match="'photo': no person found in the photo"):
        bpy.ops.oneshot_avatar.reconstruct(wait=True, timeout=30)
    record = scene.oneshot_avatar.jobs[0]
    assert record.state == "failed" and "no person" in record.message
    assert not _rigs()


@pytest.mark.parametrize("scenario, message", [
    ("corrupt", "not an .avatar package"),
    ("badzip", "importing .* failed"),
])
def test_corrupt_results_import_nothing(scene, scenario, message):
    scene.oneshot_avatar.avatar_name = scenario
    before = _object_count()
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.oneshot_avatar.reconstruct(wait=True, timeout=30)
    assert _object_count() == before and not _rigs()
    record = scene.oneshot_avatar.jobs[0]
    assert record.state == "succeeded" and not record.delivered and record.message
    # The monitor gives up on it (no endless retries); Fetch Result Again would try again.
    assert not _background().job_monitor.step()


def test_cancel_a_running_job(scene):
    background = _background()
    scene.oneshot_avatar.avatar_name = "slow"
    bpy.ops.oneshot_avatar.reconstruct()
    record = scene.oneshot_avatar.jobs[0]
    background.job_monitor.wait(lambda: record.state == "running", 10)
    assert bpy.ops.oneshot_avatar.cancel_job(job_id=record.job_id) == {"FINISHED"}
    background.job_monitor.wait(lambda: record.state == "cancelled", 10)
    assert bpy.ops.oneshot_avatar.remove_job(job_id=record.job_id) == {"FINISHED"}
    assert len(scene.oneshot_avatar.jobs) == 0


def test_jobs_survive_reopening_the_file(scene, tmp_path):
    background = _background()
    scene.oneshot_avatar.avatar_name = "good"
    bpy.ops.oneshot_avatar.reconstruct()
    job_id = scene.oneshot_avatar.jobs[0].job_id
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.read_homefile(use_empty=True)
    assert not any(True for _ in background.all_job_records())
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    record = background.find_job_record(job_id)
    assert record is not None and record.state == "queued"
    assert background.job_monitor.running  # picked up on load
    background.job_monitor.wait(lambda: record.delivered or bool(record.message), 30)
    assert record.delivered, record.message
    assert (tmp_path / "oneshot_avatar" / f"good_{job_id}.avatar").is_file()
    assert len(_rigs()) == 1


def test_missing_photo_names_the_field(scene, tmp_path):
    scene.oneshot_avatar.photo_path = str(tmp_path / "nope.jpg")
    with pytest.raises(RuntimeError, match="'photo': file not found"):
        bpy.ops.oneshot_avatar.reconstruct()
    assert len(scene.oneshot_avatar.jobs) == 0


def test_refused_connection_is_reported_at_once(scene):
    assert_backend_down_at_once(
        (bpy.ops.oneshot_avatar.reconstruct, "backend not reachable at .*oneshot-avatar serve"),
        (bpy.ops.oneshot_avatar.test_connection, "backend not reachable"))
    assert len(scene.oneshot_avatar.jobs) == 0


def test_wrong_token_says_to_fix_the_token(scene):
    from oneshot_avatar.preferences import ConnectionState

    addon_preferences().token = "not-the-token-at-all"
    with pytest.raises(RuntimeError, match="wrong bearer token.*401.*token in the add-on"):
        bpy.ops.oneshot_avatar.test_connection()
    assert ConnectionState.last_health is None and "401" in ConnectionState.last_error
    with pytest.raises(RuntimeError, match="401"):
        bpy.ops.oneshot_avatar.reconstruct()


def test_slow_backend_times_out(scene):
    from oneshot_avatar.preferences import ConnectionState

    addon_preferences().timeout_s = 1.0
    FakeBackend.health_delay_s = 3.0
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="did not answer /v1/health within 1 s"):
        bpy.ops.oneshot_avatar.test_connection()
    assert time.monotonic() - started < 2.5
    FakeBackend.health_delay_s = 0.0
    assert bpy.ops.oneshot_avatar.test_connection() == {"FINISHED"}
    assert ConnectionState.last_health["device"] == "cpu"


def test_monitor_rides_out_a_backend_outage(scene):
    """Polling a job while the backend is away shows the problem and retries; no job fails."""
    background = _background()
    scene.oneshot_avatar.avatar_name = "slow"
    bpy.ops.oneshot_avatar.reconstruct()
    record = scene.oneshot_avatar.jobs[0]
    good_url = addon_preferences().backend_url
    addon_preferences().backend_url = closed_port_url()
    background.job_monitor.wait(lambda: bool(background.job_monitor.connection_problem), 10)
    assert "not reachable" in background.job_monitor.connection_problem
    assert record.state == "queued"
    addon_preferences().backend_url = good_url
    background.job_monitor.next_poll.clear()
    background.job_monitor.wait(lambda: record.state == "running", 10)
    assert background.job_monitor.connection_problem == ""
    bpy.ops.oneshot_avatar.cancel_job(job_id=record.job_id)
    background.job_monitor.wait(lambda: record.state == "cancelled", 10)
