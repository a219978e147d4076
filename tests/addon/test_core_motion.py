"""blender_addon.core.motion reads what the backend reads (same poses in the same Y-up world),
resamples like the backend, and writes files the backend's load_motion reads back."""

from __future__ import annotations

import numpy as np
import pytest
from blender_addon.core import motion as addon_motion
from blender_addon.core.motion import Motion, MotionError
from blender_addon.core.pose import axis_angle_to_matrix


def _rng_pose(t, seed=0):
    return np.random.default_rng(seed).normal(scale=0.4, size=(t, 55, 3))


def _assert_same(ours: Motion, clip):
    np.testing.assert_allclose(ours.full_pose, clip.full_pose(), atol=2e-5)
    np.testing.assert_allclose(ours.transl, clip.transl, atol=2e-5)
    np.testing.assert_allclose(ours.expression, clip.expression, atol=1e-6)
    assert ours.fps == pytest.approx(clip.fps)
    assert ours.expression_space == clip.expression_space


def test_amass_smplx_and_smplh_match_the_backend(tmp_path):
    from oneshot_avatar.motion import load_motion

    rng = np.random.default_rng(1)
    smplx = tmp_path / "smplx.npz"
    np.savez(smplx, poses=_rng_pose(7).reshape(7, 165), trans=rng.normal(size=(7, 3)),
             mocap_frame_rate=np.array(120.0), betas=np.zeros(16),
             expressions=rng.normal(size=(7, 10)))
    smplh = tmp_path / "smplh.npz"
    np.savez(smplh, poses=rng.normal(size=(5, 156)), trans=rng.normal(size=(5, 3)),
             mocap_framerate=60)
    split = tmp_path / "split.npz"
    np.savez(split, root_orient=rng.normal(size=(4, 3)), pose_body=rng.normal(size=(4, 63)),
             pose_hand=rng.normal(size=(4, 90)), pose_jaw=rng.normal(size=(4, 3)),
             trans=rng.normal(size=(4, 3)), mocap_frame_rate=30.0)
    for path in (smplx, smplh, split):
        _assert_same(addon_motion.read_motion(path), load_motion(path))


def test_smpl_file_matches_the_backend(tmp_path):
    from oneshot_avatar.motion import load_motion

    rng = np.random.default_rng(2)
    path = tmp_path / "clip.smpl"
    with path.open("wb") as handle:  # np.savez would append ".npz" to a path
        np.savez(handle, codecVersion=np.array(1), smplVersion=np.array(2), gender=np.array(0),
                 frameCount=np.array(6), frameRate=np.array(24.0),
                 bodyPose=rng.normal(size=(6, 22, 3)), headPose=rng.normal(size=(6, 3, 3)),
                 leftHandPose=rng.normal(size=(6, 15, 3)),
                 rightHandPose=rng.normal(size=(6, 15, 3)),
                 bodyTranslation=rng.normal(size=(6, 3)), shapeParameters=np.zeros(10))
    _assert_same(addon_motion.read_motion(path), load_motion(path))


def test_export_is_read_back_by_the_backend(tmp_path):
    from oneshot_avatar.motion import load_motion, save_motion
    from oneshot_avatar.motion.clip import MotionClip

    rng = np.random.default_rng(3)
    motion = Motion(fps=30.0, full_pose=_rng_pose(9, 3), transl=rng.normal(size=(9, 3)),
                    expression=rng.uniform(0, 1, size=(9, 52)), expression_space="arkit52",
                    name="dance", source="blender")
    path = addon_motion.write_motion_npz(motion, tmp_path / "out.npz")
    clip = load_motion(path)
    _assert_same(motion, clip)
    assert clip.name == "dance"
    # And the other way: a backend file read by the add-on.
    clip = MotionClip.from_full_pose(_rng_pose(4, 4), rng.normal(size=(4, 3)), 25.0,
                                     name="other")
    save_motion(clip, tmp_path / "backend.npz")
    _assert_same(addon_motion.read_motion(tmp_path / "backend.npz"), clip)


def test_resample_matches_the_backend():
    from oneshot_avatar.motion.clip import MotionClip
    from oneshot_avatar.motion.resampling import resample

    rng = np.random.default_rng(5)
    pose = 0.5 * _rng_pose(13, 5)
    transl = rng.normal(size=(13, 3))
    clip = MotionClip.from_full_pose(pose, transl, 50.0)
    ours = Motion(fps=50.0, full_pose=pose, transl=transl, expression=np.zeros((13, 0)))
    for fps in (24.0, 30.0, 120.0):
        expected = resample(clip, fps)
        got = addon_motion.resample(ours, fps)
        assert got.num_frames == expected.num_frames
        np.testing.assert_allclose(got.transl, expected.transl, atol=1e-5)
        np.testing.assert_allclose(axis_angle_to_matrix(got.full_pose),
                                   axis_angle_to_matrix(expected.full_pose()), atol=1e-5)


def test_motion_json_from_the_service():
    t = 3
    data = {"name": "talk", "fps": 30, "expression_space": "arkit52", "params": {
        "global_orient": np.zeros((t, 3)).tolist(), "body_pose": np.ones((t, 63)).tolist(),
        "jaw_pose": np.zeros((t, 3)).tolist(), "leye_pose": np.zeros((t, 3)).tolist(),
        "reye_pose": np.zeros((t, 3)).tolist(), "left_hand_pose": np.zeros((t, 45)).tolist(),
        "right_hand_pose": np.zeros((t, 45)).tolist(), "transl": np.zeros((t, 3)).tolist(),
        "expression": np.full((t, 52), 0.5).tolist()}}
    motion = addon_motion.motion_from_json(data)
    assert motion.num_frames == 3 and motion.fps == 30 and motion.source == "builtin:talk"
    np.testing.assert_array_equal(motion.full_pose[:, 1:22], 1.0)
    names = [f"u{i}" for i in range(52)]
    assert addon_motion.expressions_for_rig(motion, names).shape == (3, 52)
    assert addon_motion.expressions_for_rig(motion, ["expr_000"]) is None
    with pytest.raises(MotionError) as info:
        addon_motion.motion_from_json({"name": "x", "fps": 30, "params": {
            "global_orient": [[0, 0, 0]], "body_pose": [[0, 0]]}})
    assert info.value.field == "params"


def test_bad_files_name_the_field(tmp_path):
    def failure(path):
        with pytest.raises(MotionError) as info:
            addon_motion.read_motion(path)
        return info.value

    text = tmp_path / "a.npz"
    text.write_text("hello")
    assert "not a motion file" in str(failure(text))
    bvh = tmp_path / "a.bvh"
    bvh.write_text("HIERARCHY\nROOT Hips\n")
    assert "BVH" in str(failure(bvh))
    np.savez(tmp_path / "u.npz", something=np.zeros(3))
    assert "unknown motion layout" in str(failure(tmp_path / "u.npz"))
    np.savez(tmp_path / "n.npz", poses=np.full((2, 165), np.nan), trans=np.zeros((2, 3)),
             mocap_frame_rate=30.0)
    assert failure(tmp_path / "n.npz").field == "poses"
    np.savez(tmp_path / "r.npz", poses=np.zeros((2, 165)), trans=np.zeros((2, 3)))
    assert failure(tmp_path / "r.npz").field == "mocap_frame_rate"
    np.savez(tmp_path / "w.npz", poses=np.zeros((2, 100)), trans=np.zeros((2, 3)),
             mocap_frame_rate=30.0)
    assert failure(tmp_path / "w.npz").field == "poses"
    np.savez(tmp_path / "p.npz", poses=np.array([{"x": 1}], dtype=object),
             trans=np.zeros((1, 3)), mocap_frame_rate=30.0)
    assert failure(tmp_path / "p.npz").field == "poses"
    arrays = addon_motion.motion_npz_arrays(Motion(fps=30.0, full_pose=np.zeros((2, 55, 3)),
                                                   transl=np.zeros((2, 3)),
                                                   expression=np.zeros((2, 0))))
    arrays["schema"] = np.array("oneshot-motion/7")
    np.savez(tmp_path / "s.npz", **arrays)
    assert failure(tmp_path / "s.npz").field == "schema"
    del arrays["transl"]
    arrays["schema"] = np.array("oneshot-motion/1")
    np.savez(tmp_path / "t.npz", **arrays)
    assert failure(tmp_path / "t.npz").field == "transl"
    with pytest.raises(MotionError) as info:
        addon_motion.write_motion_npz(Motion(30.0, np.zeros((1, 55, 3)), np.zeros((1, 3)),
                                             np.zeros((1, 0))), tmp_path / "out.txt")
    assert info.value.field == "filepath"


# ---------------------------------------------------------------------------- up axis (issue 15)
def _shared(name):
    from shared_files import real_file

    return real_file(name)


def _write_world(path, clip, matrix, kind):
    """``clip`` (backend MotionClip, our world) written as AMASS keys or .smpl in the world
    ``matrix`` (ours -> file)."""
    from oneshot_avatar.motion.io import change_world

    orient, trans = change_world(matrix, clip.global_orient, clip.transl)
    full = clip.full_pose().astype(np.float64).copy()
    full[:, 0] = orient
    if kind == "smpl":
        with path.open("wb") as handle:
            np.savez(handle, codecVersion=np.array(1), smplVersion=np.array(2),
                     gender=np.array(0), frameCount=np.array(clip.num_frames),
                     frameRate=np.array(clip.fps), bodyPose=full[:, :22],
                     headPose=full[:, 22:25], leftHandPose=full[:, 25:40],
                     rightHandPose=full[:, 40:55], bodyTranslation=trans)
    else:
        np.savez(path, poses=full.reshape(-1, 165), trans=trans,
                 mocap_frame_rate=np.array(clip.fps))
    return path


def test_up_axis_rule_is_the_backends():
    """Same decision, same reason text, on random clips in every orientation and on the
    inconclusive cases."""
    from blender_addon.core import up_axis as addon

    from oneshot_avatar.motion import up_axis as backend

    rng = np.random.default_rng(5)
    for axis, matrix in backend.TO_Y_UP.items():
        np.testing.assert_array_equal(addon.TO_Y_UP[axis], matrix)
        for spread in (0.2, 1.5, 3.0):  # upright-ish ... tumbling
            ours = rng.normal(scale=spread, size=(30, 3))
            # the same rotations seen in a world whose up is ``axis``
            from oneshot_avatar.motion._rotations import premultiply

            orient = premultiply(matrix.T, ours)
            trans = rng.normal(scale=0.5, size=(30, 3))
            for convention in ("+y", "+z", "-y"):
                a = addon.decide_up_axis(orient, trans, convention)
                b = backend.decide_up_axis(orient, trans, convention)
                assert (a.axis, a.reason, a.summary()) == (b.axis, b.reason, b.summary())
                if spread == 0.2:
                    assert a.axis == axis


def test_talkshow_and_amass_real_files_read_like_the_backend():
    from oneshot_avatar.motion.io import load_motion_described, smplx_hand_mean

    np.testing.assert_allclose(addon_motion.SMPLX_HAND_MEAN, smplx_hand_mean(), atol=1e-8)
    for name, axis in (("talkshow_french.npy", "-y"), ("amass_sample_smplh.npz", "+z")):
        path = _shared(name)
        ours = addon_motion.read_motion(path)
        clip, _, up = load_motion_described(path)
        _assert_same(ours, clip)
        assert ours.up_axis.axis == up.axis == axis and ours.up_axis.reason == up.reason
        upright = axis_angle_to_matrix(ours.full_pose[:, 0])[:, :, 1]
        assert np.degrees(np.arccos(upright[:, 1])).mean() < (20 if axis == "-y" else 30)


@pytest.mark.parametrize("kind", ["amass", "smpl"])
def test_y_up_z_up_and_camera_files_of_the_same_poses_land_upright(tmp_path, kind):
    from oneshot_avatar.motion import builtin_clip, load_motion
    from oneshot_avatar.motion.up_axis import TO_Y_UP

    clip = builtin_clip("wave", fps=30.0)
    suffix = ".smpl" if kind == "smpl" else ".npz"
    read = {}
    for axis in ("+y", "+z", "-y"):
        path = _write_world(tmp_path / f"{axis[1]}{axis[0] == '-'}{suffix}", clip,
                            TO_Y_UP[axis].T, kind)
        read[axis] = addon_motion.read_motion(path)
        assert read[axis].up_axis.axis == axis and read[axis].up_axis.detected
        _assert_same(read[axis], load_motion(path))
        up = axis_angle_to_matrix(read[axis].full_pose[:, 0])[:, :, 1]
        assert np.degrees(np.arccos(np.clip(up[:, 1], -1, 1))).mean() < 20
    for axis in ("+z", "-y"):
        np.testing.assert_allclose(read[axis].full_pose, read["+y"].full_pose, atol=1e-6)
        np.testing.assert_allclose(read[axis].transl, read["+y"].transl, atol=1e-6)


def test_stated_up_axis_overrides_and_bad_choice_names_the_field(tmp_path):
    from oneshot_avatar.motion import builtin_clip, load_motion

    path = _write_world(tmp_path / "yup.npz", builtin_clip("idle", fps=30.0), np.eye(3), "amass")
    forced = addon_motion.read_motion(path, up="Z")
    assert forced.up_axis.axis == "+z" and not forced.up_axis.detected
    _assert_same(forced, load_motion(path, layout="amass"))
    with pytest.raises(MotionError) as error:
        addon_motion.read_motion(path, up="sideways")
    assert error.value.field == "up_axis"
