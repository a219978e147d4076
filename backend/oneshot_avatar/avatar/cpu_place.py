"""``MeshGaussians.place`` compiled for the CPU: the same formulas as
``binding.triangle_frames``, ``columns_to_quat`` and ``local_to_world`` in float64, on the
threads of ``render.cpu_rasterizer``'s pool. Imported (and numba with it) only when used.

Two kernels place: ``frames_forward`` writes one frame per triangle, ``gaussians_forward`` the
Gaussians from their triangle's frame.

- Without gradients (rendering, previews, evaluation): ``place_cpu``.
- With gradients (training, the fit's silhouette term): ``place_cpu_grad``, an autograd
  function whose hand-written backward runs the chain in reverse: per Gaussian, per triangle
  (its Gaussians summed in index order) and per vertex (its corners summed in face order).
  Every sum has a fixed order, so the gradients do not depend on the number of threads. The
  fast preset's 27,420 Gaussians on the open body, float32, 2 threads
  (``benchmarks/train_step.py``, this 2-core machine): forward + backward 16-21 ms per call,
  against 60-75 ms for the PyTorch formulas."""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit
from torch import Tensor

from oneshot_avatar.render.cpu_kernels import _share
from oneshot_avatar.render.cpu_rasterizer import _as_f64 as _f64
from oneshot_avatar.render.cpu_rasterizer import _run

EPS = 1e-12  # triangle_frames' clamp of the edge and normal lengths


FRAME_FIELDS = 17  # per triangle: centroid 3, edge1 3, edge2 3, k 1, normal 3, quaternion 4
_C, _E1, _E2, _K, _Z, _Q = 0, 3, 6, 9, 10, 13
Q_ABS_MIN = 1e-12  # columns_to_quat's clamp of the four squared |components|
Q_DIVISOR_MIN = 0.1  # and of the largest |component| it divides by


@njit(inline="always")
def _cross(ax, ay, az, bx, by, bz):
    return ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx


@njit(inline="always")
def _quat_candidates(m00, m10, m20, m01, m11, m21, m02, m12, m22):
    """``columns_to_quat``'s choice: the branch (the largest of the four |components|), the
    clamped squares ``s`` and roots ``a`` of that branch, and its unnormalised quaternion."""
    s0 = 1.0 + m00 + m11 + m22
    s1 = 1.0 + m00 - m11 - m22
    s2 = 1.0 - m00 + m11 - m22
    s3 = 1.0 - m00 - m11 + m22
    a0 = math.sqrt(max(s0, Q_ABS_MIN))
    a1 = math.sqrt(max(s1, Q_ABS_MIN))
    a2 = math.sqrt(max(s2, Q_ABS_MIN))
    a3 = math.sqrt(max(s3, Q_ABS_MIN))
    d21, d02, d10 = m21 - m12, m02 - m20, m10 - m01
    s10, s02, s21 = m10 + m01, m02 + m20, m21 + m12
    best, top, square = 0, a0, s0
    if a1 > top:
        best, top, square = 1, a1, s1
    if a2 > top:
        best, top, square = 2, a2, s2
    if a3 > top:
        best, top, square = 3, a3, s3
    if best == 0:
        q = (top * top, d21, d02, d10)
    elif best == 1:
        q = (d21, top * top, s10, s02)
    elif best == 2:
        q = (d02, s10, top * top, s21)
    else:
        q = (d10, s02, s21, top * top)
    return best, top, square, q


@njit(inline="always")
def _frame_geometry(vertices, faces, b, f):
    """Triangle ``f`` of mesh ``b`` as ``triangle_frames`` sees it: edges e1 = v1 - v0,
    e2 = v2 - v0, e3 = v2 - v1, their lengths, the unit edge direction x, the cross product
    n = e1 x e2 and its length, the unit normal z and y = z x x."""
    i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
    e1 = (vertices[b, i1, 0] - vertices[b, i0, 0], vertices[b, i1, 1] - vertices[b, i0, 1],
          vertices[b, i1, 2] - vertices[b, i0, 2])
    e2 = (vertices[b, i2, 0] - vertices[b, i0, 0], vertices[b, i2, 1] - vertices[b, i0, 1],
          vertices[b, i2, 2] - vertices[b, i0, 2])
    e3 = (e2[0] - e1[0], e2[1] - e1[1], e2[2] - e1[2])
    l1 = math.sqrt(e1[0] * e1[0] + e1[1] * e1[1] + e1[2] * e1[2])
    l2 = math.sqrt(e2[0] * e2[0] + e2[1] * e2[1] + e2[2] * e2[2])
    l3 = math.sqrt(e3[0] * e3[0] + e3[1] * e3[1] + e3[2] * e3[2])
    d1 = max(l1, EPS)
    x = (e1[0] / d1, e1[1] / d1, e1[2] / d1)
    n = _cross(e1[0], e1[1], e1[2], e2[0], e2[1], e2[2])
    ln = math.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
    dn = max(ln, EPS)
    z = (n[0] / dn, n[1] / dn, n[2] / dn)
    y = _cross(z[0], z[1], z[2], x[0], x[1], x[2])
    return e1, e2, e3, l1, l2, l3, x, n, ln, z, y


@njit(nogil=True, cache=True)
def frames_forward(worker, workers, vertices, faces, table):
    """vertices [B, V, 3], faces [F, 3] -> table [B, F, FRAME_FIELDS]: each triangle's centroid,
    edges v1 - v0 and v2 - v0, mean edge length k, unit normal and frame quaternion."""
    B, F = table.shape[0], table.shape[1]
    start, stop = _share(worker, workers, B * F)
    for item in range(start, stop):
        b = item // F
        f = item - b * F
        e1, e2, _, l1, l2, l3, x, _, _, z, y = _frame_geometry(vertices, faces, b, f)
        _, top, _, q = _quat_candidates(x[0], x[1], x[2], y[0], y[1], y[2], z[0], z[1], z[2])
        r = 1.0 / (2.0 * max(top, Q_DIVISOR_MIN))
        qw, qx, qy, qz = q[0] * r, q[1] * r, q[2] * r, q[3] * r
        r = 1.0 / math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        if qw * r < 0.0:
            r = -r
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        row = table[b, f]
        for j in range(3):
            row[_C + j] = (vertices[b, i0, j] + vertices[b, i1, j] + vertices[b, i2, j]) / 3.0
        for j in range(3):
            row[_E1 + j] = e1[j]
            row[_E2 + j] = e2[j]
            row[_Z + j] = z[j]
        row[_K] = (l1 + l3 + l2) / 3.0
        row[_Q], row[_Q + 1], row[_Q + 2], row[_Q + 3] = qw * r, qx * r, qy * r, qz * r


@njit(nogil=True, cache=True)
def gaussians_forward(worker, workers, table, binding, local_means, local_quats, local_scales,
                      means, quats, scales):
    """table [B, F, FRAME_FIELDS], binding [N], local means/quats (unit)/scales [N, 3|4|3]
    -> means [B, N, 3], quats [B, N, 4], scales [B, N, 3]."""
    B, N = means.shape[0], means.shape[1]
    start, stop = _share(worker, workers, B * N)
    for item in range(start, stop):
        b = item // N
        n = item - b * N
        row = table[b, binding[n]]
        u, w, d = local_means[n, 0], local_means[n, 1], local_means[n, 2]
        k = row[_K]
        for j in range(3):
            means[b, n, j] = row[_C + j] + u * row[_E1 + j] + w * row[_E2 + j] + d * k * row[_Z + j]
            scales[b, n, j] = k * local_scales[n, j]
        qw, qx, qy, qz = row[_Q], row[_Q + 1], row[_Q + 2], row[_Q + 3]
        pw, px, py, pz = local_quats[n, 0], local_quats[n, 1], local_quats[n, 2], local_quats[n, 3]
        quats[b, n, 0] = qw * pw - qx * px - qy * py - qz * pz
        quats[b, n, 1] = qw * px + qx * pw + qy * pz - qz * py
        quats[b, n, 2] = qw * py - qx * pz + qy * pw + qz * px
        quats[b, n, 3] = qw * pz + qx * py - qy * px + qz * pw


@njit(nogil=True, cache=True)
def gaussians_backward(worker, workers, table, binding, local_means, local_quats, local_scales,
                       v_means, v_quats, v_scales, v_rows, v_local_means, v_local_quats,
                       v_local_scales):
    """``gaussians_forward`` in reverse: each Gaussian's gradient of its triangle's row
    (v_rows [B, N, FRAME_FIELDS]) and of its local values (summed over the batch)."""
    B, N = v_means.shape[0], v_means.shape[1]
    start, stop = _share(worker, workers, N)
    for n in range(start, stop):
        u, w, d = local_means[n, 0], local_means[n, 1], local_means[n, 2]
        pw, px, py, pz = local_quats[n, 0], local_quats[n, 1], local_quats[n, 2], local_quats[n, 3]
        gu = gw = gd = 0.0
        gpw = gpx = gpy = gpz = 0.0
        gs0 = gs1 = gs2 = 0.0
        for b in range(B):
            row = table[b, binding[n]]
            out = v_rows[b, n]
            k = row[_K]
            vm0, vm1, vm2 = v_means[b, n, 0], v_means[b, n, 1], v_means[b, n, 2]
            z_vm = row[_Z] * vm0 + row[_Z + 1] * vm1 + row[_Z + 2] * vm2
            vs0, vs1, vs2 = v_scales[b, n, 0], v_scales[b, n, 1], v_scales[b, n, 2]
            for j, vm in enumerate((vm0, vm1, vm2)):
                out[_C + j] = vm
                out[_E1 + j] = u * vm
                out[_E2 + j] = w * vm
                out[_Z + j] = d * k * vm
            out[_K] = d * z_vm + local_scales[n, 0] * vs0 + local_scales[n, 1] * vs1 \
                + local_scales[n, 2] * vs2
            gu += row[_E1] * vm0 + row[_E1 + 1] * vm1 + row[_E1 + 2] * vm2
            gw += row[_E2] * vm0 + row[_E2 + 1] * vm1 + row[_E2 + 2] * vm2
            gd += k * z_vm
            gs0 += k * vs0
            gs1 += k * vs1
            gs2 += k * vs2
            qw, qx, qy, qz = row[_Q], row[_Q + 1], row[_Q + 2], row[_Q + 3]
            v0, v1, v2, v3 = v_quats[b, n, 0], v_quats[b, n, 1], v_quats[b, n, 2], v_quats[b, n, 3]
            out[_Q] = v0 * pw + v1 * px + v2 * py + v3 * pz
            out[_Q + 1] = -v0 * px + v1 * pw - v2 * pz + v3 * py
            out[_Q + 2] = -v0 * py + v1 * pz + v2 * pw - v3 * px
            out[_Q + 3] = -v0 * pz - v1 * py + v2 * px + v3 * pw
            gpw += v0 * qw + v1 * qx + v2 * qy + v3 * qz
            gpx += -v0 * qx + v1 * qw + v2 * qz - v3 * qy
            gpy += -v0 * qy - v1 * qz + v2 * qw + v3 * qx
            gpz += -v0 * qz + v1 * qy - v2 * qx + v3 * qw
        v_local_means[n, 0], v_local_means[n, 1], v_local_means[n, 2] = gu, gw, gd
        v_local_quats[n, 0], v_local_quats[n, 1] = gpw, gpx
        v_local_quats[n, 2], v_local_quats[n, 3] = gpy, gpz
        v_local_scales[n, 0], v_local_scales[n, 1], v_local_scales[n, 2] = gs0, gs1, gs2


@njit(nogil=True, cache=True)
def frames_backward(worker, workers, vertices, faces, order, first, v_rows, v_corners):
    """``frames_forward`` in reverse: each triangle's row gradient, summed over its Gaussians
    (``order[first[f]:first[f + 1]]``, ascending), taken back to its corners
    (v_corners [B, F, 3, 3])."""
    B, F = v_rows.shape[0], faces.shape[0]
    g = np.empty(FRAME_FIELDS)
    start, stop = _share(worker, workers, B * F)
    for item in range(start, stop):
        b = item // F
        f = item - b * F
        corners = v_corners[b, f]
        if first[f] == first[f + 1]:  # no Gaussian on it
            corners[:, :] = 0.0
            continue
        g[:] = 0.0
        for i in range(first[f], first[f + 1]):
            row = v_rows[b, order[i]]
            for j in range(FRAME_FIELDS):
                g[j] += row[j]
        e1, e2, e3, l1, l2, l3, x, n, ln, z, y = _frame_geometry(vertices, faces, b, f)
        e1x, e1y, e1z = e1
        e2x, e2y, e2z = e2
        e3x, e3y, e3z = e3
        xx, xy, xz = x
        nx, ny, nz = n
        zx, zy, zz = z
        yx, yy, yz = y
        d1, dn = max(l1, EPS), max(ln, EPS)
        # the quaternion of the columns (x, y, z), in reverse
        best, top, square, q = _quat_candidates(xx, xy, xz, yx, yy, yz, zx, zy, zz)
        t = max(top, Q_DIVISOR_MIN)
        r = 1.0 / (2.0 * t)
        q1w, q1x, q1y, q1z = q[0] * r, q[1] * r, q[2] * r, q[3] * r
        norm = math.sqrt(q1w * q1w + q1x * q1x + q1y * q1y + q1z * q1z)
        sign = -1.0 if q1w / norm < 0.0 else 1.0
        vw, vx, vy, vz = sign * g[_Q], sign * g[_Q + 1], sign * g[_Q + 2], sign * g[_Q + 3]
        along = (q1w * vw + q1x * vx + q1y * vy + q1z * vz) / (norm * norm)
        v1w, v1x, v1y, v1z = (vw - q1w * along) / norm, (vx - q1x * along) / norm, \
            (vy - q1y * along) / norm, (vz - q1z * along) / norm
        v_top = -(q1w * v1w + q1x * v1x + q1y * v1y + q1z * v1z) / t if top >= Q_DIVISOR_MIN \
            else 0.0
        rw, rx, ry, rz = v1w * r, v1x * r, v1y * r, v1z * r  # of the unnormalised candidate
        # its entries: the branch's top * top, and differences (d) or sums (s) of the matrix
        d21 = d02 = d10 = s10 = s02 = s21 = 0.0
        if best == 0:
            v_top += 2.0 * top * rw
            d21, d02, d10 = rx, ry, rz
        elif best == 1:
            v_top += 2.0 * top * rx
            d21, s10, s02 = rw, ry, rz
        elif best == 2:
            v_top += 2.0 * top * ry
            d02, s10, s21 = rw, rx, rz
        else:
            v_top += 2.0 * top * rz
            d10, s02, s21 = rw, rx, ry
        v_square = v_top * 0.5 / top if square >= Q_ABS_MIN else 0.0
        # square = 1 ± m00 ± m11 ± m22, signs per branch
        s00 = 1.0 if best < 2 else -1.0
        s11 = 1.0 if best == 0 or best == 2 else -1.0
        s22 = 1.0 if best == 0 or best == 3 else -1.0
        gxx = s00 * v_square
        gxy = d10 + s10  # m10
        gxz = -d02 + s02  # m20
        gyx = -d10 + s10  # m01
        gyy = s11 * v_square
        gyz = d21 + s21  # m21
        gzx = d02 + s02  # m02
        gzy = -d21 + s21  # m12
        gzz = s22 * v_square + g[_Z + 2]
        gzx += g[_Z]
        gzy += g[_Z + 1]
        # y = z x x
        cx, cy, cz = _cross(xx, xy, xz, gyx, gyy, gyz)
        gzx, gzy, gzz = gzx + cx, gzy + cy, gzz + cz
        cx, cy, cz = _cross(gyx, gyy, gyz, zx, zy, zz)
        gxx, gxy, gxz = gxx + cx, gxy + cy, gxz + cz
        # z = n / max(|n|, eps)
        gnx, gny, gnz = gzx / dn, gzy / dn, gzz / dn
        if ln >= EPS:
            along = (nx * gzx + ny * gzy + nz * gzz) / (dn * dn * ln)
            gnx, gny, gnz = gnx - nx * along, gny - ny * along, gnz - nz * along
        # x = e1 / max(|e1|, eps)
        g1x, g1y, g1z = g[_E1] + gxx / d1, g[_E1 + 1] + gxy / d1, g[_E1 + 2] + gxz / d1
        if l1 >= EPS:
            along = (e1x * gxx + e1y * gxy + e1z * gxz) / (d1 * d1 * l1)
            g1x, g1y, g1z = g1x - e1x * along, g1y - e1y * along, g1z - e1z * along
        # n = e1 x e2
        cx, cy, cz = _cross(e2x, e2y, e2z, gnx, gny, gnz)
        g1x, g1y, g1z = g1x + cx, g1y + cy, g1z + cz
        cx, cy, cz = _cross(gnx, gny, gnz, e1x, e1y, e1z)
        g2x, g2y, g2z = g[_E2] + cx, g[_E2 + 1] + cy, g[_E2 + 2] + cz
        # k = (|e1| + |e3| + |e2|) / 3 (a zero-length edge passes nothing, as torch's norm)
        gk = g[_K] / 3.0
        g3x = g3y = g3z = 0.0
        if l1 > 0.0:
            g1x, g1y, g1z = g1x + gk * e1x / l1, g1y + gk * e1y / l1, g1z + gk * e1z / l1
        if l2 > 0.0:
            g2x, g2y, g2z = g2x + gk * e2x / l2, g2y + gk * e2y / l2, g2z + gk * e2z / l2
        if l3 > 0.0:
            g3x, g3y, g3z = gk * e3x / l3, gk * e3y / l3, gk * e3z / l3
        # centroid (v0 + v1 + v2) / 3, e1 = v1 - v0, e2 = v2 - v0, e3 = v2 - v1
        third = (g[_C] / 3.0, g[_C + 1] / 3.0, g[_C + 2] / 3.0)
        corners[0, 0], corners[0, 1], corners[0, 2] = \
            third[0] - g1x - g2x, third[1] - g1y - g2y, third[2] - g1z - g2z
        corners[1, 0], corners[1, 1], corners[1, 2] = \
            third[0] + g1x - g3x, third[1] + g1y - g3y, third[2] + g1z - g3z
        corners[2, 0], corners[2, 1], corners[2, 2] = \
            third[0] + g2x + g3x, third[1] + g2y + g3y, third[2] + g2z + g3z


@njit(nogil=True, cache=True)
def vertices_backward(worker, workers, order, first, v_corners, v_vertices):
    """Each vertex's gradient: its corners' (v_corners [B, F * 3, 3], slots
    ``order[first[v]:first[v + 1]]``, ascending) summed."""
    B, V = v_vertices.shape[0], v_vertices.shape[1]
    start, stop = _share(worker, workers, B * V)
    for item in range(start, stop):
        b = item // V
        v = item - b * V
        v_vertices[b, v, 0], v_vertices[b, v, 1], v_vertices[b, v, 2] = group_sum(
            v_corners[b], order, first, v)


@njit(inline="always")
def group_sum(rows, members, first, k):
    """The sum of the rows ``members[first[k]:first[k + 1]]`` of ``rows [M, 3]``, in that
    order (a CSR group, e.g. from ``group_by``)."""
    sx = sy = sz = 0.0
    for i in range(first[k], first[k + 1]):
        m = members[i]
        sx += rows[m, 0]
        sy += rows[m, 1]
        sz += rows[m, 2]
    return sx, sy, sz


@njit(nogil=True, cache=True)
def group_by(keys, groups):
    """A stable counting sort: ``order`` lists the indices of ``keys [M]`` (in 0..groups-1)
    group by group, ascending within a group, and group ``k`` is ``order[first[k]:first[k+1]]``."""
    first = np.zeros(groups + 1, np.int64)
    for key in keys:
        first[key + 1] += 1
    for k in range(groups):
        first[k + 1] += first[k]
    cursor = first[:-1].copy()
    order = np.empty(keys.shape[0], np.int64)
    for i in range(keys.shape[0]):
        order[cursor[keys[i]]] = i
        cursor[keys[i]] += 1
    return order, first


def _index(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.numpy().astype(np.int64))


def _place(vertices: np.ndarray, faces: np.ndarray, binding: np.ndarray,
           local: tuple[np.ndarray, np.ndarray, np.ndarray]):
    """The frames table [B, F, FRAME_FIELDS] and the world means, quats and scales (float64)."""
    B, N, F = vertices.shape[0], binding.shape[0], faces.shape[0]
    table = np.empty((B, F, FRAME_FIELDS))
    _run(frames_forward, vertices, faces, table)
    means, quats, scales = np.empty((B, N, 3)), np.empty((B, N, 4)), np.empty((B, N, 3))
    _run(gaussians_forward, table, binding, *local, means, quats, scales)
    return table, means, quats, scales


def place_cpu(vertices: Tensor, faces: Tensor, binding: Tensor, local_means: Tensor,
              local_quats: Tensor, local_scales: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """World means [B, N, 3], quats [B, N, 4] and scales [B, N, 3] (the vertices' dtype) of
    Gaussians bound to the triangles of ``vertices [B, V, 3]``; ``local_quats`` unit."""
    _, *placed = _place(_f64(vertices), _index(faces), _index(binding),
                        (_f64(local_means), _f64(local_quats), _f64(local_scales)))
    return tuple(torch.from_numpy(x).to(vertices.dtype) for x in placed)


class _PlaceGrad(torch.autograd.Function):
    """``(vertices [B, V, 3], local means, unit quats, linear scales)`` -> world ``(means,
    quats, scales)``, differentiable in all four."""

    @staticmethod
    def forward(ctx, vertices, local_means, local_quats, local_scales, faces, binding):
        verts, faces_np, binding_np = _f64(vertices), _index(faces), _index(binding)
        local = (_f64(local_means), _f64(local_quats), _f64(local_scales))
        table, means, quats, scales = _place(verts, faces_np, binding_np, local)
        ctx.arrays = (verts, faces_np, binding_np, table, local)
        ctx.dtype = dtype = vertices.dtype
        return (torch.from_numpy(means).to(dtype), torch.from_numpy(quats).to(dtype),
                torch.from_numpy(scales).to(dtype))

    @staticmethod
    def backward(ctx, v_means, v_quats, v_scales):
        verts, faces_np, binding_np, table, local = ctx.arrays
        B, V = verts.shape[:2]
        N, F = binding_np.shape[0], faces_np.shape[0]

        def upstream(grad, width):
            return np.zeros((B, N, width)) if grad is None else _f64(grad)

        v_rows = np.empty((B, N, FRAME_FIELDS))
        v_local = (np.empty((N, 3)), np.empty((N, 4)), np.empty((N, 3)))
        _run(gaussians_backward, table, binding_np, *local, upstream(v_means, 3),
             upstream(v_quats, 4), upstream(v_scales, 3), v_rows, *v_local)
        v_vertices = None
        if ctx.needs_input_grad[0]:
            v_corners = np.empty((B, F, 3, 3))
            _run(frames_backward, verts, faces_np, *group_by(binding_np, F), v_rows, v_corners)
            v_verts = np.empty((B, V, 3))
            _run(vertices_backward, *group_by(faces_np.reshape(-1), V),
                 v_corners.reshape(B, F * 3, 3), v_verts)
            v_vertices = torch.from_numpy(v_verts)
        dtype = ctx.dtype
        grads = [torch.from_numpy(g).to(dtype) if need else None
                 for g, need in zip(v_local, ctx.needs_input_grad[1:4])]
        return (None if v_vertices is None else v_vertices.to(dtype), *grads, None, None)


def place_cpu_grad(vertices: Tensor, faces: Tensor, binding: Tensor, local_means: Tensor,
                   local_quats: Tensor, local_scales: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``place_cpu`` with gradients for all four tensor inputs (``local_quats`` unit)."""
    return _PlaceGrad.apply(vertices, local_means, local_quats, local_scales, faces, binding)
