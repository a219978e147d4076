"""Running the Blender-side tests (tests/blender/) in Blender's Python (the bpy module) from the
main test suite: the driver tests prepare data with the backend and call these."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def blender_python() -> Path:
    """The Python with the bpy module (``.venv-blender``, made by ``.ci/run``), or a skip."""
    path = Path(os.environ.get("ONESHOT_AVATAR_BLENDER_PYTHON", REPO / ".venv-blender/bin/python"))
    if not path.exists():
        pytest.skip(f"no Blender Python at {path} (make .venv-blender with the bpy module, or "
                    "set ONESHOT_AVATAR_BLENDER_PYTHON)")
    return path


def blender_environment() -> dict[str, str]:
    """This environment without PYTHONPATH: a backend checkout on it would shadow the add-on's
    module name in Blender (both are ``oneshot_avatar``), and real Blender has no backend."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_blender_tests(files: list[str], tmp_path: Path, env: dict[str, str] | None = None,
                      extra_args: tuple[str, ...] = ()) -> str:
    """Run Blender-side test files (paths from the repository root) with an isolated Blender user
    folder; every test must pass and none may skip. Returns their output."""
    command = [str(blender_python()), "-m", "pytest", "-q", *files, "-p", "no:cacheprovider",
               "-rs", *extra_args]
    full_env = {**blender_environment(), "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user"),
                **(env or {})}
    result = subprocess.run(command, cwd=REPO, env=full_env, capture_output=True, text=True,
                            check=False, timeout=600)
    output = result.stdout[-8000:] + result.stderr[-4000:]
    assert result.returncode == 0, output
    assert " skipped" not in result.stdout.splitlines()[-1], output
    return result.stdout
