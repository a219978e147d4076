"""Animator controls on an avatar rig: IK targets with pole targets for hands and feet, an FK/IK
switch per limb, and a COG control (optional, added at import or later with Add Controls).

The SMPL-X bones keep their identity rest orientation (their rotations *are* SMPL-X parameters),
so the IK is solved on a helper chain per limb that runs joint to joint (``MCH-ik_upper.L`` from
the shoulder to the elbow, ``MCH-ik_lower.L`` from the elbow to the wrist; legs hip-knee-ankle)
with an IK constraint towards ``ik_hand.L`` / ``ik_foot.L`` and a pole ``pole_arm.L`` /
``pole_leg.L``. Each helper carries a child with identity rest orientation at its joint
(``MCH-ik_upper.L.rot``), and the SMPL-X bone copies that child's world rotation (Copy
Rotation), so it turns by exactly the helper's rotation from rest; the hand/foot bone copies the
IK target's rotation. The copies' influence is driven by the switch ``ik_arm.L`` (0 = FK, 1 =
IK) on the ``root`` pose bone (a plain Average driver: no Python, so it works with scripts
disabled). ``COG`` sits at the pelvis between ``root`` and ``pelvis``: moving/turning it moves the
body while IK hands and feet stay where their targets are (the targets hang from ``root``).

Render Avatar and motion export read the evaluated pose, so what the controls do is what renders
and exports.
"""

from __future__ import annotations

import bpy
from mathutils import Vector

from .core.smplx_rig import ROOT_BONE
from .rigs import find_rig, rig_or_report

COG_BONE = "COG"
CONTROLS_PROPERTY = "oneshot_avatar_controls"  # set on the rig once controls exist
CONTROL_COLLECTION = "Controls"
HELPER_COLLECTION = "MCH"
SWITCH_DEFAULT = 0.0  # FK: imported motion plays as keyed until the animator switches
POLE_DISTANCE_M = 0.45

# limb -> (side suffix, upper joint, lower joint, end joint, bend direction of the middle joint
# in armature space (SMPL-X: +Z is the body's front), target name, pole name, switch name)
LIMBS = {
    f"{kind}.{tag}": (f"{side}_{upper}", f"{side}_{lower}", f"{side}_{end}", bend,
                      f"ik_{target}.{tag}", f"pole_{kind}.{tag}", f"ik_{kind}.{tag}")
    for side, tag in (("left", "L"), ("right", "R"))
    for kind, upper, lower, end, bend, target in (
        ("arm", "shoulder", "elbow", "wrist", (0.0, 0.0, -1.0), "hand"),
        ("leg", "hip", "knee", "ankle", (0.0, 0.0, 1.0), "foot"))
}


def has_controls(rig) -> bool:
    return bool(rig.get(CONTROLS_PROPERTY))


def _signed_angle(a: Vector, b: Vector, normal: Vector) -> float:
    angle = a.angle(b)
    return -angle if a.cross(b).dot(normal) < 0 else angle


def _pole_angle(base, tip: Vector, pole: Vector) -> float:
    """The IK constraint's pole angle that keeps the chain in its rest plane (Rigify's rule:
    the angle from the base bone's X axis to the pole direction, about the base bone)."""
    along = base.tail - base.head
    normal = (tip - base.head).cross(pole - base.head)
    projected = normal.cross(along)
    return _signed_angle(base.x_axis, projected, along)


def _new_bone(edit_bones, name: str, head: Vector, tail: Vector, parent, *, roll: float = 0.0):
    bone = edit_bones.new(name)
    bone.head, bone.tail, bone.roll = head, tail, roll
    bone.parent = parent
    bone.use_deform = False
    return bone


def _assign(armature, bone_name: str, collection: str) -> None:
    collections = armature.collections
    target = collections.get(collection) or collections.new(collection)
    target.assign(armature.bones[bone_name])
    if collection == HELPER_COLLECTION:
        target.is_visible = False


def drive_by_rig_property(struct, path: str, rig, data_path: str, name: str) -> None:
    """Drive ``struct.path`` with the rig's property at ``data_path`` (a single-property
    driver: the value as it is), e.g. a constraint's influence by an FK/IK switch, a face shape
    key by its expression unit on the root bone."""
    driver = struct.driver_add(path).driver
    driver.type = "AVERAGE"
    variable = driver.variables.new()
    variable.name = name
    variable.type = "SINGLE_PROP"
    variable.targets[0].id = rig
    variable.targets[0].data_path = data_path


def _drive_influence(constraint, rig, switch: str) -> None:
    drive_by_rig_property(constraint, "influence", rig, f'pose.bones["{ROOT_BONE}"]["{switch}"]',
                          "switch")


def add_controls(context, rig) -> list[str]:
    """Add the COG, IK targets, poles, helper chains, constraints and switches to ``rig`` (an
    avatar rig in its rest pose). Returns the names of the animator-facing controls."""
    if has_controls(rig):
        return []
    view_layer = context.view_layer
    previous_active, previous_mode = view_layer.objects.active, rig.mode
    view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    poles: dict[str, float] = {}
    try:
        bones = rig.data.edit_bones
        root, pelvis = bones[ROOT_BONE], bones["pelvis"]
        size = (pelvis.tail - pelvis.head).length
        cog = _new_bone(bones, COG_BONE, pelvis.head.copy(),
                        pelvis.head + Vector((0.0, 0.0, -1.5 * size)), root)
        pelvis.parent = cog
        for limb, (upper, lower, end, bend, target, pole, _switch) in LIMBS.items():
            a, b, c = (bones[n].head.copy() for n in (upper, lower, end))
            chain_parent = bones[upper].parent
            helper_upper = _new_bone(bones, f"MCH-ik_upper.{limb}", a, b, chain_parent)
            helper_lower = _new_bone(bones, f"MCH-ik_lower.{limb}", b, c, helper_upper)
            helper_lower.use_connect = True
            length = 0.3 * (b - a).length
            for helper, joint in ((helper_upper, a), (helper_lower, b)):
                _new_bone(bones, f"{helper.name}.rot", joint, joint + Vector((0.0, length, 0.0)),
                          helper)
            _new_bone(bones, target, c, c + Vector((0.0, length, 0.0)), root)
            # the pole: in front of the knee / behind the elbow, off the limb's line
            middle = (a + c) / 2
            offset = b - middle
            direction = offset.normalized() if offset.length > 0.02 * (c - a).length else \
                Vector(bend)
            pole_head = b + direction * POLE_DISTANCE_M
            _new_bone(bones, pole, pole_head, pole_head + Vector((0.0, 0.5 * length, 0.0)), root)
            poles[limb] = _pole_angle(helper_upper, c, pole_head)
    finally:
        bpy.ops.object.mode_set(mode="POSE")
    pose = rig.pose.bones
    root_pose = pose[ROOT_BONE]
    controls = [COG_BONE]
    for limb, (upper, lower, end, _bend, target, pole, switch) in LIMBS.items():
        ik = pose[f"MCH-ik_lower.{limb}"].constraints.new("IK")
        ik.name = "IK"
        ik.target, ik.subtarget = rig, target
        ik.pole_target, ik.pole_subtarget = rig, pole
        ik.pole_angle = poles[limb]
        ik.chain_count = 2
        for bone, source in ((upper, f"MCH-ik_upper.{limb}.rot"),
                             (lower, f"MCH-ik_lower.{limb}.rot"), (end, target)):
            copy = pose[bone].constraints.new("COPY_ROTATION")
            copy.name = "IK"
            copy.target, copy.subtarget = rig, source
            _drive_influence(copy, rig, switch)
        root_pose[switch] = SWITCH_DEFAULT
        ui = root_pose.id_properties_ui(switch)
        ui.update(min=0.0, max=1.0, soft_min=0.0, soft_max=1.0,
                  description=f"FK/IK switch of the {limb} limb: 0 FK (the bones' own keys), "
                              f"1 IK (follows {target}, elbow/knee towards {pole})")
        pose[target].rotation_mode = "QUATERNION"
        controls += [target, pole]
    for pose_bone in pose:
        name = pose_bone.name
        if name.startswith("MCH-"):
            _assign(rig.data, name, HELPER_COLLECTION)
        elif name in controls:
            _assign(rig.data, name, CONTROL_COLLECTION)
            pose_bone.custom_shape = None
    rig[CONTROLS_PROPERTY] = True
    bpy.ops.object.mode_set(mode=previous_mode if previous_mode in ("OBJECT", "POSE")
                            else "OBJECT")
    view_layer.objects.active = previous_active
    return controls


def snap_ik_to_fk(rig, limb: str) -> None:
    """Put ``limb``'s IK target on the FK end joint (same place and rotation), so switching to
    IK does not jump."""
    _upper, _lower, end, _bend, target, _pole, _switch = LIMBS[limb]
    pose = rig.pose.bones
    pose[target].matrix = pose[end].matrix.copy()


class ONESHOT_AVATAR_OT_add_controls(bpy.types.Operator):
    """Add animator controls to the avatar rig: IK targets and pole targets for hands and feet,
    an FK/IK switch per limb (on the root bone), and a COG control"""

    bl_idname = "oneshot_avatar.add_controls"
    bl_label = "Add IK Controls"
    bl_options = frozenset({"REGISTER", "UNDO"})

    @classmethod
    def poll(cls, context):
        rig = find_rig(context)
        return rig is not None and not has_controls(rig)

    def execute(self, context):
        rig = rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        controls = add_controls(context, rig)
        self.report({"INFO"}, f"Added {len(controls)} controls to {rig.name} (FK/IK switches "
                              "on the root bone: ik_arm.L, ik_arm.R, ik_leg.L, ik_leg.R)")
        return {"FINISHED"}


CLASSES = (ONESHOT_AVATAR_OT_add_controls,)
