"""The training's image losses compiled for the CPU, forward and backward.

**Mean SSIM**, the twin of ``losses.ssim_map(...).mean()`` (same window, constants and 'valid'
region).

PyTorch's version runs one grouped convolution over the five local moments and about twenty
element-wise passes over full-size maps, each kept for autograd. Forward + backward at the
fast preset's 256² on this 2-core machine (``benchmarks/train_step.py``): the photo's D-SSIM
8 ms against 26 ms, the perceptual substitute's three scales on the person's box (with the
gradient term below) 20 ms against 61 ms.
Here every output row is one pass: the separable Gaussian blur of the five moments, the SSIM
and its three partial derivatives per pixel (with respect to the blurred ``x``, ``x²`` and
``x·y``); the backward blurs those three back (the blur's transpose) and combines them per
input pixel. Rows run on the rasterizer's thread pool.

**Gradient difference**, the twin of ``perceptual``'s ``mean |G(x) - G(y)|`` (``G``: the Sobel
gradient magnitude of the luminance), one pass per output row forward and per input row
backward.

Both compute in the input's dtype (float32 in training, as PyTorch's).

**Mesh regularisers**: the uniform Laplacian of the vertex offsets and the normal consistency of
adjacent faces, in float64 over the mesh's adjacency as CSR arrays (``MeshIndex``, built once
per topology). Their PyTorch versions gather and scatter per edge and per face pair under
autograd: 26 ms forward + backward per step on the open body, against 6 ms here.

Every sum here runs in a fixed order (per row, per CSR group, then numpy's sum), so
the results do not depend on the number of threads. Imported (and numba with it) only when
used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numba import njit
from torch import Tensor

from oneshot_avatar.avatar.cpu_place import _cross, group_by, group_sum, vertices_backward
from oneshot_avatar.render.cpu_kernels import _share
from oneshot_avatar.render.cpu_rasterizer import _run

_FAST_MATH = {"contract", "reassoc", "arcp", "nsz"}  # no "afn": divisions stay exact


@njit(nogil=True, cache=True, fastmath=_FAST_MATH)
def ssim_rows(worker, workers, x, y, window, rows):
    """The horizontal blur of ``x, y, x², y², x·y`` ([P, H, W] each) for every input row:
    rows [5, P, H, W'] with W' = W - k + 1."""
    P, H, W = x.shape
    k = window.shape[0]
    Wo = W - k + 1
    start, stop = _share(worker, workers, P * H)
    for item in range(start, stop):
        p = item // H
        r = item - p * H
        xr, yr = x[p, r], y[p, r]
        for m in range(5):
            rows[m, p, r, :] = 0.0
        for t in range(k):
            wt = window[t]
            for j in range(Wo):
                a = xr[j + t]
                b = yr[j + t]
                rows[0, p, r, j] += wt * a
                rows[1, p, r, j] += wt * b
                rows[2, p, r, j] += wt * a * a
                rows[3, p, r, j] += wt * b * b
                rows[4, p, r, j] += wt * a * b


@njit(nogil=True, cache=True, fastmath=_FAST_MATH)
def ssim_columns(worker, workers, rows, window, c1, c2, row_sums, partials, want_partials):
    """The vertical blur, then per output pixel the SSIM (summed per output row into
    ``row_sums [P * H']``) and, with ``want_partials``, its derivatives with respect to the
    blurred x, x² and x·y (partials [3, P, H', W'])."""
    _, P, H, Wo = rows.shape
    k = window.shape[0]
    Ho = H - k + 1
    mu = np.empty((5, Wo), rows.dtype)
    start, stop = _share(worker, workers, P * Ho)
    for item in range(start, stop):
        p = item // Ho
        i = item - p * Ho
        mu[:, :] = 0.0
        for t in range(k):
            wt = window[t]
            for m in range(5):
                for j in range(Wo):
                    mu[m, j] += wt * rows[m, p, i + t, j]
        total = 0.0
        for j in range(Wo):
            mx, my = mu[0, j], mu[1, j]
            a1 = 2.0 * mx * my + c1
            a2 = 2.0 * (mu[4, j] - mx * my) + c2
            b1 = mx * mx + my * my + c1
            b2 = (mu[2, j] - mx * mx) + (mu[3, j] - my * my) + c2
            inv = 1.0 / (b1 * b2)
            s = a1 * a2 * inv
            total += s
            if want_partials:
                partials[0, p, i, j] = 2.0 * (my * (a2 - a1) * inv + mx * s * (1.0 / b2 - 1.0 / b1))
                partials[1, p, i, j] = -s / b2
                partials[2, p, i, j] = 2.0 * a1 * inv
        row_sums[item] = total


@njit(nogil=True, cache=True, fastmath=_FAST_MATH)
def ssim_backward(worker, workers, x, y, window, partials, scale, grad):
    """d(mean SSIM)/dx = Gᵀ(∂/∂μx) + 2x · Gᵀ(∂/∂E[x²]) + y · Gᵀ(∂/∂E[xy]), times ``scale``
    (the upstream gradient over the number of SSIM pixels), per input row: grad [P, H, W]."""
    P, H, W = x.shape
    k = window.shape[0]
    _, _, Ho, Wo = partials.shape
    column = np.empty((3, Wo), x.dtype)  # the vertical transpose of one input row
    back = np.empty((3, W), x.dtype)  # and then the horizontal one
    start, stop = _share(worker, workers, P * H)
    for item in range(start, stop):
        p = item // H
        r = item - p * H
        column[:, :] = 0.0
        for i in range(max(0, r - k + 1), min(r, Ho - 1) + 1):
            wt = window[r - i]
            for m in range(3):
                for j in range(Wo):
                    column[m, j] += wt * partials[m, p, i, j]
        back[:, :] = 0.0
        for t in range(k):
            wt = window[t]
            for m in range(3):
                for j in range(Wo):
                    back[m, j + t] += wt * column[m, j]
        for c in range(W):
            grad[p, r, c] = scale * (back[0, c] + 2.0 * x[p, r, c] * back[1, c]
                                     + y[p, r, c] * back[2, c])


class _MeanSSIM(torch.autograd.Function):
    """``(pred, target [B, C, H, W])`` -> mean SSIM, differentiable in ``pred``."""

    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor, window: Tensor, c1: float, c2: float) -> Tensor:
        B, C, H, W = pred.shape
        dtype = np.float64 if pred.dtype == torch.float64 else np.float32
        x = np.ascontiguousarray(pred.detach().numpy().astype(dtype, copy=False)).reshape(B * C, H, W)
        y = np.ascontiguousarray(target.detach().numpy().astype(dtype, copy=False)).reshape(B * C, H, W)
        window = window.detach().to(torch.float64).numpy().astype(dtype)
        k = window.shape[0]
        Ho, Wo = H - k + 1, W - k + 1
        rows = np.empty((5, B * C, H, Wo), dtype)
        _run(ssim_rows, x, y, window, rows)
        want = ctx.needs_input_grad[0]
        partials = np.empty((3, B * C, Ho, Wo) if want else (3, 0, 0, 0), dtype)
        row_sums = np.empty(B * C * Ho)
        _run(ssim_columns, rows, window, c1, c2, row_sums, partials, want)
        if want:
            ctx.arrays = (x, y, window, partials)
            ctx.shape = pred.shape
        return pred.new_tensor(float(row_sums.sum()) / (B * C * Ho * Wo))

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        x, y, window, partials = ctx.arrays
        grad = np.empty_like(x)
        scale = float(grad_output) / partials[0].size
        _run(ssim_backward, x, y, window, partials, scale, grad)
        return torch.from_numpy(grad).reshape(ctx.shape).to(grad_output.dtype), None, None, None, None


def mean_ssim_cpu(pred: Tensor, target: Tensor, window: Tensor, c1: float, c2: float) -> Tensor:
    """Mean SSIM of two CPU ``[B, C, H, W]`` tensors of one shape with the 1D Gaussian
    ``window`` (odd length, at most the image's sides) and constants ``c1, c2``,
    differentiable in ``pred``."""
    return _MeanSSIM.apply(pred, target, window, c1, c2)


# ---------------------------------------------------------------------------------------------
# Gradient difference: mean |G(x) - G(y)|, G = sqrt(gx² + gy² + eps) of the luminance

GRADIENT_EPS = 1e-12


@njit(inline="always")
def _sobel(lum, i, j):
    """Sobel / 8 at output pixel (i, j) of a luminance plane (cross-correlation, 'valid')."""
    gx = ((lum[i, j + 2] - lum[i, j]) + 2.0 * (lum[i + 1, j + 2] - lum[i + 1, j])
          + (lum[i + 2, j + 2] - lum[i + 2, j])) * 0.125
    gy = ((lum[i + 2, j] - lum[i, j]) + 2.0 * (lum[i + 2, j + 1] - lum[i, j + 1])
          + (lum[i + 2, j + 2] - lum[i, j + 2])) * 0.125
    return gx, gy


@njit(nogil=True, cache=True, fastmath=_FAST_MATH)
def luminance(worker, workers, rgb, weights, out):
    """rgb [B, 3, H, W] -> out [B, H, W] = Σ_c weights[c] rgb[:, c]."""
    B, _, H, W = rgb.shape
    start, stop = _share(worker, workers, B * H)
    for item in range(start, stop):
        b = item // H
        r = item - b * H
        for c in range(W):
            out[b, r, c] = (rgb[b, 0, r, c] * weights[0] + rgb[b, 1, r, c] * weights[1]
                            + rgb[b, 2, r, c] * weights[2])


@njit(nogil=True, cache=True, fastmath=_FAST_MATH)
def gradient_rows(worker, workers, lx, ly, row_sums, partials, want_partials):
    """Per output row: the sum of |G(x) - G(y)| into ``row_sums [B * H']`` and, with
    ``want_partials``, sign(G(x) - G(y)) · (gx, gy) / G(x) (partials [2, B, H', W'])."""
    B, H, W = lx.shape
    Ho, Wo = H - 2, W - 2
    start, stop = _share(worker, workers, B * Ho)
    for item in range(start, stop):
        b = item // Ho
        i = item - b * Ho
        total = 0.0
        for j in range(Wo):
            ax, ay = _sobel(lx[b], i, j)
            bx, by = _sobel(ly[b], i, j)
            gx_mag = np.sqrt(ax * ax + ay * ay + GRADIENT_EPS)
            diff = gx_mag - np.sqrt(bx * bx + by * by + GRADIENT_EPS)
            total += abs(diff)
            if want_partials:
                sign = 1.0 if diff > 0.0 else (-1.0 if diff < 0.0 else 0.0)
                partials[0, b, i, j] = sign * ax / gx_mag
                partials[1, b, i, j] = sign * ay / gx_mag
        row_sums[item] = total


@njit(nogil=True, cache=True, fastmath=_FAST_MATH)
def gradient_backward(worker, workers, partials, weights, scale, grad):
    """The Sobel filters' transpose of the partials, per input row, times ``scale`` and each
    channel's luminance weight: grad [B, 3, H, W]."""
    _, B, Ho, Wo = partials.shape
    H, W = Ho + 2, Wo + 2
    start, stop = _share(worker, workers, B * H)
    for item in range(start, stop):
        b = item // H
        r = item - b * H
        for c in range(W):
            total = 0.0
            for a in range(3):  # output row i = r - a uses input row r at filter row a
                i = r - a
                if i < 0 or i >= Ho:
                    continue
                for d in range(3):
                    j = c - d
                    if j < 0 or j >= Wo:
                        continue
                    kx = (d - 1) * (2.0 if a == 1 else 1.0) * 0.125  # sobel[a, d]
                    ky = (a - 1) * (2.0 if d == 1 else 1.0) * 0.125  # sobel.T[a, d]
                    total += kx * partials[0, b, i, j] + ky * partials[1, b, i, j]
            for ch in range(3):
                grad[b, ch, r, c] = scale * weights[ch] * total


class _GradientDifference(torch.autograd.Function):
    """``(pred, target [B, 3, H, W], luminance weights [3])`` -> mean |G(pred) - G(target)|,
    differentiable in ``pred``."""

    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor, weights: tuple[float, float, float]) -> Tensor:
        B, _, H, W = pred.shape
        dtype = np.float64 if pred.dtype == torch.float64 else np.float32
        coefficients = np.asarray(weights, dtype)
        planes = []
        for image in (pred, target):
            rgb = np.ascontiguousarray(image.detach().numpy().astype(dtype, copy=False))
            lum = np.empty((B, H, W), dtype)
            _run(luminance, rgb, coefficients, lum)
            planes.append(lum)
        want = ctx.needs_input_grad[0]
        partials = np.empty((2, B, H - 2, W - 2) if want else (2, 0, 0, 0), dtype)
        row_sums = np.empty(B * (H - 2))
        _run(gradient_rows, planes[0], planes[1], row_sums, partials, want)
        if want:
            ctx.arrays = (partials, coefficients)
            ctx.shape = pred.shape
        return pred.new_tensor(float(row_sums.sum()) / (B * (H - 2) * (W - 2)))

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        partials, coefficients = ctx.arrays
        grad = np.empty(tuple(ctx.shape), partials.dtype)
        scale = float(grad_output) / partials[0].size
        _run(gradient_backward, partials, coefficients, scale, grad)
        return torch.from_numpy(grad).to(grad_output.dtype), None, None


def gradient_difference_cpu(pred: Tensor, target: Tensor,
                            weights: tuple[float, float, float]) -> Tensor:
    """Mean |G(pred) - G(target)| of two CPU ``[B, 3, H, W]`` tensors (H, W >= 3), G the Sobel
    gradient magnitude (filters / 8) of the luminance ``Σ weights[c] rgb[c]``."""
    return _GradientDifference.apply(pred, target, tuple(float(w) for w in weights))


# ---------------------------------------------------------------------------------------------
# Mesh regularisers: the uniform Laplacian of the offsets and the normal consistency of faces

NORMAL_EPS = 1e-12  # face_normals' clamp of the cross product's length


@njit(nogil=True, cache=True)
def laplacian_forward(worker, workers, x, first, neighbours, lap, squares):
    """lap [V, 3] = x_i - mean of x over i's neighbours (CSR ``first``/``neighbours``; 0 for
    a vertex without any) and squares [V] = |lap_i|²."""
    start, stop = _share(worker, workers, x.shape[0])
    for i in range(start, stop):
        count = first[i + 1] - first[i]
        if count == 0:
            lap[i, 0] = lap[i, 1] = lap[i, 2] = squares[i] = 0.0
            continue
        sx, sy, sz = group_sum(x, neighbours, first, i)
        lx, ly, lz = x[i, 0] - sx / count, x[i, 1] - sy / count, x[i, 2] - sz / count
        lap[i, 0], lap[i, 1], lap[i, 2] = lx, ly, lz
        squares[i] = lx * lx + ly * ly + lz * lz


@njit(nogil=True, cache=True)
def laplacian_backward(worker, workers, lap, first, neighbours, scale, grad):
    """d(Σ|lap|²)/dx · scale: 2 (lap_k - Σ_{i ∈ N(k)} lap_i / deg_i) per vertex k (the
    adjacency is symmetric)."""
    V = lap.shape[0]
    start, stop = _share(worker, workers, V)
    for k in range(start, stop):
        gx, gy, gz = lap[k, 0], lap[k, 1], lap[k, 2]
        for e in range(first[k], first[k + 1]):
            i = neighbours[e]
            inv = 1.0 / (first[i + 1] - first[i])
            gx -= lap[i, 0] * inv
            gy -= lap[i, 1] * inv
            gz -= lap[i, 2] * inv
        grad[k, 0], grad[k, 1], grad[k, 2] = 2.0 * scale * gx, 2.0 * scale * gy, 2.0 * scale * gz


@njit(inline="always")
def _edges(vertices, faces, f):
    """Face ``f``'s edges v1 - v0 and v2 - v0 (6 numbers) on ``vertices [V, 3]``."""
    i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
    return (vertices[i1, 0] - vertices[i0, 0], vertices[i1, 1] - vertices[i0, 1],
            vertices[i1, 2] - vertices[i0, 2], vertices[i2, 0] - vertices[i0, 0],
            vertices[i2, 1] - vertices[i0, 1], vertices[i2, 2] - vertices[i0, 2])


@njit(nogil=True, cache=True)
def normals_forward(worker, workers, vertices, faces, normals, lengths):
    """Unit face normals [F, 3] (cross product over its length clamped at NORMAL_EPS) and the
    cross products' lengths [F]."""
    F = faces.shape[0]
    start, stop = _share(worker, workers, F)
    for f in range(start, stop):
        ax, ay, az, bx, by, bz = _edges(vertices, faces, f)
        nx, ny, nz = _cross(ax, ay, az, bx, by, bz)
        length = np.sqrt(nx * nx + ny * ny + nz * nz)
        inv = 1.0 / max(length, NORMAL_EPS)
        normals[f, 0], normals[f, 1], normals[f, 2] = nx * inv, ny * inv, nz * inv
        lengths[f] = length


@njit(nogil=True, cache=True)
def pair_dots(worker, workers, normals, pairs, dots):
    """dots [P] = n_a · n_b of each face pair."""
    start, stop = _share(worker, workers, pairs.shape[0])
    for q in range(start, stop):
        a, b = pairs[q, 0], pairs[q, 1]
        dots[q] = normals[a, 0] * normals[b, 0] + normals[a, 1] * normals[b, 1] \
            + normals[a, 2] * normals[b, 2]


@njit(nogil=True, cache=True)
def normals_backward(worker, workers, vertices, faces, normals, lengths, first, others, scale,
                     corners):
    """d(scale · Σ_pairs n_a · n_b) back to each face's corners [F, 3, 3]: a face's normal
    gets ``scale`` times the sum of its partners' normals (``others[first[f]:first[f+1]]``)."""
    F = faces.shape[0]
    start, stop = _share(worker, workers, F)
    for f in range(start, stop):
        vx, vy, vz = group_sum(normals, others, first, f)
        vx, vy, vz = vx * scale, vy * scale, vz * scale
        nx, ny, nz = normals[f, 0], normals[f, 1], normals[f, 2]
        length = lengths[f]
        if length >= NORMAL_EPS:  # through the normalisation
            along = nx * vx + ny * vy + nz * vz
            gx, gy, gz = (vx - nx * along) / length, (vy - ny * along) / length, \
                (vz - nz * along) / length
        else:  # the clamped length is a constant
            gx, gy, gz = vx / NORMAL_EPS, vy / NORMAL_EPS, vz / NORMAL_EPS
        ax, ay, az, bx, by, bz = _edges(vertices, faces, f)
        # n = a x b: grad a = b x g, grad b = g x a
        gax, gay, gaz = _cross(bx, by, bz, gx, gy, gz)
        gbx, gby, gbz = _cross(gx, gy, gz, ax, ay, az)
        corners[f, 0, 0], corners[f, 0, 1], corners[f, 0, 2] = -gax - gbx, -gay - gby, -gaz - gbz
        corners[f, 1, 0], corners[f, 1, 1], corners[f, 1, 2] = gax, gay, gaz
        corners[f, 2, 0], corners[f, 2, 1], corners[f, 2, 2] = gbx, gby, gbz


@dataclass(frozen=True)
class MeshIndex:
    """A mesh's adjacency as CSR arrays for the kernels, built once per topology."""

    faces: np.ndarray  # [F, 3] int64
    neighbour_first: np.ndarray  # [V + 1]: vertex i's neighbours are neighbours[first[i]:first[i+1]]
    neighbours: np.ndarray  # [2E]
    pairs: np.ndarray  # [P, 2] faces sharing an edge
    partner_first: np.ndarray  # [F + 1]: face f's partners are partners[first[f]:first[f+1]]
    partners: np.ndarray  # [2P]
    corner_order: np.ndarray  # [3F] the corner slots (3 f + k) grouped by vertex
    corner_first: np.ndarray  # [V + 1]

    @classmethod
    def build(cls, faces: Tensor, edges: Tensor, face_pairs: Tensor, num_vertices: int) -> MeshIndex:
        faces_np = np.ascontiguousarray(faces.cpu().numpy().astype(np.int64))
        e = edges.cpu().numpy().astype(np.int64)
        ends, starts = np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]])
        order, neighbour_first = group_by(ends, num_vertices)
        pairs = np.ascontiguousarray(face_pairs.cpu().numpy().astype(np.int64))
        sides = np.concatenate([pairs[:, 0], pairs[:, 1]])
        partner = np.concatenate([pairs[:, 1], pairs[:, 0]])
        pair_order, partner_first = group_by(sides, faces_np.shape[0])
        corner_order, corner_first = group_by(faces_np.reshape(-1), num_vertices)
        return cls(faces_np, neighbour_first, np.ascontiguousarray(starts[order]), pairs,
                   partner_first, np.ascontiguousarray(partner[pair_order]), corner_order,
                   corner_first)


class _Laplacian(torch.autograd.Function):
    """``offsets [V, 3]`` -> mean over vertices of |uniform Laplacian|²."""

    @staticmethod
    def forward(ctx, offsets: Tensor, index: MeshIndex) -> Tensor:
        x = np.ascontiguousarray(offsets.detach().numpy().astype(np.float64))
        lap, squares = np.empty_like(x), np.empty(x.shape[0])
        _run(laplacian_forward, x, index.neighbour_first, index.neighbours, lap, squares)
        ctx.state = (lap, index, offsets.dtype)
        return offsets.new_tensor(float(squares.sum()) / x.shape[0])

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        lap, index, dtype = ctx.state
        grad = np.empty_like(lap)
        _run(laplacian_backward, lap, index.neighbour_first, index.neighbours,
             float(grad_output) / lap.shape[0], grad)
        return torch.from_numpy(grad).to(dtype), None


class _NormalConsistency(torch.autograd.Function):
    """``vertices [V, 3]`` -> mean over adjacent face pairs of ``1 - n_a · n_b``."""

    @staticmethod
    def forward(ctx, vertices: Tensor, index: MeshIndex) -> Tensor:
        v = np.ascontiguousarray(vertices.detach().numpy().astype(np.float64))
        F = index.faces.shape[0]
        normals, lengths = np.empty((F, 3)), np.empty(F)
        _run(normals_forward, v, index.faces, normals, lengths)
        P = index.pairs.shape[0]
        dots = np.empty(P)
        _run(pair_dots, normals, index.pairs, dots)
        ctx.state = (v, normals, lengths, index, vertices.dtype)
        return vertices.new_tensor(1.0 - float(dots.sum()) / P if P else 0.0)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        v, normals, lengths, index, dtype = ctx.state
        P = index.pairs.shape[0]
        corners = np.empty((index.faces.shape[0], 3, 3))
        scale = -float(grad_output) / max(P, 1)
        _run(normals_backward, v, index.faces, normals, lengths, index.partner_first,
             index.partners, scale, corners)
        grad = np.empty((1,) + v.shape)
        _run(vertices_backward, index.corner_order, index.corner_first,
             corners.reshape(1, -1, 3), grad)
        return torch.from_numpy(grad[0]).to(dtype), None


def laplacian_loss_cpu(offsets: Tensor, index: MeshIndex) -> Tensor:
    """Mean over vertices of ``|L(offsets)_i|²`` (``regularizers.laplacian_loss``)."""
    return _Laplacian.apply(offsets, index)


def normal_consistency_loss_cpu(vertices: Tensor, index: MeshIndex) -> Tensor:
    """Mean over adjacent face pairs of ``1 - cos`` (``regularizers.normal_consistency_loss``)."""
    return _NormalConsistency.apply(vertices, index)
