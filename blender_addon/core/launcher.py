"""The one launcher of a local ``oneshot-avatar serve``: the add-on's "start a local backend",
and the tests' and benchmarks' real servers (``tests/service_server.py``), which is why it
lives here, in plain Python that neither Blender nor the backend is needed to import.

The server is a child process bound to loopback; a reader thread watches its output for the
``listening on URL`` line the backend prints once it is ready to answer (``port`` 0 lets it
pick a free port) and keeps its last lines (or all of them) for error messages and logs.
"""

from __future__ import annotations

import collections
import os
import secrets
import shlex
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .client import BackendTimeoutError, ServiceError

# Printed by `oneshot-avatar serve` (backend/oneshot_avatar/service/cli.py) when it listens.
LISTENING_PREFIX = "oneshot-avatar serve: listening on "
TOKEN_ENV = "ONESHOT_AVATAR_TOKEN"  # read by `oneshot-avatar serve` (kept off the command line)


def serve_command(command: str | Sequence[str], *, port: int, data_dir: str | None = None,
                  host: str = "127.0.0.1", extra_args: Sequence[str] = ()) -> list[str]:
    """The argument list starting ``oneshot-avatar serve``.

    ``command``: the ``oneshot-avatar`` executable, a Python interpreter that has the backend
    installed (then ``-m oneshot_avatar`` is used), a shell-style command line, or an argument
    list (e.g. ``[python, "-m", "oneshot_avatar"]``). ``extra_args`` follow (``--device cpu``)."""
    if command is None or isinstance(command, str):
        text = (command or "").strip()
        argv = [text] if text and os.path.exists(text) else shlex.split(text)
    else:
        argv = [str(part) for part in command]
    if not argv or not argv[0].strip():
        raise ServiceError("no command given", field="local_command",
                           hint="set the path of `oneshot-avatar` (or of a Python that has it) "
                                "in the add-on preferences")
    if Path(argv[0]).name.lower().startswith("python") and len(argv) == 1:
        argv += ["-m", "oneshot_avatar"]
    argv += ["serve", "--host", host, "--port", str(int(port))]
    if data_dir:
        argv += ["--data-dir", str(data_dir)]
    return argv + [str(arg) for arg in extra_args]


class LocalBackend:
    """``oneshot-avatar serve`` run as a child process, bound to loopback.

    :meth:`start` returns at once; a reader thread watches the server's output for its
    ``listening on URL`` line (then :attr:`url` is set) and keeps the last ``keep_lines`` lines
    (all when None) in :attr:`output_tail`. :meth:`stop` ends the process (terminate, then
    kill), :meth:`kill` kills it at once. ``port`` 0 lets the server pick a free port.

    A random token is generated when none is given (unless ``random_token`` is false: then the
    server runs without one, as a test of the open loopback server wants), so other local users
    cannot drive this server; it is passed in the environment (``ONESHOT_AVATAR_TOKEN``), not on
    the command line where ``ps`` shows it. ``env`` replaces the inherited environment."""

    def __init__(self, command: str | Sequence[str], *, port: int = 0,
                 data_dir: str | None = None, token: str | None = None,
                 env: Mapping[str, str] | None = None, extra_args: Sequence[str] = (),
                 random_token: bool = True, keep_lines: int | None = 40):
        if token is None and random_token:
            token = secrets.token_urlsafe(24)
        self.token = token
        self.argv = serve_command(command, port=port, data_dir=data_dir, extra_args=extra_args)
        self.env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
        if token:
            self.env[TOKEN_ENV] = token
        self.url: str | None = None
        self.output_tail: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        if self.running:
            return
        try:
            self._process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                env=self.env, bufsize=1)
        except OSError as error:
            raise ServiceError(f"cannot start {self.argv[0]!r}: {error.strerror or error}",
                               field="local_command",
                               hint="set the path of `oneshot-avatar` (or of a Python that has "
                                    "the backend installed) in the add-on preferences") from error
        self._reader = threading.Thread(target=self._read_output, name="oneshot-avatar serve",
                                        daemon=True)
        self._reader.start()

    def _read_output(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            self.output_tail.append(line)
            if self.url is None and line.startswith(LISTENING_PREFIX):
                self.url = line[len(LISTENING_PREFIX):].strip()

    @property
    def process(self) -> subprocess.Popen | None:
        """The running child process (None before :meth:`start` and after :meth:`stop`)."""
        return self._process

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    @property
    def state(self) -> str:
        """``"stopped"`` (never started or stopped), ``"starting"``, ``"listening"`` or
        ``"exited"`` (ended on its own; see :meth:`failure`)."""
        if self._process is None:
            return "stopped"
        if self._process.poll() is not None:
            return "exited"
        return "listening" if self.url else "starting"

    def output_text(self) -> str:
        """The output lines kept, as text."""
        return "".join(line + "\n" for line in list(self.output_tail))

    def failure(self) -> ServiceError:
        """Why the server ended, with its last output lines."""
        tail = " | ".join(list(self.output_tail)[-5:]) or "no output"
        return ServiceError(f"the local backend `{' '.join(self.argv[:3])} ...` exited with "
                            f"code {self.exit_code} ({tail})", field="local_command",
                            hint="check the command in the add-on preferences and run it in a "
                                 "terminal to see the whole error")

    def wait_until_listening(self, timeout: float) -> str:
        """Block until the server listens (returns its URL); for scripts and tests — the UI
        polls :attr:`state` from a timer instead."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.url:
                return self.url
            if self._process is None or self._process.poll() is not None:
                if self._reader is not None:
                    self._reader.join(1.0)
                if self.url:
                    return self.url
                raise self.failure()
            time.sleep(0.05)
        raise BackendTimeoutError(f"the local backend did not start listening within "
                                  f"{timeout:g} s", field="local_command",
                                  hint="see the backend's output in the console")

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate (SIGTERM on POSIX: the server puts a running job back in its queue and
        exits), kill after ``timeout`` seconds; returns the exit code (None if not started)."""
        process, self._process = self._process, None
        self.url = None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
            self._reader = None
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def kill(self) -> int | None:
        """Kill at once (SIGKILL on POSIX), as a crash or an out-of-memory kill would."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        return self.stop()
