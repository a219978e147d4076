"""Motion on the avatar rig: import SMPL-X motion files and the service's built-in clips as
keyframes (resampled to the scene's frame rate), import BVH through Blender's importer and
retarget it by bone names (CMU, Mixamo), and export the rig's animation as an
``oneshot-motion/1`` ``.npz`` (read by the backend's ``load_motion``).

Channels written/read on the rig (see ``core.smplx_rig``): ``pose.bones["<joint>"].
rotation_quaternion`` (the SMPL-X axis-angle of each of the 55 joints), ``pose.bones["root"].
location`` (``transl``), and ``pose.bones["root"]["<expression>"]``. On export a rotation of the
``root`` bone is folded into ``global_orient``/``transl`` exactly; locations of other bones and
the rig object's own transform are not part of SMPL-X and are ignored.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper
from mathutils import Euler, Matrix, Quaternion, Vector

from .core import pose as posemath
from .core import retarget
from .core.motion import (
    Motion,
    MotionError,
    expressions_for_rig,
    motion_from_json,
    read_motion,
    resample,
    write_motion_npz,
)
from .core.placement import face_and_centre
from .core.smplx_rig import (
    JOINT_NAMES,
    RIG_SPLATS_PROPERTY,
    ROOT_BONE,
    expression_space,
)
from .rig_pose import at_frames, full_pose, read_rig_pose, rig_expression_names
from .rigs import NeedsRig, rig_or_report


# ---------------------------------------------------------------------------- helpers
def scene_fps(scene) -> float:
    """The scene's frame rate in frames per second (``fps / fps_base``)."""
    return scene.render.fps / scene.render.fps_base


def _bone_path(bone: str, prop: str) -> str:
    return f'pose.bones["{bone}"].{prop}'


def _prop_path(bone: str, name: str) -> str:
    return f'pose.bones["{bone}"]["{name}"]'


def _ensure_action(obj) -> bpy.types.Action:
    animation = obj.animation_data or obj.animation_data_create()
    if animation.action is None:
        animation.action = bpy.data.actions.new(f"{obj.name}Action")
    return animation.action


def _ensure_fcurve(obj, action, data_path: str, index: int, group: str):
    if hasattr(action, "fcurve_ensure_for_datablock"):  # Blender 4.4+ (slotted actions)
        return action.fcurve_ensure_for_datablock(obj, data_path, index=index, group_name=group)
    fcurve = action.fcurves.find(data_path, index=index)
    return fcurve or action.fcurves.new(data_path, index=index, action_group=group)


def _fcurves(obj) -> dict[tuple[str, int], bpy.types.FCurve]:
    """The F-curves animating ``obj`` (its action's assigned slot), by (data path, index)."""
    animation = obj.animation_data
    if animation is None or animation.action is None:
        return {}
    try:
        from bpy_extras.anim_utils import animdata_get_channelbag_for_assigned_slot
    except ImportError:  # Blender < 4.4: legacy actions
        curves = animation.action.fcurves
    else:
        channelbag = animdata_get_channelbag_for_assigned_slot(animation)
        curves = channelbag.fcurves if channelbag is not None else []
    return {(fc.data_path, fc.array_index): fc for fc in curves}


def _write_keys(fcurve, frames: np.ndarray, values: np.ndarray) -> None:
    """Key ``values`` at ``frames`` (replacing keys inside that frame range, keeping others)."""
    points = fcurve.keyframe_points
    existing = np.empty(2 * len(points), np.float32)
    points.foreach_get("co", existing)
    existing = existing.reshape(-1, 2)
    outside = (existing[:, 0] < frames[0] - 0.5) | (existing[:, 0] > frames[-1] + 0.5)
    new = np.stack([frames, values], -1).astype(np.float32)
    merged = np.concatenate([existing[outside], new])
    merged = merged[np.argsort(merged[:, 0], kind="stable")]
    points.clear()
    points.add(len(merged))
    points.foreach_set("co", merged.ravel())
    fcurve.update()


# ---------------------------------------------------------------------------- import
def _armature_direction(rig, world_direction) -> np.ndarray:
    """A world direction in the rig's armature space (the rig's rotation and scale undone)."""
    matrix = np.array(rig.matrix_world.to_3x3(), dtype=np.float64)
    return np.linalg.solve(matrix, np.asarray(world_direction, dtype=np.float64))


def _lowest_world_z(context, rig) -> float | None:
    """The lowest point of the rig's splats (its Gaussian centres, posed) in world z, or None
    when the rig has no splats object."""
    splats = rig.get(RIG_SPLATS_PROPERTY)
    if splats is None or getattr(splats, "type", "") != "MESH":
        return None
    depsgraph = context.evaluated_depsgraph_get()
    mesh = splats.evaluated_get(depsgraph).data
    local = np.empty(3 * len(mesh.vertices), np.float32)
    mesh.vertices.foreach_get("co", local)
    matrix = np.array(splats.evaluated_get(depsgraph).matrix_world, dtype=np.float64)
    heights = local.reshape(-1, 3).astype(np.float64) @ matrix[2, :3] + matrix[2, 3]
    return float(heights.min()) if heights.size else None


def _key_root_location(rig, action, frames: np.ndarray, transl: np.ndarray) -> None:
    for i in range(3):
        fcurve = _ensure_fcurve(rig, action, _bone_path(ROOT_BONE, "location"), i, ROOT_BONE)
        _write_keys(fcurve, frames, transl[:, i])


def apply_motion(context, rig, motion: Motion, *, start_frame: int | None = None,
                 match_scene_fps: bool = True, set_frame_range: bool = True,
                 keep_placement: bool = False) -> Motion:
    """Keyframe ``motion`` on ``rig`` from ``start_frame`` (default: the scene's start), one key
    per frame on every joint rotation, the root location and (when the expression spaces fit)
    the expression controls. Returns the motion as keyed (resampled to the scene's fps when
    ``match_scene_fps``).

    Unless ``keep_placement``, the clip starts where the avatar is: at the first frame the body
    faces the scene's front (world -Y) with its pelvis above the rest pelvis, and its lowest
    point (posed Gaussian centres) on the floor, world z = 0 (the whole clip moved rigidly:
    one turn about the vertical and one shift, see ``core/placement.py``)."""
    scene = context.scene
    if match_scene_fps and abs(motion.fps - scene_fps(scene)) > 1e-6:
        motion = resample(motion, scene_fps(scene))
    if not keep_placement:
        motion = face_and_centre(motion, tuple(rig.data.bones[JOINT_NAMES[0]].head_local),
                                 forward=_armature_direction(rig, (0.0, -1.0, 0.0)))
    start = scene.frame_start if start_frame is None else int(start_frame)
    frames = start + np.arange(motion.num_frames, dtype=np.float64)
    quaternions = posemath.make_continuous(posemath.axis_angle_to_quaternion(motion.full_pose))
    action = _ensure_action(rig)
    for j, joint in enumerate(JOINT_NAMES):
        rig.pose.bones[joint].rotation_mode = "QUATERNION"
        path = _bone_path(joint, "rotation_quaternion")
        for i in range(4):
            _write_keys(_ensure_fcurve(rig, action, path, i, joint), frames, quaternions[:, j, i])
    _key_root_location(rig, action, frames, motion.transl)
    if not keep_placement:
        current = scene.frame_current
        scene.frame_set(start)
        lowest = _lowest_world_z(context, rig)
        if lowest is not None:
            motion.transl = motion.transl + _armature_direction(rig, (0.0, 0.0, -lowest))
            _key_root_location(rig, action, frames, motion.transl)
        scene.frame_set(current)
    names = rig_expression_names(rig)
    expression = expressions_for_rig(motion, names)
    if expression is not None:
        for k, name in enumerate(names):
            fcurve = _ensure_fcurve(rig, action, _prop_path(ROOT_BONE, name), 0, "expressions")
            _write_keys(fcurve, frames, expression[:, k])
    if set_frame_range:
        scene.frame_start = start
        scene.frame_end = start + motion.num_frames - 1
    scene.frame_set(scene.frame_current)
    return motion


def import_motion_file(context, rig, filepath: str | Path, *, up_axis: str = "AUTO",
                       **options) -> Motion:
    """Read a motion file (.npz AMASS/ours, .smpl, TalkSHOW .npy) and keyframe it on ``rig``;
    ``up_axis`` "AUTO" decides the file's up axis from its data (see ``core/up_axis.py``)."""
    return apply_motion(context, rig, read_motion(filepath, up=up_axis), **options)


def _service_client(context):
    """The HTTP client configured in the add-on's preferences (helper UI's module)."""
    from . import preferences

    return preferences.service_client(context)


def import_builtin_motion(context, rig, name: str, **options) -> Motion:
    """Fetch the service's built-in clip ``name`` at the scene's fps and keyframe it."""
    data = _service_client(context).get_motion(name, fps=scene_fps(context.scene))
    return apply_motion(context, rig, motion_from_json(data), **options)


# ---------------------------------------------------------------------------- export
def _channel_values(fcurves, data_path: str, count: int, frames: np.ndarray,
                    static) -> np.ndarray:
    """``(T, count)`` values of an array property: F-curve values where animated, else the
    property's current value."""
    out = np.empty((len(frames), count))
    for i in range(count):
        fcurve = fcurves.get((data_path, i))
        if fcurve is None:
            out[:, i] = float(static[i])
        else:
            out[:, i] = [fcurve.evaluate(float(f)) for f in frames]
    return out


def _bone_quaternions(fcurves, pose_bone, frames: np.ndarray) -> np.ndarray:
    """``(T, 4)`` wxyz rotation of a pose bone per frame, whatever its rotation mode."""
    name = pose_bone.name
    mode = pose_bone.rotation_mode
    if mode == "QUATERNION":
        values = _channel_values(fcurves, _bone_path(name, "rotation_quaternion"), 4, frames,
                                 pose_bone.rotation_quaternion)
        return values / np.maximum(np.linalg.norm(values, axis=-1, keepdims=True), 1e-12)
    if mode == "AXIS_ANGLE":
        values = _channel_values(fcurves, _bone_path(name, "rotation_axis_angle"), 4, frames,
                                 pose_bone.rotation_axis_angle)
        return np.array([list(Quaternion(Vector(v[1:]).normalized(), v[0])) for v in values])
    values = _channel_values(fcurves, _bone_path(name, "rotation_euler"), 3, frames,
                             pose_bone.rotation_euler)
    return np.array([list(Euler(v, mode).to_quaternion()) for v in values])


def read_rig_motion(context, rig, frame_start: int, frame_end: int) -> Motion:
    """The rig's *evaluated* pose for frames ``frame_start..frame_end`` (inclusive) at the
    scene's fps, as SMPL-X parameters: what constraints, IK controls, the COG control and
    drivers make of the keys is what is exported, exactly as Render Avatar sends it (a rotated
    or moved ``root`` bone is folded into ``global_orient``/``transl``)."""
    if frame_end < frame_start:
        raise MotionError(f"frame range {frame_start}..{frame_end} is empty", field="frame_end")
    poses = at_frames(context, range(frame_start, frame_end + 1),
                      lambda depsgraph: read_rig_pose(rig, depsgraph))
    names = rig_expression_names(rig)
    expression = np.array([pose["expression"] for pose in poses], dtype=np.float64)
    return Motion(fps=scene_fps(context.scene), full_pose=full_pose(poses),
                  transl=np.array([pose["transl"] for pose in poses], dtype=np.float64),
                  expression=expression.reshape(len(poses), len(names)),
                  expression_space=expression_space(names),
                  name=rig.name.removesuffix("_rig"), source="blender").validate()


def export_motion(context, rig, filepath: str | Path, frame_start: int | None = None,
                  frame_end: int | None = None) -> Path:
    """Write the rig's animation (default: the scene's frame range) as oneshot-motion/1."""
    scene = context.scene
    motion = read_rig_motion(context, rig, scene.frame_start if frame_start is None else
                             frame_start, scene.frame_end if frame_end is None else frame_end)
    return write_motion_npz(motion, filepath)


# ---------------------------------------------------------------------------- BVH
def bvh_frame_rate(filepath: str | Path) -> float:
    """Frames per second from a BVH file's ``Frame Time:`` line."""
    with open(filepath, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip().lower().startswith("frame time:"):
                try:
                    seconds = float(line.split(":", 1)[1])
                except ValueError:
                    break
                if seconds > 0:
                    return 1.0 / seconds
                break
    raise MotionError("has no valid 'Frame Time:' line", path=filepath, field="Frame Time")


def _sample_armature(source, bone_names: list[str], frames: np.ndarray,
                     to_rig: Matrix) -> tuple[dict, dict, dict, dict]:
    """Rest and posed rotations/positions of ``bone_names`` of armature object ``source`` in
    the rig's armature space, from its F-curves (no scene evaluation): returns
    ``(rest_rot {bone: (3,3)}, pose_rot {bone: (T,3,3)}, rest_pos {bone: (3,)},
    pose_pos {bone: (T,3)})``."""
    fcurves = _fcurves(source)
    bones = source.data.bones
    order = sorted(bones, key=lambda b: len(b.parent_recursive))
    to_world = to_rig @ source.matrix_world
    rest_local = {b.name: b.matrix_local.copy() for b in bones}
    basis_values = {}
    for bone in order:
        pose_bone = source.pose.bones[bone.name]
        location = _channel_values(fcurves, _bone_path(bone.name, "location"), 3, frames,
                                   pose_bone.location)
        scale = _channel_values(fcurves, _bone_path(bone.name, "scale"), 3, frames,
                                pose_bone.scale)
        basis_values[bone.name] = (location, _bone_quaternions(fcurves, pose_bone, frames), scale)
    wanted = set(bone_names)
    pose_rot = {b: np.zeros((len(frames), 3, 3)) for b in wanted}
    pose_pos = {b: np.zeros((len(frames), 3)) for b in wanted}
    for t in range(len(frames)):
        posed: dict[str, Matrix] = {}
        for bone in order:
            location, rotation, scale = basis_values[bone.name]
            basis = Matrix.LocRotScale(Vector(location[t]), Quaternion(rotation[t]),
                                       Vector(scale[t]))
            if bone.parent is None:
                posed[bone.name] = rest_local[bone.name] @ basis
            else:
                parent = bone.parent.name
                posed[bone.name] = (posed[parent] @ rest_local[parent].inverted()
                                    @ rest_local[bone.name] @ basis)
            if bone.name in wanted:
                world = to_world @ posed[bone.name]
                pose_rot[bone.name][t] = np.array(world.to_3x3().normalized())
                pose_pos[bone.name][t] = np.array(world.translation)
    rest_rot, rest_pos = {}, {}
    for name in wanted:
        world = to_world @ rest_local[name]
        rest_rot[name] = np.array(world.to_3x3().normalized())
        rest_pos[name] = np.array(world.translation)
    return rest_rot, pose_rot, rest_pos, pose_pos


def retarget_armature(context, rig, source, *, fps: float, bone_map: str = "AUTO",
                      name: str = "bvh") -> tuple[str, Motion]:
    """SMPL-X motion of the rig from armature object ``source``'s animation (its action's
    frame range), by bone names. Returns ``(bone map name, motion)``."""
    bone_names = [b.name for b in source.data.bones]
    if bone_map == "AUTO":
        map_name, mapping = retarget.detect_bone_map(bone_names)
    else:
        map_name, mapping = bone_map, retarget.resolve_bone_map(bone_map, bone_names)
        missing = [j for j in retarget.REQUIRED_JOINTS if j not in mapping]
        if missing:
            raise retarget.RetargetError(f"the {bone_map} map finds no bone for "
                                         f"{', '.join(missing)}", field="bone_map")
    action = source.animation_data.action if source.animation_data else None
    if action is None:
        raise retarget.RetargetError("the source armature has no animation", field="action")
    first, last = (round(v) for v in action.frame_range)
    frames = np.arange(first, last + 1, dtype=np.float64)
    to_rig = rig.matrix_world.inverted()
    rest_rot, pose_rot, rest_pos, pose_pos = _sample_armature(
        source, list(mapping.values()), frames, to_rig)
    alignment = retarget.facing_alignment(rest_pos[mapping["left_hip"]],
                                          rest_pos[mapping["right_hip"]])
    rig_rest = np.array([rig.data.bones[j].head_local for j in JOINT_NAMES], dtype=np.float64)
    corrections = retarget.rest_corrections(rest_pos, rig_rest, mapping, alignment)
    local = retarget.retarget_rotations(rest_rot, pose_rot, mapping, alignment, corrections)
    source_leg = retarget.leg_length(rest_pos, mapping["left_hip"], mapping["left_knee"],
                                     mapping.get("left_ankle", mapping["left_knee"]))
    scale = retarget.smplx_leg_length(rig_rest) / max(source_leg, 1e-9)
    hips = mapping["pelvis"]
    transl = retarget.root_translation(rest_pos[hips], pose_pos[hips], scale, alignment)
    motion = Motion(fps=fps, full_pose=posemath.matrix_to_axis_angle(local), transl=transl,
                    expression=np.zeros((len(frames), 0)), name=name, source=name)
    return map_name, motion.validate()


def import_bvh(context, rig, filepath: str | Path, *, bone_map: str = "AUTO",
               keep_source: bool = False, **options) -> tuple[str, Motion]:
    """Import a BVH with Blender's importer, retarget it onto ``rig`` and keyframe it. The
    imported source armature is removed afterwards unless ``keep_source``."""
    filepath = Path(filepath)
    fps = bvh_frame_rate(filepath)
    before = set(bpy.data.objects)
    actions_before = set(bpy.data.actions)
    try:
        result = bpy.ops.import_anim.bvh(
            filepath=str(filepath), target="ARMATURE", global_scale=1.0, frame_start=1,
            use_fps_scale=False, update_scene_fps=False, update_scene_duration=False,
            use_cyclic=False, rotate_mode="NATIVE", axis_forward="-Z", axis_up="Y")
    except RuntimeError as error:  # the importer's own exceptions arrive as RuntimeError
        result = {"CANCELLED"}
        failure = str(error).strip().splitlines()[-1]
    else:
        failure = ""
    created = [obj for obj in bpy.data.objects if obj not in before]
    try:
        if "FINISHED" not in result or not created:
            raise MotionError(f"Blender's BVH importer could not read this file {failure}"
                              .strip(), path=filepath)
        source = next((obj for obj in created if obj.type == "ARMATURE"), None)
        if source is None:
            raise MotionError("the BVH importer made no armature", path=filepath)
        map_name, motion = retarget_armature(context, rig, source, fps=fps, bone_map=bone_map,
                                             name=filepath.stem)
        motion.source = str(filepath)
        keyed = apply_motion(context, rig, motion, **options)
    finally:
        if not keep_source:
            for obj in created:
                data = obj.data
                bpy.data.objects.remove(obj)
                if isinstance(data, bpy.types.Armature) and data.users == 0:
                    bpy.data.armatures.remove(data)
            for action in set(bpy.data.actions) - actions_before:
                if action.users == 0:
                    bpy.data.actions.remove(action)
        context.view_layer.objects.active = rig
    return map_name, keyed


# ---------------------------------------------------------------------------- operators
class _MotionOptions:
    use_current_frame: BoolProperty(  # type: ignore[valid-type]
        name="Start at Current Frame",
        description="Key from the current frame instead of the scene's start frame",
        default=False)
    set_frame_range: BoolProperty(  # type: ignore[valid-type]
        name="Set Frame Range", description="Set the scene's frame range to the motion",
        default=True)

    keep_placement: BoolProperty(  # type: ignore[valid-type]
        name="Keep File Placement",
        description="Key the motion where the file puts it; otherwise it starts on the floor "
                    "at the avatar, facing the scene's front (-Y)",
        default=False)

    def motion_options(self, context) -> dict:
        scene = context.scene
        return {"start_frame": scene.frame_current if self.use_current_frame else
                scene.frame_start, "set_frame_range": self.set_frame_range,
                "keep_placement": self.keep_placement}


class ONESHOT_AVATAR_OT_import_motion(NeedsRig, bpy.types.Operator, ImportHelper, _MotionOptions):
    """Key an SMPL-X motion file (AMASS .npz, One-Shot Avatar .npz, Meshcapade .smpl, TalkSHOW
    .npy) on the active avatar rig, upright and resampled to the scene's frame rate"""

    bl_idname = "oneshot_avatar.import_motion"
    bl_label = "Import SMPL-X Motion"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a set)

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz;*.smpl;*.npy", options={"HIDDEN"})  # type: ignore[valid-type]
    up_axis: EnumProperty(  # type: ignore[valid-type]
        name="Up Axis", default="AUTO",
        description="Which way is up in the file (files rarely say)",
        items=(("AUTO", "Detect", ("Decide from the data: the pelvis's up direction, then "
                                   "the root's travel, then the format's convention")),
               ("Y", "Y-up", "The file is Y-up (SMPL-X's own world, .smpl files)"),
               ("Z", "Z-up", "The file is Z-up (AMASS captures)"),
               ("CAMERA", "Camera (Y-down)", ("Camera-style frames: y down, z forward "
                                              "(TalkSHOW, video fits)"))))

    def execute(self, context):
        rig = rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        try:
            motion = import_motion_file(context, rig, self.filepath, up_axis=self.up_axis,
                                        **self.motion_options(context))
        except MotionError as error:
            self.report({"ERROR"}, f"Cannot import the motion: {error}")
            return {"CANCELLED"}
        up = "" if motion.up_axis is None else f"; up axis {motion.up_axis.summary()}"
        self.report({"INFO"}, f"Keyed {motion.num_frames} frames of {motion.name}{up}")
        return {"FINISHED"}


class ONESHOT_AVATAR_OT_import_builtin_motion(NeedsRig, bpy.types.Operator, _MotionOptions):
    """Key one of the service's built-in motions on the active avatar rig"""

    bl_idname = "oneshot_avatar.import_builtin_motion"
    bl_label = "Import Built-in Motion"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a set)

    motion_name: StringProperty(name="Motion", default="idle")  # type: ignore[valid-type]

    def execute(self, context):
        from .core.client import ServiceError

        rig = rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        try:
            motion = import_builtin_motion(context, rig, self.motion_name,
                                           **self.motion_options(context))
        except (MotionError, ServiceError) as error:
            self.report({"ERROR"}, f"Cannot import the motion '{self.motion_name}': {error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Keyed {motion.num_frames} frames of {self.motion_name}")
        return {"FINISHED"}


_BONE_MAP_ITEMS = [("AUTO", "Detect", "Pick the map that matches the most bone names")] + [
    (key, key.upper() if key != "mixamo" else "Mixamo", label)
    for key, label in retarget.BONE_MAP_LABELS.items()]


class ONESHOT_AVATAR_OT_import_bvh(NeedsRig, bpy.types.Operator, ImportHelper, _MotionOptions):
    """Import a BVH and retarget it onto the active avatar rig by bone names (CMU, Mixamo)"""

    bl_idname = "oneshot_avatar.import_bvh"
    bl_label = "Import BVH onto Avatar"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a set)

    filename_ext = ".bvh"
    filter_glob: StringProperty(default="*.bvh", options={"HIDDEN"})  # type: ignore[valid-type]
    bone_map: EnumProperty(name="Skeleton", items=_BONE_MAP_ITEMS, default="AUTO")  # type: ignore[valid-type]
    keep_source: BoolProperty(  # type: ignore[valid-type]
        name="Keep BVH Armature", description="Keep the imported BVH armature", default=False)

    def execute(self, context):
        rig = rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        try:
            map_name, motion = import_bvh(context, rig, self.filepath, bone_map=self.bone_map,
                                          keep_source=self.keep_source,
                                          **self.motion_options(context))
        except (MotionError, retarget.RetargetError) as error:
            self.report({"ERROR"}, f"Cannot retarget the BVH: {error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Retargeted {motion.num_frames} frames ({map_name} skeleton)")
        return {"FINISHED"}


class ONESHOT_AVATAR_OT_export_motion(NeedsRig, bpy.types.Operator, ExportHelper):
    """Export the active avatar rig's animation (scene frame range) as a One-Shot Avatar
    motion .npz (oneshot-motion/1)"""

    bl_idname = "oneshot_avatar.export_motion"
    bl_label = "Export Avatar Motion"

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})  # type: ignore[valid-type]

    def execute(self, context):
        rig = rig_or_report(self, context)
        if rig is None:
            return {"CANCELLED"}
        try:
            path = export_motion(context, rig, self.filepath)
        except MotionError as error:
            self.report({"ERROR"}, f"Cannot export the motion: {error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {path}")
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(ONESHOT_AVATAR_OT_import_motion.bl_idname,
                         text="SMPL-X Motion onto Avatar (.npz, .smpl)")
    self.layout.operator(ONESHOT_AVATAR_OT_import_bvh.bl_idname, text="BVH onto Avatar (.bvh)")


def menu_export(self, context):
    self.layout.operator(ONESHOT_AVATAR_OT_export_motion.bl_idname,
                         text="One-Shot Avatar Motion (.npz)")


CLASSES = (ONESHOT_AVATAR_OT_import_motion, ONESHOT_AVATAR_OT_import_builtin_motion,
           ONESHOT_AVATAR_OT_import_bvh, ONESHOT_AVATAR_OT_export_motion)
# Added to File > Import / Export by the add-on's register().
MENUS = (("TOPBAR_MT_file_import", menu_import), ("TOPBAR_MT_file_export", menu_export))
