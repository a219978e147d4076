"""Data saved in the .blend: the Avatar panel's inputs and the list of backend jobs
(``Scene.oneshot_avatar``), so that jobs are picked up again when the file is reopened."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)
from bpy.types import PropertyGroup

from .preferences import PATH_OPTIONS, ConnectionState
from .rigs import is_avatar_rig

PRESETS = [("fast", "Fast", "Quick reconstruction: 256 px, about a minute on a CPU"),
           ("quality", "Quality", "More detail: 512 px, about 10 minutes on a CPU")]
RENDER_MODES = [
    ("AUTO", "Automatic", "Short shots in one request, long ones as a backend job"),
    ("REQUEST", "One Request", "Render all frames in one request (waits for the frames)"),
    ("JOB", "Backend Job", "Queue a render job; progress shows in the job list"),
]
BUILTIN_MOTIONS = ("idle", "talk", "wave", "point", "shrug", "turnaround")
JOB_KINDS = [("reconstruct", "Reconstruct", "Photo to avatar"),
             ("render", "Render", "Avatar frames")]


def _poll_rig(_settings, obj) -> bool:
    return is_avatar_rig(obj)


class OneshotAvatarJob(PropertyGroup):
    """One backend job as the add-on tracks it (``name`` is the display name)."""

    job_id: StringProperty(name="Job ID", description="The backend's id (local_... while sent)")
    kind: EnumProperty(name="Kind", items=JOB_KINDS, default="reconstruct")
    state: StringProperty(name="State", default="submitting",
                          description="submitting, queued, running, succeeded, failed, cancelled")
    stage: StringProperty(name="Stage")
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    stage_progress: FloatProperty(name="Stage Progress", min=0.0, max=1.0, subtype="FACTOR")
    message: StringProperty(name="Message", description="Why it failed, if it did")
    delivered: BoolProperty(name="Delivered",
                            description="The result is in Blender (avatar imported / frames "
                                        "loaded)")
    cancel_requested: BoolProperty(name="Cancel Requested")
    avatar_id: StringProperty(name="Avatar ID")
    result_path: StringProperty(name="Result", subtype="FILE_PATH", options=PATH_OPTIONS,
                                description="The downloaded package, or the first frame")
    rig_name: StringProperty(name="Rig", description="The rig a render job renders")
    output_dir: StringProperty(name="Output Folder", subtype="DIR_PATH", options=PATH_OPTIONS)
    file_prefix: StringProperty(name="File Prefix")
    frame_start: IntProperty(name="First Frame")
    frame_step: IntProperty(name="Frame Step", default=1, min=1)
    frame_count: IntProperty(name="Frames", min=0)


def _builtin_motion_items(_settings, _context):
    """The backend's built-in motions (from the last connection test), else the known ones."""
    names = (ConnectionState.last_health or {}).get("motions") or BUILTIN_MOTIONS
    items = [(str(name), str(name).capitalize(), f"The backend's '{name}' clip")
             for name in names]
    _builtin_motion_items.cache = items  # Blender needs the strings kept alive
    return items


def _photo_changed(settings, _context) -> None:
    if not settings.avatar_name and settings.photo_path:
        settings.avatar_name = bpy.path.display_name_from_filepath(settings.photo_path)


class OneshotAvatarSettings(PropertyGroup):
    # Reconstruction inputs
    photo_path: StringProperty(name="Photo", subtype="FILE_PATH", update=_photo_changed,
                               options=PATH_OPTIONS,
                               description="A photo of one person, whole body if possible")
    mask_path: StringProperty(name="Mask", subtype="FILE_PATH", options=PATH_OPTIONS,
                              description="Optional person mask (white = person)")
    keypoints_path: StringProperty(name="Keypoints", subtype="FILE_PATH", options=PATH_OPTIONS,
                                   description="Optional keypoints JSON (OpenPose / COCO layout)")
    preset: EnumProperty(name="Preset", items=PRESETS, default="fast")
    field_of_view: FloatProperty(
        name="Field of View", default=0.0, min=0.0, max=150.0, soft_max=120.0, precision=1,
        description="The photo camera's field of view in degrees across the photo's long side "
                    "(0: from the photo's EXIF focal length, else 40). Photos that lost their "
                    "EXIF (screenshots, web images) fit better with it; a phone's main camera "
                    "is about 65-75")
    avatar_name: StringProperty(name="Name", description="Name of the new avatar")
    use_aligned_pose: BoolProperty(
        name="Use Aligned Pose",
        description="Send the pose of the alignment rig as the fit's starting pose")
    align_rig: PointerProperty(name="Alignment Rig", type=bpy.types.Object, poll=_poll_rig,
                               description="An avatar rig posed to match the photo")
    align_camera: PointerProperty(name="Alignment Camera", type=bpy.types.Object)

    # Animation
    builtin_motion: EnumProperty(name="Built-in Motion", items=_builtin_motion_items,
                                 description="A motion clip the backend ships")

    # Rendering
    render_rig: PointerProperty(name="Avatar Rig", type=bpy.types.Object, poll=_poll_rig,
                                description="The avatar to render (empty: the active rig)")
    render_mode: EnumProperty(name="Send As", items=RENDER_MODES, default="AUTO")
    use_transparent: BoolProperty(name="Transparent", default=True,
                                  description="Keep alpha; otherwise fill with the background "
                                              "colour")
    background: FloatVectorProperty(name="Background", subtype="COLOR", size=3, min=0.0,
                                    max=1.0, default=(0.05, 0.05, 0.05))
    preview_image: PointerProperty(name="Preview", type=bpy.types.Image)

    # Jobs
    jobs: CollectionProperty(type=OneshotAvatarJob)
    active_job_index: IntProperty(name="Active Job")


CLASSES = (OneshotAvatarJob, OneshotAvatarSettings)


def register() -> None:
    bpy.types.Scene.oneshot_avatar = PointerProperty(type=OneshotAvatarSettings)


def unregister() -> None:
    del bpy.types.Scene.oneshot_avatar
