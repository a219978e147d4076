"""Pseudo-labels by mesh reprojection, on a synthetic subject whose true texture is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from oneshot_avatar.cameras import Camera, from_fit
from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import builtin_clip
from oneshot_avatar.priors import (
    LabelSet,
    MeshReprojectionLabeler,
    driving_frames,
    driving_poses,
    turnaround_cameras,
)
from oneshot_avatar.priors.labels import body_centre
from oneshot_avatar.render.mesh import SurfaceTexture, render_textured
from oneshot_avatar.render.shots import expression_for_body

SIZE = 256


def clothes(points: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """A dressed person on the rest mesh: trousers, a patterned shirt, sleeves, skin, hair."""
    x, y, _ = points.unbind(-1)
    skin = torch.tensor([0.85, 0.65, 0.5])
    shirt = torch.stack([0.25 + 0.2 * torch.sin(6 * y), 0.45 + 0.15 * torch.cos(5 * x),
                         torch.full_like(x, 0.7)], -1)
    trousers = torch.tensor([0.15, 0.2, 0.35]).expand_as(points)
    hair = torch.tensor([0.25, 0.15, 0.08]).expand_as(points)

    def step(value):
        return torch.sigmoid(value / 0.01)[:, None]

    colour = trousers * (1 - step(y + 0.3)) + shirt * step(y + 0.3)
    colour = colour * (1 - step(x.abs() - 0.45)) + skin * step(x.abs() - 0.45)
    colour = colour * (1 - step(y - 0.22)) + skin * step(y - 0.22)
    return colour * (1 - step(y - 0.36)) + hair * step(y - 0.36)


def fit_camera(size: int) -> Camera:
    """Like the fit's camera: rotation diag(1, -1, -1), principal point at the centre."""
    rotation = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    position = torch.tensor([0.0, -0.4, 3.0])
    return from_fit(size * 1.35, (size / 2, size / 2), rotation, -rotation @ position, size, size)


def clip_params(body, clip: str, frame: int, yaw: float) -> dict[str, torch.Tensor]:
    motion = builtin_clip(clip)
    params = {k: v[frame : frame + 1] for k, v in motion.to_torch().items()}
    params["expression"] = torch.as_tensor(
        expression_for_body(motion, body.expression_names)[frame : frame + 1])
    params["global_orient"] = torch.tensor([[0.0, yaw, 0.0]])
    params["transl"] = torch.zeros(1, 3)
    params["betas"] = torch.zeros(1, body.num_betas)
    return params


def posed(body, params) -> torch.Tensor:
    with torch.no_grad():
        return body(**params).vertices[0]


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b)[where] ** 2).mean()))


@pytest.fixture(scope="module")
def subject(open_body):
    """The person (true texture), their pose and camera, and the photo made from them."""
    params = clip_params(open_body, "wave", 60, yaw=0.3)
    camera = fit_camera(SIZE)
    texture = SurfaceTexture.from_function(open_body.v_template, open_body.faces, clothes, 4)
    photo, mask = render_textured(posed(open_body, params), open_body.faces, texture, camera)
    return {"params": params, "camera": camera, "texture": texture, "photo": photo,
            "mask": mask}


@pytest.fixture(scope="module")
def recovered(open_body, subject):
    return MeshReprojectionLabeler().texture_from_photo(
        open_body, subject["params"], subject["camera"], subject["photo"], subject["mask"],
        resolution=4)


# --------------------------------------------------------------------------------------------
# The texture from the photo


def test_the_photo_pose_re_renders_as_the_photo(open_body, subject, recovered):
    again, mask = render_textured(posed(open_body, subject["params"]), open_body.faces,
                                  recovered, subject["camera"])
    inside = subject["mask"] > 0.5
    value = psnr(again, subject["photo"], inside)
    print(f"\nphoto-pose PSNR inside the mask: {value:.2f} dB")
    assert value >= 38.0
    assert torch.allclose(mask, subject["mask"])
    # Observed samples carry the viewing cosine, filled ones none.
    assert 0.2 < recovered.known.float().mean() < 0.6
    assert (recovered.confidence[recovered.known] > 0.09).all()
    assert (recovered.confidence[~recovered.known] == 0).all()


def test_unseen_samples_are_filled_plausibly(open_body, subject, recovered):
    colors = recovered.colors
    assert torch.isfinite(colors).all() and colors.min() >= 0 and colors.max() <= 1
    vertices = posed(open_body, subject["params"])
    back_camera = turnaround_cameras(subject["params"], open_body, subject["camera"], (180,))[0]
    truth, mask = render_textured(vertices, open_body.faces, subject["texture"], back_camera)
    ours, _ = render_textured(vertices, open_body.faces, recovered, back_camera)
    inside = mask > 0.99
    # No holes: every pixel of the back is at least as bright as the darkest true colour.
    assert ours[inside].sum(-1).min() > 0.5 * truth[inside].sum(-1).min()
    assert (ours[inside].mean(0) - truth[inside].mean(0)).abs().max() < 0.05
    # Far better than painting the unseen back with the mean seen colour.
    flat = recovered.colors.clone()
    flat[~recovered.known] = recovered.colors[recovered.known].mean(0)
    baseline, _ = render_textured(vertices, open_body.faces,
                                  SurfaceTexture(flat, recovered.known, 4), back_camera)
    ours_db, baseline_db = psnr(ours, truth, inside), psnr(baseline, truth, inside)
    print(f"\nback view PSNR: {ours_db:.2f} dB (mean-colour fill: {baseline_db:.2f} dB)")
    assert ours_db >= 25.0 and ours_db > baseline_db + 10.0


def test_the_back_takes_the_sides_colours_not_the_fronts(open_body):
    """Red where the rest surface faces forward, blue elsewhere: the unseen back of the torso
    must come out blue (the sides' colour), not red (a front-to-back copy, or the mean of what
    the photo shows)."""
    params = clip_params(open_body, "idle", 0, yaw=0.0)
    camera = fit_camera(192)
    faces = open_body.faces

    def front_red(points, normals):
        red = (normals[:, 2] > 0.8).to(points.dtype)[:, None]
        return red * torch.tensor([0.9, 0.1, 0.1]) + (1 - red) * torch.tensor([0.1, 0.2, 0.9])

    texture = SurfaceTexture.from_function(open_body.v_template, faces, front_red, 2)
    photo, mask = render_textured(posed(open_body, params), faces, texture, camera)
    result = MeshReprojectionLabeler().texture_from_photo(open_body, params, camera, photo, mask,
                                                          resolution=2)
    corners = open_body.v_template[faces]
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    part = open_body.lbs_weights[faces].sum(1).argmax(1)
    torso = torch.isin(part, torch.tensor([JOINT_INDEX[name] for name in
                                           ("pelvis", "spine1", "spine2", "spine3")]))
    back = torso & (torch.nn.functional.normalize(normals, dim=1)[:, 2] < -0.7)
    assert back.sum() > 500 and (~result.known[back]).all()
    seen = result.colors[result.known]
    assert (seen[:, 0] > seen[:, 2]).float().mean() > 0.5  # the photo shows mostly red
    colours = result.colors[back].reshape(-1, 3)
    assert (colours[:, 2] > colours[:, 0]).float().mean() > 0.95
    assert colours[:, 0].mean() < 0.25 and colours[:, 2].mean() > 0.75


def striped_arms(points: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Grey body; arms (|x| > 0.25) with colour stripes along them, the same on both sides."""
    x = points[:, 0].abs()
    stripes = torch.stack([0.5 + 0.4 * torch.sin(40 * x), 0.5 + 0.4 * torch.cos(40 * x),
                           0.5 - 0.4 * torch.sin(40 * x)], -1)
    arm = (x > 0.25).to(points.dtype)[:, None]
    return arm * stripes + (1 - arm) * 0.5


def test_a_hidden_arm_takes_the_visible_arms_colours(open_body):
    """The right arm is masked out of the photo; the left arm's stripes are mirrored onto it."""
    params = clip_params(open_body, "idle", 0, yaw=0.0)
    params["body_pose"] = torch.zeros(1, 21, 3)  # an A-pose: arms 40 degrees down
    params["body_pose"][0, JOINT_INDEX["left_shoulder"] - 1, 2] = -0.7
    params["body_pose"][0, JOINT_INDEX["right_shoulder"] - 1, 2] = 0.7
    camera = fit_camera(SIZE)
    faces = open_body.faces
    rest = open_body.v_template
    texture = SurfaceTexture.from_function(rest, faces, striped_arms, 4)
    vertices = posed(open_body, params)
    photo, mask = render_textured(vertices, faces, texture, camera)
    across = rest[faces].mean(1)[:, 0]  # the rest pose's arms lie along x; the body's right is -x
    right_side = across < -0.25
    right_arm = right_side & (across > -0.6)  # shoulder to wrist, without the hand
    left_arm = (across > 0.25) & (across < 0.6)
    indicator = SurfaceTexture(right_side[:, None, None].float().expand(-1, 15, 3).clone(),
                               torch.ones(faces.shape[0], 15, dtype=torch.bool), 4)
    arm_pixels, _ = render_textured(vertices, faces, indicator, camera, supersample=1)
    hidden = torch.nn.functional.max_pool2d(arm_pixels[None, None, ..., 0], 5, 1, 2)[0, 0] > 0
    occluded = mask * (~hidden).float()

    errors = {}
    for symmetry in (True, False):
        labeler = MeshReprojectionLabeler(symmetry=symmetry)
        result = labeler.texture_from_photo(open_body, params, camera, photo, occluded,
                                            resolution=4)
        assert result.known[right_side].float().mean() < 0.01
        assert result.known[left_arm].float().mean() > 0.15
        errors[symmetry] = float((result.colors[right_arm] - texture.colors[right_arm])
                                 .abs().mean())
    print(f"\nhidden right arm, mean abs colour error: {errors[True]:.3f} with the mirror fill, "
          f"{errors[False]:.3f} without")
    assert errors[True] < 0.07
    assert errors[False] > 3 * errors[True]


# --------------------------------------------------------------------------------------------
# Poses, views, labels


def test_driving_poses_keep_the_person_and_take_the_clip(open_body, subject):
    fit = subject["params"]
    poses = driving_poses(fit, clips=("talk", "wave"), frames_per_clip=3,
                          expression_names=open_body.expression_names)
    pairs = driving_frames(("talk", "wave"), 3)
    assert len(pairs) == 6 and pairs[0][0] == "talk" and pairs[-1][0] == "wave"
    assert len({frame for _, frame in pairs[:3]}) == 3
    for name in ("betas", "global_orient", "transl"):
        assert torch.equal(poses[name], fit[name].expand(6, *fit[name].shape[1:]))
    talk = builtin_clip("talk").to_torch()
    for i, (clip, frame) in enumerate(pairs[:3]):
        assert torch.equal(poses["body_pose"][i], talk["body_pose"][frame])
        assert torch.equal(poses["jaw_pose"][i], talk["jaw_pose"][frame])
        assert torch.equal(poses["expression"][i], talk["expression"][frame])
    assert poses["body_pose"].shape == (6, 21, 3) and poses["right_hand_pose"].shape == (6, 15, 3)
    # A body whose expression space the clips do not share keeps the fitted expression.
    other = driving_poses(fit, clips=("talk",), frames_per_clip=2,
                          expression_names=[f"expr_{i:03d}" for i in range(52)])
    assert torch.equal(other["expression"], fit["expression"].expand(2, -1))
    vertices = open_body(**poses).vertices
    assert vertices.shape[0] == 6 and torch.isfinite(vertices).all()


def test_turnaround_cameras_circle_the_body(open_body, subject):
    camera = subject["camera"]
    params = subject["params"]
    centre = body_centre(open_body, params)
    cameras = turnaround_cameras(params, open_body, camera, (90, 180, 270))
    distance = float(torch.linalg.norm(camera.position - centre))
    pixel, _ = camera.project(centre[None])
    for view in cameras:
        assert float(torch.linalg.norm(view.position - centre)) == pytest.approx(distance, 1e-5)
        assert view.position[1].item() == pytest.approx(camera.position[1].item(), abs=1e-5)
        assert torch.equal(view.K, camera.K)
        assert torch.allclose(view.project(centre[None])[0], pixel, atol=1e-3)
    # Azimuth 90 looks from the body's left (+x), 180 from behind.
    assert cameras[0].position[0] > centre[0] + 0.9 * distance
    assert cameras[1].position[2] < centre[2] - 0.9 * distance
    assert cameras[2].position[0] < centre[0] - 0.9 * distance


def test_make_labels(open_body, subject, tmp_path):
    small = 96
    camera = subject["camera"].resized(small, small)
    photo, mask = render_textured(posed(open_body, subject["params"]), open_body.faces,
                                  subject["texture"], camera)
    labeler = MeshReprojectionLabeler(clips=("point",), frames_per_clip=2, azimuths=(90, 180),
                                      background=(1.0, 1.0, 1.0))
    labels = labeler.make_labels(open_body, subject["params"], camera, photo.numpy(),
                                 mask.numpy(), device="cpu")
    frames = driving_frames(("point",), 2)
    assert labels.kinds == [f"pose:point:{f}" for _, f in frames] + \
        ["view:azimuth=90", "view:azimuth=180"]
    assert labels.images.shape == (4, small, small, 3) and labels.masks.shape == (4, small, small)
    assert labels.params["betas"].shape == (4, open_body.num_betas)
    assert torch.equal(labels.params["body_pose"][2], subject["params"]["body_pose"][0])
    assert labels.cameras[0] is labels.cameras[1]
    assert all(m.sum() > 300 for m in labels.masks)
    # White background outside the person.
    assert torch.allclose(labels.images[labels.masks == 0], torch.ones(3))
    # The driving poses move the arms, so the frames differ from the photo (a wave).
    assert min(float((m - mask).abs().sum()) for m in labels.masks[:2]) > 50

    # Asking for the photo's own pose gives the photo back.
    same = labeler.make_labels(open_body, subject["params"], camera, photo, mask,
                               poses={k: v for k, v in subject["params"].items()
                                      if k != "betas"}, views=[], device="cpu")
    assert same.kinds == ["pose:0"] and len(same) == 1
    white = photo * mask[..., None] + (1 - mask[..., None])  # photo over white
    inside = mask > 0.5
    assert psnr(same.images[0], white, inside) > 25.0  # 96 px: outline pixels weigh more

    path = labels.save_preview(tmp_path / "labels.png", columns=2, thumb=64)
    with Image.open(path) as sheet:
        assert sheet.size == (2 * 64, 2 * (64 + 14))
        pixels = np.asarray(sheet.convert("RGB"))
    assert pixels.std() > 10


def test_bad_inputs_name_the_field(open_body, subject):
    labeler = MeshReprojectionLabeler()
    with pytest.raises(UserError, match="image"):
        labeler.texture_from_photo(open_body, subject["params"], subject["camera"],
                                   subject["photo"][:128], None)
    with pytest.raises(UserError, match="mask"):
        labeler.texture_from_photo(open_body, subject["params"], subject["camera"],
                                   subject["photo"], torch.zeros(SIZE, SIZE))
    with pytest.raises(UserError, match="views"):
        labeler.make_labels(open_body, subject["params"], subject["camera"], subject["photo"],
                            subject["mask"], poses={}, views=[subject["camera"].resized(64, 64)],
                            device="cpu")
    with pytest.raises(UserError, match="images"):
        LabelSet(torch.zeros(2, 8, 8), torch.zeros(2, 8, 8), {}, [], [])
