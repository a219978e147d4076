"""The body layer: the open default body file, smplx compatibility, posing and transforms."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import smplx
import torch

from oneshot_avatar.body import JOINT_NAMES, PARENTS, BodyModel
from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from smplx_reference import angle_degrees, bone_direction, mannequin_rest_joints

J = JOINT_INDEX


def _descendants(joint: int) -> set[int]:
    out = {joint}
    for j, p in enumerate(PARENTS):
        if p in out:
            out.add(j)
    return out


def _rest(body: BodyModel):
    with torch.no_grad():
        out = body()
    return out.vertices[0].numpy(), out.joints[0].numpy()


# -- the file ------------------------------------------------------------------------------------


def test_smplx_loads_open_body_unchanged(open_body_file, tmp_path):
    folder = tmp_path / "models"
    (folder / "smplx").mkdir(parents=True)
    shutil.copy(open_body_file, folder / "smplx" / "SMPLX_NEUTRAL.npz")
    model = smplx.create(str(folder), model_type="smplx", num_expression_coeffs=52, use_pca=False)
    assert model.v_template.shape == (13718, 3)
    assert model.faces.shape == (27420, 3)
    assert model.parents.tolist() == list(PARENTS)
    assert model.num_expression_coeffs == 52
    out = model()
    assert out.vertices.shape == (1, 13718, 3)
    assert torch.isfinite(out.joints).all()

    data = np.load(open_body_file, allow_pickle=False)  # nothing in it needs pickle
    assert list(data["joint_names"]) == list(JOINT_NAMES)
    names = [str(n) for n in data["expression_names"]]
    assert len(names) == 52 and "jawOpen" in names and "eyeBlinkLeft" in names
    # smplx splits shapedirs at column 300: shape first, expressions after.
    assert data["shapedirs"].shape[2] == 400
    assert np.abs(data["shapedirs"][:, :, :10]).max() > 1e-3
    assert np.abs(data["shapedirs"][:, :, 300:352]).max() > 1e-3
    assert np.all(data["shapedirs"][:, :, 352:] == 0)
    np.testing.assert_allclose(data["weights"].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(data["J_regressor"].sum(axis=1), 1.0, atol=1e-5)
    assert (data["J_regressor"] >= 0).all()


@pytest.mark.slow
def test_open_body_build_is_deterministic(open_body, tmp_path):
    from oneshot_avatar.body import ensure_open_body

    rebuilt = BodyModel.from_file(ensure_open_body(tmp_path), kind="open")
    assert rebuilt.info.sha256 == open_body.info.sha256


def test_info(open_body):
    info = open_body.info
    assert info.kind == "open" and info.model_id.startswith("open-anny")
    assert (info.num_vertices, info.num_faces, info.num_joints) == (13718, 27420, 55)
    assert len(info.sha256) == 64
    assert info.num_betas >= 10
    assert len(info.expression_names) == 52
    assert info.expression_space == open_body.expression_space == "arkit52"
    assert info.as_dict()["expression_space"] == "arkit52"


# -- the rest pose ---------------------------------------------------------------------------


def test_rest_pose_layout_is_plausible(open_body):
    vertices, joints = _rest(open_body)
    height = vertices[:, 1].max() - vertices[:, 1].min()
    assert 1.5 < height < 1.9
    assert joints[J["head"], 1] > joints[J["neck"], 1] > joints[J["pelvis"], 1]
    for side, sign in (("left", 1), ("right", -1)):
        wrist, shoulder = joints[J[f"{side}_wrist"]], joints[J[f"{side}_shoulder"]]
        assert sign * wrist[0] > 0.55  # arms out to the side; the body's left is +X
        assert abs(wrist[1] - shoulder[1]) < 0.1  # roughly horizontal
        ankle = joints[J[f"{side}_ankle"]]
        assert joints[J["pelvis"], 1] - ankle[1] > 0.7  # feet far below the pelvis
        # Toes in front of the ankle: the body faces +Z.
        assert joints[J[f"{side}_foot"], 2] > ankle[2] + 0.05
        # Palm down: the thumb is in front of the pinky.
        assert joints[J[f"{side}_thumb1"], 2] > joints[J[f"{side}_pinky1"], 2]
    assert joints[J["left_eye_smplhf"], 2] > joints[J["head"], 2]  # eyes in front
    # Feet on or below the pelvis' SMPL-X rest height -0.35 by about a metre.
    assert -1.35 < vertices[:, 1].min() < -1.05


def test_rest_limbs_point_like_smplx_rest(open_body):
    """Limb, foot and finger bones point where SMPL-X's neutral rest skeleton's do."""
    _, joints = _rest(open_body)
    reference = mannequin_rest_joints()
    pairs = [
        ("left_shoulder", "left_elbow", 3),
        ("left_elbow", "left_wrist", 3),
        ("right_shoulder", "right_elbow", 3),
        ("right_elbow", "right_wrist", 3),
        ("left_hip", "left_ankle", 3),
        ("right_hip", "right_ankle", 3),
        ("left_index1", "left_index2", 5),
        ("right_middle1", "right_middle2", 5),
        ("left_thumb2", "left_thumb3", 5),
    ]
    for a, b, tolerance in pairs:
        ours = bone_direction(joints, J[a], J[b])
        theirs = bone_direction(reference, J[a], J[b])
        assert angle_degrees(ours, theirs) < tolerance, (a, b)


# -- posing --------------------------------------------------------------------------------------


def _random_params(batch: int, num_betas: int, num_expressions: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        betas=torch.randn(batch, num_betas, generator=g) * 0.7,
        global_orient=torch.randn(batch, 3, generator=g) * 0.4,
        body_pose=torch.randn(batch, 21, 3, generator=g) * 0.3,
        jaw_pose=torch.randn(batch, 3, generator=g) * 0.2,
        leye_pose=torch.randn(batch, 3, generator=g) * 0.1,
        reye_pose=torch.randn(batch, 3, generator=g) * 0.1,
        left_hand_pose=torch.randn(batch, 15, 3, generator=g) * 0.3,
        right_hand_pose=torch.randn(batch, 15, 3, generator=g) * 0.3,
        expression=torch.rand(batch, num_expressions, generator=g),
        transl=torch.randn(batch, 3, generator=g),
    )


def test_matches_smplx_forward(open_body, open_body_file):
    batch = 3
    params = _random_params(batch, open_body.num_betas, 52)
    with torch.no_grad():
        ours = open_body(**params)
        reference = smplx.SMPLX(
            str(open_body_file), num_betas=open_body.num_betas, num_expression_coeffs=52,
            use_pca=False, flat_hand_mean=True, batch_size=batch,
        )(**{k: v.reshape(batch, -1) for k, v in params.items()})
    torch.testing.assert_close(ours.vertices, reference.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.joints, reference.joints[:, :55], atol=1e-5, rtol=0)


def test_per_joint_transforms_reproduce_lbs_and_joints(open_body):
    params = _random_params(2, open_body.num_betas, 52, seed=1)
    with torch.no_grad():
        out = open_body(**params)
    # Skinning the shaped rest vertices with the per-joint transforms gives the posed vertices.
    weights = open_body.lbs_weights
    blended = torch.einsum("vj,bjxy->bvxy", weights, out.skin_transforms)
    homogeneous = torch.cat([out.rest_vertices, torch.ones_like(out.rest_vertices[..., :1])], -1)
    skinned = torch.einsum("bvxy,bvy->bvx", blended, homogeneous)[..., :3]
    torch.testing.assert_close(skinned, out.vertices, atol=1e-5, rtol=0)
    # Each joint's transform maps its rest position to its posed position...
    rest_h = torch.cat([out.rest_joints, torch.ones_like(out.rest_joints[..., :1])], -1)
    moved = torch.einsum("bjxy,bjy->bjx", out.skin_transforms, rest_h)[..., :3]
    torch.testing.assert_close(moved, out.joints, atol=1e-5, rtol=0)
    # ...and its world frame is the chain of local rotations, placed at the posed joint.
    torch.testing.assert_close(out.joint_transforms[..., :3, 3], out.joints)
    rotations = out.joint_transforms[..., :3, :3]
    should_be_eye = rotations @ rotations.transpose(-1, -2)
    torch.testing.assert_close(should_be_eye, torch.eye(3).expand_as(should_be_eye), atol=1e-5, rtol=0)
    elbow, shoulder = J["left_elbow"], J["left_shoulder"]
    from smplx.lbs import batch_rodrigues

    local = batch_rodrigues(params["body_pose"][:, elbow - 1])
    torch.testing.assert_close(rotations[:, elbow], rotations[:, shoulder] @ local, atol=1e-5, rtol=0)


def test_left_elbow_moves_only_forearm_and_hand(open_body):
    rest, _ = _rest(open_body)
    pose = torch.zeros(1, 21, 3)
    pose[0, J["left_elbow"] - 1] = torch.tensor([0.0, -1.2, 0.0])  # bend the elbow forward
    with torch.no_grad():
        bent = open_body(body_pose=pose).vertices[0].numpy()
    moved = np.linalg.norm(bent - rest, axis=1) > 1e-6
    weights = open_body.lbs_weights.numpy()
    forearm_hand = sorted(_descendants(J["left_elbow"]))
    weight_below_elbow = weights[:, forearm_hand].sum(axis=1)
    assert moved.sum() > 500
    assert np.all(weight_below_elbow[moved] > 0)  # only skin bound to the forearm/hand moves
    assert np.all(moved[weight_below_elbow > 0.01])  # and all of that skin moves
    assert rest[moved, 0].min() > 0.2  # nothing on the torso or the other side
    hand = weights[:, J["left_wrist"]] > 0.9
    assert np.linalg.norm(bent[hand] - rest[hand], axis=1).min() > 0.1


def test_jaw_open_moves_only_the_head(open_body):
    names = list(open_body.expression_names)
    expression = torch.zeros(1, len(names))
    expression[0, names.index("jawOpen")] = 1.0
    rest, joints = _rest(open_body)
    with torch.no_grad():
        opened = open_body(expression=expression).vertices[0].numpy()
    moved = np.linalg.norm(opened - rest, axis=1) > 1e-5
    assert moved.sum() > 100
    weights = open_body.lbs_weights.numpy()
    head_group = weights[:, [J["head"], J["jaw"], J["left_eye_smplhf"], J["right_eye_smplhf"]]].sum(1)
    # Nothing on the torso, shoulders or arms moves (the throat skin may stretch a little).
    assert rest[moved, 1].min() > joints[J["spine3"], 1] and np.abs(rest[moved, 0]).max() < 0.12
    assert rest[np.linalg.norm(opened - rest, axis=1) > 0.001, 1].min() > joints[J["neck"], 1] - 0.03
    # The skin under the chin stretches a little; everything that moves much is the head's.
    moved_much = np.linalg.norm(opened - rest, axis=1) > 0.005
    assert moved_much.sum() > 50 and np.all(head_group[moved_much] > 0.5)
    # The chin goes down.
    chin = moved & (rest[:, 2] > joints[J["jaw"], 2]) & (rest[:, 1] < joints[J["jaw"], 1])
    assert (opened[chin, 1] - rest[chin, 1]).mean() < -0.003


def test_jaw_pose_moves_the_lower_face(open_body):
    rest, joints = _rest(open_body)
    with torch.no_grad():
        opened = open_body(jaw_pose=torch.tensor([[0.3, 0.0, 0.0]])).vertices[0].numpy()
    moved = np.linalg.norm(opened - rest, axis=1) > 1e-4
    assert moved.sum() > 100
    assert rest[moved, 1].max() < joints[J["left_eye_smplhf"], 1]  # nothing above the eyes
    assert opened[moved, 1].mean() < rest[moved, 1].mean()  # it opens downwards


def test_betas_change_the_body_and_joints_follow(open_body):
    with torch.no_grad():
        base = open_body()
        changed = open_body(betas=torch.tensor([[2.0] + [0.0] * (open_body.num_betas - 1)]))
    height = lambda v: (v[0, :, 1].max() - v[0, :, 1].min()).item()
    assert abs(height(changed.vertices) - height(base.vertices)) > 0.03
    # Regressed joints stay inside the changed body: near the mesh they were fitted to.
    v = changed.vertices[0]
    for joint in ("left_knee", "left_elbow", "head", "left_wrist"):
        distance = torch.cdist(changed.joints[0, J[joint]][None], v).min().item()
        assert distance < 0.08, joint


def test_gradients_reach_every_parameter(open_body):
    params = {k: v.clone().requires_grad_(True) for k, v in _random_params(2, open_body.num_betas, 52).items()}
    out = open_body(**params)
    (out.vertices.square().sum() + out.joint_transforms.sum()).backward()
    for name, value in params.items():
        assert value.grad is not None and value.grad.abs().sum() > 0, name


def test_device_and_dtype_are_followed(open_body_file):
    body = BodyModel.from_file(open_body_file, kind="open", dtype=torch.float64)
    out = body(body_pose=torch.zeros(1, 63, dtype=torch.float64))
    assert out.vertices.dtype == torch.float64 and out.vertices.device.type == "cpu"


def test_batch_size_and_broadcast(open_body):
    pose = torch.zeros(5, 21, 3)
    out = open_body(body_pose=pose, betas=torch.zeros(1, open_body.num_betas))
    assert out.vertices.shape[0] == 5 and out.joint_transforms.shape == (5, 55, 4, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda(open_body_file):
    body = BodyModel.from_file(open_body_file, kind="open", device="cuda")
    out = body(body_pose=torch.zeros(2, 21, 3, device="cuda"))
    assert out.vertices.is_cuda


@pytest.mark.parametrize("clip_file", ["amass_sample_smplh.npz", "talkshow_french.npy"])
def test_real_motion_gives_smplx_bone_directions(open_body, shared_data, clip_file):
    """The same SMPL-X pose on the open body and on the neutral SMPL-X skeleton points the limbs
    the same way (the open body's rest is SMPL-X's)."""
    from oneshot_avatar.motion import load_motion
    from smplx_reference import forward_kinematics

    clip = load_motion(shared_data / "motion" / clip_file)
    frames = slice(0, clip.num_frames, max(1, clip.num_frames // 40))
    full_pose = clip.full_pose()[frames]
    reference = forward_kinematics(mannequin_rest_joints(), full_pose.astype(np.float64))
    with torch.no_grad():
        params = clip.slice(frames.start, frames.stop).to_torch("cpu", torch.float32)
        ours = open_body(**{k: v[:: frames.step] for k, v in params.items()
                            if k not in ("transl", "expression")}).joints.numpy()
    bones = [
        ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
        ("left_hip", "left_ankle"), ("right_hip", "right_ankle"),
        ("left_index1", "left_index2"), ("right_middle1", "right_middle2"),
    ]
    for a, b in bones:
        error = angle_degrees(bone_direction(ours, J[a], J[b]), bone_direction(reference, J[a], J[b]))
        assert error.max() < 4.0, (clip_file, a, b, error.max())


def test_loading_a_body_twice_gives_independent_copies_and_sees_a_changed_file(
        open_body_file, tmp_path):
    """``load_body_model`` reads a file once per process (a run asks for its body several
    times), but every caller gets its own copy, and a file changed on disk is read again."""
    from oneshot_avatar.body import load_body_model

    path = tmp_path / "body.npz"
    shutil.copyfile(open_body_file, path)
    first = load_body_model(path, cache_dir=tmp_path)
    second = load_body_model(path, cache_dir=tmp_path)
    assert first is not second
    with torch.no_grad():
        first.smplx.v_template.add_(1.0)
    assert not torch.equal(first.smplx.v_template, second.smplx.v_template)
    assert torch.equal(load_body_model(path, cache_dir=tmp_path).smplx.v_template,
                       second.smplx.v_template)
    with np.load(path) as data:
        arrays = dict(data)
    arrays["v_template"] = arrays["v_template"] + np.float32(0.5)
    np.savez(path, **arrays)
    changed = load_body_model(path, cache_dir=tmp_path)
    torch.testing.assert_close(changed.smplx.v_template, second.smplx.v_template + 0.5)
