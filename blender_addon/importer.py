"""Import a ``.avatar`` package: an SMPL-X armature and a point cloud of the Gaussian centres
that follows it (vertex groups + Armature modifier), shown as coloured splats.

What is built (see ``core.smplx_rig`` for the conventions):

- ``<name>_rig``: armature object rotated +90 deg about X (armature space = SMPL-X world,
  Y-up) and lifted so the rest pose stands on z = 0 (its lowest Gaussian centre), bones ``root`` + the 55 SMPL-X joints with identity rest orientation, pose bones in
  QUATERNION mode; expression controls as custom float properties on the ``root`` pose bone.
- ``<name>_splats``: mesh of N vertices (one per Gaussian, rest pose, armature space), parented
  to the rig with an identity parent inverse, point attributes ``splat_color`` (FLOAT_COLOR
  RGBA, scene-linear),
  ``opacity`` (FLOAT), ``scale`` (FLOAT_VECTOR, metres), ``rot`` (FLOAT_COLOR holding the wxyz
  quaternion), vertex groups named after the joints (top-4 weights), an Armature modifier and
  the splat Geometry Nodes modifier.

Everything is built into new datablocks; when anything fails they are all removed again, so a
failed import leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import splats
from .controls import drive_by_rig_property
from .core import smplx_rig
from .core.colors import srgb_to_linear
from .core.package import AvatarPackage, PackageError, avatar_display_name, read_avatar_package
from .splats import SPLAT_COLOR_ATTRIBUTE

ARMATURE_MODIFIER_NAME = "Armature"


class _Created:
    """Datablocks made during one import, removed together when the import fails."""

    def __init__(self):
        self.items: list[tuple[object, bpy.types.ID]] = []

    def add(self, collection, datablock):
        self.items.append((collection, datablock))
        return datablock

    def remove_all(self) -> None:
        for collection, datablock in reversed(self.items):
            try:
                collection.remove(datablock)
            except ReferenceError:  # already freed together with its owner
                pass
        self.items.clear()


def _ensure_object_mode(context) -> None:
    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")


def _build_armature(context, created: _Created, package: AvatarPackage, name: str,
                    collection) -> bpy.types.Object:
    rig_name, _ = smplx_rig.rig_object_names(name)
    armature = created.add(bpy.data.armatures, bpy.data.armatures.new(rig_name))
    armature.display_type = "STICK"
    rig = created.add(bpy.data.objects, bpy.data.objects.new(rig_name, armature))
    collection.objects.link(rig)
    rig.rotation_mode = "XYZ"
    rig.rotation_euler = (1.5707963267948966, 0.0, 0.0)
    # Standing on Blender's ground: the rest pose's lowest Gaussian centre at z = 0.
    rig.location = (0.0, 0.0, -float(package.positions[:, 1].min()))
    rig.show_in_front = True
    lengths = smplx_rig.bone_lengths(package.rest_joints)
    view_layer = context.view_layer
    previous_active = view_layer.objects.active
    view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = armature.edit_bones
        root = bones.new(smplx_rig.ROOT_BONE)
        root.head = (0.0, 0.0, 0.0)
        root.tail = (0.0, 0.15, 0.0)
        root.roll = 0.0
        for j, joint in enumerate(smplx_rig.JOINT_NAMES):
            bone = bones.new(joint)
            head = [float(v) for v in package.rest_joints[j]]
            bone.head = head
            bone.tail = (head[0], head[1] + float(lengths[j]), head[2])
            bone.roll = 0.0
            bone.parent = bones[smplx_rig.bone_parent(joint)]
            bone.use_connect = False
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous_active
    for pose_bone in rig.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    _add_expression_controls(rig, package.expression_names)
    rig[smplx_rig.RIG_TAG_PROPERTY] = smplx_rig.RIG_TAG_VERSION
    rig[smplx_rig.RIG_EXPRESSIONS_PROPERTY] = list(package.expression_names)
    rig[smplx_rig.RIG_BODY_SHA_PROPERTY] = str(package.body_model["sha256"])
    rig[smplx_rig.RIG_BODY_KIND_PROPERTY] = str(package.body_model.get("kind", ""))
    rig[smplx_rig.RIG_SOURCE_PROPERTY] = package.source
    return rig


def _add_expression_controls(rig: bpy.types.Object, names: list[str]) -> None:
    """Keyframable float properties on the root pose bone, one per expression."""
    root = rig.pose.bones[smplx_rig.ROOT_BONE]
    pca = smplx_rig.expression_space(names) == "smplx-pca"
    for name in names:
        root[name] = 0.0
        ui = root.id_properties_ui(name)
        if pca:
            ui.update(min=-10.0, max=10.0, soft_min=-3.0, soft_max=3.0, default=0.0,
                      description=f"SMPL-X expression coefficient {name}")
        else:
            ui.update(min=0.0, max=1.0, soft_min=0.0, soft_max=1.0, default=0.0,
                      description=f"Face unit {name} (0 = neutral, 1 = full)")


def _build_points(created: _Created, package: AvatarPackage, object_name: str, collection,
                  rig: bpy.types.Object, index) -> bpy.types.Object:
    """A point object for the Gaussians ``index`` (all when None): rest positions in armature
    space, the splat attributes, vertex groups + Armature modifier to the rig, splat nodes."""
    import numpy as np

    chosen = np.arange(package.count) if index is None else np.asarray(index)
    mesh = created.add(bpy.data.meshes, bpy.data.meshes.new(object_name))
    mesh.vertices.add(len(chosen))
    mesh.vertices.foreach_set("co", package.positions[chosen].astype(np.float32).ravel())
    attributes = mesh.attributes
    # Scene-linear, as Blender's float colours are (the package's colours are sRGB), under a
    # name Cycles reads ("color" reads as black there: issue 17).
    linear = package.colors[chosen].astype(np.float64)
    linear[:, :3] = srgb_to_linear(linear[:, :3])
    attributes.new(SPLAT_COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT").data.foreach_set(
        "color", linear.astype(np.float32).ravel())
    attributes.new("opacity", "FLOAT", "POINT").data.foreach_set(
        "value", package.opacities[chosen].astype(np.float32))
    attributes.new("scale", "FLOAT_VECTOR", "POINT").data.foreach_set(
        "vector", package.scales[chosen].astype(np.float32).ravel())
    attributes.new("rot", "FLOAT_COLOR", "POINT").data.foreach_set(
        "color", package.rotations[chosen].astype(np.float32).ravel())
    mesh.update()
    obj = created.add(bpy.data.objects, bpy.data.objects.new(object_name, mesh))
    collection.objects.link(obj)
    obj.parent = rig
    obj.matrix_parent_inverse.identity()
    obj.lock_location = obj.lock_rotation = obj.lock_scale = (True, True, True)
    _add_vertex_groups(obj, package.joint_indices[chosen], package.joint_weights[chosen])
    modifier = obj.modifiers.new(ARMATURE_MODIFIER_NAME, "ARMATURE")
    modifier.object = rig
    modifier.use_vertex_groups = True
    modifier.use_bone_envelopes = False
    modifier.use_deform_preserve_volume = False
    splats.add_splat_modifier(obj)
    return obj


def _build_splats(created: _Created, package: AvatarPackage, name: str, collection,
                  rig: bpy.types.Object) -> bpy.types.Object:
    import numpy as np

    _, splats_name = smplx_rig.rig_object_names(name)
    obj = _build_points(created, package, splats_name, collection, rig, None)
    if package.expression_gaussians.size and package.expression_names:
        # Those are drawn by the face object; the mesh keeps them (scripts read every centre).
        hidden = np.zeros(package.count, bool)
        hidden[package.expression_gaussians] = True
        obj.data.attributes.new(splats.HIDE_ATTRIBUTE, "BOOLEAN", "POINT").data.foreach_set(
            "value", hidden)
    rig[smplx_rig.RIG_SPLATS_PROPERTY] = obj
    return obj


def _build_face(created: _Created, package: AvatarPackage, name: str, collection,
                rig: bpy.types.Object) -> bpy.types.Object | None:
    """The face's Gaussians (those the face units move) as their own object: shape keys per
    face unit (the package's offsets, applied before skinning as SMPL-X does), each driven by
    the unit's property on the root bone, so expressions show in the viewport. Memory is spent
    only on those points (M x (E + 1) positions in the shape keys)."""
    import numpy as np

    names = package.expression_names
    face = package.expression_gaussians
    if not face.size or not names:
        return None
    obj = _build_points(created, package, f"{name}_face", collection, rig, face)
    rest = package.positions[face].astype(np.float32)
    obj.shape_key_add(name="Basis", from_mix=False)
    root_path = f'pose.bones["{smplx_rig.ROOT_BONE}"]'
    for k, unit in enumerate(names):
        key = obj.shape_key_add(name=unit, from_mix=False)
        key.data.foreach_set("co", (rest + package.expression_offsets[k]).ravel())
        pca = smplx_rig.expression_space(names) == "smplx-pca"
        key.slider_min, key.slider_max = (-10.0, 10.0) if pca else (0.0, 1.0)
        drive_by_rig_property(key, "value", rig, f'{root_path}["{unit}"]', "unit")
    rig[smplx_rig.RIG_FACE_PROPERTY] = obj
    return obj


def _add_vertex_groups(obj: bpy.types.Object, indices, weights) -> None:
    """One vertex group per joint with the top-4 ``weights`` (N, 4) of joints ``indices``
    (zero weights skipped)."""
    groups = [obj.vertex_groups.new(name=joint) for joint in smplx_rig.JOINT_NAMES]
    for k in range(indices.shape[1]):
        column_groups = indices[:, k].tolist()
        column_weights = weights[:, k].tolist()
        for vertex, (group, weight) in enumerate(zip(column_groups, column_weights)):
            if weight > 0.0:
                groups[group].add((vertex,), weight, "ADD")


def build_avatar(context, package: AvatarPackage, name: str | None = None, *,
                 avatar_id: str = "") -> tuple[bpy.types.Object, bpy.types.Object]:
    """Build the rig and splats objects for ``package`` in the active collection; returns
    ``(rig, splats)``. On any failure everything made so far is removed and the error raised."""
    name = name or avatar_display_name(package)
    collection = context.collection or context.scene.collection
    created = _Created()
    _ensure_object_mode(context)
    try:
        rig = _build_armature(context, created, package, name, collection)
        rig[smplx_rig.RIG_AVATAR_ID_PROPERTY] = avatar_id
        splats_obj = _build_splats(created, package, name, collection, rig)
        _build_face(created, package, name, collection, rig)
    except BaseException:
        created.remove_all()
        raise
    for obj in context.view_layer.objects:
        obj.select_set(False)
    rig.select_set(True)
    context.view_layer.objects.active = rig
    return rig, splats_obj


def import_avatar_file(context, filepath: str | Path, *, name: str | None = None,
                       avatar_id: str = "") -> tuple[bpy.types.Object, bpy.types.Object]:
    """Read, validate and build a ``.avatar`` file (raises ``PackageError`` for a bad file)."""
    package = read_avatar_package(filepath)
    return build_avatar(context, package, name, avatar_id=avatar_id)


class ONESHOT_AVATAR_OT_import_avatar(bpy.types.Operator, ImportHelper):
    """Import a One-Shot Avatar package (.avatar): an SMPL-X rig and its splats"""

    bl_idname = "oneshot_avatar.import_avatar"
    bl_label = "Import One-Shot Avatar (.avatar)"
    bl_options = {"REGISTER", "UNDO", "PRESET"}  # noqa: RUF012 (Blender wants a set)

    filename_ext = ".avatar"
    filter_glob: StringProperty(default="*.avatar", options={"HIDDEN"})  # type: ignore[valid-type]
    avatar_name: StringProperty(  # type: ignore[valid-type]
        name="Name", description="Object name prefix (empty: the file's name)", default="")
    add_controls: BoolProperty(  # type: ignore[valid-type]
        name="IK Controls", default=False,
        description="Add animator controls: IK and pole targets for hands and feet, an FK/IK "
                    "switch per limb, a COG control")

    def execute(self, context):
        try:
            rig, splats_obj = import_avatar_file(context, self.filepath,
                                                 name=self.avatar_name or None)
        except PackageError as error:
            self.report({"ERROR"}, f"Cannot import the avatar: {error}")
            return {"CANCELLED"}
        if self.add_controls:
            from . import controls

            controls.add_controls(context, rig)
        self.report({"INFO"}, f"Imported {rig.name} with {len(splats_obj.data.vertices)} "
                              "Gaussians")
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(ONESHOT_AVATAR_OT_import_avatar.bl_idname,
                         text="One-Shot Avatar (.avatar)")


CLASSES = (ONESHOT_AVATAR_OT_import_avatar,)
# Added to File > Import by the add-on's register().
MENUS = (("TOPBAR_MT_file_import", menu_import),)
