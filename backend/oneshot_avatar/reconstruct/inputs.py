"""What a reconstruction needs besides the photo, said once for the CLI, the pipeline and the
service: the ways to find the body, and the error when none is there."""

from __future__ import annotations

from oneshot_avatar.errors import UserError

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
