"""Render Avatar (scene frame range -> PNG frames with alpha from the backend), Preview Frame,
and Align Pose (photo behind a camera, the rig in front, its pose sent as the fit's start).

What is sent per frame: the rig's evaluated pose (so constraints, drivers and IK count) as
SMPL-X parameters — every bone's rest orientation is the identity in armature space, so a
bone's rotation relative to its parent *is* the SMPL-X axis-angle; ``transl`` is the root
bone's location; expressions are the root pose bone's custom properties — and the scene camera
relative to the rig (see ``core/camera.py``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, FloatProperty

from . import background, preferences
from .core import camera as camera_export
from .core.client import ServiceClient, ServiceError
from .core.colors import linear_to_srgb
from .core.jobs import JobSnapshot, count_text
from .core.render import extract_frames, render_request, split_output_path
from .core.smplx_rig import (
    RIG_AVATAR_ID_PROPERTY,
    RIG_SOURCE_PROPERTY,
    expression_space,
)
from .core.uploads import CACHE_FILE_NAME, UploadCache, ensure_uploaded
from .rig_pose import at_frames, motion_params, read_rig_pose, rig_expression_names
from .rigs import chosen_rig

DIRECT_FRAME_LIMIT = 24  # "Automatic": longer shots are sent as a backend render job
PREVIEW_IMAGE_NAME = "OneShot Avatar Preview"


# --------------------------------------------------------------------------------------------
# Reading the scene (main thread)


def find_render_rig(context) -> bpy.types.Object:
    return chosen_rig(context, context.scene.oneshot_avatar.render_rig, "no avatar rig chosen",
                       "rig", "select the avatar's armature or set Avatar Rig in the Avatar "
                              "panel (import or reconstruct an avatar first)")


def camera_payload(scene: bpy.types.Scene, camera: bpy.types.Object,
                   rig_matrix_world=None) -> dict[str, Any]:
    """The API camera of a (evaluated) camera object with the scene's render size: the one
    reader of Blender's camera settings for Render Avatar and the render engine."""
    data, render = camera.data, scene.render
    return camera_export.blender_camera_payload(
        camera_type=data.type, lens_mm=data.lens, sensor_width_mm=data.sensor_width,
        sensor_height_mm=data.sensor_height, sensor_fit=data.sensor_fit, shift_x=data.shift_x,
        shift_y=data.shift_y, clip_start=data.clip_start, clip_end=data.clip_end,
        resolution_x=render.resolution_x, resolution_y=render.resolution_y,
        resolution_percentage=render.resolution_percentage,
        pixel_aspect_x=render.pixel_aspect_x, pixel_aspect_y=render.pixel_aspect_y,
        camera_matrix_world=[list(row) for row in camera.matrix_world],
        rig_matrix_world=rig_matrix_world)


def camera_for_frame(scene: bpy.types.Scene, camera: bpy.types.Object, rig: bpy.types.Object,
                     depsgraph) -> dict[str, Any]:
    """The API camera for the current frame (scene camera relative to the rig)."""
    return camera_payload(scene, camera.evaluated_get(depsgraph),
                          [list(row) for row in rig.evaluated_get(depsgraph).matrix_world])


def build_render_request(context, rig: bpy.types.Object, frames: list[int]) -> dict[str, Any]:
    """The render request body (without ``avatar``) for ``frames`` of the scene; the scene is
    returned to its current frame afterwards."""
    scene = context.scene
    if scene.camera is None:
        raise ServiceError("the scene has no camera", field="camera",
                           hint="add a camera and make it the scene camera")
    names = rig_expression_names(rig)

    def read(depsgraph) -> tuple[dict[str, Any], dict[str, Any]]:
        if scene.camera is None:
            raise ServiceError(f"the scene has no camera at frame {scene.frame_current}",
                               field="camera", hint="check the camera markers")
        return read_rig_pose(rig, depsgraph), camera_for_frame(scene, scene.camera, rig,
                                                               depsgraph)

    samples = at_frames(context, frames, read)
    settings = scene.oneshot_avatar
    return render_request(
        motion_params([pose for pose, _camera in samples], names),
        [camera for _pose, camera in samples],
        fps=scene.render.fps / scene.render.fps_base, expression_space=expression_space(names),
        name=rig.name,
        # Blender's colour swatch is scene-linear; the backend's background is sRGB.
        background=None if settings.use_transparent else linear_to_srgb(settings.background))


def output_location(scene: bpy.types.Scene, rig: bpy.types.Object) -> tuple[str, str]:
    """``(folder, file prefix)`` from the scene's output path: ``//render/`` -> frames
    ``<rig>_0001.png`` in that folder; ``//render/shot_`` -> ``shot_0001.png``."""
    return split_output_path(bpy.path.abspath(scene.render.filepath or "//"),
                             tempfile.gettempdir(), f"{bpy.path.clean_name(rig.name)}_")


def avatar_on_rig(rig: bpy.types.Object) -> tuple[str, str]:
    """``(avatar id, package path)`` recorded on the rig by the importer / a reconstruction."""
    package = str(rig.get(RIG_SOURCE_PROPERTY, "") or "")
    return (str(rig.get(RIG_AVATAR_ID_PROPERTY, "") or ""),
            bpy.path.abspath(package) if package else "")


# --------------------------------------------------------------------------------------------
# Work for worker threads (no bpy)


def upload_cache() -> UploadCache:
    """Which packages this user uploaded to which backend (Blender's user config folder)."""
    folder = bpy.utils.user_resource("CONFIG", create=True)
    return UploadCache(Path(folder) / CACHE_FILE_NAME if folder else None)


def ensure_avatar(client: ServiceClient, avatar_id: str, package: str, name: str,
                  cache: UploadCache) -> str:
    """The backend's id for this avatar; the package is uploaded once per checksum and backend
    (see ``core/uploads.py``)."""
    return ensure_uploaded(client, cache, avatar_id=avatar_id, package=package, name=name)


def _render_now(config, request, avatar_id, package, name, frames, folder, prefix,
                cache) -> dict:
    client = config.client()
    request = {**request, "avatar": ensure_avatar(client, avatar_id, package, name, cache),
               "format": "zip"}
    data = client.render(request)
    with tempfile.TemporaryDirectory(prefix="oneshot-avatar-") as scratch:
        archive = Path(scratch) / "frames.zip"
        archive.write_bytes(data)
        paths = extract_frames(archive, frames, folder, prefix)
    return {"avatar_id": request["avatar"], "paths": paths}


def _queue_render_job(config, request, avatar_id, package, name, cache) -> dict:
    client = config.client()
    request = {**request, "avatar": ensure_avatar(client, avatar_id, package, name, cache),
               "format": "zip"}
    job = JobSnapshot.from_api(client.create_render_job(request))
    return {"avatar_id": request["avatar"], "job": job}


def _fetch_render_job(config, job_id, frames, folder, prefix) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="oneshot-avatar-") as scratch:
        archive = config.client().download_job_result(job_id, Path(scratch) / "frames.zip")
        return extract_frames(archive, frames, folder, prefix)


def _preview_now(config, request, avatar_id, package, name, target, cache) -> dict:
    client = config.client()
    request = {**request, "avatar": ensure_avatar(client, avatar_id, package, name, cache),
               "format": "png"}
    Path(target).write_bytes(client.render(request))
    return {"avatar_id": request["avatar"], "path": target}


# --------------------------------------------------------------------------------------------
# Showing results (main thread)


def _show_in_image_editors(image: bpy.types.Image) -> None:
    window_manager = bpy.context.window_manager
    for window in (window_manager.windows if window_manager else []):
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image


def load_frame_sequence(scene: bpy.types.Scene, paths: list[str], frames: list[int],
                        name: str) -> bpy.types.Image:
    """The frames as one image sequence, shown behind the scene camera's view and in open
    Image Editors."""
    image = bpy.data.images.get(name)
    if image is not None and bpy.path.abspath(image.filepath) != paths[0]:
        bpy.data.images.remove(image)
        image = None
    if image is None:
        image = bpy.data.images.load(paths[0], check_existing=False)
        image.name = name
    else:
        image.reload()
    image.source = "SEQUENCE" if len(paths) > 1 else "FILE"
    image.alpha_mode = "STRAIGHT"
    camera = scene.camera
    if camera is not None and camera.type == "CAMERA":
        backgrounds = camera.data.background_images
        entry = next((bg for bg in backgrounds if bg.image == image), None) or backgrounds.new()
        entry.image = image
        entry.display_depth = "FRONT"
        entry.frame_method = "FIT"
        user = entry.image_user
        user.frame_start = frames[0]
        user.frame_duration = frames[-1] - frames[0] + 1
        user.frame_offset = frames[0] - 1
        user.use_auto_refresh = True
        camera.data.show_background_images = True
    _show_in_image_editors(image)
    return image


def _store_avatar_id(rig_name: str, avatar_id: str) -> None:
    rig = bpy.data.objects.get(rig_name)
    if rig is not None and avatar_id and rig.get(RIG_AVATAR_ID_PROPERTY) != avatar_id:
        rig[RIG_AVATAR_ID_PROPERTY] = avatar_id


def _fetch_render_record(config, record) -> tuple:
    frames = list(range(record.frame_start,
                        record.frame_start + record.frame_step * record.frame_count,
                        record.frame_step))
    return _fetch_render_job, config, record.job_id, frames, record.output_dir, record.file_prefix


def _deliver_render_record(record, paths: list[str]) -> None:
    frames = list(range(record.frame_start,
                        record.frame_start + record.frame_step * record.frame_count,
                        record.frame_step))
    scene = next((s for s in bpy.data.scenes if any(r == record for r in s.oneshot_avatar.jobs)),
                 bpy.context.scene)
    load_frame_sequence(scene, paths, frames, f"OneShot Avatar {record.rig_name}")
    record.result_path = paths[0]
    record.delivered = True
    background.report("INFO", f"Render '{record.name}': {count_text(len(paths), 'frame')} in "
                               f"{record.output_dir}")


# --------------------------------------------------------------------------------------------
# Operators


class ONESHOT_AVATAR_OT_render_avatar(background.BackgroundRequest, bpy.types.Operator):
    """Render the avatar for the scene's frame range through the scene camera (PNG frames with
    alpha in the scene's output folder)"""

    bl_idname = "oneshot_avatar.render_avatar"
    bl_label = "Render Avatar"
    status_text = "Rendering the avatar on the backend..."

    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE", "HIDDEN"},
                       description="For a backend render job: block until the frames are in "
                                   "(for scripts; always so in background mode, which has no "
                                   "event loop to deliver them later)")
    timeout: FloatProperty(name="Timeout", default=background.WAIT_TIMEOUT_S, min=1.0,
                           options={"SKIP_SAVE", "HIDDEN"})

    def prepare(self, context):
        scene = context.scene
        settings = scene.oneshot_avatar
        rig = find_render_rig(context)
        frames = list(range(scene.frame_start, scene.frame_end + 1, scene.frame_step))
        if not frames:
            raise ServiceError(f"the frame range {scene.frame_start}..{scene.frame_end} is "
                               "empty", field="frame_range", hint="set the scene's frame range")
        request = build_render_request(context, rig, frames)
        folder, prefix = output_location(scene, rig)
        os.makedirs(folder, exist_ok=True)
        avatar_id, package = avatar_on_rig(rig)
        config = preferences.connection_config(context)
        as_job = settings.render_mode == "JOB" or (settings.render_mode == "AUTO"
                                                   and len(frames) > DIRECT_FRAME_LIMIT)
        self._plan = {"rig": rig.name, "frames": frames, "folder": folder, "prefix": prefix,
                      "as_job": as_job}
        cache = upload_cache()
        if as_job:
            return lambda: _queue_render_job(config, request, avatar_id, package, rig.name,
                                             cache)
        return lambda: _render_now(config, request, avatar_id, package, rig.name, frames,
                                   folder, prefix, cache)

    def finish(self, context, result):
        plan = self._plan
        _store_avatar_id(plan["rig"], result["avatar_id"])
        frames = plan["frames"]
        if not plan["as_job"]:
            load_frame_sequence(context.scene, result["paths"], frames,
                                f"OneShot Avatar {plan['rig']}")
            self.report({"INFO"}, f"Rendered {count_text(len(frames), 'frame')} to "
                                  f"{plan['folder']}")
            return {"FINISHED"}
        job = result["job"]
        background.add_job_record(
            context.scene, job, name=f"{plan['rig']} frames {frames[0]}-{frames[-1]}",
            rig_name=plan["rig"], output_dir=plan["folder"], file_prefix=plan["prefix"],
            frame_start=frames[0], frame_step=context.scene.frame_step, frame_count=len(frames))
        background.job_monitor.ensure_running()
        self.report({"INFO"}, f"Render job {job.id} queued ({count_text(len(frames), 'frame')})")
        if not self.wait and not bpy.app.background:
            return {"FINISHED"}  # the job list follows it; without an event loop, wait here
        job_id = job.id

        def done() -> bool:
            record = background.find_job_record(job_id)
            return record is None or record.delivered or bool(record.message) or (
                record.state in ("failed", "cancelled"))

        background.job_monitor.wait(done, self.timeout)
        record = background.find_job_record(job_id)
        if record is None or not record.delivered:
            self.report({"ERROR"}, f"Render job {job_id}: "
                                   + (background.record_text(record) if record else "removed"))
            return {"CANCELLED"}
        return {"FINISHED"}


class ONESHOT_AVATAR_OT_preview_frame(background.BackgroundRequest, bpy.types.Operator):
    """Render the current frame on the backend into an image (shown in Image Editors)"""

    bl_idname = "oneshot_avatar.preview_frame"
    bl_label = "Preview Frame"
    status_text = "Rendering a preview frame on the backend..."

    def prepare(self, context):
        scene = context.scene
        rig = find_render_rig(context)
        request = build_render_request(context, rig, [scene.frame_current])
        avatar_id, package = avatar_on_rig(rig)
        config = preferences.connection_config(context)
        folder = Path(tempfile.gettempdir()) / "oneshot_avatar"
        folder.mkdir(parents=True, exist_ok=True)
        target = str(folder / f"preview_{bpy.path.clean_name(rig.name)}.png")
        self._rig_name = rig.name
        cache = upload_cache()
        return lambda: _preview_now(config, request, avatar_id, package, rig.name, target,
                                    cache)

    def finish(self, context, result):
        _store_avatar_id(self._rig_name, result["avatar_id"])
        image = bpy.data.images.get(PREVIEW_IMAGE_NAME)
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.load(result["path"], check_existing=False)
        image.name = PREVIEW_IMAGE_NAME
        image.alpha_mode = "STRAIGHT"
        image.pack()  # kept in the .blend; the temporary file may go
        context.scene.oneshot_avatar.preview_image = image
        _show_in_image_editors(image)
        self.report({"INFO"}, f"Preview of frame {context.scene.frame_current} in image "
                              f"'{image.name}'")
        return {"FINISHED"}


CLASSES = (
    ONESHOT_AVATAR_OT_render_avatar,
    ONESHOT_AVATAR_OT_preview_frame,
)


def register() -> None:
    background.job_monitor.fetchers["render"] = _fetch_render_record
    background.job_monitor.deliverers["render"] = _deliver_render_record


def unregister() -> None:
    background.job_monitor.fetchers.pop("render", None)
    background.job_monitor.deliverers.pop("render", None)
