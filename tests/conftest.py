"""Shared fixtures: the open default body (built once per test session) and the shared data."""

from __future__ import annotations

import os
from pathlib import Path

# OpenMP threads that spin while waiting slow torch down badly when other processes share the
# cores (measured: a test file took 636 s instead of ~20 s); waiting passively costs nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from shared_files import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def body_cache(tmp_path_factory) -> Path:
    """A cache folder holding the open body: ``$ONESHOT_AVATAR_TEST_CACHE`` to reuse one between
    runs, else a fresh temporary folder (the build is then part of what the tests check)."""
    env = os.environ.get("ONESHOT_AVATAR_TEST_CACHE")
    return Path(env) if env else tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def open_body_file(body_cache) -> Path:
    from oneshot_avatar.body import ensure_open_body

    return ensure_open_body(body_cache)


@pytest.fixture(scope="session")
def open_body(open_body_file):
    from oneshot_avatar.body import BodyModel

    return BodyModel.from_file(open_body_file, kind="open")
