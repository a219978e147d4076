"""numba kernels of the CPU tile rasterizer: binning, per-tile forward blending and its
hand-written backward (gsplat's ``isect_tiles``, ``rasterize_to_pixels_3dgs_fwd`` and ``_bwd``
on a CPU, one tile per task).

Imported only when the ``"cpu"`` backend runs (importing numba and loading the cached machine
code takes about a second; compiling them the first time on a machine takes longer: see
``warm_up``). Every kernel works in float64 on arrays the caller converts, so there is one
compiled signature each; the results go back to the caller's dtype.

Per tile, the Gaussians are visited front to back (backward: back to front), each over only
the pixels where ``σ <= ln(255 o)`` could hold: for each pixel row the interval of ``dx`` solving
``½ a dx² + b dx dy + ½ c dy² <= ln(255 o)`` (the exact per-pixel test still decides, this only
skips pixels where ``α < 1/255`` anyway). Per-pixel state (transmittance, accumulated features,
the number of the last Gaussian composited) lives in small arrays for the tile's 256 pixels.

Determinism: each tile is computed by one thread in a fixed order; the backward writes every
(tile, Gaussian) pair's gradient into its own row of a scratch array and sums the rows per
Gaussian in the intersection order, so results do not depend on thread count or scheduling.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# gsplat's constants; tests check that they equal the PyTorch reference's.
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
TRANSMITTANCE_MIN = 1e-4
# Slack of the pixel-range search, so that rounding in solving the quadratic never drops a
# pixel the exact test would keep: σ units, and pixels.
SIGMA_SLACK = 1e-6
PIXEL_SLACK = 1e-3
# per (tile, Gaussian) gradient row: d/d(mean x, mean y, conic a, b, c, opacity, features...)
GRAD_FIXED = 6


@njit(parallel=True, cache=True)
def bin_gaussians(
    means2d,  # [I, N, 2] float64 pixel coordinates
    radii,  # [I, N, 2] int64 box half-sizes, 0 where culled
    depths,  # [I, N] float64
    visible,  # [I, N] bool
    tile_size,
    tiles_x,
    tiles_y,
):  # -> offsets [I * tiles + 1] int64, flat_ids [M] int64 into the flattened [I * N]
    """Every (image, tile, Gaussian) whose box overlaps the tile, grouped by tile, each tile's
    list sorted front to back by (depth, Gaussian index).

    Tile bounds as gsplat's ``isect_tiles``: ``[floor((m - r)/s), ceil((m + r)/s))`` per axis,
    clamped to the grid.
    """
    I, N = depths.shape
    tiles = tiles_x * tiles_y
    rect = np.zeros((I * N, 4), np.int64)  # tile x0, y0, x1, y1 (exclusive); empty if culled
    for f in prange(I * N):
        i = f // N
        n = f - i * N
        if not visible[i, n]:
            continue
        mx = means2d[i, n, 0] / tile_size
        my = means2d[i, n, 1] / tile_size
        rx = radii[i, n, 0] / tile_size
        ry = radii[i, n, 1] / tile_size
        rect[f, 0] = min(max(int(math.floor(mx - rx)), 0), tiles_x)
        rect[f, 1] = min(max(int(math.floor(my - ry)), 0), tiles_y)
        rect[f, 2] = min(max(int(math.ceil(mx + rx)), 0), tiles_x)
        rect[f, 3] = min(max(int(math.ceil(my + ry)), 0), tiles_y)

    counts = np.zeros(I * tiles, np.int64)
    for f in range(I * N):
        base = (f // N) * tiles
        for ty in range(rect[f, 1], rect[f, 3]):
            for tx in range(rect[f, 0], rect[f, 2]):
                counts[base + ty * tiles_x + tx] += 1
    offsets = np.zeros(I * tiles + 1, np.int64)
    for t in range(I * tiles):
        offsets[t + 1] = offsets[t] + counts[t]
    flat_ids = np.empty(offsets[I * tiles], np.int64)
    cursor = offsets[:-1].copy()
    for f in range(I * N):  # in index order, so a stable sort by depth breaks ties by index
        base = (f // N) * tiles
        for ty in range(rect[f, 1], rect[f, 3]):
            for tx in range(rect[f, 0], rect[f, 2]):
                t = base + ty * tiles_x + tx
                flat_ids[cursor[t]] = f
                cursor[t] += 1

    flat_depths = depths.reshape(I * N)
    for t in prange(I * tiles):
        start = offsets[t]
        count = offsets[t + 1] - start
        if count < 2:
            continue
        ids = flat_ids[start : start + count].copy()
        keys = np.empty(count, np.float64)
        for k in range(count):
            keys[k] = flat_depths[ids[k]]
        order = np.argsort(keys, kind="mergesort")  # stable
        for k in range(count):
            flat_ids[start + k] = ids[order[k]]
    return offsets, flat_ids


@njit(inline="always")
def _row_range(my, a, b, c, cut, y_lo, y_hi):
    """Pixel rows ``[r0, r1)`` within ``[y_lo, y_hi)`` whose centre can have ``σ <= cut``."""
    det = a * c - b * b
    if det <= 0.0:  # not positive definite (rounding): no bound from the conic
        return y_lo, y_hi
    ext = math.sqrt(2.0 * cut * a / det)
    r0 = max(int(math.ceil(my - ext - 0.5 - PIXEL_SLACK)), y_lo)
    r1 = min(int(math.floor(my + ext - 0.5 + PIXEL_SLACK)) + 1, y_hi)
    return r0, r1


@njit(inline="always")
def _col_range(mx, dy, a, b, c, cut, x_lo, x_hi):
    """Pixel columns ``[c0, c1)`` within ``[x_lo, x_hi)`` of a row at ``dy = my - y`` whose
    centre can have ``σ <= cut``: the roots of ``½ a dx² + b dy dx + ½ c dy² - cut`` (a > 0)."""
    disc = b * b * dy * dy - a * (c * dy * dy - 2.0 * cut)
    if disc < 0.0:
        return x_lo, x_lo
    root = math.sqrt(disc)
    dx_lo = (-b * dy - root) / a
    dx_hi = (-b * dy + root) / a
    # pixel centre x + 0.5 = mx - dx
    c0 = max(int(math.ceil(mx - dx_hi - 0.5 - PIXEL_SLACK)), x_lo)
    c1 = min(int(math.floor(mx - dx_lo - 0.5 + PIXEL_SLACK)) + 1, x_hi)
    return c0, c1


@njit(parallel=True, cache=True)
def rasterize_forward(
    offsets,  # [I * tiles + 1] int64
    flat_ids,  # [M] int64
    tile_order,  # [T'] int64 the non-empty tiles, most crowded first
    means2d,  # [F, 2] float64, F = I * N
    conics,  # [F, 3] float64 (a, b, c): σ = ½(a dx² + c dy²) + b dx dy
    opacities,  # [F] float64
    features,  # [F, D] float64
    num_images,
    width,
    height,
    tile_size,
    tiles_x,
    tiles_y,
):  # -> accumulated features [I, H, W, D], transmittance [I, H, W], last [I, H, W] int32
    """Front-to-back blending per tile with gsplat's skip (``σ < 0`` or ``α < 1/255``), cap
    (0.999) and exclusive early stop (the Gaussian that would bring T to 1e-4 or below is not
    composited and ends the pixel). ``last`` is 1 + the tile-list position of the last Gaussian
    composited into each pixel (0: none), which the backward starts from."""
    D = features.shape[1]
    tiles = tiles_x * tiles_y
    pixels = tile_size * tile_size
    out = np.zeros((num_images, height, width, D))
    trans_out = np.ones((num_images, height, width))
    last_out = np.zeros((num_images, height, width), np.int32)
    for j in prange(tile_order.shape[0]):
        t = tile_order[j]
        start = offsets[t]
        count = offsets[t + 1] - start
        image = t // tiles
        tile = t - image * tiles
        x_lo = (tile % tiles_x) * tile_size
        y_lo = (tile // tiles_x) * tile_size
        x_hi = min(x_lo + tile_size, width)
        y_hi = min(y_lo + tile_size, height)
        trans = np.ones(pixels)
        accum = np.zeros((pixels, D))
        last = np.zeros(pixels, np.int32)
        done = np.zeros(pixels, np.bool_)
        remaining = (x_hi - x_lo) * (y_hi - y_lo)
        for k in range(count):
            g = flat_ids[start + k]
            mx = means2d[g, 0]
            my = means2d[g, 1]
            a = conics[g, 0]
            b = conics[g, 1]
            c = conics[g, 2]
            o = opacities[g]
            cut = max(math.log(o / ALPHA_THRESHOLD), 0.0) + SIGMA_SLACK
            r0, r1 = _row_range(my, a, b, c, cut, y_lo, y_hi)
            for py in range(r0, r1):
                dy = my - (py + 0.5)
                c0, c1 = _col_range(mx, dy, a, b, c, cut, x_lo, x_hi)
                for px in range(c0, c1):
                    p = (py - y_lo) * tile_size + (px - x_lo)
                    if done[p]:
                        continue
                    dx = mx - (px + 0.5)
                    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                    if sigma < 0.0:
                        continue
                    alpha = min(MAX_ALPHA, o * math.exp(-sigma))
                    if alpha < ALPHA_THRESHOLD:
                        continue
                    t_next = trans[p] * (1.0 - alpha)
                    if t_next <= TRANSMITTANCE_MIN:
                        done[p] = True
                        remaining -= 1
                        continue
                    weight = alpha * trans[p]
                    for d in range(D):
                        accum[p, d] += weight * features[g, d]
                    trans[p] = t_next
                    last[p] = k + 1
            if remaining == 0:
                break
        for py in range(y_lo, y_hi):
            for px in range(x_lo, x_hi):
                p = (py - y_lo) * tile_size + (px - x_lo)
                trans_out[image, py, px] = trans[p]
                last_out[image, py, px] = last[p]
                for d in range(D):
                    out[image, py, px, d] = accum[p, d]
    return out, trans_out, last_out


@njit(parallel=True, cache=True)
def rasterize_backward(
    offsets,  # [I * tiles + 1] int64
    flat_ids,  # [M] int64
    tile_order,  # [T'] int64
    means2d,  # [F, 2] float64
    conics,  # [F, 3] float64
    opacities,  # [F] float64
    features,  # [F, D] float64
    trans_final,  # [I, H, W] float64 from the forward
    last,  # [I, H, W] int32 from the forward
    v_accum,  # [I, H, W, D] float64 dL/d(accumulated features)
    v_trans,  # [I, H, W] float64 dL/d(final transmittance)
    width,
    height,
    tile_size,
    tiles_x,
    tiles_y,
):  # -> [F, 6 + D]: dL/d(mean x, mean y, conic a, b, c, opacity, features)
    """Back to front per pixel from its last composited Gaussian, recovering the transmittance
    before each Gaussian by division (``T_i = T_{i+1} / (1 - α_i)``, as gsplat does) and
    keeping ``S = Σ_{j>i} f_j α_j T_j``:

    * ``dL/df_i = α_i T_i · v_F``;
    * ``dL/dα_i = Σ_d (f_id T_i - S_d / (1 - α_i)) v_F,d - T_final / (1 - α_i) · v_T``;
    * through ``α = o exp(-σ)`` only where ``o exp(-σ) <= 0.999`` (the cap passes no gradient).
    """
    D = features.shape[1]
    tiles = tiles_x * tiles_y
    pixels = tile_size * tile_size
    width_grad = GRAD_FIXED + D
    scratch = np.zeros((flat_ids.shape[0], width_grad))
    for j in prange(tile_order.shape[0]):
        t = tile_order[j]
        start = offsets[t]
        image = t // tiles
        tile = t - image * tiles
        x_lo = (tile % tiles_x) * tile_size
        y_lo = (tile // tiles_x) * tile_size
        x_hi = min(x_lo + tile_size, width)
        y_hi = min(y_lo + tile_size, height)
        trans = np.ones(pixels)
        t_final = np.ones(pixels)
        v_t = np.zeros(pixels)
        v_f = np.zeros((pixels, D))
        later = np.zeros((pixels, D))  # S
        last_p = np.zeros(pixels, np.int32)
        k_end = 0
        for py in range(y_lo, y_hi):
            for px in range(x_lo, x_hi):
                p = (py - y_lo) * tile_size + (px - x_lo)
                trans[p] = trans_final[image, py, px]
                t_final[p] = trans_final[image, py, px]
                v_t[p] = v_trans[image, py, px]
                last_p[p] = last[image, py, px]
                k_end = max(k_end, last_p[p])
                for d in range(D):
                    v_f[p, d] = v_accum[image, py, px, d]
        grad = np.zeros(width_grad)
        for k in range(k_end - 1, -1, -1):
            g = flat_ids[start + k]
            mx = means2d[g, 0]
            my = means2d[g, 1]
            a = conics[g, 0]
            b = conics[g, 1]
            c = conics[g, 2]
            o = opacities[g]
            cut = max(math.log(o / ALPHA_THRESHOLD), 0.0) + SIGMA_SLACK
            grad[:] = 0.0
            touched = False
            r0, r1 = _row_range(my, a, b, c, cut, y_lo, y_hi)
            for py in range(r0, r1):
                dy = my - (py + 0.5)
                c0, c1 = _col_range(mx, dy, a, b, c, cut, x_lo, x_hi)
                for px in range(c0, c1):
                    p = (py - y_lo) * tile_size + (px - x_lo)
                    if k >= last_p[p]:
                        continue
                    dx = mx - (px + 0.5)
                    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                    if sigma < 0.0:
                        continue
                    vis = math.exp(-sigma)
                    raw = o * vis
                    alpha = min(MAX_ALPHA, raw)
                    if alpha < ALPHA_THRESHOLD:
                        continue
                    touched = True
                    ra = 1.0 / (1.0 - alpha)
                    t_before = trans[p] * ra
                    trans[p] = t_before
                    weight = alpha * t_before
                    v_alpha = -t_final[p] * ra * v_t[p]
                    for d in range(D):
                        f = features[g, d]
                        grad[GRAD_FIXED + d] += weight * v_f[p, d]
                        v_alpha += (f * t_before - later[p, d] * ra) * v_f[p, d]
                        later[p, d] += f * weight
                    if raw <= MAX_ALPHA:
                        v_sigma = -raw * v_alpha
                        grad[0] += (a * dx + b * dy) * v_sigma
                        grad[1] += (b * dx + c * dy) * v_sigma
                        grad[2] += 0.5 * dx * dx * v_sigma
                        grad[3] += dx * dy * v_sigma
                        grad[4] += 0.5 * dy * dy * v_sigma
                        grad[5] += vis * v_alpha
            if touched:
                for q in range(width_grad):
                    scratch[start + k, q] = grad[q]

    # per Gaussian, the sum of its (tile, Gaussian) rows in intersection order: one column per
    # task, so the order of the additions never depends on the threads
    grads = np.zeros((means2d.shape[0], width_grad))
    for q in prange(width_grad):
        for e in range(flat_ids.shape[0]):
            grads[flat_ids[e], q] += scratch[e, q]
    return grads
