"""A real ``oneshot-avatar serve`` process on loopback for the tests and benchmarks: started
by the add-on's launcher (``blender_addon/core/launcher.LocalBackend``, the one launcher of a
local backend), on a free port, plus a tiny urllib client for it and job helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from blender_addon.core.client import ServiceError
from blender_addon.core.launcher import LocalBackend


@dataclass
class ServerProcess:
    url: str
    backend: LocalBackend
    data_dir: Path
    token: str | None = None
    env: dict = field(default_factory=dict)  # what start_server added to the environment

    @property
    def proc(self) -> subprocess.Popen:
        return self._proc

    def __post_init__(self) -> None:
        self._proc = self.backend.process  # kept after stop() for its pid and exit code

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful: a running job is put back in the queue) and wait."""
        if self.backend.process is None:
            return self._proc.returncode
        return self.backend.stop(timeout)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a crash or an OOM kill."""
        if self.backend.process is None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            return
        self.backend.kill()

    def request(self, method: str, path: str, body: bytes | None = None, *,
                headers: dict | None = None, timeout: float = 120.0) -> tuple[int, dict, bytes]:
        """(status, headers (lower-case names), body) of one request; the token is sent when the server has one."""
        all_headers = dict(headers or {})
        if self.token and "Authorization" not in all_headers:
            all_headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, _lower(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, _lower(error.headers), error.read()

    def json(self, method: str, path: str, payload=None, **kwargs) -> tuple[int, dict]:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        status, _, data = self.request(method, path, body, headers=headers, **kwargs)
        return status, (json.loads(data) if data else {})

    def post_form(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]],
                  **kwargs) -> tuple[int, dict, bytes]:
        """``request`` of a multipart/form-data POST (see :func:`multipart`)."""
        body, content_type = multipart(fields, files)
        return self.request("POST", path, body, headers={"Content-Type": content_type}, **kwargs)

    def add_avatar(self, package: bytes, filename: str = "test.avatar",
                   fields: dict[str, str] | None = None) -> str:
        """Upload a package that the server must take (``POST /v1/avatars`` -> 201); its id."""
        status, _, data = self.post_form("/v1/avatars", fields or {},
                                         {"package": (filename, package)})
        assert status == 201, data
        return json.loads(data)["id"]

    def blender_env(self) -> dict[str, str]:
        """What the Blender-side tests read to reach this server: its environment (the body
        cache), ``$ONESHOT_AVATAR_TEST_SERVER_URL`` and, when it has one, ``_TOKEN``."""
        env = {**self.env, "ONESHOT_AVATAR_TEST_SERVER_URL": self.url}
        if self.token:
            env["ONESHOT_AVATAR_TEST_SERVER_TOKEN"] = self.token
        return env

    def log_text(self) -> str:
        return self.backend.output_text()


def _lower(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def start_server(data_dir: Path, *, token: str | None = None, env: dict | None = None,
                 extra_args: tuple[str, ...] = (), timeout: float = 180.0,
                 command: tuple[str, ...] | None = None) -> ServerProcess:
    """Start ``oneshot-avatar serve --port 0`` and wait until it answers. ``env`` adds to the
    environment (e.g. ``ONESHOT_AVATAR_CACHE`` pointing at the tests' built body); ``command``
    replaces ``python -m oneshot_avatar`` (e.g. a test script that shrinks the presets);
    without ``token`` the server has none (unless the environment gives one)."""
    backend = LocalBackend(command or (sys.executable, "-m", "oneshot_avatar"), port=0,
                           data_dir=str(data_dir), token=token,
                           env={**os.environ, **(env or {})},
                           extra_args=("--device", "cpu", *extra_args), random_token=False,
                           keep_lines=None)
    backend.start()
    try:
        url = backend.wait_until_listening(timeout)
    except ServiceError as error:
        backend.kill()
        raise RuntimeError(f"the server did not start ({error}):\n{backend.output_text()}") \
            from error
    server = ServerProcess(url=url, backend=backend, data_dir=Path(data_dir), token=token,
                           env=dict(env or {}))
    deadline = time.monotonic() + timeout  # the URL is printed once the body model is loaded
    while time.monotonic() < deadline:
        try:
            status, _ = server.json("GET", "/v1/health", timeout=5)
            if status == 200:
                return server
        except OSError:
            pass
        if not backend.running:
            break
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not answer:\n" + server.log_text())


@contextmanager
def running_server(data_dir: Path, *, body_cache: Path | None = None,
                   **start_kwargs) -> Iterator[ServerProcess]:
    """:func:`start_server`, stopped when the block ends. ``body_cache`` (the tests'
    ``body_cache`` fixture) is the server's ``$ONESHOT_AVATAR_CACHE``: the body it loads."""
    env = dict(start_kwargs.pop("env", None) or {})
    if body_cache is not None:
        env["ONESHOT_AVATAR_CACHE"] = str(body_cache)
    server = start_server(data_dir, env=env, **start_kwargs)
    try:
        yield server
    finally:
        server.stop()


def module_server(folder: str = "service", **start_kwargs):
    """A module-scoped pytest fixture (assign it to the fixture's name in a test module): a
    server on the tests' built body (``body_cache``, ``open_body_file``) in a fresh folder
    ``folder``, stopped after the module's tests. ``start_kwargs`` go to :func:`start_server`."""
    import pytest

    @pytest.fixture(scope="module")
    def server(tmp_path_factory, body_cache, open_body_file):
        with running_server(tmp_path_factory.mktemp(folder), body_cache=body_cache,
                            **start_kwargs) as process:
            yield process

    return server


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request."""
    boundary = "----oneshot-test-boundary-7d41"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n".encode())
    for name, (filename, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def wait_for_job(server: ServerProcess, job_id: str, *, until=("succeeded", "failed", "cancelled"),
                 timeout: float = 600.0, seen: list | None = None) -> dict:
    """Poll a job until its state is in ``until`` (or ``until`` is a predicate that holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, job = server.json("GET", f"/v1/jobs/{job_id}")
        assert status == 200, job
        if seen is not None:
            seen.append(job)
        if (callable(until) and until(job)) or (not callable(until) and job["state"] in until):
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} did not reach {until} in {timeout} s; last: {job}")
