"""Which avatar rig an operator acts on. A rig is an armature the importer tagged with
:data:`~.core.smplx_rig.RIG_TAG_PROPERTY`; operators find it from the selection or from a rig
chosen in the Avatar panel."""

from __future__ import annotations

import bpy

from .core.client import ServiceError
from .core.smplx_rig import RIG_TAG_PROPERTY


def is_avatar_rig(obj: bpy.types.Object | None) -> bool:
    """An armature made by the avatar importer (tagged by it)."""
    return obj is not None and obj.type == "ARMATURE" and RIG_TAG_PROPERTY in obj


def find_rig(context) -> bpy.types.Object | None:
    """The avatar rig to act on: the active object if it is one (or a splats object's parent),
    else None."""
    obj = context.active_object
    if obj is not None and obj.get(RIG_TAG_PROPERTY) is None and obj.parent is not None:
        obj = obj.parent
    if obj is not None and obj.type == "ARMATURE" and obj.get(RIG_TAG_PROPERTY):
        return obj
    return None


def rig_or_report(operator, context) -> bpy.types.Object | None:
    """:func:`find_rig`, or None after ``operator`` reported that no rig is selected."""
    rig = find_rig(context)
    if rig is None:
        operator.report({"ERROR"}, "Select an imported avatar rig (or its splats) first")
    return rig


class NeedsRig:
    """Mixin for operators on the selected avatar rig: they are available only when one is
    selected (``execute`` gets it with :func:`rig_or_report`)."""

    @classmethod
    def poll(cls, context):
        return find_rig(context) is not None


def chosen_rig(context, chosen, message: str, field: str, hint: str) -> bpy.types.Object:
    """The rig set in the panel, else the active object when it is an avatar rig; raises
    :class:`ServiceError` naming ``field`` when there is neither."""
    rig = chosen
    if rig is None and is_avatar_rig(context.active_object):
        rig = context.active_object
    if rig is None:
        raise ServiceError(message, field=field, hint=hint)
    return rig
