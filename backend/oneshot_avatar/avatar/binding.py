"""Triangle frames: where a mesh-bound Gaussian lives.

Each Gaussian has a parent triangle (v0, v1, v2) and lives in that triangle's local frame, so
moving the mesh (posing, shape, expression, learned offsets) carries it:

- mean: affine coordinates ``(u, w, d)`` -- ``mean = c + u (v1 - v0) + w (v2 - v0) + d k n``
  with ``c`` the centroid, ``n`` the unit normal and ``k`` the mean edge length. ``(0, 0, 0)`` is
  the centroid; ``(u, w)`` fix the barycentric spot, ``d`` the offset along the normal in
  units of ``k``. A Gaussian therefore keeps its barycentric spot and (scaled) normal offset
  under *any* deformation of its triangle.
- rotation: the orthonormal frame R = [x, y, n] with x along the first edge (v0 -> v1) and
  y = n x x; world rotation = R * local rotation.
- scale: world scale = k * local scale.

For a similarity transform of the triangle (rotation, uniform scale, translation) the whole
Gaussian (mean, rotation, scale) is transformed exactly with it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class TriangleFrames(NamedTuple):
    origins: Tensor  # [..., F, 3] centroids
    rotations: Tensor  # [..., F, 3, 3] columns: edge direction, in-plane normal, face normal
    scales: Tensor  # [..., F] mean edge length
    edges1: Tensor  # [..., F, 3] v1 - v0
    edges2: Tensor  # [..., F, 3] v2 - v0


def triangle_frames(vertices: Tensor, faces: Tensor, eps: float = 1e-12) -> TriangleFrames:
    """Frames of the triangles ``faces [F, 3]`` of a batch of meshes ``vertices [..., V, 3]``."""
    v0 = vertices[..., faces[:, 0], :]
    v1 = vertices[..., faces[:, 1], :]
    v2 = vertices[..., faces[:, 2], :]
    origins = (v0 + v1 + v2) / 3.0
    e01, e02, e12 = v1 - v0, v2 - v0, v2 - v1
    x = e01 / e01.norm(dim=-1, keepdim=True).clamp_min(eps)
    normal = torch.cross(e01, e02, dim=-1)
    z = normal / normal.norm(dim=-1, keepdim=True).clamp_min(eps)
    y = torch.cross(z, x, dim=-1)
    rotations = torch.stack([x, y, z], dim=-1)
    scales = (e01.norm(dim=-1) + e12.norm(dim=-1) + e02.norm(dim=-1)) / 3.0
    return TriangleFrames(origins, rotations, scales, e01, e02)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product of wxyz quaternions [..., 4]."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def matrix_to_quat(matrix: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] to unit wxyz quaternions [..., 4] (w >= 0), differentiable."""
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate |components|; pick the largest per matrix for stability.
    q_abs = torch.stack(
        [1.0 + m00 + m11 + m22, 1.0 + m00 - m11 - m22, 1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22],
        dim=-1,
    ).clamp_min(1e-12).sqrt()
    candidates = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], q_abs[..., 1] ** 2, m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1], q_abs[..., 2] ** 2, m[..., 2, 1] + m[..., 1, 2]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2], q_abs[..., 3] ** 2], -1),
        ],
        dim=-2,
    ) / (2.0 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(dim=-1)
    quat = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quat = quat / quat.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def _right_product_matrix(q: Tensor) -> Tensor:
    """M(q) [..., 4, 4] with ``quat_multiply(p, q) == M(q) @ p`` for wxyz quaternions."""
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            w, -x, -y, -z,
            x, w, z, -y,
            y, -z, w, x,
            z, y, -x, w,
        ],
        dim=-1,
    ).unflatten(-1, (4, 4))  # fmt: skip


def quat_to_matrix(quat: Tensor) -> Tensor:
    """wxyz quaternions [..., 4] (normalised here) to rotation matrices [..., 3, 3]."""
    q = quat / quat.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)  # fmt: skip


def local_to_world(
    frames: TriangleFrames,  # of F triangles, batch [...]
    binding: Tensor,  # [N] parent triangle per Gaussian
    local_means: Tensor,  # [N, 3] (u, w, d)
    local_quats: Tensor,  # [N, 4] wxyz, unit
    local_scales: Tensor,  # [N, 3] (linear, not log)
) -> tuple[Tensor, Tensor, Tensor]:
    """World means [..., N, 3], quats [..., N, 4] and scales [..., N, 3] of bound Gaussians."""
    # Everything per triangle (F) is computed first and packed into one [..., F, 17] table:
    # quaternion (4), centroid (3), edge1 (3), edge2 (3), k * normal (3), k (1). One gather
    # takes it to the Gaussians (N, several per triangle); two small contractions finish.
    k = frames.scales[..., None]
    table = torch.cat(
        [matrix_to_quat(frames.rotations), frames.origins, frames.edges1, frames.edges2,
         k * frames.rotations[..., 2], k],
        dim=-1,
    ).index_select(-2, binding)  # [..., N, 17]
    basis = table[..., 4:16].unflatten(-1, (4, 3))  # rows: centroid, edge1, edge2, k * normal
    coefficients = torch.cat([torch.ones_like(local_means[:, :1]), local_means], dim=-1)  # [N, 4]
    means = torch.einsum("...nkd,nk->...nd", basis, coefficients)
    quats = torch.einsum("nij,...nj->...ni", _right_product_matrix(local_quats), table[..., :4])
    return means, quats, table[..., 16:] * local_scales


def barycentric_from_local(local_means: Tensor) -> Tensor:
    """Barycentric coordinates ``[N, 3]`` (weights of v0, v1, v2) of local means ``(u, w, d)``."""
    u, w = local_means[:, 0], local_means[:, 1]
    return torch.stack([1.0 / 3.0 - u - w, 1.0 / 3.0 + u, 1.0 / 3.0 + w], dim=-1)


def world_to_local(frames: TriangleFrames, binding: Tensor, means: Tensor) -> Tensor:
    """Local means ``(u, w, d)`` [N, 3] of world points [N, 3] bound to the given triangles of
    one mesh (the inverse of :func:`local_to_world` for the mean)."""
    normal = frames.rotations[binding, :, 2]
    offset = means - frames.origins[binding]
    d = (offset * normal).sum(-1)
    in_plane = offset - d[:, None] * normal
    e1, e2 = frames.edges1[binding], frames.edges2[binding]
    d11, d12, d22 = (e1 * e1).sum(-1), (e1 * e2).sum(-1), (e2 * e2).sum(-1)
    p1, p2 = (in_plane * e1).sum(-1), (in_plane * e2).sum(-1)
    det = (d11 * d22 - d12 * d12).clamp_min(1e-30)
    u = (d22 * p1 - d12 * p2) / det
    w = (d11 * p2 - d12 * p1) / det
    return torch.stack([u, w, d / frames.scales[binding]], dim=-1)


def closest_point_on_triangles(points: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Closest points [N, 3] on triangles (a, b, c) [N, 3] to ``points`` [N, 3] (Ericson's
    region tests, vectorised)."""
    ab, ac, ap = b - a, c - a, points - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = points - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = points - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    denom = (va + vb + vc).clamp_min(1e-20)
    v = vb / denom
    w = vc / denom
    result = a + ab * v[:, None] + ac * w[:, None]  # inside the face

    def edge(mask, start, direction, t):
        return torch.where(mask[:, None], start + direction * t[:, None], result)

    t_ab = d1 / (d1 - d3).clamp_min(1e-20)
    result = edge((vc <= 0) & (d1 >= 0) & (d3 <= 0), a, ab, t_ab)
    t_ac = d2 / (d2 - d6).clamp_min(1e-20)
    result = edge((vb <= 0) & (d2 >= 0) & (d6 <= 0), a, ac, t_ac)
    t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6)).clamp_min(1e-20)
    result = edge((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), b, c - b, t_bc)
    result = torch.where(((d1 <= 0) & (d2 <= 0))[:, None], a, result)
    result = torch.where(((d3 >= 0) & (d4 <= d3))[:, None], b, result)
    result = torch.where(((d6 >= 0) & (d5 <= d6))[:, None], c, result)
    return result
