"""Keypoint files: the shared vocabulary, OpenPose and COCO-WholeBody JSON, and the errors a user
can cause (NaN, keypoints of another image, a file that is not keypoints)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oneshot_avatar.errors import BadFileError, UserError
from oneshot_avatar.fit.keypoints import (
    BODY_25_NAMES,
    COCO_WHOLEBODY_NAMES,
    KEYPOINT_INDEX,
    KEYPOINT_NAMES,
    Keypoints,
    load_keypoints,
)


def _write(tmp_path, data, name="kp.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _openpose_person(offset=0.0, with_hands=True):
    rng = np.random.default_rng(1)
    body = np.concatenate([rng.uniform(50, 450, (25, 2)) + offset, np.full((25, 1), 0.9)], 1)
    person = {"pose_keypoints_2d": body.ravel().tolist()}
    if with_hands:
        hand = np.concatenate([rng.uniform(100, 200, (21, 2)), np.full((21, 1), 0.8)], 1)
        person["hand_left_keypoints_2d"] = hand.ravel().tolist()
        person["hand_right_keypoints_2d"] = [0.0] * 63  # OpenPose writes zeros when not found
        face = np.concatenate([rng.uniform(200, 260, (70, 2)), np.full((70, 1), 0.7)], 1)
        person["face_keypoints_2d"] = face.ravel().tolist()
    return person, body


def test_vocabulary_covers_both_layouts_with_unique_names():
    assert len(set(KEYPOINT_NAMES)) == len(KEYPOINT_NAMES)
    assert len(COCO_WHOLEBODY_NAMES) == 133
    assert len(BODY_25_NAMES) == 25
    assert set(COCO_WHOLEBODY_NAMES) <= set(KEYPOINT_NAMES)
    assert set(BODY_25_NAMES) <= set(KEYPOINT_NAMES)
    # The shared names: the same body part under both layouts.
    for name in ("nose", "left_eye", "left_shoulder", "right_wrist", "left_big_toe",
                 "right_heel", "left_hand_thumb4", "right_hand_pinky1", "face_30"):
        assert name in KEYPOINT_INDEX
    assert COCO_WHOLEBODY_NAMES[17:23] == ("left_big_toe", "left_small_toe", "left_heel",
                                           "right_big_toe", "right_small_toe", "right_heel")
    assert COCO_WHOLEBODY_NAMES[91] == "left_hand_wrist"
    assert COCO_WHOLEBODY_NAMES[112] == "right_hand_wrist"


def test_openpose_body25_with_hands_and_face(tmp_path):
    person, body = _openpose_person()
    path = _write(tmp_path, {"version": 1.3, "people": [person]})
    kp = load_keypoints(path, (512, 512))
    assert kp.source == "openpose-json"
    assert kp.image_size == (512, 512)
    assert len(kp) == 25 + 70 + 21 + 21
    xy, conf = kp.get("left_shoulder")  # BODY_25 index 5
    np.testing.assert_allclose(xy, body[5, :2], atol=1e-4)
    assert conf == pytest.approx(0.9)
    mid = kp.get("mid_hip")
    np.testing.assert_allclose(mid[0], body[8, :2], atol=1e-4)
    assert kp.get("right_hand_index4")[1] == 0.0  # all-zero hand = missing
    assert kp.get("left_hand_thumb1")[1] == pytest.approx(0.8)
    assert kp.get("face_69")[1] == pytest.approx(0.7)


def test_openpose_coco18_by_length_and_largest_person(tmp_path):
    small = {"pose_keypoints_2d": (np.array([[10, 10, 0.9]] * 9 + [[20, 20, 0.9]] * 9)
                                   .ravel().tolist())}
    rng = np.random.default_rng(0)
    big_body = np.concatenate([rng.uniform(0, 400, (18, 2)), np.ones((18, 1))], 1)
    big = {"pose_keypoints_2d": big_body.ravel().tolist()}
    path = _write(tmp_path, {"people": [small, big]})
    kp = load_keypoints(path, (400, 400))
    assert len(kp) == 18
    np.testing.assert_allclose(kp.get("left_hip")[0], big_body[11, :2], atol=1e-4)


def test_coco_wholebody_annotation_and_flat_list(tmp_path):
    rng = np.random.default_rng(2)
    table = np.concatenate([rng.uniform(0, 300, (133, 2)), np.full((133, 1), 2.0)], 1)
    table[5, 2] = 1.0  # labelled but hidden
    table[6, 2] = 0.0  # not labelled
    ann = {
        "image_id": 7, "bbox": [0, 0, 300, 300],
        "keypoints": table[:17].ravel().tolist(), "foot_kpts": table[17:23].ravel().tolist(),
        "face_kpts": table[23:91].ravel().tolist(), "lefthand_kpts": table[91:112].ravel().tolist(),
        "righthand_kpts": table[112:].ravel().tolist(), "lefthand_valid": True,
    }  # fmt: skip
    data = {"images": [{"id": 7, "width": 320, "height": 300}], "annotations": [ann]}
    kp = load_keypoints(_write(tmp_path, data), (320, 300))
    assert kp.source == "coco-wholebody-json"
    assert kp.names == COCO_WHOLEBODY_NAMES
    np.testing.assert_allclose(kp.xy, table[:, :2], atol=1e-4)
    assert kp.conf[5] == 0.5 and kp.conf[6] == 0.0 and kp.conf[0] == 1.0
    flat = load_keypoints(_write(tmp_path, table.ravel().tolist(), "flat.json"), (320, 300))
    np.testing.assert_allclose(flat.xy, kp.xy)
    np.testing.assert_allclose(flat.conf, kp.conf)


def test_nan_is_an_error_naming_the_field(tmp_path):
    person, _ = _openpose_person()
    # Standard JSON has no NaN, but Python and many tools write (and read) the literal.
    person["hand_left_keypoints_2d"][4] = float("nan")
    path = _write(tmp_path, {"people": [person]}, "nan.json")
    assert "NaN" in path.read_text()
    with pytest.raises(BadFileError, match="hand_left_keypoints_2d") as info:
        load_keypoints(path, (512, 512))
    assert "NaN" in str(info.value)
    data = {"annotations": [{"keypoints": [float("nan")] * 51}]}
    with pytest.raises(BadFileError, match=r"annotations\[0\]\.keypoints"):
        load_keypoints(_write(tmp_path, data, "coco_nan.json"), (512, 512))


def test_keypoints_of_another_image_are_refused(tmp_path):
    person, _ = _openpose_person()
    path = _write(tmp_path, {"people": [person]})
    with pytest.raises(UserError, match="another image"):
        load_keypoints(path, (160, 120))  # the points reach x = 450
    coco = {"images": [{"id": 1, "width": 640, "height": 425}],
            "annotations": [{"image_id": 1, "keypoints": [10, 10, 2] * 17}]}
    with pytest.raises(UserError, match="640x425"):
        load_keypoints(_write(tmp_path, coco, "coco.json"), (425, 640))


def test_files_that_are_not_keypoints(tmp_path):
    with pytest.raises(BadFileError, match="does not exist"):
        load_keypoints(tmp_path / "missing.json", (10, 10))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BadFileError, match="not valid JSON"):
        load_keypoints(bad, (10, 10))
    with pytest.raises(BadFileError, match="OpenPose"):
        load_keypoints(_write(tmp_path, {"something": 1}, "other.json"), (10, 10))
    with pytest.raises(BadFileError, match="no people"):
        load_keypoints(_write(tmp_path, {"people": []}, "empty.json"), (10, 10))
    with pytest.raises(BadFileError, match="75"):
        load_keypoints(_write(tmp_path, {"people": [{"pose_keypoints_2d": [1, 2, 3]}]}, "s.json"),
                       (10, 10))


def test_mapped_moves_points_and_keeps_confidence():
    kp = Keypoints(xy=np.array([[10.0, 20.0], [30.0, 40.0]]), conf=np.array([1.0, 0.0]),
                   names=("nose", "left_eye"), source="test", image_size=(100, 100))
    moved = kp.mapped(lambda xy: xy * 2 + 1, image_size=(201, 201))
    np.testing.assert_allclose(moved.xy, [[21, 41], [61, 81]])
    np.testing.assert_allclose(moved.conf, kp.conf)
    assert moved.image_size == (201, 201) and kp.xy[0, 0] == 10.0
    with pytest.raises(ValueError, match="unknown keypoint names"):
        Keypoints(xy=np.zeros((1, 2)), conf=np.ones(1), names=("elbow",), source="t")


def test_real_openpose_file(shared_data):
    path = shared_data / "keypoints" / "pifuhd_test_keypoints.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    kp = load_keypoints(path, (512, 512))
    assert len(kp) == 25 and kp.source == "openpose-json"
    nose, neck = kp.get("nose")[0], kp.get("neck")[0]
    ankle = kp.get("left_ankle")[0]
    assert nose[1] < neck[1] < ankle[1]  # upright person, head at the top
    assert kp.get("nose")[1] > 0.9
    # The standing man, not the people in the background: head to feet spans most of the image.
    assert ankle[1] - nose[1] > 350
    # His left shoulder is on the image right (he faces the camera).
    assert kp.get("left_shoulder")[0][0] > kp.get("right_shoulder")[0][0]


def test_real_coco_wholebody_file(shared_data):
    path = shared_data / "keypoints" / "mmpose_test_coco_wholebody.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    kp = load_keypoints(path, (640, 425))  # image 785, the skier
    assert kp.names == COCO_WHOLEBODY_NAMES
    assert (kp.conf[:17] == 1.0).all()
    np.testing.assert_allclose(kp.get("nose")[0], [367, 81])
    assert kp.get("left_hand_wrist")[1] == 0.0  # lefthand_valid is false
    assert kp.get("right_hand_wrist")[1] == 1.0
    assert kp.get("face_30")[1] == 1.0
    with pytest.raises(UserError, match="another image"):
        load_keypoints(path, (512, 512))
