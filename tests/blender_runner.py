"""Running the Blender-side tests (tests/blender/) in Blender's Python (the bpy module) from the
main test suite: the driver tests prepare data with the backend and call these, once per tested
Blender (5.0 in ``.venv-blender``, 5.2 LTS in ``.venv-blender52``; both made by ``.ci/run``).

``$ONESHOT_AVATAR_BLENDER_PYTHONS`` (paths separated by ``os.pathsep``) names the Blender Pythons
to test with; without it, ``$ONESHOT_AVATAR_BLENDER_PYTHON`` (or ``.venv-blender``) and
``.venv-blender52``. A missing one is a skip on a workstation and a failure under CI
(``CI=true``), so CI cannot quietly test fewer Blenders than it claims.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    """``$CI`` says this is a CI run (read at each call, so a test can set it)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def blender_python_candidates() -> list[Path]:
    listed = os.environ.get("ONESHOT_AVATAR_BLENDER_PYTHONS")
    if listed:
        return [Path(p) for p in listed.split(os.pathsep) if p]
    return [Path(os.environ.get("ONESHOT_AVATAR_BLENDER_PYTHON",
                                REPO / ".venv-blender/bin/python")),
            REPO / ".venv-blender52/bin/python"]


def _label(path: Path) -> str:
    venv = path.parent.parent.name  # .venv-blender52/bin/python -> .venv-blender52
    return {".venv-blender": "blender5.0", ".venv-blender52": "blender5.2"}.get(venv, venv)


def blender_params() -> list:
    """``pytest.param(path, id=...)`` per Blender Python, for ``parametrize("blender", ...)``."""
    return [pytest.param(path, id=_label(path)) for path in blender_python_candidates()]


def blender_python(path: Path | None = None) -> Path:
    """``path`` (default: the first candidate) when it exists; else a skip, or under CI a
    failure."""
    path = Path(path) if path is not None else blender_python_candidates()[0]
    if not path.exists():
        message = (f"no Blender Python at {path} (make it with `bash .ci/run`, or name the ones "
                   "to test in $ONESHOT_AVATAR_BLENDER_PYTHONS)")
        if in_ci():
            pytest.fail(message + "; CI must test every Blender it claims to support")
        pytest.skip(message)
    return path


def any_blender_python() -> Path:
    """A Blender Python that exists (to skip drivers before building data), or skip/fail."""
    for path in blender_python_candidates():
        if path.exists() and not in_ci():
            return path
    for path in blender_python_candidates():
        blender_python(path)
    return blender_python_candidates()[0]


def blender_environment() -> dict[str, str]:
    """This environment without PYTHONPATH: a backend checkout on it would shadow the add-on's
    module name in Blender (both are ``oneshot_avatar``), and real Blender has no backend."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_blender_tests(files: list[str], tmp_path: Path, env: dict[str, str] | None = None,
                      extra_args: tuple[str, ...] = (), python: Path | None = None) -> str:
    """Run Blender-side test files (paths from the repository root) in Blender Python ``python``
    (default: the first candidate) with an isolated Blender user folder; every test must pass
    and none may skip. Returns their output."""
    command = [str(blender_python(python)), "-m", "pytest", "-q", *files, "-p", "no:cacheprovider",
               "-rs", *extra_args]
    full_env = {**blender_environment(), "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user"),
                **(env or {})}
    result = subprocess.run(command, cwd=REPO, env=full_env, capture_output=True, text=True,
                            check=False, timeout=600)
    output = result.stdout[-8000:] + result.stderr[-4000:]
    assert result.returncode == 0, output
    assert " skipped" not in result.stdout.splitlines()[-1], output
    return result.stdout
