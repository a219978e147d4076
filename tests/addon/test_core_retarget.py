"""blender_addon.core.retarget: bone maps for CMU/Mixamo skeletons, and rest-pose-aware
retargeting that recovers SMPL-X joint rotations from a skeleton with other bone frames."""

from __future__ import annotations

import numpy as np
import pytest
from blender_addon.core import pose as posemath
from blender_addon.core import retarget
from blender_addon.core.smplx_rig import JOINT_NAMES, PARENTS

MIXAMO_BONES = ["mixamorig:Hips", "mixamorig:Spine", "mixamorig:Spine1", "mixamorig:Spine2",
                "mixamorig:Neck", "mixamorig:Head", "mixamorig:LeftUpLeg", "mixamorig:LeftLeg",
                "mixamorig:LeftFoot", "mixamorig:LeftToeBase", "mixamorig:RightUpLeg",
                "mixamorig:RightLeg", "mixamorig:RightFoot", "mixamorig:LeftShoulder",
                "mixamorig:LeftArm", "mixamorig:LeftForeArm", "mixamorig:LeftHand",
                "mixamorig:LeftHandIndex1", "mixamorig:RightArm"]
CMU_BONES = ["Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase",
             "RHipJoint", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase", "LowerBack",
             "Spine", "Spine1", "Neck", "Neck1", "Head", "LeftShoulder", "LeftArm",
             "LeftForeArm", "LeftHand", "LeftFingerBase", "LeftHandIndex1", "LThumb",
             "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightFingerBase",
             "RightHandIndex1", "RThumb"]  # all 31 joints of a real CMU BVH, fingers included


def test_detects_mixamo_and_cmu():
    name, mapping = retarget.detect_bone_map(MIXAMO_BONES)
    assert name == "mixamo"
    assert mapping["spine3"] == "mixamorig:Spine2"
    assert mapping["left_index1"] == "mixamorig:LeftHandIndex1"
    name, mapping = retarget.detect_bone_map(CMU_BONES)
    assert name == "cmu"
    assert mapping["spine1"] == "LowerBack" and mapping["left_elbow"] == "LeftForeArm"
    name, mapping = retarget.detect_bone_map(
        ["hip", "lfemur", "ltibia", "rfemur", "rtibia", "lowerback", "thorax"])
    assert name == "cmu-asf"
    with pytest.raises(retarget.RetargetError) as info:
        retarget.detect_bone_map(["Bone", "Bone.001"])
    assert info.value.field == "bone_map"


def test_recovers_local_rotations_from_a_turned_skeleton_with_other_bone_frames():
    """A source skeleton = the SMPL-X tree, but with arbitrary rest bone frames, facing another
    way (turned 90 deg about the vertical) and in centimetres. Retargeting gives back the SMPL-X
    local rotations it was posed with, and the root translation in metres."""
    rng = np.random.default_rng(0)
    t = 3
    local = rng.normal(scale=0.5, size=(t, 55, 3))
    local[:, 22:] = 0.0  # jaw/eyes/fingers are not mapped for this skeleton
    rest_joints = rng.normal(scale=0.3, size=(55, 3))
    rest_joints[1], rest_joints[2] = (0.1, -0.1, 0.0), (-0.1, -0.1, 0.0)  # left hip is +X
    turn = posemath.axis_angle_to_matrix(np.array([0.0, np.pi / 2, 0.0]))  # source faces +X
    world = posemath.forward_kinematics(posemath.axis_angle_to_matrix(local), rest_joints)
    bone_frames = posemath.axis_angle_to_matrix(rng.normal(size=(55, 3)))  # per-bone rest frame
    names = {JOINT_NAMES[j]: f"bone_{j}" for j in range(22)}
    source_rest = {names[n]: turn @ bone_frames[j] for j, n in enumerate(JOINT_NAMES[:22])}
    source_pose = {names[n]: turn @ world[:, j, :3, :3] @ bone_frames[j]
                   for j, n in enumerate(JOINT_NAMES[:22])}
    alignment = retarget.facing_alignment(turn @ rest_joints[1], turn @ rest_joints[2])
    np.testing.assert_allclose(alignment @ turn, np.eye(3), atol=1e-12)
    got = retarget.retarget_rotations(source_rest, source_pose, names, alignment)
    np.testing.assert_allclose(got, posemath.axis_angle_to_matrix(local), atol=1e-9)
    # Translation: hips moved 10 cm along the source's forward in a 100x larger skeleton.
    hips_rest = 100 * turn @ np.array([0.0, 0.9, 0.0])
    hips_pose = (hips_rest + 100 * turn @ np.array([0.0, 0.0, 0.1]))[None]
    transl = retarget.root_translation(hips_rest, hips_pose, 0.01, alignment)
    np.testing.assert_allclose(transl, [[0.0, 0.0, 0.1]], atol=1e-12)
    assert PARENTS[0] == -1


def test_rest_correction_makes_bones_point_where_the_source_bones_point():
    """A source in another rest pose (left arm hanging 45 deg down, an A-pose): after
    retargeting, every mapped SMPL-X bone points along its source bone in every frame."""
    rng = np.random.default_rng(1)
    rest_joints = np.zeros((55, 3))
    for j, parent in enumerate(PARENTS):
        if parent >= 0:
            rest_joints[j] = rest_joints[parent] + rng.normal(scale=0.2, size=3)
    source_local = np.zeros((2, 55, 3))
    source_local[:, 16] = (0.0, 0.0, -np.pi / 4)  # source rest: left arm lowered
    source_rest_world = posemath.forward_kinematics(
        posemath.axis_angle_to_matrix(source_local[:1]), rest_joints)[0]
    motion = rng.normal(scale=0.4, size=(2, 55, 3))
    source_world = posemath.forward_kinematics(
        posemath.axis_angle_to_matrix(source_local) @ posemath.axis_angle_to_matrix(motion),
        rest_joints)
    names = {JOINT_NAMES[j]: f"b{j}" for j in range(22)}
    rest_pos = {names[n]: source_rest_world[j, :3, 3] for j, n in enumerate(JOINT_NAMES[:22])}
    rest_rot = {names[n]: source_rest_world[j, :3, :3] for j, n in enumerate(JOINT_NAMES[:22])}
    pose_rot = {names[n]: source_world[:, j, :3, :3] for j, n in enumerate(JOINT_NAMES[:22])}
    corrections = retarget.rest_corrections(rest_pos, rest_joints, names)
    local = retarget.retarget_rotations(rest_rot, pose_rot, names, None, corrections)
    target_world = posemath.forward_kinematics(local, rest_joints)
    for j in (16, 18, 1, 4):  # left shoulder, elbow, hip, knee
        child = JOINT_NAMES.index(retarget.main_child(JOINT_NAMES[j]))
        want = source_world[:, child, :3, 3] - source_world[:, j, :3, 3]
        got = target_world[:, child, :3, 3] - target_world[:, j, :3, 3]
        cos = np.sum(want * got, -1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(got, axis=-1)
        np.testing.assert_allclose(cos, 1.0, atol=1e-9)


def test_real_cmu_bvh_is_detected_as_cmu():
    """Issue 17: the shared CMU walk's own joint list (with LeftHandIndex1, which Mixamo also
    has) must pick the CMU map and keep LowerBack."""
    from shared_files import SHARED_DATA

    path = SHARED_DATA / "bvh" / "cmu_02_01_walk.bvh"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    names = [line.split()[-1] for line in path.read_text().splitlines()
             if line.strip().startswith(("ROOT", "JOINT"))]
    assert len(names) == 31
    name, mapping = retarget.detect_bone_map(names)
    assert name == "cmu" and mapping["spine1"] == "LowerBack"
