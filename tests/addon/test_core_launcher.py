"""The one launcher of a local ``oneshot-avatar serve`` (blender_addon/core/launcher.py): the
add-on's "start a local backend" and the tests' real servers (tests/service_server.py) both run
it; here it runs a fake ``serve`` command."""

from __future__ import annotations

import signal
import sys

import pytest
from blender_addon.core import launcher
from blender_addon.core.client import ServiceError
from blender_addon.core.launcher import LocalBackend

FAKE_SERVE = """
import os, signal, sys, time
args = sys.argv[1:]
if MODE == "fail":
    print("error: cannot load torch", flush=True)
    sys.exit(3)
port = args[args.index("--port") + 1]
if MODE == "open":  # no token; says its arguments; a graceful stop on SIGTERM
    assert args[0] == "serve" and "ONESHOT_AVATAR_TOKEN" not in os.environ
    for number in range(60):
        print(f"line {number}", flush=True)
    print("args " + " ".join(args[5:]), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (print("stopping", flush=True), sys.exit(0)))
else:
    assert args[0] == "serve" and len(os.environ["ONESHOT_AVATAR_TOKEN"]) >= 20
print(f"oneshot-avatar serve: listening on http://127.0.0.1:{port}", flush=True)
time.sleep(60)
"""


def _fake_script(tmp_path, mode: str):
    script = tmp_path / f"fake_serve_{mode}.py"
    script.write_text(f"MODE = {mode!r}\n" + FAKE_SERVE)
    return script


def _fake_command(tmp_path, mode: str) -> str:
    return f"{sys.executable} {_fake_script(tmp_path, mode)}"


def test_local_backend_starts_and_stops(tmp_path):
    backend = LocalBackend(_fake_command(tmp_path, "ok"), port=8799)
    assert backend.state == "stopped" and len(backend.token) >= 20
    backend.start()
    try:
        assert backend.wait_until_listening(10) == "http://127.0.0.1:8799"
        assert backend.state == "listening"
    finally:
        backend.stop()
    assert backend.state == "stopped" and backend.url is None


def test_local_backend_failure_shows_its_output(tmp_path):
    backend = LocalBackend(_fake_command(tmp_path, "fail"), port=8799)
    backend.start()
    with pytest.raises(ServiceError) as caught:
        backend.wait_until_listening(10)
    assert "exited with code 3" in str(caught.value)
    assert "cannot load torch" in str(caught.value)
    assert caught.value.field == "local_command"
    backend.stop()


def test_local_backend_missing_command(tmp_path):
    with pytest.raises(ServiceError, match="no command given"):
        LocalBackend("  ")
    with pytest.raises(ServiceError, match="no command given"):
        LocalBackend([])
    backend = LocalBackend(str(tmp_path / "no-such-oneshot-avatar"))
    with pytest.raises(ServiceError, match="cannot start") as caught:
        backend.start()
    assert caught.value.field == "local_command"


def test_serve_command_forms(tmp_path):
    python = tmp_path / "python3"
    python.write_text("")
    assert launcher.serve_command(str(python), port=5)[:5] == [
        str(python), "-m", "oneshot_avatar", "serve", "--host"]
    argv = launcher.serve_command("oneshot-avatar", port=0, data_dir="/d")
    assert argv == ["oneshot-avatar", "serve", "--host", "127.0.0.1", "--port", "0",
                    "--data-dir", "/d"]
    assert launcher.serve_command("/opt/py/bin/python -X utf8", port=1)[:3] == [
        "/opt/py/bin/python", "-X", "utf8"]
    # An argument list is taken as it is (a path with spaces stays one argument), and the
    # extra arguments follow the data folder.
    argv = launcher.serve_command(["/opt/my tools/python3", "serve_tiny.py"], port=0,
                                  data_dir="/d", extra_args=("--device", "cpu"))
    assert argv == ["/opt/my tools/python3", "serve_tiny.py", "serve", "--host", "127.0.0.1",
                    "--port", "0", "--data-dir", "/d", "--device", "cpu"]
    assert launcher.serve_command([str(python)], port=0)[1:3] == ["-m", "oneshot_avatar"]


def test_a_server_without_a_token_keeps_all_its_output_and_stops_gracefully(tmp_path):
    """What the tests' real servers need: no token, every output line for the log, the exit
    code of a graceful stop, extra arguments."""
    backend = LocalBackend([sys.executable, str(_fake_script(tmp_path, "open"))], port=8798,
                           data_dir=str(tmp_path), extra_args=("--device", "cpu"),
                           random_token=False, keep_lines=None)
    assert backend.token is None
    backend.start()
    try:
        assert backend.wait_until_listening(10) == "http://127.0.0.1:8798"
        assert backend.process is not None and backend.pid == backend.process.pid
    finally:
        code = backend.stop(timeout=10)
    assert code == 0
    text = backend.output_text()
    assert text.startswith("line 0\n") and "line 59\n" in text  # more than the UI's 40 lines
    assert f"args --data-dir {tmp_path} --device cpu\n" in text
    assert text.rstrip().endswith("stopping")


def test_kill_ends_the_server_at_once(tmp_path):
    backend = LocalBackend([sys.executable, str(_fake_script(tmp_path, "open"))], port=8797,
                           random_token=False)
    backend.start()
    backend.wait_until_listening(10)
    assert backend.kill() == -signal.SIGKILL
    assert backend.state == "stopped" and "stopping" not in backend.output_text()
