"""The add-on's client and upload logic against a real ``oneshot-avatar serve`` process with a
token (issue 17: a refused token during a large upload; one upload per package checksum)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from blender_addon.core.client import AuthenticationError, BackendTimeoutError, ServiceClient
from blender_addon.core.uploads import UploadCache, ensure_uploaded

from addon_packages import build_test_package
from service_server import module_server

TOKEN = "core-test-token-0123456789"


server = module_server("server", token=TOKEN)


@pytest.fixture(scope="module")
def package(tmp_path_factory, open_body):
    return build_test_package(tmp_path_factory.mktemp("package") / "person.avatar", open_body, 500)


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
def test_a_refused_token_during_a_large_upload_reads_as_401(server, tmp_path, token):
    """The server answers 401 before reading the body and closes the connection; the client
    used to report a broken pipe / reset as "backend not reachable"."""
    big = tmp_path / "big.avatar"
    big.write_bytes(os.urandom(8 << 20))
    with pytest.raises(AuthenticationError) as error:
        ServiceClient(server.url, token).upload_avatar(big)
    assert error.value.status == 401
    assert "token" in str(error.value) and "not reachable" not in str(error.value)


def test_the_same_package_is_uploaded_once_per_checksum(server, package, tmp_path):
    client = ServiceClient(server.url, TOKEN)
    cache = UploadCache(tmp_path / "uploads.json")
    before = {a["id"] for a in client.list_avatars()}
    ids = [ensure_uploaded(client, cache, avatar_id="", package=str(package), name=f"rig{i}")
           for i in range(3)]  # three imports of the same file: three rigs without an id
    assert len(set(ids)) == 1
    assert {a["id"] for a in client.list_avatars()} - before == {ids[0]}
    # A new session (a new cache object on the same file) reuses it too.
    again = ensure_uploaded(client, UploadCache(tmp_path / "uploads.json"), avatar_id="",
                            package=str(package), name="rig")
    assert again == ids[0]
    # Deleted on the backend: uploaded again, once.
    client.delete_avatar(ids[0])
    fresh = ensure_uploaded(client, cache, avatar_id=ids[0], package=str(package), name="rig")
    assert fresh != ids[0]
    assert ensure_uploaded(client, cache, avatar_id="", package=str(package), name="r") == fresh
    assert {a["id"] for a in client.list_avatars()} - before == {fresh}


def test_a_frozen_backend_fails_a_render_within_the_timeout(server):
    """Issue 17: a frozen backend (SIGSTOP) held a render for the 600 s render timeout; now it
    is given up once /v1/health stays silent for the client's timeout (2 s here)."""
    client = ServiceClient(server.url, TOKEN, timeout=2.0)
    request = {"avatar": "a_0123456789abcdef", "motion": {"name": "idle", "frames": [0, 1]},
               "cameras": [{"preset": "front", "width": 32, "height": 32}], "format": "png"}
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(BackendTimeoutError) as error:
            client.render(request)
        elapsed = time.monotonic() - started
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert elapsed < 7.0, elapsed
    assert "stopped answering" in str(error.value) and "2 s" in str(error.value)
    client.health()  # and it is fine again once it runs


class _SlowRenderer(BaseHTTPRequestHandler):
    """A backend whose render takes 3 s while its health answers at once."""

    def log_message(self, *args):
        pass

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._send(json.dumps({"service": "oneshot-avatar", "api_version": 1}).encode(),
                   "application/json")

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(3.0)
        self._send(b"\x89PNG fake", "image/png")


def test_a_slow_render_of_a_live_backend_is_waited_for():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowRenderer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = ServiceClient(f"http://127.0.0.1:{server.server_port}", None, timeout=1.0)
        assert client.render({"format": "png"}) == b"\x89PNG fake"
    finally:
        server.shutdown()
        server.server_close()
