"""Import Video Motion: a video of a person -> the backend tracks it (``POST /v1/tracking``, a
job with progress; ``oneshot-avatar track``) -> the motion keyed on the avatar rig from the
current frame at the scene's frame rate, and the video added as a reference: a movie clip (as the
scene camera's background when there is a camera) and an image empty playing the video behind
the rig. Blender stays responsive while the job runs (a timer follows it and reports progress);
``wait=True`` blocks instead (scripts, tests).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy
from bpy.props import BoolProperty, IntProperty
from bpy_extras.io_utils import ImportHelper

from .core.motion import MotionError, read_motion
from .core.video import (
    VIDEO_EXTENSIONS,
    VideoInputError,
    fetch_motion,
    job_finished,
    start_tracking,
    wait_for_tracking,
)
from .motion_ops import apply_motion, scene_fps
from .rigs import NeedsRig, rig_or_report

POLL_SECONDS = 0.5
REFERENCE_PREFIX = "VideoReference"


def _service_client(context):
    from . import preferences

    return preferences.service_client(context)


def _rig_height(rig) -> float:
    zs = [(rig.matrix_world @ bone.head_local).z for bone in rig.data.bones]
    return max(max(zs) - min(zs), 1.0) if zs else 1.8


def add_video_reference(context, rig, video: Path, start_frame: int, frames: int) -> dict:
    """The video as a movie clip (the camera's background when the scene has a camera) and as an
    image empty playing it behind the rig, both starting at ``start_frame``."""
    scene = context.scene
    clip = bpy.data.movieclips.load(str(video), check_existing=True)
    clip.frame_start = int(start_frame)
    if scene.camera is not None and scene.camera.type == "CAMERA":
        camera = scene.camera.data
        background = camera.background_images.new()
        background.source = "MOVIE_CLIP"
        background.clip = clip
        background.alpha = 0.6
        camera.show_background_images = True
    image = bpy.data.images.load(str(video), check_existing=True)
    image.source = "MOVIE"
    plane = bpy.data.objects.new(f"{REFERENCE_PREFIX} {video.stem}", None)
    plane.empty_display_type = "IMAGE"
    plane.data = image
    height = _rig_height(rig)
    plane.empty_display_size = height * max(clip.size[0], 1) / max(clip.size[1], 1)
    plane.rotation_euler = (1.5707963267948966, 0.0, 0.0)  # upright, facing -Y (the front)
    origin = rig.matrix_world.translation
    plane.location = (origin.x, origin.y + 1.0, 0.0)  # behind the rig
    plane.empty_image_offset = (-0.5, 0.0)
    user = plane.image_user
    user.frame_start = int(start_frame)
    user.frame_duration = int(frames)
    user.use_auto_refresh = True
    context.collection.objects.link(plane)
    return {"clip": clip, "image_empty": plane}


def import_video_motion(context, rig, video: str, *, size: int = 0, max_frames: int = 0,
                        start_frame: int | None = None, reference: bool = True,
                        job: dict | None = None) -> dict:
    """Track ``video`` (or take the finished ``job``) and key its motion on ``rig`` from
    ``start_frame`` (default: the current frame). Returns ``{"motion", "job", "reference"}``."""
    scene = context.scene
    start = scene.frame_current if start_frame is None else int(start_frame)
    path = Path(bpy.path.abspath(video))
    client = _service_client(context)
    if job is None:
        job = start_tracking(client, path, fps=scene_fps(scene), size=size, max_frames=max_frames)
        job = wait_for_tracking(client, job["id"])
    with tempfile.TemporaryDirectory(prefix="oneshot-video-") as folder:
        motion_file = fetch_motion(client, job, folder)
        motion = read_motion(motion_file)
    motion = apply_motion(context, rig, motion, start_frame=start, set_frame_range=False)
    scene.frame_end = max(scene.frame_end, start + motion.num_frames - 1)
    added = add_video_reference(context, rig, path, start, motion.num_frames) if reference \
        else {}
    return {"motion": motion, "job": job, "reference": added}


class ONESHOT_AVATAR_OT_import_video_motion(NeedsRig, bpy.types.Operator, ImportHelper):
    """Motion from a video of a person: the backend tracks body, hands, jaw and face; the motion
    is keyed on the avatar rig from the current frame, with the video added as a reference"""

    bl_idname = "oneshot_avatar.import_video_motion"
    bl_label = "Import Video Motion"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a set)

    filter_glob: bpy.props.StringProperty(  # type: ignore[valid-type]
        default=";".join(f"*{ext}" for ext in VIDEO_EXTENSIONS), options={"HIDDEN"})
    size: IntProperty(  # type: ignore[valid-type]
        name="Tracking Size", default=0, min=0, max=2160,
        description="Short side of the frames tracked, pixels (0 = the backend's default, 720)")
    max_frames: IntProperty(  # type: ignore[valid-type]
        name="Max Frames", default=0, min=0, max=36000,
        description="Track only the first N frames (0 = all, at most 10 minutes)")
    reference: BoolProperty(  # type: ignore[valid-type]
        name="Add Video Reference", default=True,
        description="Add the video as a movie clip (camera background) and an image behind "
                    "the rig")
    wait: BoolProperty(default=False, options={"HIDDEN"})  # type: ignore[valid-type]

    def _fail(self, error) -> set[str]:
        self.report({"ERROR"}, f"Cannot import video motion: {error}")
        return {"CANCELLED"}

    def execute(self, context):
        from .core.client import ServiceError

        rig = rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        try:
            if self.wait:
                result = import_video_motion(context, rig, self.filepath, size=self.size,
                                             max_frames=self.max_frames,
                                             reference=self.reference)
                self._done(result)
                return {"FINISHED"}
            job = start_tracking(_service_client(context), bpy.path.abspath(self.filepath),
                                 fps=scene_fps(context.scene), size=self.size,
                                 max_frames=self.max_frames)
        except (VideoInputError, MotionError, ServiceError) as error:
            return self._fail(error)
        self._follow(context, rig, job)
        self.report({"INFO"}, f"Tracking {Path(self.filepath).name} (job {job['id']}); the "
                              "motion is keyed when it is done")
        return {"FINISHED"}

    def _done(self, result: dict) -> None:
        self.report({"INFO"}, f"Keyed {result['motion'].num_frames} frames of video motion")

    def _follow(self, context, rig, job: dict) -> None:
        """Poll the job from a timer; key the motion when it succeeds."""
        from .core.client import ServiceError

        rig_name, video, start = rig.name, self.filepath, context.scene.frame_current
        reference, window = self.reference, context.window_manager

        def poll():
            try:
                current = _service_client(bpy.context).get_job(job["id"])
                window.progress_update(int(100 * current.get("progress", 0.0)))
                if not job_finished(current):
                    return POLL_SECONDS
                window.progress_end()
                target = bpy.data.objects.get(rig_name)
                if target is None:
                    print(f"One-Shot Avatar: the rig {rig_name!r} is gone; video motion not keyed")
                    return None
                result = import_video_motion(bpy.context, target, video, start_frame=start,
                                             reference=reference, job=current)
                print(f"One-Shot Avatar: keyed {result['motion'].num_frames} frames of video "
                      f"motion on {rig_name}")
            except (VideoInputError, MotionError, ServiceError) as error:
                window.progress_end()
                print(f"One-Shot Avatar: cannot import video motion: {error}")
            return None

        window.progress_begin(0, 100)
        bpy.app.timers.register(poll, first_interval=POLL_SECONDS)


def menu_import(self, context):
    self.layout.operator(ONESHOT_AVATAR_OT_import_video_motion.bl_idname,
                         text="Video Motion onto Avatar")


CLASSES = (ONESHOT_AVATAR_OT_import_video_motion,)
# Added to File > Import by the add-on's register().
MENUS = (("TOPBAR_MT_file_import", menu_import),)
