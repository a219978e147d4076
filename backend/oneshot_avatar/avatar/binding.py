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


class _GatherRows(torch.autograd.Function):
    """``x.index_select(-2, index)`` whose backward sums the rows with one 2D ``index_add_``
    along dim 0 (the leading dims moved into the columns): on the CPU several times faster
    than autograd's ``index_add_`` along dim -2 of a batched tensor."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.shape = x.shape
        return x.index_select(-2, index)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (index,) = ctx.saved_tensors
        *_, rows, cols = ctx.shape
        flat = grad.reshape(-1, index.shape[0], cols).transpose(0, 1).reshape(index.shape[0], -1)
        summed = grad.new_zeros(rows, flat.shape[1]).index_add_(0, index, flat)
        return summed.reshape(rows, -1, cols).transpose(0, 1).reshape(ctx.shape), None


def gather_rows(x: Tensor, index: Tensor) -> Tensor:  # [..., R, C], [M] -> [..., M, C]
    """Rows ``index`` of ``x`` along dim -2, differentiable in ``x``."""
    return _GatherRows.apply(x, index)


class TriangleFrames(NamedTuple):
    origins: Tensor  # [..., F, 3] centroids
    rotations: Tensor  # [..., F, 3, 3] columns: edge direction, in-plane normal, face normal
    scales: Tensor  # [..., F] mean edge length
    edges1: Tensor  # [..., F, 3] v1 - v0
    edges2: Tensor  # [..., F, 3] v2 - v0
    quats: Tensor  # [..., F, 4] wxyz of ``rotations``
    normals: Tensor  # [..., F, 3] unit face normals (the third column of ``rotations``)


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """``torch.cross(a, b, dim=-1)`` from element-wise products (faster on the CPU for many
    short vectors, forward and backward)."""
    a0, a1, a2 = a.unbind(-1)
    b0, b1, b2 = b.unbind(-1)
    return torch.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], dim=-1)


def triangle_frames(vertices: Tensor, faces: Tensor, eps: float = 1e-12) -> TriangleFrames:
    """Frames of the triangles ``faces [F, 3]`` of a batch of meshes ``vertices [..., V, 3]``."""
    # one gather (its backward: one 2D index_add) instead of three advanced-indexing reads
    corners = gather_rows(vertices, faces.reshape(-1)).unflatten(-2, (-1, 3))
    v0, v1, v2 = corners.unbind(-2)
    origins = (v0 + v1 + v2) / 3.0
    e01, e02, e12 = v1 - v0, v2 - v0, v2 - v1
    x = e01 / e01.norm(dim=-1, keepdim=True).clamp_min(eps)
    normal = _cross(e01, e02)
    z = normal / normal.norm(dim=-1, keepdim=True).clamp_min(eps)
    y = _cross(z, x)
    rotations = torch.stack([x, y, z], dim=-1)
    scales = (e01.norm(dim=-1) + e12.norm(dim=-1) + e02.norm(dim=-1)) / 3.0
    return TriangleFrames(origins, rotations, scales, e01, e02, columns_to_quat(x, y, z), z)


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
    return columns_to_quat(*matrix.unbind(-1))


def columns_to_quat(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    """``matrix_to_quat`` of the rotation whose columns are ``x, y, z [..., 3]``. Works on the
    nine entries as separate tensors (``unbind``), so its backward stacks them instead of
    scattering each into a zero-filled copy of the matrix."""
    m00, m10, m20 = x.unbind(-1)
    m01, m11, m21 = y.unbind(-1)
    m02, m12, m22 = z.unbind(-1)
    # Four candidate |components|; pick the largest per matrix for stability.
    q_abs = torch.stack(
        [1.0 + m00 + m11 + m22, 1.0 + m00 - m11 - m22, 1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22],
        dim=-1,
    ).clamp_min(1e-12).sqrt()
    a0, a1, a2, a3 = q_abs.unbind(-1)
    d21, d02, d10 = m21 - m12, m02 - m20, m10 - m01
    s10, s02, s21 = m10 + m01, m02 + m20, m21 + m12
    candidates = torch.stack(
        [
            torch.stack([a0 * a0, d21, d02, d10], -1),
            torch.stack([d21, a1 * a1, s10, s02], -1),
            torch.stack([d02, s10, a2 * a2, s21], -1),
            torch.stack([d10, s02, s21, a3 * a3], -1),
        ],
        dim=-2,
    ) / (2.0 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(dim=-1)
    quat = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quat = quat / quat.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., :1] < 0, -quat, quat)


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
    # takes it to the Gaussians (N, several per triangle); a weighted sum and a quaternion
    # product finish.
    k = frames.scales[..., None]
    table = gather_rows(torch.cat(
        [frames.quats, frames.origins, frames.edges1, frames.edges2, k * frames.normals, k],
        dim=-1,
    ), binding)  # [..., N, 17]
    basis = table[..., 4:16].unflatten(-1, (4, 3))  # rows: centroid, edge1, edge2, k * normal
    coefficients = torch.cat([torch.ones_like(local_means[:, :1]), local_means], dim=-1)  # [N, 4]
    # element-wise products summed (not einsum: its batched 4x4 matmuls are slow on the CPU)
    means = (basis * coefficients[:, :, None]).sum(dim=-2)
    quats = quat_multiply(table[..., :4], local_quats)  # = M(local) @ frame quaternion
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
