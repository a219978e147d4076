"""Shared fixtures: the open default body (built once per test session) and the shared data."""

from __future__ import annotations

import os
from pathlib import Path

# OpenMP threads that spin while waiting slow torch down badly when other processes share the
# cores (measured: a test file took 636 s instead of ~20 s); waiting passively costs nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Under pytest-xdist (``-n 2``, the README's test command) each worker gets its share of the
# cores for torch's thread pool (the CPU rasterizer's kernels use as many threads), and so do
# the servers and command lines the tests start (they inherit the environment): two workers
# with a pool the size of the machine each would fight over the same cores.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if os.environ.get("PYTEST_XDIST_WORKER") and _WORKERS > 1:
    _share = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, _share)

import pytest

from shared_files import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def body_cache(tmp_path_factory, request) -> Path:
    """A cache folder holding the open body: ``$ONESHOT_AVATAR_TEST_CACHE`` to reuse one between
    runs, else a fresh temporary folder (the build is then part of what the tests check)."""
    env = os.environ.get("ONESHOT_AVATAR_TEST_CACHE")
    if env:
        return Path(env)
    # Under xdist each worker has its own base folder; their parent is the run's, so the
    # workers share one cache (built once, under the lock in ``open_body_file``).
    base = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker
        base = base.parent
    folder = base / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def open_body_file(body_cache) -> Path:
    from filelock import FileLock

    from oneshot_avatar.body import ensure_open_body

    # One builder at a time: a second xdist worker waits, then finds the body built.
    with FileLock(str(body_cache / ".open-body.lock")):
        return ensure_open_body(body_cache)


@pytest.fixture(scope="session")
def open_body(open_body_file):
    from oneshot_avatar.body import BodyModel

    return BodyModel.from_file(open_body_file, kind="open")


# ---- running the suite on several workers (pytest-xdist, ``-n 2 --dist loadfile``) -----------
#
# Each test file runs on one worker, so its module-scoped fixtures (a server, a tracked video, a
# reconstructed subject) are built once. The files that take longest go first (the scheduler
# hands out files in collection order once ``loadscopereorder`` is off) so that the two workers
# finish together instead of one waiting out the last long file. (``--dist loadgroup`` with
# ``xdist_group`` marks would split a file, but pytest-xdist 3.8 renames node ids through
# ``item._nodeid``, which pytest 9 no longer reads: the marks are silently ignored; measured
# here, and pytest-xdist issue #1386.)
LONGEST_FIRST = (  # seconds per file measured under -n 2 on 2 cores, 2026-11-29 05:05
    "tests/test_service.py", "tests/test_blender_ui.py", "tests/test_reconstruct.py",
    "tests/test_track.py", "tests/test_service_fuzz.py", "tests/test_blender_engine.py",
    "tests/test_render_cli.py", "tests/test_fit_landmarks.py", "tests/test_speech.py",
    "tests/test_body.py", "tests/test_regions.py", "tests/test_priors.py",
    "tests/test_outputs.py", "tests/test_blender_video.py", "tests/test_blender_rig.py",
    "tests/test_service_track.py", "tests/test_package.py", "tests/test_body_files.py",
)


def pytest_configure(config):
    if getattr(config.option, "dist", "no") in ("loadfile", "loadscope"):
        # our order below, not xdist's default of the files with the most tests first
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    if not hasattr(config, "workerinput"):  # only xdist's workers collect for the scheduler
        return
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    # stable: each file's tests stay together and in their order
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
