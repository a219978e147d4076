"""Operators that talk to the backend (connection test, local backend, Align Pose and
Reconstruct), and how a reconstruction's result is brought into Blender. The background
machinery they run on (worker threads, job records, the job monitor and the job list's cancel /
remove / fetch-again operators) is in :mod:`.background`.

Scripts (and background mode, which has no event loop) run the same work synchronously through
the operators' ``execute``; ``wait=True`` also tracks the job until its result is in Blender.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty

from . import preferences
from .background import (
    WAIT_TIMEOUT_S,
    BackgroundRequest,
    add_job_record,
    find_job_record,
    job_monitor,
    record_text,
    report,
    results_folder,
    safe_file_name,
    tag_redraw,
)
from .core import camera as camera_export
from .core.client import ServiceError
from .core.jobs import JobSnapshot, needs_delivery, needs_polling
from .core.smplx_rig import RIG_AVATAR_ID_PROPERTY, RIG_TAG_PROPERTY
from .rig_pose import motion_params, read_rig_pose, rig_expression_names
from .rigs import chosen_rig

ALIGN_CAMERA_NAME = "OneShot Avatar Align Camera"
ALIGN_DISTANCE_M = 3.2  # the whole body fits a 50 mm lens from here


def _download_package(config: preferences.ConnectionConfig, job_id: str, target: str) -> str:
    path = config.client().download_job_result(job_id, target)
    if not zipfile.is_zipfile(path):
        path.unlink(missing_ok=True)
        raise ServiceError(f"the backend's result for job {job_id} is not an .avatar package "
                           "(not a zip file)", field="package",
                           hint="run the reconstruction again; see the backend's log")
    return str(path)


def import_avatar_package(path: str, avatar_id: str = "", name: str = "") -> bpy.types.Object:
    """Import a downloaded package with the importer's operator (objects named after
    ``name``, else the package); returns the new rig.
    Raises :class:`ServiceError` with the importer's message when it fails."""
    if not hasattr(bpy.types, bpy.ops.oneshot_avatar.import_avatar.idname()):
        raise ServiceError("the avatar importer is not registered",
                           hint="reinstall the One-Shot Avatar add-on")
    before = {obj.name for obj in bpy.data.objects if RIG_TAG_PROPERTY in obj}
    try:
        bpy.ops.oneshot_avatar.import_avatar(filepath=path, avatar_name=name)
    except RuntimeError as error:
        raise ServiceError(f"importing {path!r} failed: {str(error).strip()}",
                           field="package", hint="the file may be damaged; run the "
                           "reconstruction again") from error
    new = [obj for obj in bpy.data.objects if RIG_TAG_PROPERTY in obj and obj.name not in before]
    if not new:
        raise ServiceError(f"importing {path!r} made no avatar rig", field="package",
                           hint="see the console for the importer's messages")
    rig = new[0]
    if avatar_id and not rig.get(RIG_AVATAR_ID_PROPERTY):
        rig[RIG_AVATAR_ID_PROPERTY] = avatar_id
    return rig


# Reconstructions' results: the package is downloaded, then imported


def _fetch_avatar(config, record) -> tuple:
    target = results_folder() / f"{safe_file_name(record.name)}_{record.job_id}.avatar"
    record.result_path = str(target)
    return _download_package, config, record.job_id, str(target)

def _deliver_avatar(record, path: str) -> None:
    rig = import_avatar_package(path, record.avatar_id, safe_file_name(record.name))
    record.rig_name = rig.name
    record.delivered = True
    for scene in bpy.data.scenes:
        if scene.oneshot_avatar.render_rig is None:
            scene.oneshot_avatar.render_rig = rig
    report("INFO", f"Avatar '{record.name}' imported as {rig.name!r}")


# --------------------------------------------------------------------------------------------
# Operators


class ONESHOT_AVATAR_OT_test_connection(bpy.types.Operator):
    """Ask the backend for its version, device and body model"""

    bl_idname = "oneshot_avatar.test_connection"
    bl_label = "Test Connection"

    def execute(self, context):
        state = preferences.ConnectionState
        try:
            config = preferences.connection_config(context)
            if config.local_backend is not None and not config.local_backend.url:
                self.report({"WARNING"}, "The local backend is starting; test again in a few "
                                         "seconds")
                return {"CANCELLED"}
            health = config.client().health()
        except ServiceError as error:
            state.last_health, state.last_error = None, str(error)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        state.last_health, state.last_error = health, ""
        self.report({"INFO"}, "Connected: " + preferences.describe_health(health))
        return {"FINISHED"}


class ONESHOT_AVATAR_OT_start_local_backend(bpy.types.Operator):
    """Start `oneshot-avatar serve` on this machine (stopped when Blender quits)"""

    bl_idname = "oneshot_avatar.start_local_backend"
    bl_label = "Start Local Backend"

    def execute(self, context):
        try:
            backend = preferences.start_local_backend(preferences.get_preferences(context))
        except ServiceError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Starting the local backend: {' '.join(backend.argv)}")
        bpy.app.timers.register(_watch_local_backend, first_interval=0.5)
        return {"FINISHED"}


def _watch_local_backend() -> float | None:
    """Until the local backend listens (or exits): redraw, then say how it went."""
    backend = preferences.ConnectionState.local_backend
    tag_redraw()
    if backend is None:
        return None
    if backend.state == "starting":
        return 0.5
    if backend.state == "listening":
        report("INFO", f"Local backend listening at {backend.url}")
    elif backend.state == "exited":
        report("ERROR", str(backend.failure()))
    return None


class ONESHOT_AVATAR_OT_stop_local_backend(bpy.types.Operator):
    """Stop the local backend the add-on started"""

    bl_idname = "oneshot_avatar.stop_local_backend"
    bl_label = "Stop Local Backend"

    def execute(self, context):
        preferences.stop_local_backend()
        self.report({"INFO"}, "Local backend stopped")
        return {"FINISHED"}


# ---- Align pose (the fit's starting pose, sent by Reconstruct)
def _align_rig(context) -> bpy.types.Object:
    return chosen_rig(context, context.scene.oneshot_avatar.align_rig, "no rig to pose",
                       "align_rig", "import an avatar (its rig is posed to match the photo) and "
                                    "select it, or set Alignment Rig in the Avatar panel")


def aligned_pose_init(context) -> dict[str, Any]:
    """The ``init`` file's JSON for the fit: the alignment rig's current pose, with its
    orientation as seen through the alignment camera (or the scene camera)."""
    settings = context.scene.oneshot_avatar
    rig = _align_rig(context)
    depsgraph = context.evaluated_depsgraph_get()
    pose = read_rig_pose(rig, depsgraph)
    params = motion_params([pose], rig_expression_names(rig))
    init = {name: rows[0] for name, rows in params.items() if name != "transl"}
    camera = settings.align_camera or context.scene.camera
    if camera is not None and camera.type == "CAMERA":
        relative = camera_export.rig_relative_matrix(
            [list(row) for row in camera.evaluated_get(depsgraph).matrix_world],
            [list(row) for row in rig.evaluated_get(depsgraph).matrix_world])
        init["global_orient"] = camera_export.orient_for_front_view(
            init["global_orient"], relative).tolist()
    return init


class ONESHOT_AVATAR_OT_align_pose(bpy.types.Operator):
    """Put the photo behind a camera in front of the rig, so the rig can be posed to match it;
    Reconstruct then sends that pose as the fit's starting pose"""

    bl_idname = "oneshot_avatar.align_pose"
    bl_label = "Align Pose to Photo"
    bl_options = frozenset({"REGISTER", "UNDO"})

    def execute(self, context):
        from mathutils import Matrix, Vector

        scene = context.scene
        settings = scene.oneshot_avatar
        try:
            rig = _align_rig(context)
            if not settings.photo_path:
                raise ServiceError("no photo chosen", field="photo",
                                   hint="pick a photo in the Avatar panel")
            photo = bpy.path.abspath(settings.photo_path)
            if not os.path.isfile(photo):
                raise ServiceError(f"file not found: {photo!r}", field="photo",
                                   hint="pick an existing photo")
        except ServiceError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        try:
            image = bpy.data.images.load(photo, check_existing=True)
        except RuntimeError as error:
            self.report({"ERROR"}, f"'photo': Blender cannot open {photo!r} ({error}); use a "
                                   "JPEG or PNG")
            return {"CANCELLED"}
        camera = settings.align_camera
        if camera is None or camera.type != "CAMERA":
            camera = bpy.data.objects.new(ALIGN_CAMERA_NAME,
                                          bpy.data.cameras.new(ALIGN_CAMERA_NAME))
            scene.collection.objects.link(camera)
            settings.align_camera = camera
        bones = rig.data.bones
        centre_y = 0.5 * (bones["head"].head_local.y + bones["left_foot"].head_local.y)
        location, rotation, _scale = rig.matrix_world.decompose()
        scale = max(rig.matrix_world.to_scale())
        # In armature space the camera stands on +Z (in front of the body) looking at -Z, +Y up.
        in_rig = Matrix.Translation(Vector((0.0, centre_y * scale, ALIGN_DISTANCE_M * scale)))
        camera.matrix_world = Matrix.LocRotScale(location, rotation, None) @ in_rig
        camera.data.lens = 50.0
        camera.data.sensor_fit = "AUTO"
        camera.data.show_background_images = True
        backgrounds = camera.data.background_images
        entry = next((bg for bg in backgrounds if bg.image == image), None) or backgrounds.new()
        entry.image = image
        entry.display_depth = "BACK"
        entry.frame_method = "FIT"
        entry.alpha = 0.8
        width, height = image.size
        if width and height:
            scene.render.resolution_x, scene.render.resolution_y = width, height
        scene.camera = camera
        settings.align_rig = rig
        settings.use_aligned_pose = True
        for area in (context.screen.areas if context.screen else []):
            if area.type == "VIEW_3D":
                area.spaces.active.region_3d.view_perspective = "CAMERA"
        self.report({"INFO"}, f"Pose {rig.name!r} to match the photo through "
                              f"{camera.name!r} (render size set to the photo's {width}x{height});"
                              " Reconstruct sends that pose")
        return {"FINISHED"}


# ---- Reconstruct


def _existing_file(path: str, field: str) -> str:
    """``path`` resolved (``//`` relative to the .blend); a missing file names the field."""
    resolved = bpy.path.abspath(path)
    if not os.path.isfile(resolved):
        raise ServiceError(f"file not found: {resolved!r}", field=field,
                           hint="pick an existing file in the Avatar panel")
    return resolved


class ONESHOT_AVATAR_OT_reconstruct(BackgroundRequest, bpy.types.Operator):
    """Send the photo to the backend to make an avatar; it is imported when ready"""

    bl_idname = "oneshot_avatar.reconstruct"
    bl_label = "Reconstruct Avatar"
    status_text = "Sending the photo to the avatar backend..."

    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE", "HIDDEN"},
                       description="Block until the avatar is imported (for scripts)")
    steps: IntProperty(name="Steps", default=0, min=0, options={"SKIP_SAVE"},
                       description="Training steps (0: the preset's)")
    resolution: IntProperty(name="Resolution", default=0, min=0, options={"SKIP_SAVE"},
                            description="Working resolution in pixels (0: the preset's)")
    seed: IntProperty(name="Seed", default=-1, min=-1, options={"SKIP_SAVE"},
                      description="Random seed (-1: the backend's default)")
    timeout: FloatProperty(name="Timeout", default=WAIT_TIMEOUT_S, min=1.0,
                           options={"SKIP_SAVE", "HIDDEN"},
                           description="With Wait: give up after this many seconds")

    def prepare(self, context):
        settings = context.scene.oneshot_avatar
        if not settings.photo_path:
            raise ServiceError("no photo chosen", field="photo",
                               hint="pick a photo in the Avatar panel")
        photo = _existing_file(settings.photo_path, "photo")
        mask = _existing_file(settings.mask_path, "mask") if settings.mask_path else None
        keypoints = (_existing_file(settings.keypoints_path, "keypoints")
                     if settings.keypoints_path else None)
        init = None
        if settings.use_aligned_pose:
            init = json.dumps(aligned_pose_init(context)).encode("utf-8")
        name = settings.avatar_name or bpy.path.display_name_from_filepath(photo)
        config = preferences.connection_config(context)
        options = {"preset": settings.preset, "name": name, "steps": self.steps or None,
                   "resolution": self.resolution or None,
                   "seed": self.seed if self.seed >= 0 else None,
                   "fov": settings.field_of_view or None}

        def send() -> JobSnapshot:
            client = config.client()
            return JobSnapshot.from_api(client.create_reconstruction(
                photo, mask=mask, keypoints=keypoints, init=init, **options))

        return send

    def finish(self, context, job: JobSnapshot):
        record = add_job_record(context.scene, job)
        job_monitor.ensure_running()
        self.report({"INFO"}, f"Reconstruction '{record.name}' queued as {job.id}")
        if not self.wait:
            return {"FINISHED"}
        job_id = job.id

        def done() -> bool:
            current = find_job_record(job_id)
            return current is None or not (needs_polling(current.state) or (
                needs_delivery(current.state, current.delivered) and not current.message))

        job_monitor.wait(done, self.timeout)
        record = find_job_record(job_id)
        if record is None or not record.delivered:
            self.report({"ERROR"}, f"Reconstruction '{job.name or job_id}': "
                                   + (record_text(record) if record else "removed"))
            return {"CANCELLED"}
        return {"FINISHED"}


CLASSES = (
    ONESHOT_AVATAR_OT_test_connection,
    ONESHOT_AVATAR_OT_start_local_backend,
    ONESHOT_AVATAR_OT_stop_local_backend,
    ONESHOT_AVATAR_OT_align_pose,
    ONESHOT_AVATAR_OT_reconstruct,
)


def register() -> None:
    job_monitor.fetchers["reconstruct"] = _fetch_avatar
    job_monitor.deliverers["reconstruct"] = _deliver_avatar


def unregister() -> None:
    job_monitor.fetchers.pop("reconstruct", None)
    job_monitor.deliverers.pop("reconstruct", None)
    if bpy.app.timers.is_registered(_watch_local_backend):
        bpy.app.timers.unregister(_watch_local_backend)
