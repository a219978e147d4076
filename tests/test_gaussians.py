"""Gaussians bound to the body mesh: binding invariants, posing, densify/prune."""

from __future__ import annotations

import copy

import pytest
import torch

from oneshot_avatar.avatar import FixedPose, MeshGaussians, pose_gaussians, pose_gaussians_fixed
from oneshot_avatar.avatar.binding import (
    local_to_world,
    matrix_to_quat,
    quat_multiply,
    quat_to_matrix,
    triangle_frames,
)
from oneshot_avatar.avatar.densify import duplicate, prune, split
from oneshot_avatar.avatar.gaussians import sh0_to_rgb


def _random_rotation(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(4, generator=g, dtype=torch.float64)
    return quat_to_matrix(q / q.norm())


@pytest.fixture(scope="module")
def rest(open_body):
    with torch.no_grad():
        return open_body().vertices[0]


@pytest.fixture()
def gaussians(open_body, rest):
    g = MeshGaussians.on_mesh(rest, open_body.faces, 40000, sh_degree=1, seed=3)
    with torch.no_grad():  # give them some variety in their local frames
        gen = torch.Generator().manual_seed(4)
        g.local_means[:, 2] += 0.05 * torch.randn(g.num_gaussians, generator=gen)
        g.local_quats.copy_(torch.randn(g.num_gaussians, 4, generator=gen))
    return g


def _barycentric_and_offset(vertices, faces, binding, means):
    """Barycentric coordinates of each mean's projection on its triangle, and its offset along
    the normal in units of the triangle's mean edge length."""
    a, b, c = (vertices[..., faces[binding, i], :] for i in range(3))
    frames = triangle_frames(vertices, faces)
    rotations, scales = frames.rotations, frames.scales
    normal = rotations[..., binding, :, 2]
    offset = ((means - a) * normal).sum(-1)
    projected = means - offset[..., None] * normal
    v0, v1, v2 = b - a, c - a, projected - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    denom = d00 * d11 - d01 * d01
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    return torch.stack([1 - v - w, v, w], -1), offset / scales[..., binding]


def test_similarity_transform_carries_gaussians(open_body, rest, gaussians):
    faces = open_body.faces
    rotation = _random_rotation(0).float()
    moved = 1.7 * rest @ rotation.T + torch.tensor([0.3, -1.0, 2.0])
    with torch.no_grad():
        before = gaussians.place(rest[None], faces)
        after = gaussians.place(moved[None], faces)
    expected_means = 1.7 * before.means @ rotation.T + torch.tensor([0.3, -1.0, 2.0])
    torch.testing.assert_close(after.means, expected_means, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(after.scales, 1.7 * before.scales, atol=1e-6, rtol=1e-4)
    expected_rot = rotation @ quat_to_matrix(before.quats)
    # float32 frames of the smallest triangles limit the agreement to ~1e-3.
    torch.testing.assert_close(quat_to_matrix(after.quats), expected_rot, atol=2e-3, rtol=0)


def test_posing_keeps_barycentric_spot_and_normal_offset(open_body, rest, gaussians):
    faces = open_body.faces
    pose = torch.zeros(2, 21, 3)
    pose[0, 17] = torch.tensor([0.0, -1.3, 0.0])  # left elbow
    pose[1, 0] = torch.tensor([-0.8, 0.0, 0.2])  # left hip
    with torch.no_grad():
        rest_g = gaussians.place(rest[None], faces)
        posed = pose_gaussians(open_body, gaussians, body_pose=pose, betas=torch.full((1, 16), 0.5))
        posed_vertices = posed.vertices
    bary_rest, off_rest = _barycentric_and_offset(rest[None], faces, gaussians.binding, rest_g.means)
    bary_posed, off_posed = _barycentric_and_offset(posed_vertices, faces, gaussians.binding, posed.means)
    torch.testing.assert_close(bary_posed, bary_rest.expand_as(bary_posed), atol=2e-3, rtol=0)
    torch.testing.assert_close(off_posed, off_rest.expand_as(off_posed), atol=2e-3, rtol=0)


def test_posed_centres_follow_lbs_of_rest_centres(open_body, rest, gaussians):
    """For moderate poses a Gaussian moves like LBS of its rest centre with its triangle's
    interpolated skinning weights (the mesh deforms almost rigidly at that scale)."""
    faces = open_body.faces
    g = torch.Generator().manual_seed(7)
    pose = torch.randn(3, 21, 3, generator=g) * 0.25
    with torch.no_grad():
        rest_g = gaussians.place(rest[None], faces)
        out = open_body(body_pose=pose)
        posed = gaussians.place(out.vertices, faces)
    weights = open_body.lbs_weights[faces[gaussians.binding]].mean(dim=1)  # [N, 55]
    blended = torch.einsum("nj,bjxy->bnxy", weights, out.skin_transforms)
    lbs = torch.einsum("bnxy,ny->bnx", blended[..., :3, :3], rest_g.means[0]) + blended[..., :3, 3]
    error = (lbs - posed.means).norm(dim=-1)
    assert error.median() < 2e-3 and torch.quantile(error, 0.99) < 0.015


def test_gradients_reach_every_parameter(open_body, rest, gaussians):
    posed = pose_gaussians(open_body, gaussians, body_pose=torch.zeros(1, 21, 3))
    loss = (posed.means.sum() + posed.quats.square().sum() + posed.scales.sum()
            + posed.opacities.sum() + posed.sh.sum())
    loss.backward()
    for name, param in gaussians.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_a_pose_fixed_in_advance_poses_like_the_body_model_with_the_same_gradients(open_body, rest):
    """Training poses each view once (``FixedPose``) and moves only the mesh offsets: the
    Gaussians and the offsets' gradients equal those of the full body model, for shape,
    translation and a pose at once (float64, so that the comparison sees the maths, not the
    float32 rounding the thin triangles' frames amplify)."""
    body = copy.deepcopy(open_body).double()
    gaussians = MeshGaussians.on_mesh(rest, body.faces, 40000, sh_degree=1, seed=3).double()
    g = torch.Generator().manual_seed(11)
    params = {"body_pose": torch.randn(2, 21, 3, generator=g, dtype=torch.float64) * 0.4,
              "betas": torch.randn(2, 16, generator=g, dtype=torch.float64),
              "transl": torch.randn(2, 3, generator=g, dtype=torch.float64)}
    with torch.no_grad():
        gaussians.vertex_offsets.copy_(0.01 * torch.randn(gaussians.vertex_offsets.shape,
                                                          generator=g, dtype=torch.float64))
    weights = torch.randn(2, gaussians.num_gaussians, 3, generator=g, dtype=torch.float64)

    def means_and_gradient(posed):
        gaussians.vertex_offsets.grad = None
        (posed.means * weights).sum().backward()
        return posed.means.detach(), gaussians.vertex_offsets.grad.clone()

    expected = means_and_gradient(pose_gaussians(body, gaussians, **params))
    fixed = FixedPose.cat([FixedPose.of(body, **{k: v[i:i + 1] for k, v in params.items()})
                           for i in range(2)])
    got = means_and_gradient(pose_gaussians_fixed(fixed, gaussians, body.faces))
    torch.testing.assert_close(got[0], expected[0], atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(got[1], expected[1], atol=1e-10, rtol=1e-10)
    assert expected[1].abs().max() > 1  # the offsets' gradients are not all zero
    assert not fixed.base.requires_grad and not fixed.rotations.requires_grad


def test_the_compiled_placement_matches_the_pytorch_one(open_body, gaussians):
    """Rendering places Gaussians with a compiled kernel (no gradients, CPU); training with the
    PyTorch formulas. Same Gaussians on posed meshes, batch of 2."""
    pytest.importorskip("numba")
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        vertices = open_body(body_pose=torch.randn(2, 21, 3, generator=g) * 0.4).vertices
        fast = gaussians.place(vertices, open_body.faces)
    frames = triangle_frames(vertices, open_body.faces)  # the PyTorch path, as training runs it
    unit = gaussians.local_quats / gaussians.local_quats.norm(dim=-1, keepdim=True)
    means, quats, scales = local_to_world(frames, gaussians.binding, gaussians.local_means,
                                          unit, torch.exp(gaussians.log_scales))
    torch.testing.assert_close(fast.means, means.detach(), atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(fast.scales, scales.detach(), atol=1e-6, rtol=1e-4)
    # float32 frames of the smallest triangles limit the agreement of rotations to ~1e-3
    torch.testing.assert_close(quat_to_matrix(fast.quats), quat_to_matrix(quats.detach()),
                               atol=2e-3, rtol=0)
    close = (quat_to_matrix(fast.quats) - quat_to_matrix(quats.detach())).abs().amax((-1, -2))
    assert (close < 1e-5).float().mean() > 0.999
    assert fast.means.dtype == torch.float32 and fast.means.shape == means.shape


def _placement_and_gradients(place, vertices, faces, binding, inputs, weights):
    """World (means, quats, scales) of ``place(vertices, faces, binding, *inputs)`` and the
    gradients of a weighted sum of them with respect to the vertices and the three inputs."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (vertices, *inputs)]
    out = place(leaves[0], faces, binding, *leaves[1:])
    loss = sum((o * w).sum() for o, w in zip(out, weights))
    return [o.detach() for o in out], torch.autograd.grad(loss, leaves)


def _pytorch_place(vertices, faces, binding, means, quats, scales):
    return local_to_world(triangle_frames(vertices, faces), binding, means, quats, scales)


def test_training_placement_compiled_matches_pytorch_values_and_gradients(open_body, gaussians):
    """Training on the CPU places Gaussians with the compiled kernels and their hand-written
    backward: values and the gradients of the vertices, local means, quaternions and scales
    equal those of the PyTorch formulas (float64, posed meshes, batch of 2: every branch of
    the frame quaternion occurs), and do not depend on the number of threads."""
    pytest.importorskip("numba")
    from oneshot_avatar.avatar.cpu_place import place_cpu_grad

    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        vertices = open_body(body_pose=torch.randn(2, 21, 3, generator=g) * 0.4).vertices.double()
    inputs = (gaussians.local_means.double(),
              torch.nn.functional.normalize(gaussians.local_quats.double(), dim=-1),
              torch.exp(gaussians.log_scales.double()))
    weights = [torch.randn(2, gaussians.num_gaussians, k, generator=g, dtype=torch.float64)
               for k in (3, 4, 3)]
    args = (vertices, open_body.faces, gaussians.binding, inputs, weights)
    expected = _placement_and_gradients(_pytorch_place, *args)
    got = _placement_and_gradients(place_cpu_grad, *args)
    for a, b in zip(got[0], expected[0]):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    for a, b in zip(got[1], expected[1]):
        assert b.abs().max() > 0.1
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = _placement_and_gradients(place_cpu_grad, *args)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(single[1], got[1]):
        assert torch.equal(a, b)


def test_training_placement_compiled_on_degenerate_triangles():
    """Triangles with a zero-length edge, no area or no Gaussian, and triangles turned so that
    each of the frame quaternion's four branches is taken: the compiled gradients still equal
    PyTorch's (the same clamps), finite everywhere."""
    pytest.importorskip("numba")
    from oneshot_avatar.avatar.cpu_place import place_cpu_grad

    g = torch.Generator().manual_seed(9)
    flips = [torch.eye(3, dtype=torch.float64), torch.diag(torch.tensor([1.0, -1.0, -1.0])),
             torch.diag(torch.tensor([-1.0, 1.0, -1.0])), torch.diag(torch.tensor([-1.0, -1.0, 1.0]))]
    triangles = [torch.randn(3, 3, generator=g, dtype=torch.float64) @ flips[i % 4].double().T
                 for i in range(12)]
    triangles[0][1] = triangles[0][0]  # a zero-length edge
    triangles[1][2] = 0.5 * (triangles[1][0] + triangles[1][1])  # no area
    vertices = torch.cat(triangles)[None]
    faces = torch.arange(36).reshape(12, 3)
    branches = triangle_frames(vertices, faces).quats[0].abs().argmax(-1)  # largest component
    assert set(branches.tolist()) == {0, 1, 2, 3}
    binding = torch.tensor([0, 0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10])  # triangle 11: none
    n = binding.shape[0]
    inputs = (0.2 * torch.randn(n, 3, generator=g, dtype=torch.float64),
              torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=torch.float64), dim=-1),
              torch.rand(n, 3, generator=g, dtype=torch.float64))
    weights = [torch.randn(1, n, k, generator=g, dtype=torch.float64) for k in (3, 4, 3)]
    args = (vertices, faces, binding, inputs, weights)
    expected = _placement_and_gradients(_pytorch_place, *args)
    got = _placement_and_gradients(place_cpu_grad, *args)
    for a, b in zip([*got[0], *got[1]], [*expected[0], *expected[1]]):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)


def test_init_on_mesh_covers_every_triangle(open_body, rest):
    faces = open_body.faces
    g = MeshGaussians.on_mesh(rest, faces, 50000, sh_degree=3, color=(0.2, 0.4, 0.6))
    counts = g.binding_counter()
    assert g.num_gaussians == 50000 and counts.min() >= 1
    # Area-weighted: the largest triangles carry more Gaussians than the smallest ones.
    v0, v1, v2 = (rest[faces[:, i]] for i in range(3))
    area = 0.5 * torch.cross(v1 - v0, v2 - v0, dim=-1).norm(dim=-1)
    big, small = area > area.quantile(0.9), area < area.quantile(0.1)
    assert counts[big].float().mean() > 3 * counts[small].float().mean()
    torch.testing.assert_close(sh0_to_rgb(g.sh0[:, 0]), torch.tensor([0.2, 0.4, 0.6]).expand(50000, 3))
    assert g.sh_rest.shape == (50000, 15, 3) and torch.all(g.sh_rest == 0)
    with torch.no_grad():
        placed = g.place(rest[None], faces)
    # On the surface: the means lie in their triangles' planes.
    _, offset = _barycentric_and_offset(rest[None], faces, g.binding, placed.means)
    assert offset.abs().max() < 5e-4  # in edge lengths; float32 round-off
    with pytest.raises(ValueError, match="at least one Gaussian per triangle"):
        MeshGaussians.on_mesh(rest, faces, 100)


def test_init_from_points_binds_to_the_surface(open_body, rest):
    faces = open_body.faces
    g = torch.Generator().manual_seed(5)
    chosen = torch.randint(0, faces.shape[0], (3000,), generator=g)
    bary = torch.rand(3000, 3, generator=g)
    bary = bary / bary.sum(1, keepdim=True)
    points = torch.einsum("nk,nkd->nd", bary, rest[faces[chosen]])
    colors = torch.rand(3000, 3, generator=g)
    gaussians = MeshGaussians.from_points(rest, faces, points, colors, sh_degree=0)
    assert gaussians.binding_counter().min() >= 1
    with torch.no_grad():
        placed = gaussians.place(rest[None], faces).means[0]
    torch.testing.assert_close(placed[:3000], points, atol=1e-5, rtol=0)
    torch.testing.assert_close(sh0_to_rgb(gaussians.sh0[:3000, 0]), colors, atol=1e-5, rtol=0)


def test_densify_and_prune_keep_everything_in_step(open_body, rest, gaussians):
    opt = torch.optim.Adam(gaussians.parameters(), lr=1e-3)
    pose_gaussians(open_body, gaussians).means.sum().backward()
    opt.step()
    g = torch.Generator().manual_seed(0)

    def check():
        n = gaussians.num_gaussians
        for name in ("local_means", "local_quats", "log_scales", "opacity_logits", "sh0", "sh_rest"):
            param = getattr(gaussians, name)
            assert param.shape[0] == n, name
            assert any(param is p for group in opt.param_groups for p in group["params"]), name
            state = opt.state.get(param)
            if state:
                assert state["exp_avg"].shape == param.shape and state["exp_avg_sq"].shape == param.shape
        assert gaussians.binding.shape == (n,)
        assert gaussians.binding_counter().min() >= 1

    marked = gaussians.opacity_logits.detach().clone()
    removed = prune(gaussians, torch.rand(gaussians.num_gaussians, generator=g) < 0.95, opt)
    assert 0 < removed < 0.95 * 40000
    check()
    # Pruning everything keeps exactly one (the most opaque) per triangle.
    prune(gaussians, torch.ones(gaussians.num_gaussians, dtype=torch.bool), opt)
    assert gaussians.num_gaussians == gaussians.num_faces
    check()
    del marked
    n = gaussians.num_gaussians
    selected = torch.rand(n, generator=g) < 0.2
    before = gaussians.local_means.detach()[selected].clone()
    assert duplicate(gaussians, selected, opt) == int(selected.sum())
    torch.testing.assert_close(gaussians.local_means.detach()[n:], before)
    check()
    selected = torch.rand(gaussians.num_gaussians, generator=g) < 0.2
    count = gaussians.num_gaussians
    added = split(gaussians, selected, rest, open_body.faces, opt, generator=g)
    assert added == int(selected.sum()) and gaussians.num_gaussians == count + added
    check()
    # Training goes on with the new tensors.
    pose_gaussians(open_body, gaussians).means.sum().backward()
    opt.step()


def test_quaternion_helpers_agree():
    rotations = torch.stack([_random_rotation(i) for i in range(20)])
    quats = matrix_to_quat(rotations)
    torch.testing.assert_close(quat_to_matrix(quats), rotations, atol=1e-10, rtol=0)
    product = quat_multiply(quats[:10], quats[10:])
    torch.testing.assert_close(quat_to_matrix(product), rotations[:10] @ rotations[10:], atol=1e-10, rtol=0)
