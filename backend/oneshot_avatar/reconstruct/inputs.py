"""What a reconstruction needs, said once for the CLI, the pipeline and the service: its files
and output checked before any long work (with no heavy import, so the command line answers at
once), the ways to find the body, and the error when none is there."""

from __future__ import annotations

import os
from pathlib import Path

from oneshot_avatar.errors import UserError

# Field of view assumed for the photo's longer side when nothing gives the focal length (a
# typical phone or 35-50 mm-equivalent portrait lens; the fit's depth, not its 2D fit, depends on it).
PHOTO_FOV_DEGREES = 40.0
# The fields of view a user may give (--fov, the service's ``fov`` field), degrees.
PHOTO_FOV_RANGE = (5.0, 150.0)

# The options that name input files (ReconstructOptions' fields, the CLI's --flags).
INPUT_FILES = ("photo", "mask", "keypoints", "keypoint_model", "matting_model", "init",
               "vgg_weights")

# The alternatives to the embedded detector, as the CLI and the HTTP request name them.
BODY_SOURCES = {
    "cli": "--keypoints FILE (OpenPose or COCO-WholeBody JSON), --keypoint-model FILE.onnx (a "
           "whole-body keypoint detector) or --init FILE (SMPL-X parameters, as the Blender "
           "add-on sends)",
    "service": "'keypoints' (OpenPose or COCO-WholeBody JSON) or 'init' (SMPL-X parameters, "
               "e.g. the Blender add-on's aligned pose)",
}


def no_way_to_find_the_body(reason: str, *, asked_by: str = "cli") -> UserError:
    """The error when the photo comes alone and the embedded detector cannot run: ``reason``
    says why, the message then names the alternatives (``asked_by``: "cli" or "service")."""
    give = "give one of" if asked_by == "cli" else "send"
    return UserError(f"no way to find the body in the photo: {reason}; {give} "
                     f"{BODY_SOURCES[asked_by]}", field="keypoints")


def check_output(out: Path) -> None:
    """Fail before any long work when the output cannot be written."""
    if out.suffix != ".avatar":
        raise UserError(f"--out must end in .avatar, got {str(out)!r}", field="out")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise UserError(f"the output folder {str(parent)!r} does not exist; create it first",
                        path=out, field="out")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write into {str(parent)!r} (not a writable folder); choose another --out",
                        path=out, field="out")
    if out.exists() and out.is_dir():
        raise UserError(f"--out {str(out)!r} is a folder; give a file name ending in .avatar",
                        path=out, field="out")


def check_paths(options) -> None:
    """The output and every input file a reconstruction names (``ReconstructOptions`` or the
    CLI's arguments): each file must exist."""
    check_output(Path(options.out))
    for name in INPUT_FILES:
        path = getattr(options, name, None)
        if path is not None and not Path(path).is_file():
            what = "the photo" if name == "photo" else f"--{name.replace('_', '-')}"
            raise UserError(f"{what} {str(path)!r}: no such file", path=path, field=name)
