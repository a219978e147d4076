"""What the package's rig carries (avatar/rig.py): each Gaussian's skinning weights are the body's
vertex weights at its barycentric spot, so skinning the rest-pose Gaussians with them follows the
posed body (what the Blender rig does without the mesh)."""

from __future__ import annotations

import torch

from oneshot_avatar.avatar import MeshGaussians, pose_gaussians
from oneshot_avatar.avatar.rig import TOP_K_JOINTS, gaussian_skinning
from oneshot_avatar.body import lbs


def _top_k(weights: torch.Tensor, k: int = TOP_K_JOINTS):
    top = weights.topk(k, dim=-1)
    return top.indices, top.values / top.values.sum(-1, keepdim=True)


def test_a_gaussian_on_a_corner_or_the_centroid_gets_those_weights(open_body):
    body = open_body
    faces = body.faces[:3]
    gaussians = MeshGaussians.on_mesh(body.v_template, faces, 3, sh_degree=0, seed=0)
    with torch.no_grad():
        # Triangle 0: on corner v1 (u = 2/3, w = -1/3); triangle 1: centroid; triangle 2: outside
        # beyond corner v2 (clamped back to v2).
        gaussians.local_means.copy_(torch.tensor([[2 / 3, -1 / 3, 0.2], [0.0, 0.0, -0.1],
                                                  [-0.5, 1.5, 0.0]]))
        gaussians.binding.copy_(torch.tensor([0, 1, 2]))
    indices, weights = gaussian_skinning(gaussians, faces, body.lbs_weights)
    assert indices.shape == weights.shape == (3, TOP_K_JOINTS)
    expected = [
        _top_k(body.lbs_weights[faces[0, 1]]),
        _top_k(body.lbs_weights[faces[1]].mean(0)),
        _top_k(body.lbs_weights[faces[2, 2]]),
    ]
    for row, (want_indices, want_weights) in enumerate(expected):
        order = want_weights > 1e-6  # ties among zero weights may come in any order
        assert indices[row][order].tolist() == want_indices[order].tolist()
        torch.testing.assert_close(weights[row], want_weights, atol=1e-6, rtol=0)


def test_skinning_gaussians_with_their_weights_follows_the_posed_body(open_body):
    body = open_body
    with torch.no_grad():
        rest = body().vertices[0]
    gaussians = MeshGaussians.on_mesh(rest, body.faces, body.info.num_faces, sh_degree=0, seed=4)
    with torch.no_grad():  # on the surface, so only the skinning approximation is measured
        gaussians.local_means[:, 2] = 0.0
    pose = {"body_pose": torch.zeros(1, 21, 3)}
    pose["body_pose"][0, 17] = torch.tensor([0.0, 0.0, 0.8])  # bend the right elbow
    pose["body_pose"][0, 0] = torch.tensor([0.4, 0.0, 0.0])  # and the left hip
    indices, weights = gaussian_skinning(gaussians, body.faces, body.lbs_weights)
    with torch.no_grad():
        placed = pose_gaussians(body, gaussians, **pose).means[0]  # [N, 3] on the posed mesh
        at_rest = gaussians.place(rest[None], body.faces).means  # [1, N, 3]
        skin = body(**pose).skin_transforms  # [1, 55, 4, 4]
        dense = torch.zeros(gaussians.num_gaussians, body.lbs_weights.shape[1])
        dense.scatter_(1, indices, weights)
        skinned = lbs.skin_points(dense, skin, at_rest)[0]
    moved = (placed - at_rest[0]).norm(dim=-1)
    error = (skinned - placed).norm(dim=-1)
    assert float(moved.max()) > 0.1  # the pose does move the arm
    assert float(error.median()) < 1e-4
    assert float(error.max()) < 0.1 * float(moved.max())
