"""The CLI answers at once: ``--help``, ``--version``, argument errors and ``motion info`` run
without importing torch or scipy (nor numpy for the first three), because each command imports
what it needs when it runs. Checked on ``sys.modules`` in a fresh interpreter, not on a clock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parents[1] / "backend"

_PROBE = """
import contextlib, io, json, sys
from oneshot_avatar.cli import main
out = io.StringIO()
code = None
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code
heavy = sorted(m for m in ("torch", "scipy", "numba", "cv2", "mediapipe", "fastapi", "numpy")
               if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy, "out": out.getvalue()}))
"""


def _probe(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True,
                          check=False,
                          timeout=120, env={"PYTHONPATH": str(BACKEND), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ["--version"], ["--help"], ["render", "--help"], ["render", "--no-such-option"],
    ["motion", "list"],
    # option values that are wrong on their face: answered before torch loads
    ["render", "a.avatar", "--size", "12x"], ["render", "a.avatar", "--batch", "0"],
    ["render", "a.avatar", "--background", "mauve"],
    ["render", "a.avatar", "--motion", "moonwalk"], ["render", "a.avatar", "--frames", "50:10"],
    ["export-ply", "a.avatar", "a.ply", "--pose", "wave", "--frame", "100000"],
    ["reconstruct", "no-such-photo.png", "--out", "a.avatar"],
    ["track", "no-such-video.mp4", "--out", "motion.npz"],
    ["serve", "--max-render-frames", "0"],
])
def test_parsing_imports_nothing_heavy(argv):
    result = _probe(*argv)
    # the built-in clips are made with numpy (motion list, and the clip --frames counts in)
    allowed = ["numpy"] if {"motion", "--motion", "--frames", "--pose", "track"} & set(argv) else []
    assert result["heavy"] in ([], allowed), f"{argv} imported {result['heavy']}"
    if argv == ["--version"]:
        assert result["code"] == 0 and result["out"].startswith("oneshot-avatar ")
    if argv[0] in ("render", "export-ply", "reconstruct", "track", "serve") and argv[1] != "--help":
        assert result["code"] == 2


def test_motion_info_needs_neither_torch_nor_scipy(shared_data):
    result = _probe("motion", "info", str(shared_data / "motion" / "amass_sample_smplh.npz"))
    assert result["code"] == 0
    assert "up axis:" in result["out"]
    assert result["heavy"] == ["numpy"]  # scipy.spatial alone took ~0.5 s


@pytest.mark.parametrize("package", ["oneshot_avatar.body", "oneshot_avatar.fit",
                                     "oneshot_avatar.motion", "oneshot_avatar.render",
                                     "oneshot_avatar.speech", "oneshot_avatar.track"])
def test_lazy_exports_stay_what_they_name_after_every_submodule_is_imported(package):
    """A lazily exported name that is also a submodule's name would turn into the module once
    anything imports that submodule (it happened to ``motion.resample``)."""
    import importlib
    import pkgutil
    import types

    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{package}.{info.name}")
    for name in module.__all__:
        assert not isinstance(getattr(module, name), types.ModuleType), f"{package}.{name}"
