"""Motion files land upright: the up axis decided from the data (issue 15), said in `motion info`,
overridden by `--layout`; `render --camera front` frames the body where the clip puts it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from oneshot_avatar.motion import builtin_clip
from oneshot_avatar.motion.io import change_world, load_motion_described
from oneshot_avatar.motion.up_axis import TO_Y_UP, decide_up_axis
from shared_files import real_file
from test_motion_cli import run
from test_motion_kinematics import clip_fk

HEAD, PELVIS = 15, 0


def pelvis_tilt_degrees(clip) -> float:
    """Mean angle between the pelvis's up axis and +Y."""
    up = Rotation.from_rotvec(clip.global_orient.astype(np.float64)).as_matrix()[:, :, 1]
    return float(np.degrees(np.arccos(np.clip(up[:, 1], -1, 1))).mean())


def trunk_tilt_degrees(clip) -> float:
    """Mean angle between pelvis -> head (forward kinematics on the neutral rest skeleton) and +Y."""
    joints = clip_fk(clip)[0]
    trunk = joints[:, HEAD] - joints[:, PELVIS]
    trunk /= np.linalg.norm(trunk, axis=1, keepdims=True)
    return float(np.degrees(np.arccos(np.clip(trunk[:, 1], -1, 1))).mean())


def _write_amass(path, clip, world_from_ours: np.ndarray, smplh: bool = False):
    """``clip`` (our Y-up world) written with AMASS keys in another world."""
    orient, trans = change_world(world_from_ours, clip.global_orient, clip.transl)
    full = clip.full_pose().astype(np.float64).copy()
    full[:, 0] = orient
    poses = full.reshape(clip.num_frames, 165)
    if smplh:
        poses = np.concatenate([full[:, :22], full[:, 25:55]], axis=1).reshape(-1, 156)
    np.savez(path, poses=poses, trans=trans, mocap_frame_rate=np.array(clip.fps))
    return path


def _write_smpl(path, clip, world_from_ours: np.ndarray):
    orient, trans = change_world(world_from_ours, clip.global_orient, clip.transl)
    full = clip.full_pose().astype(np.float64).copy()
    full[:, 0] = orient
    with path.open("wb") as handle:
        np.savez(handle, codecVersion=np.array(1), smplVersion=np.array(2), gender=np.array(0),
                 frameCount=np.array(clip.num_frames), frameRate=np.array(clip.fps),
                 bodyPose=full[:, :22], headPose=full[:, 22:25],
                 leftHandPose=full[:, 25:40], rightHandPose=full[:, 40:55],
                 bodyTranslation=trans)
    return path


# ---------------------------------------------------------------------------- real files
def test_real_amass_sample_is_detected_z_up_and_lands_upright():
    clip, fmt, up = load_motion_described(real_file("amass_sample_smplh.npz"))
    assert up.axis == "+z" and up.detected and fmt == "amass-smplh"
    assert "pelvis" in up.reason and "+Z" in up.reason
    # The subject sits reclined: the pelvis leans back ~24 deg, the trunk is upright.
    assert trunk_tilt_degrees(clip) < 20
    assert pelvis_tilt_degrees(clip) < 30


def test_real_talkshow_clip_is_detected_camera_style_and_turned_upright():
    clip, fmt, up = load_motion_described(real_file("talkshow_french.npy"))
    assert fmt == "talkshow" and up.axis == "-y" and up.detected
    assert "camera-style" in up.summary()
    assert pelvis_tilt_degrees(clip) < 20
    assert trunk_tilt_degrees(clip) < 20  # leans forward ~18 deg while speaking
    facing = Rotation.from_rotvec(clip.global_orient.astype(np.float64)).as_matrix()[:, :, 2]
    assert facing[:, 2].mean() > 0.9  # towards +Z, our front


# ---------------------------------------------------------------------------- both conventions
@pytest.mark.parametrize("writer", ["amass", "amass-smplh", "smpl"])
def test_y_up_and_z_up_files_of_the_same_poses_read_the_same(tmp_path, writer):
    clip = builtin_clip("wave", fps=30.0)
    clip.transl[:] += np.array([0.3, 0.0, -0.2], np.float32)
    read = {}
    for name, matrix in (("yup", np.eye(3)), ("zup", TO_Y_UP["+z"].T),
                         ("camera", TO_Y_UP["-y"].T)):
        path = tmp_path / f"{name}.{'smpl' if writer == 'smpl' else 'npz'}"
        if writer == "smpl":
            _write_smpl(path, clip, matrix)
        else:
            _write_amass(path, clip, matrix, smplh=writer == "amass-smplh")
        read[name], _, up = load_motion_described(path)
        assert up.axis == {"yup": "+y", "zup": "+z", "camera": "-y"}[name], up
        assert pelvis_tilt_degrees(read[name]) < 20
    for name in ("zup", "camera"):
        np.testing.assert_allclose(read[name].full_pose(), read["yup"].full_pose(), atol=1e-5)
        np.testing.assert_allclose(read[name].transl, read["yup"].transl, atol=1e-5)
    assert pelvis_tilt_degrees(clip) < 20  # the source poses themselves are upright


def test_layout_still_overrides_the_detection(tmp_path):
    clip = builtin_clip("idle", fps=30.0)
    path = _write_amass(tmp_path / "yup.npz", clip, np.eye(3))
    assert load_motion_described(path)[2].axis == "+y"
    forced, fmt, up = load_motion_described(path, layout="amass")  # "this is Z-up"
    assert fmt == "amass-smplx" and up.axis == "+z" and not up.detected
    assert pelvis_tilt_degrees(forced) > 80  # lying down, as the user asked
    _, fmt, up = load_motion_described(real_file("amass_sample_smplh.npz"), layout="amass-yup")
    assert fmt == "amass-smplh-yup" and up.axis == "+y" and not up.detected


def test_inconclusive_pelvis_falls_back_to_the_floor_plane_then_the_convention():
    # A body rolling on the floor: its up axis turns all round the vertical, mean ~0.
    frames = 40
    angles = np.linspace(0, 2 * np.pi, frames, endpoint=False)
    orient = np.stack([np.zeros(frames), np.zeros(frames), angles], axis=1)  # about Z
    orient = Rotation.from_rotvec(orient).as_rotvec()
    travel_y = np.stack([np.linspace(0, 3, frames), np.zeros(frames), np.zeros(frames)], axis=1)
    travel_y[:, 1] = 0.02 * np.sin(angles)  # X-Y floor, Z vertical in a Z-up file ...
    zup = np.stack([travel_y[:, 0], np.zeros(frames), 0.02 * np.sin(angles)], axis=1)
    zup[:, 1] = np.linspace(0, 2, frames)  # ... travels 2 m along Y, 4 cm along Z
    decision = decide_up_axis(orient, zup, "+y")
    assert decision.axis == "+z" and "travels" in decision.reason
    decision = decide_up_axis(orient, np.zeros((frames, 3)), "-y")
    assert decision.axis == "-y" and "convention" in decision.reason


def test_motion_info_says_what_was_decided_and_why(capsys, tmp_path):
    assert run("motion", "info", str(real_file("amass_sample_smplh.npz"))) == 0
    out = capsys.readouterr().out
    line = next(text for text in out.splitlines() if text.startswith("up axis:"))
    assert "+Z" in line and "detected" in line and "pelvis" in line and "--layout" in line
    assert run("motion", "info", str(real_file("talkshow_french.npy"))) == 0
    out = capsys.readouterr().out
    assert "-Y (camera-style" in out and "turned upright" in out
    path = _write_amass(tmp_path / "yup.npz", builtin_clip("idle", fps=30.0), np.eye(3))
    assert run("motion", "info", str(path)) == 0
    out = capsys.readouterr().out
    assert "already Y-up" in out and "+Y (Y-up; detected, kept as is)" in out


# ---------------------------------------------------------------------------- render framing
def test_render_front_frames_the_body_where_the_first_frame_puts_it(tmp_path, monkeypatch,
                                                                     body_cache, open_body):
    """A clip (written Z-up) whose body stands 5 m from the origin: the front camera sees it."""
    import torch
    from PIL import Image

    from oneshot_avatar.avatar import MeshGaussians
    from oneshot_avatar.cli import main
    from oneshot_avatar.package import save_avatar

    monkeypatch.setenv("ONESHOT_AVATAR_CACHE", str(body_cache))
    with torch.no_grad():
        rest = open_body().vertices[0]
    gaussians = MeshGaussians.on_mesh(rest, open_body.faces, 28000, sh_degree=0)
    avatar = save_avatar(tmp_path / "a.avatar", gaussians, open_body,
                         torch.zeros(open_body.num_betas))
    clip = builtin_clip("idle", fps=30.0, seconds=0.2)
    clip.transl[:] += np.array([4.0, 0.0, -3.0], np.float32)
    motion = _write_amass(tmp_path / "far.npz", clip, TO_Y_UP["+z"].T)
    out = tmp_path / "frames"
    assert main(["render", str(avatar), "--motion", str(motion), "--out", str(out), "--size",
                 "64x96", "--frames", "0:1", "--quiet"]) == 0
    alpha = np.asarray(Image.open(out / "frame_00000.png"))[..., 3]
    rows, cols = np.nonzero(alpha > 128)
    assert rows.size > 300, "the body is not in the picture"
    assert abs(cols.mean() - 32) < 8 and rows.min() < 20 and rows.max() > 75
