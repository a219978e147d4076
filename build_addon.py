"""Build the Blender add-on zip: ``python build_addon.py [OUT_DIR]`` writes
``OUT_DIR/oneshot_avatar-<version>.zip`` (default ``dist/``).

The zip holds one folder, ``oneshot_avatar/``, with ``blender_manifest.toml`` and
``__init__.py`` in it, so both of Blender's installers accept it: "Install from Disk" as an
extension (Blender 4.2+ looks for the manifest at the top or in one folder) and the legacy
add-on installer (which wants the package folder). The version comes from the manifest and must
match ``bl_info["version"]``.
"""

from __future__ import annotations

import ast
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "blender_addon"
PACKAGE = "oneshot_avatar"
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIPPED_SUFFIXES = {".pyc", ".pyo", ".blend1"}


def manifest_version(source: Path = SOURCE) -> str:
    """``version`` of ``blender_manifest.toml`` (checked against ``bl_info``)."""
    text = (source / "blender_manifest.toml").read_text(encoding="utf-8")
    match = re.search(r'^version\s*=\s*"(\d+\.\d+\.\d+)"\s*$', text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"{source / 'blender_manifest.toml'}: no `version = \"X.Y.Z\"` line")
    version = match.group(1)
    module = ast.parse((source / "__init__.py").read_text(encoding="utf-8"))
    for node in module.body:
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "bl_info"
                                                 for t in node.targets)):
            bl_version = ".".join(str(v) for v in ast.literal_eval(node.value)["version"])
            if bl_version != version:
                raise SystemExit(f"version mismatch: blender_manifest.toml says {version}, "
                                 f"bl_info in __init__.py says {bl_version}; make them equal")
            return version
    raise SystemExit(f"{source / '__init__.py'}: no bl_info")


def add_on_files(source: Path = SOURCE) -> list[Path]:
    return [path for path in sorted(source.rglob("*"))
            if path.is_file() and not SKIPPED_PARTS.intersection(path.parts)
            and path.suffix not in SKIPPED_SUFFIXES]


def build(out_dir: Path = ROOT / "dist", source: Path = SOURCE) -> Path:
    version = manifest_version(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE}-{version}.zip"
    partial = target.with_name(target.name + ".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in add_on_files(source):
            archive.write(path, (Path(PACKAGE) / path.relative_to(source)).as_posix())
    partial.replace(target)
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"))
