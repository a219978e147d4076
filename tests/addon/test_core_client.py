"""The add-on's HTTP client (blender_addon/core/client.py) against a tiny in-process
``http.server`` fake of the API: requests it sends (token, multipart) and every error path
(401, 422 with a field, 404, refused connection, timeout, wrong server). The local backend
launcher's tests are in test_core_launcher.py."""

from __future__ import annotations

import email.parser
import email.policy
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from blender_addon.core import client as addon_client
from blender_addon.core.client import (
    AuthenticationError,
    BackendTimeoutError,
    BackendUnreachableError,
    ServiceClient,
    ServiceError,
    encode_multipart,
)

import service_answers

TOKEN = "s3cret-token"
# The fake's answers are built (and validated) by the service's own schemas: tests/service_answers.py
HEALTH = service_answers.health(body_model={"id": "open-1", "kind": "open", "sha256": "ab" * 32,
                                            "expression_names": ["jawOpen"]})
JOB = service_answers.job(name="me")


class FakeBackend(BaseHTTPRequestHandler):
    """Answers like ``oneshot-avatar serve``; records what it received on the server object."""

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data) -> None:
        self._send(status, json.dumps(data).encode())

    def _error(self, status: int, message: str, field: str | None = None) -> None:
        self._json(status, service_answers.error(status, message, field))

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._error(401, "missing or wrong token")
            return False
        return True

    def do_GET(self):
        if not self._authorised():
            return
        if self.path == "/v1/health":
            self._json(200, HEALTH)
        elif self.path == "/v1/slow":
            time.sleep(2.0)
            self._json(200, {})
        elif self.path == "/v1/jobs/j_done/result":
            self._send(200, b"PK-fake-avatar" * 1000, "application/octet-stream")
        elif self.path.startswith("/v1/jobs/"):
            self._error(404, f"no job {self.path.rsplit('/', 1)[-1]!r}", "job_id")
        elif self.path.startswith("/v1/motions/wave"):
            self.server.last_path = self.path
            self._json(200, service_answers.motion(name="wave", fps=30))
        else:
            self._error(404, "not found")

    def do_POST(self):
        if not self._authorised():
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received = (self.path, self.headers.get("Content-Type"), body)
        if self.path == "/v1/reconstructions":
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
            parts = {part.get_param("name", header="content-disposition"): part
                     for part in message.iter_parts()}
            self.server.parts = parts
            photo = parts["photo"].get_content()
            if photo != b"\x89PNG-photo":
                self._error(422, "the photo is not an image", "photo")
                return
            self._json(202, JOB)
        elif self.path == "/v1/render-scene":  # a backend older than the cropped answers
            field = next((k for k in ("crop", "depth") if k in json.loads(body)), None)
            if field:
                self._error(422, f"{field}: Extra inputs are not permitted", field)
            else:
                self._send(200, b"npz", "application/x-npz")
        elif self.path == "/v1/render":
            request = json.loads(body)
            if request["format"] == "png":
                self._send(200, b"\x89PNG...", "image/png")
            else:
                self._send(200, b"PK...", "application/zip")
        else:
            self._error(422, "unknown body model abc", "package")


@pytest.fixture(scope="module")
def fake_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeBackend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture()
def client(fake_server) -> ServiceClient:
    return ServiceClient(f"http://127.0.0.1:{fake_server.server_address[1]}/", TOKEN, timeout=5)


def test_health_sends_the_token(client):
    assert not client.base_url.endswith("/")  # the trailing slash given is dropped
    health = client.health()
    assert health["device"] == "cpu" and health["body_model"]["id"] == "open-1"


def test_wrong_token_is_an_authentication_error(fake_server):
    client = ServiceClient(f"http://127.0.0.1:{fake_server.server_address[1]}", "wrong")
    with pytest.raises(AuthenticationError) as caught:
        client.health()
    error = caught.value
    assert error.status == 401 and error.message == "missing or wrong token"
    assert "token in the add-on preferences" in str(error)
    assert "wrong" not in str(error).replace("wrong token", "")  # the token is never shown


def test_multipart_upload_and_field_errors(client, fake_server, tmp_path):
    photo = tmp_path / "me.png"
    photo.write_bytes(b"\x89PNG-photo")
    keypoints = tmp_path / "kp.json"
    keypoints.write_text('{"people": []}')
    job = client.create_reconstruction(photo, keypoints=keypoints, init=b'{"body_pose": []}',
                                       preset="fast", steps=20, name="me", fov=65.5)
    assert job == JOB
    parts = fake_server.parts
    assert set(parts) == {"photo", "keypoints", "init", "preset", "steps", "name", "fov"}
    assert parts["fov"].get_content() == "65.5"
    assert parts["photo"].get_filename() == "me.png"
    assert parts["photo"].get_content_type() == "image/png"
    assert parts["init"].get_filename() == "init.json"
    assert parts["steps"].get_content() == "20"
    assert json.loads(parts["keypoints"].get_content()) == {"people": []}

    photo.write_bytes(b"not an image")
    with pytest.raises(ServiceError) as caught:
        client.create_reconstruction(photo)
    assert (caught.value.status, caught.value.field) == (422, "photo")
    assert str(caught.value) == "'photo': the photo is not an image (HTTP 422)"


def test_missing_upload_file_names_the_field(client, tmp_path):
    with pytest.raises(ServiceError) as caught:
        client.create_reconstruction(tmp_path / "missing.jpg")
    assert caught.value.field == "photo" and caught.value.status is None
    assert "file not found" in str(caught.value)


def test_not_found_and_package_errors(client, tmp_path):
    with pytest.raises(ServiceError) as caught:
        client.get_job("j_nope")
    assert caught.value.status == 404 and "j_nope" in caught.value.message
    package = tmp_path / "x.avatar"
    package.write_bytes(b"PK")
    with pytest.raises(ServiceError, match="'package': unknown body model abc"):
        client.upload_avatar(package)
    with pytest.raises(ServiceError) as caught:
        client.get_job("../health")
    assert caught.value.field == "job_id"


def test_download_is_atomic(client, tmp_path):
    target = client.download_job_result("j_done", tmp_path / "sub" / "a.avatar")
    assert target.read_bytes() == b"PK-fake-avatar" * 1000
    with pytest.raises(ServiceError):
        client.download_job_result("j_missing", tmp_path / "b.avatar")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.avatar", "sub"]


def test_render_returns_bytes_and_query(client, fake_server):
    assert client.render({"format": "png"}).startswith(b"\x89PNG")
    assert client.render({"format": "zip"}).startswith(b"PK")
    assert json.loads(fake_server.received[2]) == {"format": "zip"}
    client.get_motion("wave", fps=24)
    assert fake_server.last_path == "/v1/motions/wave?fps=24"


def test_a_backend_without_cropped_answers_says_to_update_it(client):
    with pytest.raises(ServiceError, match="update the backend") as error:
        client.render_scene({"avatars": [], "cameras": [], "crop": True})
    assert error.value.status == 422 and error.value.field == "crop"
    assert client.render_scene({"avatars": [], "cameras": []}) == b"npz"


def test_refused_connection_says_how_to_start_the_backend():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ServiceClient(f"http://127.0.0.1:{port}", timeout=2)
    started = time.monotonic()
    with pytest.raises(BackendUnreachableError) as caught:
        client.health()
    assert time.monotonic() - started < 2
    text = str(caught.value)
    assert f"backend not reachable at http://127.0.0.1:{port}" in text
    assert "oneshot-avatar serve" in text and "preferences" in text


def test_timeout_is_reported_quickly(client):
    client.timeout = 0.3
    started = time.monotonic()
    with pytest.raises(BackendTimeoutError, match="did not answer /v1/slow within 0.3 s"):
        client._json("GET", "/v1/slow")
    assert time.monotonic() - started < 1.5


def test_silent_server_times_out():
    """A server that accepts the connection but never answers (a hung backend)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = ServiceClient(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.3)
        with pytest.raises(BackendTimeoutError, match="did not answer /v1/health"):
            client.health()


def test_a_server_that_is_not_the_backend():
    class Other(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = b"<html>hello</html>" if self.path == "/v1/health" else b"no"
            self.send_response(200 if self.path == "/v1/health" else 500)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = ServiceClient(f"http://127.0.0.1:{server.server_address[1]}", timeout=2)
        with pytest.raises(ServiceError, match="not JSON.*check the backend URL"):
            client.health()
        with pytest.raises(ServiceError, match="HTTP 500.*check the backend URL"):
            client.get_job("j_1")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("url", ["", "127.0.0.1:8765", "ftp://host", "http://", "http://h:x"])
def test_bad_urls_name_the_preference(url):
    with pytest.raises(ServiceError) as caught:
        ServiceClient(url)
    assert caught.value.field == "backend_url"


def test_encode_multipart_is_parseable():
    files = [addon_client.UploadFile("photo", 'we"ird.png', b"\x00\x01", "image/png")]
    body, kind = encode_multipart({"preset": "fast", "seed": None}, files, boundary="B")
    assert kind == "multipart/form-data; boundary=B"
    assert body.startswith(b"--B\r\n") and body.endswith(b"--B--\r\n")
    assert b'filename="we%22ird.png"' in body and b"seed" not in body
