"""Motion on the rig in real Blender: motion files keyed and exported again (the driver checks
the backend reads the same poses back), the service's built-in clips, BVH retargeting (CMU and
Mixamo skeletons), and bad motion files reported without touching the rig.

Run by tests/test_blender_rig.py: $ONESHOT_AVATAR_RIG_PACKAGE (a .avatar),
$ONESHOT_AVATAR_RIG_MOTIONS (folder of motion files), $ONESHOT_AVATAR_RIG_OUT (exports go
there as <motion file stem>.npz), optional $ONESHOT_AVATAR_RIG_BVH (the CMU walk)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from rig_support import env_path, evaluated_positions, fresh_scene, scene_camera

SCENE_FPS = 30



@pytest.fixture()
def rig(addon):
    fresh_scene(SCENE_FPS)
    path = env_path("ONESHOT_AVATAR_RIG_PACKAGE")
    assert bpy.ops.oneshot_avatar.import_avatar(filepath=str(path)) == {"FINISHED"}
    return bpy.context.view_layer.objects.active


def test_motion_files_round_trip_through_the_rig(rig):
    """Each motion file is keyed (resampled to 30 fps) and exported over the scene range."""
    folder = env_path("ONESHOT_AVATAR_RIG_MOTIONS")
    out = env_path("ONESHOT_AVATAR_RIG_OUT")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".npz", ".smpl"))
    assert files
    for path in files:
        rig.animation_data_clear()
        assert bpy.ops.oneshot_avatar.import_motion(filepath=str(path),
                                                    keep_placement=True) == {"FINISHED"}
        assert bpy.ops.oneshot_avatar.export_motion(filepath=str(out / f"{path.stem}.npz")) \
            == {"FINISHED"}


def _tilt_degrees(vectors) -> float:
    """Mean angle between the (T, 3) directions and +Y (the rig's armature space is Y-up)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return float(np.degrees(np.arccos(np.clip(vectors[:, 1], -1, 1))).mean())


def test_motion_files_land_upright(rig):
    """Issue 15: the real AMASS sample (Z-up), the real TalkSHOW clip (camera-style) and Y-up,
    Z-up and camera-style files of the same poses, imported with the up axis detected: the
    pelvis stands within 20 deg of up on average (the AMASS subject sits reclined: its pelvis
    leans ~24 deg, so there the trunk pelvis -> head is checked at 20 deg and the pelvis at 30),
    and the three written files key the same pose."""
    folder = env_path("ONESHOT_AVATAR_RIG_UPRIGHT")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".npz", ".smpl", ".npy"))
    assert {p.stem for p in files} >= {"wave_yup", "wave_zup", "wave_camera"}
    scene = bpy.context.scene
    first_pose = {}
    for path in files:
        rig.animation_data_clear()
        assert bpy.ops.oneshot_avatar.import_motion(filepath=str(path)) == {"FINISHED"}
        ups, trunks = [], []
        for frame in range(scene.frame_start, scene.frame_end + 1, 10):
            scene.frame_set(frame)
            bones = rig.pose.bones
            ups.append(np.array(bones["pelvis"].matrix.to_3x3().col[1]))
            trunks.append(np.array(bones["head"].head - bones["pelvis"].head))
        scene.frame_set(scene.frame_start)
        first_pose[path.stem] = np.array([[*rig.pose.bones[j].matrix.to_3x3().col[1]]
                                          for j in ("pelvis", "head", "left_wrist")])
        pelvis, trunk = _tilt_degrees(ups), _tilt_degrees(trunks)
        print(f"{path.name}: pelvis {pelvis:.1f} deg, trunk {trunk:.1f} deg from up")
        if path.stem.startswith("amass_sample"):
            assert trunk < 20 and pelvis < 30, path.name
        else:
            assert pelvis < 20, path.name
    for other in ("wave_zup", "wave_camera", "wave_zup_smpl"):
        if other in first_pose:
            np.testing.assert_allclose(first_pose[other], first_pose["wave_yup"], atol=1e-4)


def _world_points(rig) -> np.ndarray:
    splats = rig["oneshot_avatar_splats"]
    local = evaluated_positions(splats)
    matrix = np.array(splats.matrix_world)
    return local @ matrix[:3, :3].T + matrix[:3, 3]


def _pelvis_world(rig) -> tuple[np.ndarray, np.ndarray]:
    """World position and facing (the pelvis's +Z axis) of the posed pelvis."""
    bone = rig.pose.bones["pelvis"]
    matrix = rig.matrix_world @ bone.matrix
    return np.array(matrix.translation), np.array(matrix.to_3x3().col[2])


def test_avatar_and_imported_motion_stand_on_the_floor_facing_front(addon, rig):
    """Issue 17: the imported avatar stands on z = 0 (it was at -1.22 m); every imported motion
    (motion files in both conventions, the real AMASS and TalkSHOW clips, the CMU BVH) starts at
    frame 1 with its lowest point on z = 0, facing -Y, above the avatar's own place; Keep File
    Placement keys the file's own root positions."""
    scene = bpy.context.scene
    rest_pelvis, _ = _pelvis_world(rig)
    assert abs(_world_points(rig)[:, 2].min()) < 1e-5
    folder = env_path("ONESHOT_AVATAR_RIG_UPRIGHT")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".npz", ".smpl", ".npy"))
    bvh = os.environ.get("ONESHOT_AVATAR_RIG_BVH")
    for path in [*files, *([bvh] if bvh else [])]:
        rig.animation_data_clear()
        if str(path).endswith(".bvh"):
            assert bpy.ops.oneshot_avatar.import_bvh(filepath=str(path)) == {"FINISHED"}
        else:
            assert bpy.ops.oneshot_avatar.import_motion(filepath=str(path)) == {"FINISHED"}
        scene.frame_set(scene.frame_start)
        lowest = _world_points(rig)[:, 2].min()
        pelvis, facing = _pelvis_world(rig)
        heading = facing[:2] / np.linalg.norm(facing[:2])
        print(f"{os.path.basename(path)}: frame 1 lowest z {lowest * 1000:+.2f} mm, facing "
              f"({heading[0]:+.3f}, {heading[1]:+.3f})")
        assert abs(lowest) < 1e-4, path
        assert heading[1] < -0.999, (path, heading)
        np.testing.assert_allclose(pelvis[:2], rest_pelvis[:2], atol=1e-4)
    # Keep File Placement: the root is keyed where the file says.
    from blender_addon.core.motion import read_motion

    path = folder / "wave_zup.npz"
    rig.animation_data_clear()
    assert bpy.ops.oneshot_avatar.import_motion(filepath=str(path), keep_placement=True) \
        == {"FINISHED"}
    scene.frame_set(scene.frame_start)
    np.testing.assert_allclose(rig.pose.bones["root"].location, read_motion(path).transl[0],
                               atol=1e-5)


def test_stated_up_axis_overrides_the_detection(rig):
    folder = env_path("ONESHOT_AVATAR_RIG_UPRIGHT")
    assert bpy.ops.oneshot_avatar.import_motion(filepath=str(folder / "wave_yup.npz"),
                                                up_axis="Z") == {"FINISHED"}
    bpy.context.scene.frame_set(bpy.context.scene.frame_start)
    up = np.array(rig.pose.bones["pelvis"].matrix.to_3x3().col[1])
    assert abs(up[1]) < 0.3  # read as Z-up, as asked: lying


def test_export_folds_a_root_rotation_into_global_orient(rig, tmp_path):
    """Rotating/moving the root bone moves every point; the export says the same in SMPL-X
    parameters (checked with the add-on's own forward kinematics)."""
    from blender_addon.core import pose as posemath
    from blender_addon.core.motion import read_motion
    from blender_addon.core.smplx_rig import JOINT_NAMES
    from mathutils import Quaternion

    root = rig.pose.bones["root"]
    root.rotation_quaternion = Quaternion((0.3, 1.0, 0.2), 0.8)
    root.location = (0.1, 0.2, -0.3)
    rig.pose.bones["pelvis"].rotation_quaternion = Quaternion((0.0, 1.0, 0.0), 0.5)
    rig.pose.bones["left_knee"].rotation_quaternion = Quaternion((1.0, 0.0, 0.0), 0.7)
    expression = rig["oneshot_avatar_expression_names"][0]
    root[expression] = 0.75
    bpy.context.scene.frame_end = 1
    path = tmp_path / "pose.npz"
    assert bpy.ops.oneshot_avatar.export_motion(filepath=str(path)) == {"FINISHED"}
    motion = read_motion(path)
    bpy.context.view_layer.update()
    rest = np.array([rig.data.bones[j].head_local for j in JOINT_NAMES])
    world = posemath.forward_kinematics(posemath.axis_angle_to_matrix(motion.full_pose), rest,
                                        motion.transl)
    blender = np.array([rig.pose.bones[j].head for j in JOINT_NAMES])
    np.testing.assert_allclose(world[0, :, :3, 3], blender, atol=1e-5)
    assert motion.expression[0, 0] == pytest.approx(0.75)


def test_builtin_motion_from_the_service(addon, rig, monkeypatch):
    t = 4
    body = np.zeros((t, 63))
    body[:, 3 * 17 + 2] = np.linspace(0, 1, t)  # right elbow (joint 19 = body row 18)
    names = list(rig["oneshot_avatar_expression_names"])
    # The answer of GET /v1/motions/{name} as the service's schema builds it (the driver writes
    # tests/service_answers.py's answers): only its fields, only pose keys it knows.
    answers = json.loads(env_path("ONESHOT_AVATAR_TEST_SERVICE_ANSWERS").read_text())
    payload = dict(answers["motion"])
    fields = {"name": "wave", "fps": SCENE_FPS, "expression_space": "arkit52", "params": {
        "global_orient": np.zeros((t, 3)).tolist(), "body_pose": body.tolist(),
        "jaw_pose": np.zeros((t, 3)).tolist(), "leye_pose": np.zeros((t, 3)).tolist(),
        "reye_pose": np.zeros((t, 3)).tolist(), "left_hand_pose": np.zeros((t, 45)).tolist(),
        "right_hand_pose": np.zeros((t, 45)).tolist(), "transl": np.zeros((t, 3)).tolist(),
        "expression": np.full((t, len(names)), 0.25).tolist()}}
    assert set(fields) <= set(answers["fields"]["motion"]), sorted(fields)
    assert set(fields["params"]) <= set(answers["fields"]["pose"]), sorted(fields["params"])
    payload.update(fields)
    requests = []

    class FakeClient:
        def get_motion(self, name, fps=None):
            requests.append((name, fps))
            return payload

    monkeypatch.setattr(addon.motion_ops, "_service_client", lambda context: FakeClient())
    assert bpy.ops.oneshot_avatar.import_builtin_motion(motion_name="wave") == {"FINISHED"}
    assert requests == [("wave", SCENE_FPS)]
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, t)
    scene.frame_set(t)
    angle = rig.pose.bones["left_elbow"].rotation_quaternion.angle
    assert angle == pytest.approx(1.0, abs=1e-5)
    assert rig.pose.bones["root"][names[0]] == pytest.approx(0.25 if len(names) == 52 else 0.0)


MIXAMO_BVH = """HIERARCHY
ROOT mixamorig:Hips
{
  OFFSET 0 100 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT mixamorig:Spine
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT mixamorig:Spine1
    {
      OFFSET 0 12 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      JOINT mixamorig:Spine2
      {
        OFFSET 0 12 0
        CHANNELS 3 Zrotation Xrotation Yrotation
        JOINT mixamorig:LeftShoulder
        {
          OFFSET 6 10 0
          CHANNELS 3 Zrotation Xrotation Yrotation
          JOINT mixamorig:LeftArm
          {
            OFFSET 12 0 0
            CHANNELS 3 Zrotation Xrotation Yrotation
            JOINT mixamorig:LeftForeArm
            {
              OFFSET 28 0 0
              CHANNELS 3 Zrotation Xrotation Yrotation
              JOINT mixamorig:LeftHand
              {
                OFFSET 25 0 0
                CHANNELS 3 Zrotation Xrotation Yrotation
                End Site
                {
                  OFFSET 8 0 0
                }
              }
            }
          }
        }
        JOINT mixamorig:Neck
        {
          OFFSET 0 15 0
          CHANNELS 3 Zrotation Xrotation Yrotation
          End Site
          {
            OFFSET 0 10 0
          }
        }
      }
    }
  }
  JOINT mixamorig:LeftUpLeg
  {
    OFFSET 9 -6 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT mixamorig:LeftLeg
    {
      OFFSET 0 -42 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      JOINT mixamorig:LeftFoot
      {
        OFFSET 0 -40 0
        CHANNELS 3 Zrotation Xrotation Yrotation
        End Site
        {
          OFFSET 0 -5 12
        }
      }
    }
  }
  JOINT mixamorig:RightUpLeg
  {
    OFFSET -9 -6 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT mixamorig:RightLeg
    {
      OFFSET 0 -42 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      End Site
      {
        OFFSET 0 -40 0
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
"""
# Channels per frame: hips 6, Spine 3, Spine1 3, Spine2 3, LeftShoulder 3, LeftArm 3,
# LeftForeArm 3, LeftHand 3, Neck 3, LeftUpLeg 3, LeftLeg 3, LeftFoot 3, RightUpLeg 3, RightLeg 3.
_REST_FRAME = [0, 100, 0] + [0] * 42
_MOVED_FRAME = [0, 100, 10, 0, 0, 0] + [0] * 15 + [0, 0, 90] + [0] * 21  # LeftForeArm Y 90 deg


def test_mixamo_bvh_is_retargeted_by_bone_names(rig, tmp_path):
    """A Mixamo-named T-pose skeleton in centimetres facing +Z: bending its left forearm 90 deg
    about +Y (pointing backwards, -Z) and stepping 10 cm forward bends the rig's left elbow the
    same way and moves the root forward."""
    path = tmp_path / "mixamo.bvh"
    path.write_text(MIXAMO_BVH + " ".join(map(str, _REST_FRAME)) + "\n"
                    + " ".join(map(str, _MOVED_FRAME)) + "\n")
    objects_before = set(bpy.data.objects)
    assert bpy.ops.oneshot_avatar.import_bvh(filepath=str(path),
                                             keep_placement=True) == {"FINISHED"}
    assert set(bpy.data.objects) == objects_before  # the BVH armature is removed again
    bpy.context.scene.frame_set(2)
    bones = rig.pose.bones
    forearm = np.array(bones["left_wrist"].head - bones["left_elbow"].head)
    np.testing.assert_allclose(forearm / np.linalg.norm(forearm), [0, 0, -1], atol=1e-4)
    upper_arm = np.array(bones["left_elbow"].head - bones["left_shoulder"].head)
    np.testing.assert_allclose(upper_arm / np.linalg.norm(upper_arm), [1, 0, 0], atol=0.15)
    transl = np.array(bones["root"].location)
    assert transl[2] > 0.05 and abs(transl[0]) < 1e-4 and abs(transl[1]) < 1e-4


def test_cmu_walk_is_retargeted(addon, rig):
    """The CMU 02_01 walk (120 fps, 31 joints): resampled to 30 fps; the body stays upright,
    the feet stay below the pelvis, and it walks the way it faces."""
    value = os.environ.get("ONESHOT_AVATAR_RIG_BVH")
    if not value:
        pytest.skip("$ONESHOT_AVATAR_RIG_BVH is not set (the shared CMU walk is absent)")
    map_name, _ = addon.motion_ops.import_bvh(bpy.context, rig, value)  # bone map "Detect"
    assert map_name == "cmu"  # not "mixamo" (issue 17: LeftHandIndex1 exists in both)
    scene = bpy.context.scene
    frames = range(scene.frame_start, scene.frame_end + 1, 5)
    assert scene.frame_end - scene.frame_start > 20
    pelvis_positions, facings = [], []
    for frame in frames:
        scene.frame_set(frame)
        bones = rig.pose.bones
        pelvis = bones["pelvis"]
        up = np.array(pelvis.matrix.to_3x3().col[1])
        assert up[1] > 0.8, (frame, up)
        for foot in ("left_ankle", "right_ankle"):
            assert bones[foot].head[1] < pelvis.head[1] - 0.5
        pelvis_positions.append(np.array(pelvis.head))
        facings.append(np.array(pelvis.matrix.to_3x3().col[2]))
    walked = pelvis_positions[-1] - pelvis_positions[0]
    walked[1] = 0
    facing = np.mean(facings, axis=0)
    facing[1] = 0
    assert np.linalg.norm(walked) > 0.5
    assert np.dot(walked, facing) / np.linalg.norm(walked) / np.linalg.norm(facing) > 0.8


def test_bad_motion_files_are_reported_and_change_nothing(rig, tmp_path):
    junk = tmp_path / "junk.npz"
    np.savez(junk, poses=np.zeros((3, 100)), trans=np.zeros((3, 3)), mocap_frame_rate=30.0)
    with pytest.raises(RuntimeError, match="poses"):
        bpy.ops.oneshot_avatar.import_motion(filepath=str(junk))
    text = tmp_path / "text.npz"
    text.write_text("not a motion")
    with pytest.raises(RuntimeError, match="not a motion file"):
        bpy.ops.oneshot_avatar.import_motion(filepath=str(text))
    bvh = tmp_path / "other.bvh"
    bvh.write_text(MIXAMO_BVH.replace("mixamorig:", "x_").replace("Spine", "Torso")
                   .replace("UpLeg", "Thigh").replace("LeftLeg", "LeftShin")
                   .replace("RightLeg", "RightShin") + " ".join(map(str, _REST_FRAME)) + "\n"
                   + " ".join(map(str, _REST_FRAME)) + "\n")
    objects_before = set(bpy.data.objects)
    with pytest.raises(RuntimeError, match="bone_map"):
        bpy.ops.oneshot_avatar.import_bvh(filepath=str(bvh))
    assert set(bpy.data.objects) == objects_before
    assert rig.animation_data is None or rig.animation_data.action is None


def _heads(rig, names) -> dict[str, np.ndarray]:
    bpy.context.view_layer.update()
    return {name: np.array(rig.pose.bones[name].head) for name in names}


def _sent_and_exported(addon, rig, path):
    """What Render Avatar sends for the current frame (its request's motion parameters, with a
    camera in front) and what Motion Export writes for that frame (``path``, read back)."""
    from blender_addon.core.motion import read_motion

    scene = bpy.context.scene
    scene_camera(scene, (0.0, -4.0, 1.0), (np.pi / 2, 0.0, 0.0))
    frame = scene.frame_current
    request = addon.render_ops.build_render_request(bpy.context, rig, [frame])
    params = {k: np.asarray(v, dtype=np.float64) for k, v in request["motion"]["params"].items()}
    scene.frame_start = scene.frame_end = frame
    assert bpy.ops.oneshot_avatar.export_motion(filepath=str(path)) == {"FINISHED"}
    return params, read_motion(path)


def test_ik_controls_move_the_limbs_and_render_and_export_follow(addon, rig, tmp_path):
    """Issue 17: IK targets with poles, an FK/IK switch per limb and a COG control. At rest the
    IK solution is the rest pose; an IK hand target moves the wrist there (and the render
    request and the motion export say so); IK feet stay planted when the COG moves down."""
    from blender_addon.core import pose as posemath
    from blender_addon.core.smplx_rig import JOINT_NAMES
    from mathutils import Matrix, Vector

    assert bpy.ops.oneshot_avatar.add_controls() == {"FINISHED"}
    bones = rig.pose.bones
    for name in ("COG", "ik_hand.L", "pole_arm.L", "ik_foot.R", "pole_leg.R"):
        assert name in bones, name
    root = bones["root"]
    limbs = ("left_shoulder", "left_elbow", "left_wrist", "left_hip", "left_knee", "left_ankle",
             "right_wrist", "right_ankle", "pelvis")
    rest = _heads(rig, limbs)
    for switch in ("ik_arm.L", "ik_arm.R", "ik_leg.L", "ik_leg.R"):
        assert root[switch] == 0.0  # FK until the animator switches
        root[switch] = 1.0
    at_rest = _heads(rig, limbs)
    for name in limbs:  # the poles keep every chain in its rest plane
        assert np.linalg.norm(at_rest[name] - rest[name]) < 1e-4, name
    # The left hand target moves up and forward: the wrist follows, the shoulder stays.
    shoulder, wrist = rest["left_shoulder"], rest["left_wrist"]
    target = shoulder + np.array([0.25, 0.2, 0.25])
    bones["ik_hand.L"].matrix = Matrix.Translation(Vector(target))
    moved = _heads(rig, limbs)
    print(f"IK wrist error {1000 * np.linalg.norm(moved['left_wrist'] - target):.3f} mm")
    assert np.linalg.norm(moved["left_wrist"] - target) < 1e-3
    assert np.linalg.norm(moved["left_shoulder"] - shoulder) < 1e-6
    assert np.linalg.norm(moved["left_wrist"] - wrist) > 0.2
    # What Render Avatar sends: forward kinematics of the request's parameters puts the wrist
    # on the target too.
    params, motion = _sent_and_exported(addon, rig, tmp_path / "ik.npz")
    full = posemath.full_pose_from_params(params, 1)
    rest_joints = np.array([rig.data.bones[j].head_local for j in JOINT_NAMES])
    world = posemath.forward_kinematics(posemath.axis_angle_to_matrix(full), rest_joints,
                                        params["transl"])
    sent_wrist = world[0, JOINT_NAMES.index("left_wrist"), :3, 3]
    np.testing.assert_allclose(sent_wrist, target, atol=1e-3)
    # ... and the motion export.
    world = posemath.forward_kinematics(posemath.axis_angle_to_matrix(motion.full_pose),
                                        rest_joints, motion.transl)
    np.testing.assert_allclose(world[0, JOINT_NAMES.index("left_wrist"), :3, 3], target,
                               atol=1e-3)
    # COG down 10 cm: the pelvis follows, the IK feet stay on their targets.
    bones["COG"].location = (0.0, 0.0, 0.0)
    bones["COG"].matrix = Matrix.Translation(Vector(rest["pelvis"] - np.array([0, 0.1, 0])))
    crouched = _heads(rig, limbs)
    assert np.linalg.norm(crouched["pelvis"] - (rest["pelvis"] - [0, 0.1, 0])) < 1e-4
    for ankle in ("left_ankle", "right_ankle"):
        assert np.linalg.norm(crouched[ankle] - rest[ankle]) < 1e-3, ankle
    assert crouched["left_knee"][2] > rest["left_knee"][2] + 0.02  # knees bend forward (+Z)
    # Back to FK: the keys (here the rest pose) rule again.
    root["ik_arm.L"] = 0.0
    rig.update_tag()  # a script's property change; the UI tags it itself
    assert np.linalg.norm(_heads(rig, ["left_wrist"])["left_wrist"] - crouched["left_wrist"]) \
        > 0.1


def test_a_constraint_is_rendered_and_exported_alike(addon, rig, tmp_path):
    """Issue 20: Render Avatar and Motion Export read the one evaluated pose (rig_pose.py), so
    a constraint that turns a bone whose keys say rest is in the render request and in the
    exported file, the same numbers in both, and forward kinematics of them puts the joints
    where Blender shows them."""
    from blender_addon.core import pose as posemath
    from blender_addon.core.smplx_rig import JOINT_NAMES

    scene = bpy.context.scene
    turn = bpy.data.objects.new("turn", None)
    scene.collection.objects.link(turn)
    turn.rotation_euler = (0.3, -0.5, 0.9)
    elbow = rig.pose.bones["left_elbow"]
    wrist_before = _heads(rig, ["left_wrist"])["left_wrist"]
    constraint = elbow.constraints.new("COPY_ROTATION")
    constraint.target = turn
    wrist = _heads(rig, ["left_wrist"])["left_wrist"]
    assert np.linalg.norm(wrist - wrist_before) > 0.05  # the constraint moved the forearm
    assert tuple(elbow.rotation_quaternion) == (1.0, 0.0, 0.0, 0.0)  # the keys say rest
    params, exported = _sent_and_exported(addon, rig, tmp_path / "constrained.npz")
    rendered = posemath.full_pose_from_params(params, 1)
    elbow_index = JOINT_NAMES.index("left_elbow")
    assert np.linalg.norm(exported.full_pose[0, elbow_index]) > 0.1  # not the rest keys
    np.testing.assert_allclose(exported.full_pose, rendered, atol=1e-5)
    np.testing.assert_allclose(exported.transl, params["transl"], atol=1e-6)
    rest_joints = np.array([rig.data.bones[j].head_local for j in JOINT_NAMES])
    world = posemath.forward_kinematics(posemath.axis_angle_to_matrix(exported.full_pose),
                                        rest_joints, exported.transl)
    np.testing.assert_allclose(world[0, JOINT_NAMES.index("left_wrist"), :3, 3], wrist,
                               atol=1e-3)


def test_import_can_add_the_controls(addon):
    fresh_scene(SCENE_FPS)
    path = env_path("ONESHOT_AVATAR_RIG_PACKAGE")
    assert bpy.ops.oneshot_avatar.import_avatar(filepath=str(path), add_controls=True) \
        == {"FINISHED"}
    rig = bpy.context.view_layer.objects.active
    assert rig.get("oneshot_avatar_controls")
    assert {"COG", "ik_hand.L", "ik_foot.R", "pole_leg.L"} <= set(rig.pose.bones.keys())
    assert rig.pose.bones["pelvis"].parent.name == "COG"
    assert rig.mode == "OBJECT"
