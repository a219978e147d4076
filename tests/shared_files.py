"""Where the real test files made by others live: ``../shared/data`` beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MOTION_DATA = SHARED_DATA / "motion"


def shared_file(name: str) -> Path:
    """``../shared/data/<name>``, or skip the test (with the path) when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def real_file(name: str) -> Path:
    """A real motion file, or skip the test (with the path) when the shared data is absent."""
    path = MOTION_DATA / name
    if not path.exists():
        pytest.skip(f"real motion test file {path} is absent (tests expect ../shared/data "
                    "beside the repository)")
    return path
