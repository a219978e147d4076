"""The "Avatar" tab of the 3D Viewport's sidebar and the status-bar progress. Panels only draw
and call operators."""

from __future__ import annotations

import os

import bpy
import bpy.utils.previews
from bpy.types import Panel, UIList

from . import background, preferences
from .core.client import ServiceError
from .core.jobs import needs_delivery, needs_polling, overall_fraction

CATEGORY = "Avatar"
KIND_ICONS = {"reconstruct": "OUTLINER_OB_ARMATURE", "render": "RENDER_ANIMATION"}
STATE_ICONS = {"succeeded": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL"}


class PhotoThumbnails:
    """Thumbnails of chosen photos (a ``bpy.utils.previews`` collection, made on register)."""

    collection = None

    @classmethod
    def icon_id(cls, path: str) -> int:
        resolved = bpy.path.abspath(path) if path else ""
        if cls.collection is None or not os.path.isfile(resolved):
            return 0
        key = f"{resolved}:{os.path.getmtime(resolved)}"
        if key not in cls.collection:
            cls.collection.load(key, resolved, "IMAGE")
        return cls.collection[key].icon_id


def _working(record) -> bool:
    return needs_polling(record.state) or (needs_delivery(record.state, record.delivered)
                                           and not record.message)


def _draw_progress(layout, record) -> None:
    text = f"{record.name}: {background.record_text(record)}"
    if _working(record):
        layout.progress(factor=overall_fraction(record.state, record.progress,
                                                delivered=record.delivered),
                        type="BAR", text=text)
    else:
        layout.label(text=text, icon=STATE_ICONS.get(record.state, "INFO")
                     if not record.message else "ERROR")


class ONESHOT_AVATAR_UL_jobs(UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname,
                  index=0, flt_flag=0):
        row = layout.row(align=True)
        row.label(text="", icon=KIND_ICONS.get(item.kind, "QUESTION"))
        _draw_progress(row, item)


class _AvatarSubPanel:
    """Where the Avatar sidebar's sub-panels live: under the main panel."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_parent_id = "ONESHOT_AVATAR_PT_main"


class ONESHOT_AVATAR_PT_main(Panel):
    bl_idname = "ONESHOT_AVATAR_PT_main"
    bl_label = "One-Shot Avatar"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY

    def draw(self, context):
        layout = self.layout
        try:
            prefs = preferences.get_preferences(context)
        except ServiceError:
            layout.label(text="Enable the add-on to set its backend", icon="ERROR")
            return
        row = layout.row(align=True)
        if prefs.backend_mode == "LOCAL":
            backend = preferences.ConnectionState.local_backend
            row.label(text=f"Local backend: {backend.state if backend else 'stopped'}",
                      icon="DESKTOP")
        else:
            row.label(text=prefs.backend_url, icon="URL")
        row.operator("oneshot_avatar.test_connection", text="", icon="FILE_REFRESH")
        health = preferences.ConnectionState.last_health
        if health is not None:
            layout.label(text=preferences.describe_health(health))
        elif preferences.ConnectionState.last_error:
            layout.label(text=preferences.ConnectionState.last_error, icon="ERROR")
        if background.job_monitor.connection_problem:
            layout.label(text=background.job_monitor.connection_problem, icon="ERROR")
        layout.operator("oneshot_avatar.import_avatar", icon="IMPORT")


class ONESHOT_AVATAR_PT_reconstruct(_AvatarSubPanel, Panel):
    bl_idname = "ONESHOT_AVATAR_PT_reconstruct"
    bl_label = "Reconstruct from Photo"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.oneshot_avatar
        layout.prop(settings, "photo_path")
        icon_id = PhotoThumbnails.icon_id(settings.photo_path)
        if icon_id:
            layout.template_icon(icon_value=icon_id, scale=6.0)
        layout.prop(settings, "mask_path")
        layout.prop(settings, "keypoints_path")
        layout.prop(settings, "preset")
        layout.prop(settings, "field_of_view")
        layout.prop(settings, "avatar_name")
        box = layout.box()
        box.label(text="Initial Pose (optional)")
        box.prop(settings, "align_rig")
        box.operator("oneshot_avatar.align_pose", icon="CAMERA_DATA")
        box.prop(settings, "use_aligned_pose")
        layout.operator("oneshot_avatar.reconstruct", icon="USER")


class ONESHOT_AVATAR_PT_jobs(_AvatarSubPanel, Panel):
    bl_idname = "ONESHOT_AVATAR_PT_jobs"
    bl_label = "Jobs"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.oneshot_avatar
        if not settings.jobs:
            layout.label(text="No jobs yet")
            return
        layout.template_list("ONESHOT_AVATAR_UL_jobs", "", settings, "jobs", settings,
                             "active_job_index", rows=3)
        if not 0 <= settings.active_job_index < len(settings.jobs):
            return
        record = settings.jobs[settings.active_job_index]
        column = layout.column(align=True)
        column.label(text=f"{record.job_id} ({record.kind})")
        if record.message:
            column.label(text=record.message, icon="ERROR")
        row = layout.row(align=True)
        if needs_polling(record.state):
            row.operator("oneshot_avatar.cancel_job", icon="CANCEL").job_id = record.job_id
        elif record.state == "succeeded" and (record.message or record.delivered):
            row.operator("oneshot_avatar.retry_job_result",
                         icon="FILE_REFRESH").job_id = record.job_id
        if not needs_polling(record.state):
            row.operator("oneshot_avatar.remove_job", icon="X").job_id = record.job_id


class ONESHOT_AVATAR_PT_animate(_AvatarSubPanel, Panel):
    bl_idname = "ONESHOT_AVATAR_PT_animate"
    bl_label = "Animate"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.oneshot_avatar
        row = layout.row(align=True)
        row.prop(settings, "builtin_motion", text="")
        operator = row.operator("oneshot_avatar.import_builtin_motion", text="Apply",
                                icon="ARMATURE_DATA")
        operator.motion_name = settings.builtin_motion
        column = layout.column(align=True)
        column.operator("oneshot_avatar.import_motion", icon="IMPORT")
        column.operator("oneshot_avatar.import_bvh", icon="IMPORT")
        column.operator("oneshot_avatar.add_speech", icon="SPEAKER")
        column.operator("oneshot_avatar.export_motion", icon="EXPORT")
        layout.operator("oneshot_avatar.add_controls", icon="CON_KINEMATIC")


class ONESHOT_AVATAR_PT_render(_AvatarSubPanel, Panel):
    bl_idname = "ONESHOT_AVATAR_PT_render"
    bl_label = "Render Avatar"

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        settings = scene.oneshot_avatar
        layout.prop(settings, "render_rig")
        layout.prop(scene, "camera")
        row = layout.row(align=True)
        row.prop(scene, "frame_start", text="Start")
        row.prop(scene, "frame_end", text="End")
        layout.prop(scene.render, "filepath", text="Output")
        layout.prop(settings, "render_mode")
        row = layout.row(align=True)
        row.prop(settings, "use_transparent")
        if not settings.use_transparent:
            row.prop(settings, "background", text="")
        row = layout.row(align=True)
        row.operator("oneshot_avatar.preview_frame", icon="IMAGE_DATA")
        row.operator("oneshot_avatar.render_avatar", icon="RENDER_ANIMATION")
        layout.operator("oneshot_avatar.setup_compositing", icon="NODE_COMPOSITING")
        if settings.preview_image is not None:
            layout.template_ID_preview(settings, "preview_image", hide_buttons=True)


def draw_status_bar(self, context) -> None:
    """Progress of this scene's working jobs in the status bar."""
    settings = getattr(context.scene, "oneshot_avatar", None)
    if settings is None:
        return
    for record in settings.jobs:
        if _working(record):
            _draw_progress(self.layout, record)


CLASSES = (
    ONESHOT_AVATAR_UL_jobs,
    ONESHOT_AVATAR_PT_main,
    ONESHOT_AVATAR_PT_reconstruct,
    ONESHOT_AVATAR_PT_jobs,
    ONESHOT_AVATAR_PT_animate,
    ONESHOT_AVATAR_PT_render,
)


def register() -> None:
    PhotoThumbnails.collection = bpy.utils.previews.new()
    bpy.types.STATUSBAR_HT_header.append(draw_status_bar)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
    if PhotoThumbnails.collection is not None:
        bpy.utils.previews.remove(PhotoThumbnails.collection)
        PhotoThumbnails.collection = None
