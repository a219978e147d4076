"""Training the avatar: it learns the photo, is deterministic, densifies within bounds, and
resumes from a checkpoint to the state of an uninterrupted run."""

from __future__ import annotations

import math

import pytest
import torch

from oneshot_avatar.avatar import MeshGaussians, pose_gaussians
from oneshot_avatar.avatar.gaussians import PER_GAUSSIAN, rgb_to_sh0
from oneshot_avatar.cameras import look_at
from oneshot_avatar.errors import BadFileError, UserError
from oneshot_avatar.render.rasterize import rasterize_gaussians
from oneshot_avatar.train import SSIMPerceptual, TrainConfig, TrainView, train_avatar
from oneshot_avatar.train.checkpoint import read_checkpoint

SIZE = 64
STRIDE = 7  # a Gaussian on every 7th triangle keeps the tests fast


def _arms_down(extra: float = 0.0) -> dict[str, torch.Tensor]:
    pose = torch.zeros(1, 21, 3)
    pose[0, 15, 2] = -1.2 + extra  # left shoulder
    pose[0, 16, 2] = 1.2
    return {"body_pose": pose, "betas": torch.zeros(1, 16)}


def _camera(body, params, azimuth: float = 0.0):
    with torch.no_grad():
        vertices = body(**params).vertices[0]
    low, high = vertices.min(0).values, vertices.max(0).values
    target = (low + high) / 2
    distance = float(high[1] - low[1]) / 2 * 1.1 / math.tan(math.radians(15))
    a = math.radians(azimuth)
    eye = target + torch.tensor([distance * math.sin(a), 0.0, distance * math.cos(a)])
    return look_at(eye, target, width=SIZE, height=SIZE, fov_y_degrees=30.0)


def _sparse_gaussians(body, rest, color) -> MeshGaussians:
    """One Gaussian at the centroid of every STRIDE-th triangle, sized to cover its
    neighbourhood, coloured by ``color(points) -> rgb``."""
    binding = torch.arange(0, body.faces.shape[0], STRIDE)
    n = len(binding)
    points = rest[body.faces[binding]].mean(dim=1)
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1
    return MeshGaussians(
        binding=binding,
        local_means=torch.zeros(n, 3),
        local_quats=quats,
        log_scales=torch.log(torch.tensor([1.2, 1.2, 0.2])).expand(n, 3).clone(),
        opacity_logits=torch.full((n,), 2.0),
        sh0=rgb_to_sh0(color(points))[:, None].clone(),
        sh_rest=torch.zeros(n, 3, 3),
        num_faces=body.faces.shape[0],
        num_vertices=rest.shape[0],
    )


def _grey(points):
    return torch.full_like(points, 0.5)


def _pattern(points):
    return torch.stack([0.5 + 0.4 * torch.sin(12 * points[:, 0]), 0.5 + 0.4 * torch.cos(9 * points[:, 1]),
                        0.3 + 0.2 * torch.sin(7 * points[:, 2])], dim=-1)


@torch.no_grad()
def _render_view(body, gaussians, params, camera, kind) -> TrainView:
    posed = pose_gaussians(body, gaussians, **params)
    out = rasterize_gaussians(posed.means, posed.quats, posed.scales, posed.opacities, posed.sh,
                              camera.world_to_cam[None, None], camera.K[None, None], SIZE, SIZE,
                              sh_degree=posed.sh_degree)
    alpha = out.alpha[0, 0, ..., 0].clamp(0, 1)
    rgb = (out.rgb[0, 0] / alpha.clamp_min(1e-6)[..., None]).clamp(0, 1)
    return TrainView(rgb, alpha, params, camera, kind)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: with two, OpenMP's spin-waiting makes these small steps many times
    slower whenever other processes share the cores (multi-thread determinism is covered by
    the check that training switches PyTorch's deterministic algorithms on)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def scene(open_body):
    """A photo and two label frames of a patterned avatar; training starts from a grey one
    with the same layout."""
    with torch.no_grad():
        rest = open_body().vertices[0]
    target = _sparse_gaussians(open_body, rest, _pattern)
    photo_params = _arms_down()
    photo = _render_view(open_body, target, photo_params, _camera(open_body, photo_params), "photo")
    labels = []
    for i, azimuth in enumerate((90.0, 180.0)):
        params = _arms_down(extra=0.5 * (i + 1))
        labels.append(_render_view(open_body, target, params, _camera(open_body, params, azimuth),
                                   f"view:azimuth={azimuth:g}"))
    return rest, photo, labels


def _config(**changes) -> TrainConfig:
    base = {"resolution": SIZE, "steps": 12, "num_gaussians": 3918, "sh_degree": 1,
            "label_probability": 0.4, "densify_from": 4, "densify_every": 4, "densify_until": 8,
            "max_gaussians": 4100, "densify_grad_threshold": 1e-5, "checkpoint_every": 3,
            "history_every": 2}
    base.update(changes)
    return TrainConfig(**base)


def _train(open_body, scene, config, **kwargs):
    rest, photo, labels = scene
    gaussians = _sparse_gaussians(open_body, rest, _grey)
    kwargs.setdefault("perceptual", SSIMPerceptual())
    return train_avatar(open_body, gaussians, photo, labels, config, device="cpu", **kwargs)


def _state(gaussians: MeshGaussians) -> dict[str, torch.Tensor]:
    return {name: getattr(gaussians, name).detach().clone()
            for name in ("binding", *PER_GAUSSIAN, "vertex_offsets")}


def test_training_learns_the_photo(open_body, scene):
    config = _config(steps=40, label_probability=0.3, densify_until=0)
    result = _train(open_body, scene, config)
    report = result.report
    history = report["history"]
    assert report["steps"] == 40 and len(history) == 20
    photo_l1 = [h["photo_l1"] for h in history if "photo_l1" in h]  # photo steps only
    assert len(photo_l1) >= 6
    first, last = sum(photo_l1[:3]) / 3, sum(photo_l1[-3:]) / 3
    assert last < 0.6 * first, photo_l1
    before, after = report["input_view"]["before"], report["input_view"]["after"]
    assert after["psnr"] > before["psnr"] + 3, (before, after)
    assert after["psnr_mask"] > before["psnr_mask"] + 3, (before, after)
    assert report["perceptual"] == "ssim-multiscale"
    assert {"mask", "reg_laplacian", "reg_normal", "reg_position", "reg_scale"} <= set(report["final_losses"])
    assert all(math.isfinite(v) for v in report["final_losses"].values())
    assert torch.isfinite(result.gaussians.vertex_offsets).all()


def test_deterministic_for_a_seed_and_densifies_within_bounds(open_body, scene):
    config = _config(steps=9)
    a = _train(open_body, scene, config, seed=5)
    b = _train(open_body, scene, config, seed=5)
    c = _train(open_body, scene, config, seed=6)
    state_a, state_b, state_c = _state(a.gaussians), _state(b.gaussians), _state(c.gaussians)
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name
    assert any(state_a[k].shape != state_c[k].shape or not torch.equal(state_a[k], state_c[k])
               for k in state_a)
    events = a.report["densify_events"]
    assert [e["step"] for e in events] == [4, 8]
    assert events[0]["split"] + events[0]["duplicated"] > 0
    assert 3918 < a.gaussians.num_gaussians <= config.max_gaussians
    assert a.report["num_gaussians"] == a.gaussians.num_gaussians
    counts = a.gaussians.binding_counter()
    assert int((counts[::STRIDE] == 0).sum()) == 0  # no triangle that had a Gaussian lost it


def test_cpu_training_uses_deterministic_algorithms(open_body, scene):
    """Several CPU threads scatter-add in varying order; training switches PyTorch's
    deterministic algorithms on for its duration and restores the setting afterwards."""
    seen = []
    assert not torch.are_deterministic_algorithms_enabled()
    _train(open_body, scene, _config(steps=2, densify_until=0),
           progress=lambda *_: seen.append(torch.are_deterministic_algorithms_enabled()))
    assert seen == [True, True]
    assert not torch.are_deterministic_algorithms_enabled()


class _Interrupt(Exception):
    pass


def test_resume_reaches_the_uninterrupted_state(open_body, scene, tmp_path):
    config = _config()
    full = _train(open_body, scene, config, seed=1)
    path = tmp_path / "train.ckpt"

    def stop_after_7(step, total, losses):
        assert total == 12 and "total" in losses
        if step == 7:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        _train(open_body, scene, config, seed=1, checkpoint=path, progress=stop_after_7)
    saved = read_checkpoint(path)
    # Periodic checkpoints come every 3 steps (6); a run stopped between two steps (a shutdown,
    # a cancel) also saves where it stopped: 7, between the densify events at 4 and 8.
    assert saved["step"] == 7
    assert not list(tmp_path.glob(".*.tmp"))
    resumed = _train(open_body, scene, config, seed=1, checkpoint=path, resume=True)
    assert resumed.report["resumed_from"] == 7
    assert resumed.report["steps"] == 12
    assert resumed.report["densify_events"] == full.report["densify_events"]
    expected, got = _state(full.gaussians), _state(resumed.gaussians)
    for name in expected:
        assert got[name].shape == expected[name].shape, name
        assert torch.allclose(got[name], expected[name], rtol=1e-5, atol=1e-6), name
    assert [h["step"] for h in resumed.report["history"]] == [h["step"] for h in full.report["history"]]
    # A finished checkpoint resumes to the same end state without training.
    again = _train(open_body, scene, config, seed=1, checkpoint=path, resume=True)
    assert again.report["resumed_from"] == 12
    for name, value in _state(again.gaussians).items():
        assert torch.equal(value, got[name]), name


class _OtherPerceptual(SSIMPerceptual):
    name = "other"


def test_checkpoint_from_another_run_is_refused(open_body, scene, tmp_path):
    path = tmp_path / "train.ckpt"
    config = _config(steps=3, densify_until=0)
    _train(open_body, scene, config, checkpoint=path)
    with pytest.raises(UserError, match="steps"):
        _train(open_body, scene, _config(steps=4, densify_until=0), checkpoint=path, resume=True)
    rest, photo, labels = scene
    other = _sparse_gaussians(open_body, rest, _grey)
    with torch.no_grad():  # another avatar: one Gaussian fewer
        fewer = MeshGaussians(other.binding[1:], other.local_means[1:], other.local_quats[1:],
                              other.log_scales[1:], other.opacity_logits[1:], other.sh0[1:],
                              other.sh_rest[1:], num_faces=other.num_faces,
                              num_vertices=other.num_vertices)
    with pytest.raises(UserError, match="initial_gaussians"):
        train_avatar(open_body, fewer, photo, labels, config, device="cpu", checkpoint=path,
                     resume=True, perceptual=SSIMPerceptual())
    with pytest.raises(UserError, match="perceptual"):
        _train(open_body, scene, config, checkpoint=path, resume=True, perceptual=_OtherPerceptual())
    path.write_bytes(b"garbage")
    with pytest.raises(BadFileError, match="train.ckpt"):
        _train(open_body, scene, config, checkpoint=path, resume=True)
    # Without resume an old checkpoint is simply replaced.
    result = _train(open_body, scene, config, checkpoint=path)
    assert result.report["resumed_from"] is None and read_checkpoint(path)["step"] == 3


def test_views_are_validated(open_body, scene):
    rest, photo, _labels = scene
    bad = TrainView(photo.image, photo.mask[:-1], photo.params, photo.camera)
    with pytest.raises(UserError, match="mask"):
        train_avatar(open_body, _sparse_gaussians(open_body, rest, _grey), bad, [], _config(),
                     device="cpu", perceptual=SSIMPerceptual())
    batched = TrainView(photo.image, photo.mask, {"body_pose": torch.zeros(2, 21, 3)}, photo.camera)
    with pytest.raises(UserError, match=r"photo\.params\.body_pose"):
        train_avatar(open_body, _sparse_gaussians(open_body, rest, _grey), batched, [], _config(),
                     device="cpu", perceptual=SSIMPerceptual())
    wrong_camera = TrainView(photo.image, photo.mask, photo.params, photo.camera.resized(32, 32))
    with pytest.raises(UserError, match=r"labels\[0\]\.camera"):
        train_avatar(open_body, _sparse_gaussians(open_body, rest, _grey), photo, [wrong_camera],
                     _config(), device="cpu", perceptual=SSIMPerceptual())


def test_views_are_resized_to_the_training_resolution(open_body, scene):
    """A 64 px photo trained at 32 px: the camera is scaled with the image."""
    config = _config(resolution=32, steps=12, densify_until=0, label_probability=0.0)
    result = _train(open_body, scene, config)
    before, after = result.report["input_view"]["before"], result.report["input_view"]["after"]
    assert after["psnr"] > before["psnr"] + 1, (before, after)
    with pytest.raises(ValueError, match="SH degree"):
        _train(open_body, scene, _config(sh_degree=2))
    untrained = _train(open_body, scene, _config(steps=0)).report
    assert untrained["steps"] == 0 and untrained["history"] == []
    assert untrained["input_view"]["before"] == untrained["input_view"]["after"]


def test_config_round_trip_and_errors():
    for name in ("fast", "quality", "quality_cpu"):
        config = getattr(TrainConfig, name)()
        assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_dict({"steps": 10}).steps == 10
    with pytest.raises(UserError, match="stepz"):
        TrainConfig.from_dict({"stepz": 10})
    with pytest.raises(UserError, match="resolution"):
        TrainConfig.from_dict({"resolution": "big"})
    with pytest.raises(UserError, match="steps"):
        TrainConfig.from_dict({"steps": -1})
    with pytest.raises(UserError, match="label_probability"):
        TrainConfig.from_dict({"label_probability": 1.5})
    with pytest.raises(UserError, match="max_gaussians"):
        TrainConfig.from_dict({"num_gaussians": 5000, "max_gaussians": 4000})
    assert TrainConfig.from_dict({"foreground_edges": False}).foreground_edges is False
    with pytest.raises(UserError, match="foreground_edges"):
        TrainConfig.from_dict({"foreground_edges": 1})


def test_the_quality_preset_trains_the_same_on_a_gpu_and_a_cpu():
    """`--preset quality` is the quality look (512 px, 120k Gaussians, SH 3) on the schedule
    that fits 15 minutes on 2 cores, on every device: the four-view schedule once meant for a
    GPU gave the same avatar on both (to 0.02 dB) and a worse one (benchmarks/fidelity.py
    --preset quality, README "On a CUDA GPU"). A --steps given by the user still wins."""
    from oneshot_avatar.reconstruct.presets import preset

    quality = preset("quality").train  # the preset takes no device: one schedule everywhere
    assert (quality.resolution, quality.num_gaussians, quality.sh_degree) == (512, 120_000, 3)
    assert quality.batch_views == 1 and quality.steps == 1400
    assert quality.densify_until < quality.steps
    assert preset("quality", steps=50).train.steps == 50
