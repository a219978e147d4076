"""Driver: the add-on's rig in real Blender (tests/blender/test_rig_*.py run by Blender's Python,
the bpy module) against the backend.

Here (main venv) we build an avatar package and the backend's posings of its Gaussians, and
motion files; Blender imports the package, keys poses and checks the driven points against the
posings (mean error <= 1 mm), keys each motion file and exports it; back here the backend's
``load_motion`` must read the same poses from the exports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import service_answers
from addon_packages import build_test_package, expected_face_arrays, expected_posing_arrays
from blender_runner import blender_params, blender_python, run_blender_tests
from shared_files import SHARED_DATA

SCENE_FPS = 30.0


def _motion_files(folder: Path) -> dict[str, Path]:
    """AMASS SMPL-X at 60 fps (resampled on import), AMASS SMPL+H, ours with ARKit
    expressions, and a Meshcapade .smpl."""
    from oneshot_avatar.motion import save_motion
    from oneshot_avatar.motion.clip import MotionClip

    rng = np.random.default_rng(7)
    files = {"amass_smplx_60fps": folder / "amass_smplx_60fps.npz",
             "amass_smplh": folder / "amass_smplh.npz", "ours": folder / "ours.npz",
             "meshcapade": folder / "meshcapade.smpl"}
    np.savez(files["amass_smplx_60fps"], poses=rng.normal(scale=0.3, size=(25, 165)),
             trans=rng.normal(scale=0.5, size=(25, 3)), mocap_frame_rate=np.array(60.0))
    np.savez(files["amass_smplh"], poses=rng.normal(scale=0.3, size=(9, 156)),
             trans=rng.normal(scale=0.5, size=(9, 3)), mocap_framerate=np.array(30.0))
    clip = MotionClip.from_full_pose(rng.normal(scale=0.4, size=(8, 55, 3)),
                                     rng.normal(scale=0.5, size=(8, 3)), SCENE_FPS,
                                     expression=rng.uniform(0, 1, size=(8, 52)),
                                     expression_space="arkit52", name="ours")
    save_motion(clip, files["ours"])
    with files["meshcapade"].open("wb") as handle:
        np.savez(handle, codecVersion=np.array(1), smplVersion=np.array(2),
                 frameCount=np.array(6), frameRate=np.array(30.0),
                 bodyPose=rng.normal(scale=0.3, size=(6, 22, 3)),
                 headPose=rng.normal(scale=0.2, size=(6, 3, 3)),
                 leftHandPose=rng.normal(scale=0.2, size=(6, 15, 3)),
                 rightHandPose=rng.normal(scale=0.2, size=(6, 15, 3)),
                 bodyTranslation=rng.normal(scale=0.5, size=(6, 3)))
    return files


def _upright_files(folder: Path) -> Path:
    """The built-in wave written Y-up, Z-up and camera-style (AMASS keys; Z-up also as .smpl),
    and links to the shared real AMASS sample and TalkSHOW clip when present (issue 15)."""
    from oneshot_avatar.motion import builtin_clip
    from oneshot_avatar.motion.io import change_world
    from oneshot_avatar.motion.up_axis import TO_Y_UP

    folder.mkdir()
    clip = builtin_clip("wave", fps=SCENE_FPS)
    for name, axis in (("wave_yup", "+y"), ("wave_zup", "+z"), ("wave_camera", "-y")):
        orient, trans = change_world(TO_Y_UP[axis].T, clip.global_orient, clip.transl)
        full = clip.full_pose().astype(np.float64)
        full[:, 0] = orient
        np.savez(folder / f"{name}.npz", poses=full.reshape(-1, 165), trans=trans,
                 mocap_frame_rate=np.array(SCENE_FPS))
        if axis == "+z":
            with (folder / "wave_zup_smpl.smpl").open("wb") as handle:
                np.savez(handle, codecVersion=np.array(1), smplVersion=np.array(2),
                         frameCount=np.array(clip.num_frames), frameRate=np.array(SCENE_FPS),
                         bodyPose=full[:, :22], headPose=full[:, 22:25],
                         leftHandPose=full[:, 25:40], rightHandPose=full[:, 40:55],
                         bodyTranslation=trans)
    for name in ("amass_sample_smplh.npz", "talkshow_french.npy"):
        if (SHARED_DATA / "motion" / name).exists():
            (folder / name).symlink_to(SHARED_DATA / "motion" / name)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("blender", blender_params())
def test_rig_in_blender_matches_the_backend(blender, tmp_path, open_body):
    from oneshot_avatar.motion import load_motion
    from oneshot_avatar.motion._rotations import rotvec_to_matrix
    from oneshot_avatar.motion.resampling import resample

    python = blender_python(blender)  # skip early, before building anything
    assert python.exists()
    package = build_test_package(tmp_path / "person.avatar", open_body, 8000, seed=3)
    expected = tmp_path / "expected.npz"
    np.savez(expected, **expected_posing_arrays(package, open_body),
             **expected_face_arrays(package, open_body))
    motions = tmp_path / "motions"
    motions.mkdir()
    files = _motion_files(motions)
    out = tmp_path / "exports"
    out.mkdir()
    env = {"ONESHOT_AVATAR_RIG_PACKAGE": str(package),
           "ONESHOT_AVATAR_RIG_EXPECTED": str(expected),
           "ONESHOT_AVATAR_RIG_MOTIONS": str(motions), "ONESHOT_AVATAR_RIG_OUT": str(out)}
    env["ONESHOT_AVATAR_RIG_UPRIGHT"] = str(_upright_files(tmp_path / "upright"))
    env[service_answers.ENV] = str(service_answers.write_answers(tmp_path / "answers.json"))
    bvh = SHARED_DATA / "bvh" / "cmu_02_01_walk.bvh"
    if bvh.exists():
        env["ONESHOT_AVATAR_RIG_BVH"] = str(bvh)
    output = run_blender_tests(["tests/blender/test_rig_import.py", "tests/blender/test_rig_motion.py"],
                               tmp_path, env, extra_args=("-s",), python=python)
    print(output[-12000:], file=sys.stderr)  # the posing errors in mm, among others
    for stem, source in files.items():
        original = resample(load_motion(source), SCENE_FPS)
        exported = load_motion(out / f"{stem}.npz")
        assert exported.num_frames == original.num_frames, stem
        assert exported.fps == SCENE_FPS
        np.testing.assert_allclose(rotvec_to_matrix(exported.full_pose()),
                                   rotvec_to_matrix(original.full_pose()), atol=2e-5,
                                   err_msg=stem)
        np.testing.assert_allclose(exported.transl, original.transl, atol=2e-5, err_msg=stem)
        if original.expression_space == "arkit52":
            np.testing.assert_allclose(exported.expression, original.expression, atol=1e-6)
