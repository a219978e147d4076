"""A compiled forward of ``MeshGaussians.place`` for the CPU when nothing needs gradients
(rendering, previews, evaluation): the same formulas as ``binding.triangle_frames``,
``columns_to_quat`` and ``local_to_world``, one Gaussian at a time in float64, on the
threads of ``render.cpu_rasterizer``'s pool. Imported (and numba with it) only when used."""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit
from torch import Tensor

EPS = 1e-12  # triangle_frames' clamp of the edge and normal lengths


@njit(nogil=True, cache=True)
def place_forward(worker, workers, vertices, faces, binding, local_means, local_quats,
                  local_scales, means, quats, scales):
    """vertices [B, V, 3], faces [F, 3], binding [N], local_means/quats/scales [N, 3|4|3]
    (quats unit) -> means [B, N, 3], quats [B, N, 4], scales [B, N, 3]; this worker's share
    of the B * N Gaussians."""
    B = vertices.shape[0]
    N = binding.shape[0]
    per = (B * N + workers - 1) // workers
    start = min(worker * per, B * N)
    stop = min(start + per, B * N)
    for item in range(start, stop):
        b = item // N
        n = item - b * N
        f = binding[n]
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        ax, ay, az = vertices[b, i0, 0], vertices[b, i0, 1], vertices[b, i0, 2]
        bx, by, bz = vertices[b, i1, 0], vertices[b, i1, 1], vertices[b, i1, 2]
        cx, cy, cz = vertices[b, i2, 0], vertices[b, i2, 1], vertices[b, i2, 2]
        e1x, e1y, e1z = bx - ax, by - ay, bz - az
        e2x, e2y, e2z = cx - ax, cy - ay, cz - az
        e3x, e3y, e3z = cx - bx, cy - by, cz - bz
        l1 = math.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
        l2 = math.sqrt(e2x * e2x + e2y * e2y + e2z * e2z)
        l3 = math.sqrt(e3x * e3x + e3y * e3y + e3z * e3z)
        r = 1.0 / max(l1, EPS)
        xx, xy, xz = e1x * r, e1y * r, e1z * r
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        r = 1.0 / max(math.sqrt(nx * nx + ny * ny + nz * nz), EPS)
        zx, zy, zz = nx * r, ny * r, nz * r
        yx = zy * xz - zz * xy
        yy = zz * xx - zx * xz
        yz = zx * xy - zy * xx
        k = (l1 + l3 + l2) / 3.0
        # columns_to_quat of (x, y, z): m_ij = column j, row i
        m00, m10, m20 = xx, xy, xz
        m01, m11, m21 = yx, yy, yz
        m02, m12, m22 = zx, zy, zz
        a0 = math.sqrt(max(1.0 + m00 + m11 + m22, 1e-12))
        a1 = math.sqrt(max(1.0 + m00 - m11 - m22, 1e-12))
        a2 = math.sqrt(max(1.0 - m00 + m11 - m22, 1e-12))
        a3 = math.sqrt(max(1.0 - m00 - m11 + m22, 1e-12))
        d21, d02, d10 = m21 - m12, m02 - m20, m10 - m01
        s10, s02, s21 = m10 + m01, m02 + m20, m21 + m12
        best = 0
        top = a0
        if a1 > top:
            best, top = 1, a1
        if a2 > top:
            best, top = 2, a2
        if a3 > top:
            best, top = 3, a3
        if best == 0:
            qw, qx, qy, qz = a0 * a0, d21, d02, d10
        elif best == 1:
            qw, qx, qy, qz = d21, a1 * a1, s10, s02
        elif best == 2:
            qw, qx, qy, qz = d02, s10, a2 * a2, s21
        else:
            qw, qx, qy, qz = d10, s02, s21, a3 * a3
        r = 1.0 / (2.0 * max(top, 0.1))
        qw, qx, qy, qz = qw * r, qx * r, qy * r, qz * r
        r = 1.0 / math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        qw, qx, qy, qz = qw * r, qx * r, qy * r, qz * r
        if qw < 0.0:
            qw, qx, qy, qz = -qw, -qx, -qy, -qz
        # means = centroid + u e1 + w e2 + d k z
        u, w, d = local_means[n, 0], local_means[n, 1], local_means[n, 2]
        means[b, n, 0] = (ax + bx + cx) / 3.0 + u * e1x + w * e2x + d * k * zx
        means[b, n, 1] = (ay + by + cy) / 3.0 + u * e1y + w * e2y + d * k * zy
        means[b, n, 2] = (az + bz + cz) / 3.0 + u * e1z + w * e2z + d * k * zz
        # quats = frame quaternion (x) local quaternion (Hamilton product)
        pw, px, py, pz = local_quats[n, 0], local_quats[n, 1], local_quats[n, 2], local_quats[n, 3]
        quats[b, n, 0] = qw * pw - qx * px - qy * py - qz * pz
        quats[b, n, 1] = qw * px + qx * pw + qy * pz - qz * py
        quats[b, n, 2] = qw * py - qx * pz + qy * pw + qz * px
        quats[b, n, 3] = qw * pz + qx * py - qy * px + qz * pw
        for j in range(3):
            scales[b, n, j] = k * local_scales[n, j]


def _f64(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(torch.float64).numpy())


def place_cpu(vertices: Tensor, faces: Tensor, binding: Tensor, local_means: Tensor,
              local_quats: Tensor, local_scales: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """World means [B, N, 3], quats [B, N, 4] and scales [B, N, 3] (the vertices' dtype) of
    Gaussians bound to the triangles of ``vertices [B, V, 3]``; ``local_quats`` unit."""
    from oneshot_avatar.render.cpu_rasterizer import _run

    B, N = vertices.shape[0], binding.shape[0]
    means, quats, scales = np.empty((B, N, 3)), np.empty((B, N, 4)), np.empty((B, N, 3))
    _run(place_forward, _f64(vertices), np.ascontiguousarray(faces.numpy().astype(np.int64)),
         np.ascontiguousarray(binding.numpy().astype(np.int64)), _f64(local_means),
         _f64(local_quats), _f64(local_scales), means, quats, scales)
    dtype = vertices.dtype
    return (torch.from_numpy(means).to(dtype), torch.from_numpy(quats).to(dtype),
            torch.from_numpy(scales).to(dtype))
