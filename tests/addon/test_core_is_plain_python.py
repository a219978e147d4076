"""``blender_addon/core`` is plain Python: every module of it imports without Blender, torch or
the backend, so its tests run anywhere and the add-on stays light inside Blender. Checked in a
fresh interpreter (the test session itself has torch and the backend loaded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "blender_addon" / "core"
FORBIDDEN = ("bpy", "mathutils", "torch", "oneshot_avatar")

PROBE = """
import importlib, json, pkgutil, sys
import blender_addon.core as core
names = [f"blender_addon.core.{m.name}" for m in pkgutil.iter_modules(core.__path__)]
for name in names:
    importlib.import_module(name)
roots = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"imported": names, "roots": roots}))
"""


def _import_all_of_core() -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_core_imports_neither_blender_nor_torch_nor_the_backend():
    probe = _import_all_of_core()
    expected = {f"blender_addon.core.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__"}
    assert set(probe["imported"]) == expected  # every module was imported
    loaded = set(probe["roots"])
    assert "json" in loaded  # the probe sees what core imports (core.client reads JSON)
    assert not loaded & set(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
