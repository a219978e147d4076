"""The files ``oneshot-avatar track`` writes beside its ``--out`` (no heavy import: the command
line checks ``--out`` before torch loads)."""

from __future__ import annotations

from pathlib import Path

from oneshot_avatar.errors import UserError


def output_paths(out: Path) -> dict[str, Path]:
    """The motion ``out`` (it must end in .npz) and the camera, report and preview beside it."""
    if out.suffix.lower() != ".npz":
        raise UserError(f"the motion is written as One-Shot Avatar .npz; give a path ending in "
                        f".npz (got {out.suffix!r})", path=out, field="out")
    stem = out.with_suffix("")
    return {"motion": out, "camera": Path(f"{stem}.camera.json"),
            "report": Path(f"{stem}.track.json"), "preview": Path(f"{stem}.preview.mp4")}
