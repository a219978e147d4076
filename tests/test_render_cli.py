"""`oneshot-avatar render` and `export-ply`, end to end on a small avatar (CPU reference
rasterizer)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from oneshot_avatar.avatar import MeshGaussians
from oneshot_avatar.avatar.gaussians import rgb_to_sh0
from oneshot_avatar.package import save_avatar
from oneshot_avatar.package.ply import decode_ply


@pytest.fixture(scope="module")
def avatar_path(tmp_path_factory, open_body):
    with torch.no_grad():
        rest = open_body().vertices[0]
    g = MeshGaussians.on_mesh(rest, open_body.faces, 28000, sh_degree=0)
    with torch.no_grad():  # red above the pelvis, blue below
        means = g.place(rest[None], open_body.faces).means[0]
        colors = torch.where((means[:, 1] > -0.35)[:, None], torch.tensor([0.9, 0.1, 0.1]),
                             torch.tensor([0.1, 0.1, 0.9]))
        g.sh0.copy_(rgb_to_sh0(colors)[:, None])
    return save_avatar(tmp_path_factory.mktemp("avatar") / "test.avatar", g, open_body,
                       torch.zeros(open_body.num_betas))


def _cli(body_cache, *args):
    env = {"ONESHOT_AVATAR_CACHE": str(body_cache), "PATH": "/usr/bin:/bin",
           "OMP_WAIT_POLICY": "PASSIVE"}  # spinning OpenMP threads (tests/conftest.py)
    # a checkout put first by the caller; the worker's share of the cores (tests/conftest.py)
    for name in ("PYTHONPATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if name in os.environ:
            env[name] = os.environ[name]
    return subprocess.run([sys.executable, "-m", "oneshot_avatar", *args], capture_output=True,
                          text=True, env=env, check=False)


def test_render_png_frames_with_alpha(avatar_path, body_cache, tmp_path, open_body_file):
    out = tmp_path / "frames"
    result = _cli(body_cache, "render", str(avatar_path), "--motion", "wave", "--out", str(out),
                  "--size", "96x128", "--frames", "10:13", "--quiet")
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["frame_00010.png", "frame_00011.png", "frame_00012.png"]
    image = np.asarray(Image.open(out / files[0]))
    assert image.shape == (128, 96, 4)
    alpha = image[..., 3]
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0  # transparent background
    assert alpha[64, 48] > 200  # the body is in the middle of the frame
    # Framed: the body fills most of the height (head near the top, feet near the bottom).
    rows = np.nonzero(alpha.max(axis=1) > 128)[0]
    assert rows.min() < 25 and rows.max() > 100
    # Upper body red, legs blue: the avatar's colours come through, the right way up.
    top, bottom = image[rows.min() + 10, :, :3], image[rows.max() - 5, :, :3]
    assert top[alpha[rows.min() + 10] > 200].mean(0)[0] > 150
    assert bottom[alpha[rows.max() - 5] > 200].mean(0)[2] > 150


def test_render_video_and_gif(avatar_path, body_cache, tmp_path):
    import imageio.v2 as imageio

    mp4 = tmp_path / "shot.mp4"
    result = _cli(body_cache, "render", str(avatar_path), "--motion", "turnaround", "--out", str(mp4),
                  "--size", "64", "--frames", "0:5", "--camera", "orbit", "--quiet")
    assert result.returncode == 0, result.stderr
    reader = imageio.get_reader(mp4)
    assert reader.count_frames() == 5 and reader.get_data(0).shape == (64, 64, 3)
    gif = tmp_path / "shot.gif"
    result = _cli(body_cache, "render", str(avatar_path), "--motion", "idle", "--out", str(gif),
                  "--size", "48", "--frames", "0:3", "--background", "white", "--quiet")
    assert result.returncode == 0, result.stderr
    assert Image.open(gif).n_frames == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_render_with_camera_file(avatar_path, body_cache, tmp_path):
    from oneshot_avatar.cameras import look_at

    camera = look_at((0.0, 0.0, 3.0), (0.0, -0.3, 0.0), width=80, height=60, fov_y_degrees=40)
    camera.save_json(tmp_path / "cam.json")
    out = tmp_path / "frames"
    result = _cli(body_cache, "render", str(avatar_path), "--camera", str(tmp_path / "cam.json"),
                  "--out", str(out), "--frames", "0:1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(out / "frame_00000.png")).shape == (60, 80, 4)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--motion", "moonwalk"], "neither a built-in clip"),
        (["--frames", "50:10"], "selects no frame"),
        (["--size", "12x"], "--size"),
        (["--background", "mauve"], "--background"),
        (["--device", "cuda:0"], "no CUDA GPU") if not torch.cuda.is_available() else (["--batch", "0"], "--batch"),
        (["--batch", "0"], "--batch"),
    ],
)
def test_render_bad_options_are_one_line_errors(avatar_path, body_cache, tmp_path, args, message):
    out = tmp_path / "frames"
    result = _cli(body_cache, "render", str(avatar_path), "--out", str(out), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing started, nothing left behind


def test_render_unwritable_output_and_bad_avatar(avatar_path, body_cache, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _cli(body_cache, "render", str(avatar_path), "--out", str(blocker / "frames"))
    assert result.returncode == 2 and "cannot write" in result.stderr
    broken = tmp_path / "broken.avatar"
    broken.write_bytes(b"not a zip")
    result = _cli(body_cache, "render", str(broken), "--out", str(tmp_path / "f"))
    assert result.returncode == 2 and "not an avatar package" in result.stderr


def test_export_ply(avatar_path, body_cache, tmp_path):
    rest_ply = tmp_path / "rest.ply"
    result = _cli(body_cache, "export-ply", str(avatar_path), str(rest_ply))
    assert result.returncode == 0, result.stderr
    posed_ply = tmp_path / "posed.ply"
    result = _cli(body_cache, "export-ply", str(avatar_path), str(posed_ply), "--pose", "wave", "--frame", "30")
    assert result.returncode == 0, result.stderr
    rest, _ = decode_ply(rest_ply.read_bytes())
    posed, _ = decode_ply(posed_ply.read_bytes())
    assert len(rest["x"]) == 28000 and "face_id" not in rest
    # Waving raises the right hand (the body's right is -X) above the head.
    assert posed["y"][posed["x"] < -0.3].max() > rest["y"].max()
    result = _cli(body_cache, "export-ply", str(avatar_path), str(tmp_path / "x.ply"), "--pose", "wave",
                  "--frame", "100000")
    assert result.returncode == 2 and "--frame" in result.stderr


@pytest.mark.parametrize("preset, motion, fps, frames", [
    ("front", "wave", 30.0, (10, 13)),  # a part of the clip, arm raised: not the rest pose
    ("orbit", "wave", 2.0, None),  # the whole clip: the orbit turns once over it in both
])
def test_front_and_orbit_frame_the_same_body_in_the_cli_and_the_service(
        preset, motion, fps, frames, avatar_path, body_cache, open_body, tmp_path):
    """The same preset, motion and size give the same pixels from ``oneshot-avatar render``
    and from the service's render path (plan the request, render it into its zip sink)."""
    import zipfile

    from oneshot_avatar.package import load_avatar
    from oneshot_avatar.render.output import ZipSink
    from oneshot_avatar.service.rendering import plan_render, render_plan
    from oneshot_avatar.service.schemas import RenderRequest

    out = tmp_path / "cli"
    args = ["render", str(avatar_path), "--motion", motion, "--fps", str(fps), "--out", str(out),
            "--size", "40x56", "--camera", preset, "--quiet"]
    if frames is not None:
        args += ["--frames", f"{frames[0]}:{frames[1]}"]
    result = _cli(body_cache, *args)
    assert result.returncode == 0, result.stderr
    cli_frames = [np.asarray(Image.open(path)) for path in sorted(out.iterdir())]

    request = RenderRequest.model_validate({
        "avatar": "a_0123456789abcdef",
        "motion": {"name": motion, "fps": fps, "frames": list(frames) if frames else None},
        "cameras": [{"preset": preset, "width": 40, "height": 56}], "format": "zip"})
    plan = plan_render(request, max_frames=1000, max_pixels=10**6,
                       num_expressions=len(open_body.expression_names))
    zip_path = tmp_path / "service.zip"
    render_plan(plan, load_avatar(avatar_path), open_body, ZipSink(zip_path), batch_frames=8,
                backend="auto")
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(archive.namelist())
        service_frames = [np.asarray(Image.open(archive.open(name))) for name in names]

    assert len(cli_frames) == len(service_frames) > 1
    assert names[0] == "frame_00000.png"
    for ours, theirs in zip(cli_frames, service_frames, strict=True):
        assert ours.shape == (56, 40, 4)
        assert (ours[..., 3] > 128).sum() > 100  # the body is in the picture
        # The same cameras: equal up to a unit of rounding (the two processes' float sums may
        # differ in the last bit); a camera framed on another body moves edges by whole pixels
        # (255 apart).
        assert np.abs(ours.astype(int) - theirs).max() <= 2


def test_a_shot_honours_each_cameras_clip_distances(avatar_path, open_body):
    # A camera's near/far (Blender's clip start/end) clip the avatar: a near plane beyond the
    # body or a far plane before it shows nothing, per frame, within one batch.
    from oneshot_avatar.cameras import look_at
    from oneshot_avatar.motion.builtin import builtin_clip
    from oneshot_avatar.package import load_avatar
    from oneshot_avatar.render.shots import ShotSettings, render_shot

    avatar = load_avatar(avatar_path, body=open_body)
    clip = builtin_clip("wave", seconds=0.2)

    def camera(**clip_distances):
        return look_at((0.0, 0.0, 3.0), (0.0, -0.3, 0.0), width=40, height=50,
                       fov_y_degrees=50, **clip_distances)

    cameras = [camera(), camera(near=4.0), camera(far=2.0), camera(near=0.5, far=6.0)]
    cameras += [camera()] * (clip.num_frames - len(cameras))
    settings = ShotSettings(width=40, height=50, batch_frames=4)
    drawn = {frame: int((rgba[..., 3] > 0).sum())
             for frame, rgba in render_shot(avatar, open_body, clip, cameras, range(4), settings)}
    assert sorted(drawn) == [0, 1, 2, 3]
    assert drawn[0] > 200 and drawn[3] > 200
    assert drawn[1] == 0 and drawn[2] == 0
