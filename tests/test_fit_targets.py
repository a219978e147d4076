"""Where keypoints sit on the body: landmark vertices found on the open body's rest mesh, the
joint correspondences, and the sparse posing that the fit uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from oneshot_avatar.fit.keypoints import BODY_25_NAMES, COCO_WHOLEBODY_NAMES, FINGERS
from oneshot_avatar.fit.sparse_body import SparseBody
from oneshot_avatar.fit.targets import (
    HIP_WEIGHT,
    find_landmark_vertices,
    keypoint_targets,
    smplx_landmark_vertices,
)


@pytest.fixture(scope="module")
def landmarks(open_body):
    return find_landmark_vertices(open_body)


@pytest.fixture(scope="module")
def rest(open_body):
    joints = open_body.shape_rest()[1][0].numpy()
    return open_body.v_template.numpy(), joints


def _mirror(point):
    return np.array([-point[0], point[1], point[2]])


def test_landmarks_are_deterministic(open_body, landmarks):
    assert find_landmark_vertices(open_body) == landmarks


def test_head_landmarks(landmarks, rest):
    v, joints = rest
    head = joints[JOINT_INDEX["head"]]
    nose = v[landmarks["nose"]]
    assert nose[2] > head[2] + 0.08  # the nose tip is in front of the head joint
    assert abs(nose[0] - head[0]) < 0.005  # on the midline
    left_eye, right_eye = v[landmarks["left_eye"]], v[landmarks["right_eye"]]
    for eye, joint in ((left_eye, "left_eye_smplhf"), (right_eye, "right_eye_smplhf")):
        centre = joints[JOINT_INDEX[joint]]
        assert eye[2] > centre[2] + 0.005  # the pupil is on the front of the eyeball
        assert np.linalg.norm(eye[:2] - centre[:2]) < 0.01
    assert nose[1] < left_eye[1] and nose[2] > left_eye[2]
    left_ear, right_ear = v[landmarks["left_ear"]], v[landmarks["right_ear"]]
    assert left_ear[0] > left_eye[0] + 0.03 and right_ear[0] < right_eye[0] - 0.03
    assert left_ear[2] < left_eye[2] - 0.05  # behind the eyes
    # Mouth corners below the nose, eye corners either side of each pupil.
    for corner in (48, 54):
        assert v[landmarks[f"face_{corner}"]][1] < nose[1] - 0.015
    assert v[landmarks["face_54"]][0] > nose[0] > v[landmarks["face_48"]][0]
    assert v[landmarks["face_42"]][0] < left_eye[0] < v[landmarks["face_45"]][0]
    assert v[landmarks["face_36"]][0] < right_eye[0] < v[landmarks["face_39"]][0]
    assert landmarks["face_30"] == landmarks["nose"]


def test_feet_landmarks(landmarks, rest):
    v, joints = rest
    for side in ("left", "right"):
        ankle = joints[JOINT_INDEX[f"{side}_ankle"]]
        toe_joint = joints[JOINT_INDEX[f"{side}_foot"]]
        heel, big, small = (v[landmarks[f"{side}_{n}"]] for n in ("heel", "big_toe", "small_toe"))
        assert heel[2] < ankle[2] - 0.02 and heel[1] < ankle[1] - 0.03  # low and behind
        for toe in (big, small):
            assert toe[2] > toe_joint[2] and toe[1] < ankle[1] - 0.05  # in front, on the floor
        outward = 1.0 if side == "left" else -1.0
        assert outward * (small[0] - big[0]) > 0.02  # the little toe is on the outside
        assert big[2] > small[2]  # the big toe reaches further forward


def test_fingertips_lie_beyond_the_last_finger_joint(landmarks, rest):
    v, joints = rest
    for side in ("left", "right"):
        for finger in FINGERS:
            last = joints[JOINT_INDEX[f"{side}_{finger}3"]]
            before = joints[JOINT_INDEX[f"{side}_{finger}2"]]
            tip = v[landmarks[f"{side}_hand_{finger}4"]]
            direction = (last - before) / np.linalg.norm(last - before)
            reach = (tip - last) @ direction
            assert 0.008 < reach < 0.04, (side, finger, reach)
            off_axis = np.linalg.norm((tip - last) - reach * direction)
            assert off_axis < 0.012, (side, finger, off_axis)


def test_left_and_right_landmarks_mirror(landmarks, rest):
    v, joints = rest
    head = joints[JOINT_INDEX["head"]]
    pairs = [("left_eye", "right_eye", "head", "head"), ("left_ear", "right_ear", "head", "head"),
             ("face_54", "face_48", "head", "head"), ("face_45", "face_36", "head", "head"),
             ("face_42", "face_39", "head", "head")]
    pairs += [("left_heel", "right_heel", "left_ankle", "right_ankle")]
    pairs += [(f"left_{n}", f"right_{n}", "left_foot", "right_foot")
              for n in ("big_toe", "small_toe")]
    pairs += [(f"left_hand_{f}4", f"right_hand_{f}4", f"left_{f}3", f"right_{f}3")
              for f in FINGERS]
    # Relative to the joint they hang from: the open body's two sides are placed a little
    # differently (its ankles differ by ~1.5 cm, its feet by ~1 cm); the landmarks should not
    # add to that.
    for left, right, left_ref, right_ref in pairs:
        a = v[landmarks[left]] - (head if left_ref == "head" else joints[JOINT_INDEX[left_ref]])
        b = v[landmarks[right]] - (head if right_ref == "head"
                                   else joints[JOINT_INDEX[right_ref]])
        assert np.linalg.norm(a - _mirror(b)) < 0.008, (left, right, a, b)


def test_every_body_keypoint_has_a_target(open_body):
    targets = keypoint_targets(open_body)
    for name in COCO_WHOLEBODY_NAMES[:23] + tuple(n for n in BODY_25_NAMES):
        assert name in targets, name
    for name in COCO_WHOLEBODY_NAMES[91:]:
        assert name in targets, name
    assert targets["left_elbow"].joints == (JOINT_INDEX["left_elbow"],)
    assert targets["left_hip"].weight == HIP_WEIGHT < 1.0
    assert targets["left_hand_thumb1"].joints == (JOINT_INDEX["left_thumb1"],)
    assert targets["right_hand_index3"].joints == (JOINT_INDEX["right_index3"],)
    assert set(targets["neck"].joints) == {JOINT_INDEX["left_shoulder"],
                                            JOINT_INDEX["right_shoulder"]}
    assert targets["face_68"].vertices == targets["right_eye"].vertices
    for target in targets.values():
        assert target.joints or target.vertices
        assert all(0 <= v < open_body.info.num_vertices for v in target.vertices)


def test_real_smplx_meshes_use_smplx_vertex_ids(open_body):
    from smplx.vertex_ids import vertex_ids

    # The SMPL-X ids do not depend on the mesh's geometry, only on its layout.
    ids = smplx_landmark_vertices(open_body)
    assert ids["nose"] == vertex_ids["smplx"]["nose"]
    assert ids["left_heel"] == vertex_ids["smplx"]["LHeel"]
    assert ids["right_hand_thumb4"] == vertex_ids["smplx"]["rthumb"]


def test_sparse_body_matches_the_full_body(open_body):
    generator = torch.Generator().manual_seed(0)

    def rand(*shape, scale):
        return torch.randn(*shape, generator=generator) * scale

    params = {
        "betas": rand(2, 16, scale=1.0), "expression": rand(2, 52, scale=0.3),
        "global_orient": rand(2, 3, scale=0.5), "body_pose": rand(2, 21, 3, scale=0.3),
        "left_hand_pose": rand(2, 15, 3, scale=0.2), "jaw_pose": rand(2, 3, scale=0.1),
        "transl": rand(2, 3, scale=1.0),
    }
    ids = [0, 297, 5000, 13000]
    joints, vertices = SparseBody(open_body, ids)(**params)
    full = open_body(**params)
    torch.testing.assert_close(joints, full.joints, atol=2e-5, rtol=0)
    torch.testing.assert_close(vertices, full.vertices[:, ids], atol=2e-5, rtol=0)


def test_target_position_weights_joints_by_their_blend(open_body):
    """COCO hips sit between the hip and the knee, not at their midpoint."""
    from oneshot_avatar.body.smplx_layout import JOINT_INDEX
    from oneshot_avatar.fit import keypoint_targets

    target = keypoint_targets(open_body)["left_hip"]
    with torch.no_grad():
        out = open_body()
    joints, vertices = out.joints[0], out.vertices[0]
    expected = sum(w * joints[j] for w, j in zip(target.coefficients(), target.joints))
    assert torch.allclose(target.position(joints, vertices), expected, atol=1e-6)
    hip, knee = joints[JOINT_INDEX["left_hip"]], joints[JOINT_INDEX["left_knee"]]
    assert float((target.position(joints, vertices) - hip).norm()) < 0.5 * float((knee - hip).norm())
