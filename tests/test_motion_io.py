"""Motion file readers and our writer: real files, synthetic files, broken files."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest

from oneshot_avatar.errors import BadFileError, UserError
from oneshot_avatar.motion import MotionClip, builtin_clip, load_motion, save_motion
from oneshot_avatar.motion.io import (
    FORMATS,
    load_motion_with_format,
    smplx_hand_mean,
    z_up_to_y_up,
)
from shared_files import real_file

Q_Z_UP_TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])



def _raw_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files if key != "marker_labels"}


def _amass_arrays(num_frames: int = 6, seed: int = 1, width: int = 165) -> dict:
    rng = np.random.default_rng(seed)
    return {"poses": rng.normal(0, 0.3, (num_frames, width)),
            "trans": rng.normal(0, 0.5, (num_frames, 3)),
            "betas": rng.normal(size=16), "gender": np.array("neutral"),
            "mocap_frame_rate": np.array(60.0)}


# ---------------------------------------------------------------------------- real files
def test_amass_smplh_real_file_mapping():
    path = real_file("amass_sample_smplh.npz")
    raw = _raw_npz(path)
    clip, fmt = load_motion_with_format(path)
    assert fmt == "amass-smplh"
    assert clip.num_frames == 601 == raw["poses"].shape[0]
    assert clip.fps == 120.0
    assert clip.duration == pytest.approx(5.0)
    assert clip.betas.shape == (16,)
    assert clip.expression.shape == (601, 0) and clip.expression_space is None
    poses = raw["poses"].astype(np.float32)
    full = clip.full_pose()
    np.testing.assert_array_equal(full[:, 1:22].reshape(601, 63), poses[:, 3:66])  # body as is
    np.testing.assert_array_equal(full[:, 25:40].reshape(601, 45), poses[:, 66:111])  # left hand
    np.testing.assert_array_equal(full[:, 40:55].reshape(601, 45), poses[:, 111:156])  # right
    assert np.all(full[:, 22:25] == 0)  # jaw and eyes: SMPL+H has none
    assert clip.source == str(path) and clip.name == "amass_sample_smplh"


def test_amass_root_conversion_matches_formula():
    path = real_file("amass_sample_smplh.npz")
    raw = _raw_npz(path)
    clip = load_motion(path)
    orient, transl = z_up_to_y_up(raw["poses"][:, :3], raw["trans"])
    np.testing.assert_allclose(clip.global_orient, orient, atol=1e-6)
    np.testing.assert_allclose(clip.transl, transl, atol=1e-6)
    # Z-up evidence: in the file the root's +Y axis points along world +Z ...
    from scipy.spatial.transform import Rotation

    up_in_file = Rotation.from_rotvec(raw["poses"][:, :3]).as_matrix()[:, :, 1]
    assert np.all(up_in_file[:, 2] > 0.85)
    # ... and after conversion along world +Y.
    up_now = Rotation.from_rotvec(clip.global_orient.astype(np.float64)).as_matrix()[:, :, 1]
    assert np.all(up_now[:, 1] > 0.85)


def test_amass_yup_layout_skips_conversion():
    path = real_file("amass_sample_smplh.npz")
    raw = _raw_npz(path)
    clip, fmt = load_motion_with_format(path, layout="amass-yup")
    assert fmt == "amass-smplh-yup"
    np.testing.assert_array_equal(clip.global_orient, raw["poses"][:, :3].astype(np.float32))
    np.testing.assert_array_equal(clip.transl, raw["trans"].astype(np.float32))


def test_talkshow_real_file_mapping():
    path = real_file("talkshow_french.npy")
    raw = np.load(path, allow_pickle=False)
    clip, fmt = load_motion_with_format(path)  # detected from the (T, 265) shape
    assert fmt == "talkshow"
    assert clip.num_frames == 288 and clip.fps == 30.0
    assert clip.expression_space == "smplx-pca" and clip.expression.shape == (288, 100)
    np.testing.assert_array_equal(clip.expression, raw[:, 165:265])
    np.testing.assert_array_equal(clip.jaw_pose, raw[:, 0:3])
    np.testing.assert_array_equal(clip.leye_pose, raw[:, 3:6])
    np.testing.assert_array_equal(clip.reye_pose, raw[:, 6:9])
    np.testing.assert_array_equal(clip.body_pose.reshape(288, 63), raw[:, 12:75])
    mean = smplx_hand_mean()  # TalkSHOW hands are relative to SMPL-X's mean hand
    np.testing.assert_allclose(clip.left_hand_pose.reshape(288, 45),
                               raw[:, 75:120] + mean[:15].reshape(45), atol=1e-6)
    np.testing.assert_allclose(clip.right_hand_pose.reshape(288, 45),
                               raw[:, 120:165] + mean[15:].reshape(45), atol=1e-6)
    assert np.all(clip.transl == 0)
    forced = load_motion(path, layout="talkshow")
    assert forced.equals(clip)


def test_talkshow_root_is_flipped_upright():
    from scipy.spatial.transform import Rotation

    path = real_file("talkshow_french.npy")
    raw = np.load(path, allow_pickle=False)
    clip = load_motion(path)
    before = Rotation.from_rotvec(raw[:, 9:12].astype(np.float64)).as_matrix()
    after = Rotation.from_rotvec(clip.global_orient.astype(np.float64)).as_matrix()
    assert np.all(before[:, 1, 1] < -0.95)  # camera-style: the body's up is world -Y
    np.testing.assert_allclose(after, np.diag([1.0, -1.0, -1.0]) @ before, atol=1e-5)
    assert np.all(after[:, 1, 1] > 0.95)  # upright
    assert np.all(after[:, 2, 2] > 0.95)  # and facing +Z


# ---------------------------------------------------------------------------- synthetic AMASS
def test_amass_smplx_poses_165_mapping_and_expressions(tmp_path):
    arrays = _amass_arrays(6)
    arrays["expressions"] = np.linspace(-1, 1, 6 * 10).reshape(6, 10)
    arrays["mocap_framerate"] = arrays.pop("mocap_frame_rate")  # the other spelling
    path = tmp_path / "smplx.npz"
    np.savez(path, **arrays)
    clip, fmt = load_motion_with_format(path)
    # Random roots near identity: the pelvis points along +Y, so the file is read as Y-up.
    assert fmt == "amass-smplx-yup" and clip.fps == 60.0
    poses = arrays["poses"].astype(np.float32)
    np.testing.assert_array_equal(clip.body_pose.reshape(6, 63), poses[:, 3:66])
    np.testing.assert_array_equal(clip.jaw_pose, poses[:, 66:69])
    np.testing.assert_array_equal(clip.leye_pose, poses[:, 69:72])
    np.testing.assert_array_equal(clip.reye_pose, poses[:, 72:75])
    np.testing.assert_array_equal(clip.left_hand_pose.reshape(6, 45), poses[:, 75:120])
    np.testing.assert_array_equal(clip.right_hand_pose.reshape(6, 45), poses[:, 120:165])
    assert clip.expression_space == "smplx-pca"
    np.testing.assert_allclose(clip.expression, arrays["expressions"], atol=1e-6)


def test_amass_split_keys_equal_poses(tmp_path):
    arrays = _amass_arrays(5)
    poses = arrays["poses"]
    split = dict(arrays)
    del split["poses"]
    split.update(root_orient=poses[:, 0:3], pose_body=poses[:, 3:66], pose_jaw=poses[:, 66:69],
                 pose_eye=poses[:, 69:75], pose_hand=poses[:, 75:165])
    np.savez(tmp_path / "poses.npz", **arrays)
    np.savez(tmp_path / "split.npz", **split)
    a, fmt_a = load_motion_with_format(tmp_path / "poses.npz")
    b, fmt_b = load_motion_with_format(tmp_path / "split.npz")
    assert fmt_a == fmt_b == "amass-smplx-yup"  # roots near identity: detected Y-up
    np.testing.assert_array_equal(a.full_pose(), b.full_pose())
    np.testing.assert_array_equal(a.transl, b.transl)


def test_z_up_conversion_of_a_known_pose():
    # A body lying along +Z-up's "up" (identity root in a Z-up world means the body's +Y is
    # world +Y = horizontal there) becomes: Q maps (x, y, z) -> (x, z, -y).
    orient, transl = z_up_to_y_up(np.zeros((1, 3)), np.array([[1.0, 2.0, 3.0]]),
                                  pelvis_rest=(0.0, 0.0, 0.0))
    np.testing.assert_allclose(transl, [[1.0, 3.0, -2.0]])
    np.testing.assert_allclose(orient, [[-np.pi / 2, 0, 0]], atol=1e-12)


# ---------------------------------------------------------------------------- .smpl
def test_smpl_file_written_by_smplcodec_reads_back(tmp_path):
    smplcodec = pytest.importorskip("smplcodec")
    rng = np.random.default_rng(3)
    frames = 8
    codec = smplcodec.SMPLCodec(
        smpl_version=smplcodec.SMPLVersion.SMPLX, gender=smplcodec.SMPLGender.NEUTRAL,
        shape_parameters=rng.normal(size=10), frame_count=frames, frame_rate=24.0,
        body_translation=rng.normal(size=(frames, 3)),
        body_pose=rng.normal(0, 0.3, (frames, 22, 3)),
        head_pose=rng.normal(0, 0.1, (frames, 3, 3)),
        left_hand_pose=rng.normal(0, 0.3, (frames, 15, 3)),
        right_hand_pose=rng.normal(0, 0.3, (frames, 15, 3)),
        expression_parameters=rng.normal(size=(frames, 10)),
    )
    path = tmp_path / "motion.smpl"
    codec.write(path)
    handlers = list(logging.getLogger().handlers)
    clip, fmt = load_motion_with_format(path)
    assert list(logging.getLogger().handlers) == handlers  # smplcodec's basicConfig undone
    assert fmt == "smpl" and clip.fps == 24.0 and clip.num_frames == frames
    f32 = np.float32
    np.testing.assert_array_equal(clip.global_orient, codec.body_pose[:, 0].astype(f32))
    np.testing.assert_array_equal(clip.body_pose, codec.body_pose[:, 1:].astype(f32))
    np.testing.assert_array_equal(clip.jaw_pose, codec.head_pose[:, 0].astype(f32))
    np.testing.assert_array_equal(clip.leye_pose, codec.head_pose[:, 1].astype(f32))
    np.testing.assert_array_equal(clip.reye_pose, codec.head_pose[:, 2].astype(f32))
    np.testing.assert_array_equal(clip.left_hand_pose, codec.left_hand_pose.astype(f32))
    np.testing.assert_array_equal(clip.right_hand_pose, codec.right_hand_pose.astype(f32))
    np.testing.assert_array_equal(clip.transl, codec.body_translation.astype(f32))  # Y-up as is
    np.testing.assert_array_equal(clip.expression, codec.expression_parameters.astype(f32))
    assert clip.expression_space == "smplx-pca"
    np.testing.assert_array_equal(clip.betas, codec.shape_parameters.astype(f32))
    # The full pose agrees with smplcodec's own definition of it.
    np.testing.assert_allclose(clip.full_pose(), smplcodec.SMPLCodec.from_file(path).full_pose,
                               atol=1e-6)


def test_smpl_file_without_motion_is_refused(tmp_path):
    smplcodec = pytest.importorskip("smplcodec")
    path = tmp_path / "shape.smpl"
    smplcodec.SMPLCodec(shape_parameters=np.zeros(10)).write(path)
    with pytest.raises(BadFileError, match="no motion"):
        load_motion(path)


# ---------------------------------------------------------------------------- our format
def test_own_format_round_trip_is_lossless(tmp_path):
    clip = builtin_clip("talk", fps=25.0, seconds=1.0).replace(betas=np.arange(10) * 0.1)
    path = save_motion(clip, tmp_path / "sub" / "talk.npz")
    again, fmt = load_motion_with_format(path)
    assert fmt == "oneshot"
    assert again.equals(clip)  # exact: every array bit for bit
    assert again.source == str(path)
    assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no temp file
    with np.load(path, allow_pickle=False) as data:
        assert str(data["schema"]) == "oneshot-motion/1"
        assert data["name"].dtype.kind == "U"


def test_own_format_round_trip_without_expression_or_betas(tmp_path):
    clip = MotionClip.rest(3, fps=29.97)
    again = load_motion(save_motion(clip, tmp_path / "rest.npz"))
    assert again.equals(clip) and again.betas is None and again.expression_space is None


def test_save_refuses_other_suffixes(tmp_path):
    with pytest.raises(UserError, match=r"\.npz"):
        save_motion(MotionClip.rest(2), tmp_path / "out.smpl")


def _own_arrays(tmp_path) -> dict[str, np.ndarray]:
    path = save_motion(builtin_clip("wave", seconds=0.5), tmp_path / "own.npz")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def test_own_format_unknown_key(tmp_path):
    arrays = _own_arrays(tmp_path)
    arrays["velocity"] = np.zeros(3)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(BadFileError, match="unknown key") as error:
        load_motion(tmp_path / "bad.npz")
    assert error.value.field == "velocity"
    assert str(tmp_path / "bad.npz") in str(error.value)


def test_own_format_wrong_shape_and_nan(tmp_path):
    arrays = _own_arrays(tmp_path)
    arrays["body_pose"] = arrays["body_pose"][:, :20]
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(UserError, match=r"\(T, 21, 3\)") as error:
        load_motion(tmp_path / "shape.npz")
    assert error.value.field == "body_pose"
    arrays = _own_arrays(tmp_path)
    arrays["transl"][3, 0] = np.inf
    np.savez(tmp_path / "nan.npz", **arrays)
    with pytest.raises(UserError, match="NaN or infinite") as error:
        load_motion(tmp_path / "nan.npz")
    assert error.value.field == "transl"


def test_own_format_wrong_schema(tmp_path):
    arrays = _own_arrays(tmp_path)
    arrays["schema"] = np.array("oneshot-motion/9")
    np.savez(tmp_path / "v9.npz", **arrays)
    with pytest.raises(BadFileError, match="unsupported schema") as error:
        load_motion(tmp_path / "v9.npz")
    assert error.value.field == "schema"


# ---------------------------------------------------------------------------- broken files
def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BadFileError, match="does not exist") as error:
        load_motion(tmp_path / "nope.npz")
    assert "nope.npz" in str(error.value)
    with pytest.raises(BadFileError, match="folder"):
        load_motion(tmp_path)


def test_truncated_zip(tmp_path):
    path = tmp_path / "full.npz"
    np.savez_compressed(path, **_amass_arrays(50))
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadFileError, match="corrupt or truncated") as error:
        load_motion(cut)
    assert str(cut) in str(error.value)


def test_corrupted_member_data(tmp_path):
    path = tmp_path / "full.npz"
    np.savez_compressed(path, **_amass_arrays(50))
    data = bytearray(path.read_bytes())
    for i in range(200, 2000):  # inside the first member's compressed bytes
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(BadFileError, match="corrupt") as error:
        load_motion(path)
    assert str(path) in str(error.value)


def test_not_a_motion_file(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello, this is text")
    with pytest.raises(BadFileError, match="not a motion file"):
        load_motion(path)


def test_plain_pickle_is_refused(tmp_path):
    path = tmp_path / "motion.pkl"
    path.write_bytes(pickle.dumps({"poses": np.zeros((2, 156))}))
    with pytest.raises(BadFileError, match="pickle"):
        load_motion(path)


def test_npz_with_object_array_is_refused(tmp_path):
    arrays = _amass_arrays(4)
    arrays["gender"] = np.array({"gender": "male"}, dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)  # savez pickles the object array
    with pytest.raises(BadFileError, match="pickled Python objects") as error:
        load_motion(path)
    assert error.value.field == "gender"


def test_npy_with_object_array_is_refused(tmp_path):
    path = tmp_path / "pickled.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(BadFileError, match="pickled Python objects"):
        load_motion(path)


def _amass_error(tmp_path, change=(), missing: str | None = None) -> tuple[BadFileError, Path]:
    """The error of loading 6 frames of AMASS arrays with ``change`` made and ``missing`` left
    out, and the file's path."""
    arrays = _amass_arrays(6)
    arrays.update(change)
    if missing is not None:
        del arrays[missing]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(BadFileError) as error:
        load_motion(path)
    return error.value, path


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"poses": np.zeros((6, 100))}, "poses", "(T, 165)"),
        ({"trans": np.zeros((5, 3))}, "trans", "(T, 3) = (6, 3)"),
        ({"trans": np.zeros((6, 2))}, "trans", "(T, 3) = (6, 3)"),
        ({"poses": np.full((6, 156), np.nan)}, "poses", "NaN"),
        ({"poses": np.array([["a"] * 165] * 6)}, "poses", "numbers"),
        ({"mocap_frame_rate": np.array(-1.0)}, "mocap_frame_rate", "positive"),
        ({"expressions": np.zeros((4, 10))}, "expressions", "(T, E) = (6, E)"),
    ],
)
def test_amass_bad_arrays_name_the_field(tmp_path, change, field, expected):
    error, path = _amass_error(tmp_path, change)
    assert error.field == field
    assert expected in str(error)
    assert str(path) in str(error)


def test_amass_missing_frame_rate_names_both_keys(tmp_path):
    error, _ = _amass_error(tmp_path, missing="mocap_frame_rate")
    assert "mocap_frame_rate" in str(error) and "mocap_framerate" in str(error)


def test_amass_missing_trans(tmp_path):
    error, _ = _amass_error(tmp_path, missing="trans")
    assert error.field == "trans"


def test_unknown_npz_layout_lists_keys(tmp_path):
    np.savez(tmp_path / "other.npz", vertices=np.zeros((10, 3)))
    with pytest.raises(BadFileError, match="unknown motion .npz layout.*vertices"):
        load_motion(tmp_path / "other.npz")


def test_unknown_layout_argument(tmp_path):
    np.savez(tmp_path / "a.npz", **_amass_arrays(3))
    with pytest.raises(UserError, match="unknown layout") as error:
        load_motion(tmp_path / "a.npz", layout="bvh")
    assert error.value.field == "layout"
    with pytest.raises(BadFileError, match="talkshow"):
        load_motion(tmp_path / "a.npz", layout="talkshow")


def test_npy_with_wrong_columns(tmp_path):
    path = tmp_path / "odd.npy"
    np.save(path, np.zeros((10, 100), dtype=np.float32))
    with pytest.raises(BadFileError, match=r"\(T, 265\)"):
        load_motion(path)
    with pytest.raises(BadFileError, match=r"layout 'talkshow' expects shape \(T, 265\)"):
        load_motion(path, layout="talkshow")
    with pytest.raises(BadFileError, match="needs an .npz"):
        load_motion(path, layout="amass")


def test_talkshow_nan_is_refused(tmp_path):
    data = np.zeros((4, 265), dtype=np.float32)
    data[1, 170] = np.nan
    np.save(tmp_path / "nan.npy", data)
    with pytest.raises(BadFileError, match="NaN"):
        load_motion(tmp_path / "nan.npy")


def test_every_format_has_a_description():
    assert {"oneshot", "amass-smplx", "amass-smplh", "smpl", "talkshow"} <= set(FORMATS)


def test_forced_amass_layout_on_other_npz(tmp_path):
    np.savez(tmp_path / "other.npz", vertices=np.zeros((10, 3)))
    with pytest.raises(BadFileError, match="no AMASS pose arrays") as error:
        load_motion(tmp_path / "other.npz", layout="amass")
    assert error.value.field == "poses"
