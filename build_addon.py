"""Build the Blender add-on zip (dist/oneshot_avatar-<version>.zip). The add-on itself is not
written yet (issue 6); this script already packs what ``blender_addon/`` holds."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VERSION = "0.1.0"


def build(out_dir: Path = ROOT / "dist") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"oneshot_avatar-{VERSION}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((ROOT / "blender_addon").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, Path("oneshot_avatar") / path.relative_to(ROOT / "blender_addon"))
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"))
