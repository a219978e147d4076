"""Where the embedded detector puts a body's limb joints: measured on the open body's own
renders, anchored on the body so that they turn with their bones, used by the fit for the
detector's keypoints only, cached per body."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from offline import run_offline
from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from oneshot_avatar.fit.sparse_body import SparseBody
from oneshot_avatar.fit.targets import KeypointTarget, keypoint_targets


def random_pose(body, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"global_orient": 0.4 * torch.randn(1, 3, generator=generator),
            "body_pose": 0.4 * torch.randn(1, 21, 3, generator=generator),
            "betas": torch.randn(1, body.num_betas, generator=generator),
            "transl": torch.randn(1, 3, generator=generator)}


def test_an_anchored_point_is_carried_rigidly_by_its_bone(open_body):
    """The posed anchored point is where the frame joint's skinning transform takes the rest
    joint plus the offset (a point glued to that bone), in the fit's sparse body and in the
    target's own position (what the previews draw)."""
    j = JOINT_INDEX
    cases = [("left_hip", "pelvis", (-0.03, -0.02, 0.04)), ("right_ankle", "right_knee",
             (0.0, 0.02, 0.003)), ("left_wrist", "left_elbow", (0.02, -0.005, 0.006)),
             ("left_knee", "left_knee", (0.0, -0.012, 0.001))]
    anchored = (torch.tensor([j[a] for a, _, _ in cases]), torch.tensor([j[f] for _, f, _ in cases]),
                torch.tensor([o for _, _, o in cases], dtype=torch.float64))
    sparse = SparseBody(open_body, [10, 20], anchored=anchored)
    for seed in range(3):
        params = random_pose(open_body, seed)
        with torch.no_grad():
            full = open_body(**params)
            _, points = sparse(**params)
        assert points.shape == (1, 2 + len(cases), 3)
        assert torch.allclose(points[0, :2], full.vertices[0, [10, 20]], atol=1e-5)
        rotations = full.joint_transforms[0, :, :3, :3]
        for k, (joint, frame, offset) in enumerate(cases):
            skin = full.skin_transforms[0, j[frame]].double()
            rest = full.rest_joints[0, j[joint]].double() + torch.tensor(offset, dtype=torch.float64)
            glued = skin[:3, :3] @ rest + skin[:3, 3]  # (the transforms include transl)
            assert torch.allclose(points[0, 2 + k].double(), glued, atol=1e-5), (joint, seed)
            target = KeypointTarget(joints=(j[joint],), frame=j[frame], offset=offset)
            drawn = target.position(full.joints[0], full.vertices[0], rotations)
            assert torch.allclose(drawn.double(), glued, atol=1e-5), (joint, seed)
    with pytest.raises(ValueError, match="rotations"):
        KeypointTarget(joints=(0,), frame=0, offset=(0.0, 0.0, 0.1)).position(
            full.joints[0], full.vertices[0])


@pytest.fixture(scope="module")
def measured(open_body, open_body_file, tmp_path_factory):
    """The open body measured in a fresh interpreter whose sockets refuse to connect (the
    renders, the detector and its models need no network), then read back from its cache."""
    pytest.importorskip("mediapipe")
    from oneshot_avatar.fit.pose_correspondence import pose_correspondence
    from oneshot_avatar.fit.targets import landmark_vertices

    cache = tmp_path_factory.mktemp("pose-correspondence")
    done = run_offline(f"""
        from oneshot_avatar.body import BodyModel
        from oneshot_avatar.fit.pose_correspondence import pose_correspondence
        from oneshot_avatar.fit.targets import landmark_vertices

        body = BodyModel.from_file({str(open_body_file)!r}, kind="open")
        result = pose_correspondence(body, landmark_vertices(body), {str(cache)!r})
        print("measured offline", result.renders)
    """, "the pose correspondence", cache)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "measured offline" in done.stdout
    return pose_correspondence(open_body, landmark_vertices(open_body), cache), cache


def test_the_detector_limb_landmarks_are_measured_on_the_body(measured):
    """On the open body's renders MediaPipe's hips are lower, further forward and nearer the
    middle than SMPL-X's hip joints, its ankles higher, its wrists further down the hand; the
    offsets explain the detections (errors fall), mirror each other left and right, and stay
    small (a detector's convention, not another joint)."""
    result, _ = measured
    assert result is not None and result.renders >= 12, "the detector missed renders"
    assert result.valid.all(), dict(zip(result.names, result.valid))
    assert {"left_heel", "right_big_toe", "left_ear"} <= set(result.names)
    offset = dict(zip(result.names, result.offsets - result.base))  # what was measured
    before = dict(zip(result.names, result.error_before))
    after = dict(zip(result.names, result.error_after))
    for side, outward in (("left", 1.0), ("right", -1.0)):
        hip = offset[f"{side}_hip"]
        assert hip[1] < -0.01 and hip[2] > 0.02 and outward * hip[0] < -0.01, hip
        assert offset[f"{side}_ankle"][1] > 0.01, offset[f"{side}_ankle"]
        assert offset[f"{side}_heel"][1] > 0.01, offset[f"{side}_heel"]  # above the sole
        assert outward * offset[f"{side}_wrist"][0] > 0.01, offset[f"{side}_wrist"]
        assert after[f"{side}_hip"] < 0.5 * before[f"{side}_hip"], (before, after)
        for part in ("knee", "ankle", "wrist", "heel", "ear"):
            assert after[f"{side}_{part}"] < 0.8 * before[f"{side}_{part}"], (part, before, after)
    mirror = np.array([-1.0, 1.0, 1.0])
    for name in result.names:
        if name.startswith("left_"):
            twin = offset[name.replace("left_", "right_")]
            np.testing.assert_allclose(offset[name] * mirror, twin, atol=1e-9)
    assert np.linalg.norm(result.offsets - result.base, axis=1).max() < 0.08
    joints = [k for k, n in enumerate(result.names) if "heel" not in n and "toe" not in n
              and "ear" not in n]
    assert not result.base[joints].any()  # joint landmarks start at the joint


def test_the_measurement_is_cached_with_the_body(measured, open_body, monkeypatch, tmp_path):
    from oneshot_avatar.fit import pose_correspondence as module

    result, cache = measured
    assert module.is_measured(open_body, cache) and not module.is_measured(open_body, tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("measured again instead of read from the cache")

    monkeypatch.setattr(module, "compute_pose_correspondence", refuse)
    from oneshot_avatar.fit.targets import landmark_vertices

    again = module.pose_correspondence(open_body, landmark_vertices(open_body), cache)
    np.testing.assert_array_equal(again.offsets, result.offsets)
    assert again.names == result.names and again.body_sha256 == open_body.info.sha256


def test_only_the_detector_keypoints_are_anchored(measured, open_body, monkeypatch):
    """The offsets describe the embedded detector: its keypoints get them, a keypoint file or
    another detector keeps SMPL-X's joints (and the COCO hip blend)."""
    _, cache = measured
    monkeypatch.setenv("ONESHOT_AVATAR_CACHE", str(cache))
    detector = keypoint_targets(open_body, "mediapipe-holistic-0.10.21")
    other = keypoint_targets(open_body, "coco-wholebody-json")
    for name in ("left_hip", "right_ankle", "left_wrist", "right_shoulder", "left_heel",
                 "right_ear"):
        assert detector[name].anchored and not other[name].anchored
    assert not detector["nose"].anchored and detector["left_hip"].weight == other["left_hip"].weight
