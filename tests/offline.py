"""A script in a fresh interpreter whose sockets refuse to connect: the tests that prove a
step needs no network (its models come from the installed wheels) run it there."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_REFUSE = """
import socket

def refuse(*args, **kwargs):
    raise RuntimeError(f"network access during {what}: {{args}}")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
"""


def run_offline(script: str, what: str, cwd: Path,
                timeout: float = 300) -> subprocess.CompletedProcess:
    """Run Python ``script`` (dedented) in ``cwd`` with this interpreter, every way of opening
    a connection raising ``RuntimeError("network access during <what>: ...")``; its output is
    captured as text."""
    source = _REFUSE.format(what=what) + textwrap.dedent(script)
    return subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                          check=False, timeout=timeout, cwd=cwd)
