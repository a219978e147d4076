"""numba kernels of the CPU tile rasterizer: projection, binning, per-tile forward blending
and their hand-written backward passes (gsplat's ``projection_ewa_3dgs_fused``,
``isect_tiles``, ``rasterize_to_pixels_3dgs_fwd`` and ``_bwd`` on a CPU).

Imported only when the ``"cpu"`` backend runs. Compiled once per machine into numba's cache
(``cache=True``: next to this file, or numba's user cache folder when that is read-only) and
loaded from there afterwards. Every kernel works in float64 on arrays the caller converts, so
there is one compiled signature each; the results go back to the caller's dtype.

Arithmetic is IEEE's (``error_model="numpy"``): a division by zero gives an infinity, as in the
reference, not an exception (a Gaussian at a camera's centre has z = 0 and is culled).

Threads: the kernels are plain ``nogil`` functions that take ``(worker, workers, ...)`` and do
their share (interleaved tiles, contiguous Gaussian ranges); ``cpu_rasterizer`` runs one per
thread of a small pool. No numba threading layer is involved, so several Python threads may
render at once.

Per tile, the Gaussians are visited front to back (backward: back to front), each over only
the pixels where ``σ <= ln(255 o)`` could hold: for each pixel row the interval of ``dx`` solving
``½ a dx² + b dx dy + ½ c dy² <= ln(255 o)`` (the exact per-pixel test still decides, this only
skips pixels where ``α < 1/255`` anyway). Per-pixel state (transmittance, accumulated features,
the number of the last Gaussian composited) lives in small arrays for the tile's 256 pixels; the
forward keeps a bit per pixel still open (not ended by the early stop) for each row, and visits
only the open pixels of a Gaussian's range (on crowded scenes about half of the candidates
are pixels that already ended).

Determinism: each tile is computed by one worker in a fixed order; the backward writes every
(tile, Gaussian) pair's gradient into its own row of a scratch array and sums the rows per
Gaussian in the intersection order, so results do not depend on thread count or scheduling.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros

# gsplat's constants; tests check that they equal the PyTorch reference's.
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
TRANSMITTANCE_MIN = 1e-4
EPS2D = 0.3
BOX_EXTEND_MAX = 3.33
FOV_CLAMP_MARGIN = 0.3
# Slack of the pixel-range search, so that rounding in solving the quadratic never drops a
# pixel the exact test would keep: σ units, and pixels.
SIGMA_SLACK = 1e-6
PIXEL_SLACK = 1e-3
# per (tile, Gaussian) gradient row: d/d(mean x, mean y, conic a, b, c, opacity, features...)
GRAD_FIXED = 6
# LLVM's fast-math flags for the blending and projection loops, without "nnan"/"ninf" (the skip
# and culling tests must see NaN and infinity as IEEE does): contraction into FMAs,
# reassociation, approximate reciprocals and functions. Measured on the 150k-Gaussian 512² box
# scene: the forward blending ~25 % less CPU time, images within 1e-14 of the strict build (far
# inside the parity tolerances); the projection 15-25 % less.
_FAST_MATH = {"contract", "reassoc", "arcp", "afn", "nsz"}


# How many tile-list entries ahead the blending asks the CPU to fetch a Gaussian's record: the
# records are read in depth order, i.e. at random, and waiting for memory was ~13 % of the box
# scene's blending (150k, 512²; 8 and 16 ahead measured alike, 4 a little less).
PREFETCH_AHEAD = 8
GATHER_AHEAD = 16  # rows ahead for ``take_rows`` (5.3 -> 2.3 ms for 150k rows on one thread)


def _prefetch_intrinsic():
    """``prefetch(records, row, col)``: LLVM's ``llvm.prefetch`` (read, keep in all cache
    levels) for the address of ``records[row, col]`` of a 2D C-contiguous array, or None when
    this numba/llvmlite lacks the extension API (the blending then runs without the hint).
    Built from numba's documented ``intrinsic`` API and its code-generation helpers; the
    numba versions pyproject allows are the ones the tests compile it with."""
    try:
        from llvmlite import ir
        from numba.core import cgutils
        from numba.extending import intrinsic

        @intrinsic
        def prefetch(typingctx, records, row, col):
            def codegen(context, builder, signature, args):
                array_type, row_type, col_type = signature.args
                array = context.make_array(array_type)(context, builder, args[0])
                index = [context.cast(builder, args[1], row_type, types.intp),
                         context.cast(builder, args[2], col_type, types.intp)]
                pointer = cgutils.get_item_pointer(context, builder, array_type, array, index,
                                                   wraparound=False)
                byte_pointer = ir.IntType(8).as_pointer()
                i32 = ir.IntType(32)
                hint = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
                    "llvm.prefetch.p0i8")
                builder.call(hint, [builder.bitcast(pointer, byte_pointer), ir.Constant(i32, 0),
                                    ir.Constant(i32, 3), ir.Constant(i32, 1)])
                return context.get_dummy_value()

            return types.void(records, row, col), codegen

        return prefetch
    except ImportError:  # an API this numba lacks: no hint, same results
        return None


_prefetch = _prefetch_intrinsic()
if _prefetch is None:
    @njit(inline="always", error_model="numpy")
    def _prefetch(records, row, col):
        pass


def _fetch_add_intrinsic():
    """``fetch_add(counter, value)``: an atomic ``counter[0] += value`` (LLVM ``atomicrmw add``,
    monotonic) returning the value before, for a 1D int64 array; None when this numba/llvmlite
    lacks the extension API (the tiles are then dealt out in a fixed interleave)."""
    try:
        from numba.core import cgutils
        from numba.extending import intrinsic

        @intrinsic
        def fetch_add(typingctx, counter, value):
            def codegen(context, builder, signature, args):
                array_type, value_type = signature.args
                array = context.make_array(array_type)(context, builder, args[0])
                pointer = cgutils.get_item_pointer(
                    context, builder, array_type, array, [context.get_constant(types.intp, 0)],
                    wraparound=False)
                amount = context.cast(builder, args[1], value_type, types.int64)
                return builder.atomic_rmw("add", pointer, amount, "monotonic")

            return types.int64(counter, value), codegen

        return fetch_add
    except ImportError:
        return None


_fetch_add = _fetch_add_intrinsic()
if _fetch_add is None:
    @njit(inline="always", error_model="numpy")
    def _claim(counter, worker, workers):
        """The next of this worker's tiles in the fixed interleave ``worker::workers``
        (``counter`` [workers] zeros counts each worker's)."""
        j = counter[worker] * workers + worker
        counter[worker] += 1
        return j
else:
    @njit(inline="always", error_model="numpy")
    def _claim(counter, worker, workers):
        """The next unclaimed tile of the list, whichever worker asks (``counter`` [workers]
        zeros; slot 0 is the shared cursor). The tiles come most crowded first, so this is
        longest-first list scheduling: a worker slowed by the machine (the second vCPU of
        this build machine took 40-69 ms for its half of the box scene's blending while the
        first took 52-56) takes fewer tiles instead of holding up the frame."""
        return _fetch_add(counter, 1)


# exp(-s) for the blending: a table of exp(-k/64) and a degree-6 polynomial for the rest
# (4.5e-16 relative at most over [0, 12.5], float64 rounding; 7.3 ns against libm's 13 ns per
# value in a numba loop on this machine under load), used by the forward and the backward alike
# so both see the same alphas.
EXP_STEPS = 64
EXP_TABLE = np.exp(-np.arange(12 * EXP_STEPS + 1) / EXP_STEPS)


@njit(inline="always", error_model="numpy")
def _exp_neg(s):  # s >= 0
    if not s < 12.0:  # beyond the table (never composited: alpha < 1/255 from s > 5.6)
        return math.exp(-s)
    k = int(s * EXP_STEPS)
    r = s - k * (1.0 / EXP_STEPS)  # exact: 1/64 and k are exact in binary
    # Estrin's scheme: the same polynomial as Horner's in half the dependent steps, which is
    # what the compositing loop waits on (box scene: ~3 % less time)
    r2 = r * r
    p = (1.0 - r) + r2 * ((0.5 - r * (1.0 / 6.0)) + r2 * (
        (1.0 / 24.0 - r * (1.0 / 120.0)) + r2 * (1.0 / 720.0)))
    return EXP_TABLE[k] * p


@njit(inline="always", error_model="numpy")
def _share(worker, workers, total):
    """This worker's contiguous range ``[start, stop)`` of ``total`` items."""
    per = (total + workers - 1) // workers
    start = min(worker * per, total)
    return start, min(start + per, total)


@njit(nogil=True, cache=True, error_model="numpy")
def tile_rects(
    worker,
    workers,
    splats,  # [I * N, SPLAT_FIELDS] float64: the centre in pixels in fields 0, 1
    radii,  # [I, N, 2] int64 box half-sizes, 0 where culled
    visible,  # [I, N] bool
    depths,  # [I, N] float64
    tile_size,
    tiles_x,
    tiles_y,
    rect,  # [I * N, 4] int32 out: tile x0, y0, x1, y1 (exclusive); x0 == x1 when none
    keys,  # [I * N] uint64 out: the depth as an order-preserving integer; all ones when none
):
    """The tiles each Gaussian's box overlaps and its sort key; this worker's share of the
    flattened Gaussians.

    Tile bounds as gsplat's ``isect_tiles``: ``[floor((m - r)/s), ceil((m + r)/s))`` per axis,
    clamped to the grid. The key is the bit pattern of the depth, which orders as the depth
    does for the positive depths of visible Gaussians (all are past the near plane)."""
    I, N = visible.shape
    start, stop = _share(worker, workers, I * N)
    bits = depths.reshape(I * N).view(np.uint64)
    for f in range(start, stop):
        i = f // N
        n = f - i * N
        keys[f] = np.uint64(0xFFFFFFFFFFFFFFFF)
        rect[f, 0] = 0
        rect[f, 1] = 0
        rect[f, 2] = 0
        rect[f, 3] = 0
        if not visible[i, n]:
            continue
        mx = splats[f, 0] / tile_size
        my = splats[f, 1] / tile_size
        rx = radii[i, n, 0] / tile_size
        ry = radii[i, n, 1] / tile_size
        x0 = min(max(int(math.floor(mx - rx)), 0), tiles_x)
        y0 = min(max(int(math.floor(my - ry)), 0), tiles_y)
        x1 = min(max(int(math.ceil(mx + rx)), 0), tiles_x)
        y1 = min(max(int(math.ceil(my + ry)), 0), tiles_y)
        if x1 <= x0 or y1 <= y0:
            continue
        rect[f, 0] = x0
        rect[f, 1] = y0
        rect[f, 2] = x1
        rect[f, 3] = y1
        keys[f] = bits[f]


# The blending reads each projected Gaussian as one record of SPLAT_FIELDS float64s: centre x, y
# (pixels), conic a, b, c, opacity, the cut (``_splat``) and the 4 blended features (RGB, depth),
# one pad. Four arrays (centres, conics, opacities, features) read at a random Gaussian cost
# four cache misses where one record costs two: 150k box scene 512², the forward blending ~13 %
# faster (body ~8 %).
SPLAT_FIELDS = 12
SPLAT_CUT = 6
SPLAT_FEATURES = 7  # fields 7-10: R, G, B, depth
FEATURES = 4

RADIX_BITS = 11
NO_KEY = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(nogil=True, cache=True, error_model="numpy")
def count_keys(worker, workers, keys, counts):  # [F] uint64, [workers] int64 out
    """How many of this worker's contiguous share of ``keys`` are not ``NO_KEY``."""
    start, stop = _share(worker, workers, keys.shape[0])
    n = 0
    for f in range(start, stop):
        if keys[f] != NO_KEY:
            n += 1
    counts[worker] = n


@njit(nogil=True, cache=True, error_model="numpy")
def compact_keys(worker, workers, keys, first, key_out, order_out):
    """This worker's keys that are not ``NO_KEY`` and their indices, in order, from position
    ``first[worker]`` of ``key_out``/``order_out``."""
    start, stop = _share(worker, workers, keys.shape[0])
    at = first[worker]
    for f in range(start, stop):
        if keys[f] != NO_KEY:
            key_out[at] = keys[f]
            order_out[at] = f
            at += 1


@njit(nogil=True, cache=True, error_model="numpy")
def radix_count(worker, workers, keys, shift, counts):  # counts [workers, bins] zeros
    """One pass of the LSD radix sort, first half: the histogram of the digit at ``shift`` over
    this worker's contiguous share of ``keys``."""
    start, stop = _share(worker, workers, keys.shape[0])
    mask = np.uint64((1 << RADIX_BITS) - 1)
    s = np.uint64(shift)
    for j in range(start, stop):
        counts[worker, (keys[j] >> s) & mask] += 1


@njit(nogil=True, cache=True, error_model="numpy")
def radix_scatter(worker, workers, keys, order, shift, cursor, key_out, order_out):
    """Second half: this worker's share moved, with its indices, to where ``cursor`` (per
    worker and digit: after every smaller digit and, within a digit, after the shares of the
    workers before) says. Stable: equal digits keep their order."""
    start, stop = _share(worker, workers, keys.shape[0])
    mask = np.uint64((1 << RADIX_BITS) - 1)
    s = np.uint64(shift)
    for j in range(start, stop):
        k = keys[j]
        d = (k >> s) & mask
        at = cursor[worker, d]
        key_out[at] = k
        order_out[at] = order[j]
        cursor[worker, d] = at + 1


@njit(nogil=True, cache=True, error_model="numpy")
def key_prefixes(worker, workers, keys, base, drop, out):  # [V] uint64, -, -, [V] uint64 out
    """This worker's share of ``out = (keys - base) >> drop``: the leading bits of each key's
    offset from the smallest, which the radix passes sort by."""
    start, stop = _share(worker, workers, keys.shape[0])
    b = np.uint64(base)
    d = np.uint64(drop)
    for j in range(start, stop):
        out[j] = (keys[j] - b) >> d


LONG_RUN = 32  # runs of equal prefixes longer than this are merge-sorted, not insertion-sorted


@njit(nogil=True, cache=True, error_model="numpy")
def settle_prefix_ties(worker, workers, prefixes, order, keys):  # [V] sorted, [V] in/out, [F]
    """Within each run of equal ``prefixes`` (sorted, and within a run in index order), order
    ``order`` by the whole key ``keys[order]``, equal keys keeping their order: a stable
    insertion sort (a stable merge sort for runs over ``LONG_RUN``). With the prefix sort before
    it, this orders by (key, index). This worker settles the runs that start in its contiguous
    share (a run may reach into the next share, whose worker skips it)."""
    V = prefixes.shape[0]
    j, stop = _share(worker, workers, V)
    while 0 < j < stop and prefixes[j] == prefixes[j - 1]:
        j += 1  # the worker before settles this run
    while j < stop:
        e = j + 1
        while e < V and prefixes[e] == prefixes[j]:
            e += 1
        if e - j > LONG_RUN:
            run = order[j:e].copy()
            ranks = np.argsort(keys[run], kind="mergesort")
            for q in range(e - j):
                order[j + q] = run[ranks[q]]
        elif e - j > 1:
            for a in range(j + 1, e):
                o = order[a]
                key = keys[o]
                b = a
                while b > j and keys[order[b - 1]] > key:
                    order[b] = order[b - 1]
                    b -= 1
                order[b] = o
        j = e


@njit(nogil=True, cache=True, error_model="numpy")
def take_rows(worker, workers, rows, index, out):  # [F, K], [V], [V, K] out: rows[index]
    """This worker's share of the gather ``out = rows[index]`` (faster than numpy's; the row
    ``GATHER_AHEAD`` on is prefetched)."""
    start, stop = _share(worker, workers, index.shape[0])
    for j in range(start, stop):
        if j + GATHER_AHEAD < stop:
            _prefetch(rows, index[j + GATHER_AHEAD], 0)
        for q in range(rows.shape[1]):
            out[j, q] = rows[index[j], q]


@njit(nogil=True, cache=True, error_model="numpy")
def tile_hits(
    worker,
    workers,
    order,  # [V] int64: ``cpu_rasterizer._depth_order``
    rect,  # [V, 4] ``tile_rects``'s rows in the order of ``order``
    N,
    tiles_x,
    tiles_y,
    cursor,  # [workers, I * tiles] int64
    flat_ids,  # [M] int32 out (written when ``write``)
    write,
):
    """The two passes of the counting sort into tiles, over this worker's contiguous chunk of
    ``order``: without ``write``, ``cursor`` (zeros) counts the chunk's Gaussians per tile;
    with it, ``cursor`` holds where the chunk's first Gaussian of each tile goes and the chunk
    is written there. Chunks are in depth order and each writes after the chunks before it, so
    every tile's list comes out front to back, the same for any number of workers."""
    tiles = tiles_x * tiles_y
    start, stop = _share(worker, workers, order.shape[0])
    for j in range(start, stop):
        f = order[j]
        base = (f // N) * tiles
        for ty in range(rect[j, 1], rect[j, 3]):
            for tx in range(rect[j, 0], rect[j, 2]):
                t = base + ty * tiles_x + tx
                if write:
                    flat_ids[cursor[worker, t]] = f
                cursor[worker, t] += 1


@njit(inline="always", error_model="numpy")
def _tile_box(t, tiles_x, tiles_y, tile_size, width, height):
    """Tile ``t`` of the flat (image, tile) index: its image and pixel box [x_lo, x_hi) x
    [y_lo, y_hi), clipped to the picture."""
    tiles = tiles_x * tiles_y
    image = t // tiles
    tile = t - image * tiles
    x_lo = (tile % tiles_x) * tile_size
    y_lo = (tile // tiles_x) * tile_size
    return image, x_lo, y_lo, min(x_lo + tile_size, width), min(y_lo + tile_size, height)


@njit(inline="always", error_model="numpy")
def _cut(log_o):
    """The Mahalanobis cut ``ln(o / ALPHA_THRESHOLD)`` (clamped at 0) plus ``SIGMA_SLACK``."""
    return max(log_o, 0.0) + SIGMA_SLACK


@njit(inline="always", error_model="numpy")
def _splat(g, means2d, conics, opacities):
    """Gaussian ``g``'s centre, conic (a, b, c), opacity and the Mahalanobis cut beyond which
    its alpha is under ``ALPHA_THRESHOLD`` (plus ``SIGMA_SLACK``): what both tile passes read."""
    o = opacities[g]
    cut = _cut(math.log(o / ALPHA_THRESHOLD))
    return means2d[g, 0], means2d[g, 1], conics[g, 0], conics[g, 1], conics[g, 2], o, cut


@njit(inline="always", error_model="numpy")
def _record(splats, g):
    """Gaussian ``g``'s centre, conic (a, b, c), opacity and cut from its record."""
    return (splats[g, 0], splats[g, 1], splats[g, 2], splats[g, 3], splats[g, 4], splats[g, 5],
            splats[g, SPLAT_CUT])


@njit(inline="always", error_model="numpy")
def _write_record(splats, g, mx, my, a, b, c, o, cut):
    """The geometric fields of Gaussian ``g``'s record, ``_record``'s inverse (the features
    are written by whoever has them)."""
    splats[g, 0] = mx
    splats[g, 1] = my
    splats[g, 2] = a
    splats[g, 3] = b
    splats[g, 4] = c
    splats[g, 5] = o
    splats[g, SPLAT_CUT] = cut


@njit(inline="always", error_model="numpy")
def _prefetch_record(splats, g):
    """Ask for both cache lines of Gaussian ``g``'s record."""
    _prefetch(splats, g, 0)
    _prefetch(splats, g, SPLAT_FIELDS - 1)


@njit(inline="always", error_model="numpy")
def _row_range(my, a, b, c, cut, y_lo, y_hi):
    """Pixel rows ``[r0, r1)`` within ``[y_lo, y_hi)`` whose centre can have ``σ <= cut``."""
    det = a * c - b * b
    if det <= 0.0:  # not positive definite (rounding): no bound from the conic
        return y_lo, y_hi
    ext = math.sqrt(2.0 * cut * a / det)
    r0 = max(int(math.ceil(my - ext - 0.5 - PIXEL_SLACK)), y_lo)
    r1 = min(int(math.floor(my + ext - 0.5 + PIXEL_SLACK)) + 1, y_hi)
    return r0, r1


@njit(inline="always", error_model="numpy")
def _row_shape(mx, a, b, c, cut, x_lo):
    """What a tile's rows need of a Gaussian, computed once per Gaussian and tile: the column
    offset ``u = mx - x_lo - 0.5`` (a column ``col`` of the tile is at ``dx = u - col``), ``1/a``,
    ``½ a``, ``2 a · cut`` and the conic's determinant ``a c - b²``."""
    return mx - x_lo - 0.5, 1.0 / a, 0.5 * a, 2.0 * a * cut, a * c - b * b


@njit(inline="always", error_model="numpy")
def _row_columns(dy, u, b, inv_a, two_a_cut, det, columns):
    """The tile columns ``[c0, c1)`` within ``[0, columns)`` of a row at ``dy = my - y`` whose
    centre can have ``σ <= cut``: the roots of ``½ a dx² + b dy dx + ½ c dy² - cut`` in ``dx``,
    ``-b dy / a ± sqrt(2 a cut - det dy²) / a`` (a > 0), i.e. columns ``u + b dy / a ∓ ...``."""
    disc = two_a_cut - det * dy * dy
    if disc < 0.0:
        return 0, 0
    half = math.sqrt(disc) * inv_a
    centre = u + b * dy * inv_a
    c0 = max(int(math.ceil(centre - half - PIXEL_SLACK)), 0)
    c1 = min(int(math.floor(centre + half + PIXEL_SLACK)) + 1, columns)
    return c0, c1


@njit(inline="always", error_model="numpy")
def _sigma(dx, half_a, b_dy, half_c_dy2):
    """``σ = ½ a dx² + b dx dy + ½ c dy²`` with the row's ``b dy`` and ``½ c dy²``: the one
    formula the forward and the backward both use, so that they see the same alphas."""
    return dx * (half_a * dx + b_dy) + half_c_dy2


@njit(nogil=True, cache=True, error_model="numpy")
def pack_splats(
    worker,
    workers,
    means2d,  # [F, 2] float64
    conics,  # [F, 3] float64
    opacities,  # [F] float64
    features,  # [F, 4] float64
    visible,  # [F] bool: the others are never blended and are left as they are
    splats,  # [F, SPLAT_FIELDS] out
):
    """This worker's contiguous share of the records the blending reads, from separate
    arrays (the PyTorch projection's, when the cameras need gradients)."""
    start, stop = _share(worker, workers, means2d.shape[0])
    for g in range(start, stop):
        if not visible[g]:
            continue
        mx, my, a, b, c, o, cut = _splat(g, means2d, conics, opacities)
        _write_record(splats, g, mx, my, a, b, c, o, cut)
        for d in range(FEATURES):
            splats[g, SPLAT_FEATURES + d] = features[g, d]


@njit(nogil=True, cache=True, error_model="numpy")
def rasterize_forward(
    worker,
    workers,
    offsets,  # [I * tiles + 1] int64
    flat_ids,  # [M] int32
    tile_order,  # [T'] int64 the non-empty tiles, most crowded first
    splats,  # [F, SPLAT_FIELDS] float64 (``pack_splats``), F = I * N
    width,
    height,
    tile_size,
    tiles_x,
    tiles_y,
    out,  # [I, H, W, 4] zeros: accumulated features
    trans_out,  # [I, H, W] ones: final transmittance
    last_out,  # [I, H, W] int32 zeros
    track_last,  # whether to write ``last_out`` (a backward pass will follow)
    counter,  # [workers] int64 zeros: the tiles handed out (``_claim``)
):
    """Front-to-back blending per tile with gsplat's skip (``σ < 0`` or ``α < 1/255``), cap
    (0.999) and exclusive early stop (the Gaussian that would bring T to 1e-4 or below is not
    composited and ends the pixel). ``last`` is 1 + the tile-list position of the last Gaussian
    composited into each pixel (0: none), which the backward starts from; renders without a
    backward skip it (~2 % of the box scene's blending). The workers claim the tiles of
    ``tile_order`` one at a time (``_claim``); each tile's pixels do not depend on who blends
    it."""
    j = _claim(counter, worker, workers)
    while j < tile_order.shape[0]:
        _forward_tile(tile_order[j], offsets, flat_ids, splats, width, height, tile_size,
                      tiles_x, tiles_y, out, trans_out, last_out, track_last)
        j = _claim(counter, worker, workers)


@njit(cache=True, fastmath=_FAST_MATH, error_model="numpy")
def _forward_tile(t, offsets, flat_ids, splats, width, height, tile_size, tiles_x, tiles_y, out,
                  trans_out, last_out, track_last):
    """One tile of ``rasterize_forward``, for 4 feature channels (RGB and depth: what every
    caller blends). The channels live in 4 arrays and each Gaussian's 4 values in locals:
    a loop over a run-time channel count, reloading the features after every store (they might
    alias the accumulators), took 8-14 % more of the whole frame's time (150k box, 512², one
    thread; about the same on the open body)."""
    pixels = tile_size * tile_size
    start = offsets[t]
    count = offsets[t + 1] - start
    image, x_lo, y_lo, x_hi, y_hi = _tile_box(t, tiles_x, tiles_y, tile_size, width, height)
    trans = np.ones(pixels)
    acc0 = np.zeros(pixels)
    acc1 = np.zeros(pixels)
    acc2 = np.zeros(pixels)
    acc3 = np.zeros(pixels)
    last = np.zeros(pixels, np.int32)
    # per row of the tile, a bit per column whose pixel is still open (not ended by the early
    # stop): the pixel loop below visits only those, with no test per finished pixel; and a
    # bit per row that still has one, so that finished rows cost nothing (on the box scene
    # 62 % of the rows a Gaussian spans had finished, and 57 % of the Gaussians blended no
    # pixel at all)
    full = (np.int64(1) << (x_hi - x_lo)) - 1
    open_bits = np.zeros(tile_size, np.int64)
    open_bits[: y_hi - y_lo] = full
    open_rows = (np.int64(1) << (y_hi - y_lo)) - 1
    open_cols = full  # a bit per column with an open pixel in some row (refreshed when stale)
    stale = False
    for k in range(count):
        if open_rows == 0:  # every pixel has ended
            break
        g = flat_ids[start + k]
        if k + PREFETCH_AHEAD < count:
            _prefetch_record(splats, flat_ids[start + k + PREFETCH_AHEAD])
        mx, my, a, b, c, o, cut = _record(splats, g)
        r0, r1 = _row_range(my, a, b, c, cut, y_lo, y_hi)
        rows = open_rows & (((np.int64(1) << (r1 - y_lo)) - 1) ^ ((np.int64(1) << (r0 - y_lo)) - 1)) \
            if r1 > r0 else np.int64(0)
        if rows == 0:  # every row it reaches has finished
            continue
        if stale:
            open_cols = np.int64(0)
            for row in range(y_hi - y_lo):
                open_cols |= open_bits[row]
            stale = False
        c0, c1 = _row_range(mx, c, b, a, cut, x_lo, x_hi)  # its columns: the same bound in x
        if c1 <= c0 or open_cols & (((np.int64(1) << (c1 - x_lo)) - 1)
                                    ^ ((np.int64(1) << (c0 - x_lo)) - 1)) == 0:
            continue
        f0 = splats[g, SPLAT_FEATURES]
        f1 = splats[g, SPLAT_FEATURES + 1]
        f2 = splats[g, SPLAT_FEATURES + 2]
        f3 = splats[g, SPLAT_FEATURES + 3]
        u, inv_a, half_a, two_a_cut, det = _row_shape(mx, a, b, c, cut, x_lo)
        while rows != 0:
            row = trailing_zeros(rows)
            rows &= rows - 1
            py = y_lo + row
            bits = open_bits[row]
            dy = my - (py + 0.5)
            c0, c1 = _row_columns(dy, u, b, inv_a, two_a_cut, det, x_hi - x_lo)
            if c1 <= c0:
                continue
            bits &= ((np.int64(1) << c1) - 1) ^ ((np.int64(1) << c0) - 1)
            b_dy = b * dy
            half_c_dy2 = 0.5 * c * dy * dy
            while bits != 0:
                col = trailing_zeros(bits)
                bits &= bits - 1
                p = row * tile_size + col
                sigma = _sigma(u - col, half_a, b_dy, half_c_dy2)
                if sigma < 0.0:
                    continue
                alpha = min(MAX_ALPHA, o * _exp_neg(sigma))
                if alpha < ALPHA_THRESHOLD:
                    continue
                t_next = trans[p] * (1.0 - alpha)
                if t_next <= TRANSMITTANCE_MIN:
                    open_bits[row] &= ~(np.int64(1) << col)
                    stale = True
                    if open_bits[row] == 0:
                        open_rows &= ~(np.int64(1) << row)
                    continue
                weight = alpha * trans[p]
                acc0[p] += weight * f0
                acc1[p] += weight * f1
                acc2[p] += weight * f2
                acc3[p] += weight * f3
                trans[p] = t_next
                if track_last:
                    last[p] = k + 1
    for py in range(y_lo, y_hi):
        for px in range(x_lo, x_hi):
            p = (py - y_lo) * tile_size + (px - x_lo)
            trans_out[image, py, px] = trans[p]
            if track_last:
                last_out[image, py, px] = last[p]
            out[image, py, px, 0] = acc0[p]
            out[image, py, px, 1] = acc1[p]
            out[image, py, px, 2] = acc2[p]
            out[image, py, px, 3] = acc3[p]


@njit(nogil=True, cache=True, error_model="numpy")
def rasterize_backward(
    worker,
    workers,
    offsets,  # [I * tiles + 1] int64
    flat_ids,  # [M] int32
    tile_order,  # [T'] int64
    splats,  # [F, SPLAT_FIELDS] float64: the forward's records
    trans_final,  # [I, H, W] float64 from the forward
    last,  # [I, H, W] int32 from the forward
    v_accum,  # [I, H, W, FEATURES] float64 dL/d(accumulated features)
    v_trans,  # [I, H, W] float64 dL/d(final transmittance)
    width,
    height,
    tile_size,
    tiles_x,
    tiles_y,
    scratch,  # [M, GRAD_FIXED + FEATURES] zeros: per (tile, Gaussian) dL/d(x, y, a, b, c, o, f)
    counter,  # [workers] int64 zeros: the tiles handed out (``_claim``)
):
    """Back to front per pixel from its last composited Gaussian, recovering the transmittance
    before each Gaussian by division (``T_i = T_{i+1} / (1 - α_i)``, as gsplat does) and
    keeping ``S = Σ_{j>i} f_j α_j T_j``:

    * ``dL/df_i = α_i T_i · v_F``;
    * ``dL/dα_i = Σ_d (f_id T_i - S_d / (1 - α_i)) v_F,d - T_final / (1 - α_i) · v_T``;
    * through ``α = o exp(-σ)`` only where ``o exp(-σ) <= 0.999`` (the cap passes no gradient).

    The workers claim tiles one at a time (``_claim``), each writing only its tile's rows of
    ``scratch``; ``reduce_gradients`` sums ``scratch`` per Gaussian in a fixed order."""
    j = _claim(counter, worker, workers)
    while j < tile_order.shape[0]:
        _backward_tile(tile_order[j], offsets, flat_ids, splats, trans_final, last, v_accum,
                       v_trans, width, height, tile_size, tiles_x, tiles_y, scratch)
        j = _claim(counter, worker, workers)


@njit(nogil=True, cache=True, error_model="numpy")
def reduce_gradients(
    worker,
    workers,
    flat_ids,  # [M]
    scratch,  # [M, Q]
    grads,  # [F, Q] zeros
):
    """Per Gaussian, the sum of its (tile, Gaussian) rows in intersection order; a worker owns
    the Gaussians ``g`` with ``g % workers == worker``, so the order of the additions never
    depends on the threads."""
    for e in range(flat_ids.shape[0]):
        g = flat_ids[e]
        if g % workers != worker:
            continue
        for q in range(scratch.shape[1]):
            grads[g, q] += scratch[e, q]


@njit(cache=True, fastmath=_FAST_MATH, error_model="numpy")
def _backward_tile(t, offsets, flat_ids, splats, trans_final, last, v_accum, v_trans, width,
                   height, tile_size, tiles_x, tiles_y, scratch):
    """One tile of ``rasterize_backward``: writes the rows of ``scratch`` of its Gaussians."""
    D = FEATURES
    pixels = tile_size * tile_size
    width_grad = GRAD_FIXED + D
    start = offsets[t]
    image, x_lo, y_lo, x_hi, y_hi = _tile_box(t, tiles_x, tiles_y, tile_size, width, height)
    trans = np.ones(pixels)
    t_final = np.ones(pixels)
    v_t = np.zeros(pixels)
    v_f = np.zeros((pixels, D))
    later = np.zeros((pixels, D))  # S
    last_p = np.zeros(pixels, np.int32)
    row_end = np.zeros(tile_size, np.int64)  # per row: the largest ``last``
    k_end = 0
    for py in range(y_lo, y_hi):
        for px in range(x_lo, x_hi):
            p = (py - y_lo) * tile_size + (px - x_lo)
            trans[p] = trans_final[image, py, px]
            t_final[p] = trans_final[image, py, px]
            v_t[p] = v_trans[image, py, px]
            last_p[p] = last[image, py, px]
            row_end[py - y_lo] = max(row_end[py - y_lo], last_p[p])
            k_end = max(k_end, last_p[p])
            for d in range(D):
                v_f[p, d] = v_accum[image, py, px, d]
    grad = np.zeros(width_grad)
    for k in range(k_end - 1, -1, -1):
        g = flat_ids[start + k]
        if k >= PREFETCH_AHEAD:  # back to front: the record a few entries before
            _prefetch_record(splats, flat_ids[start + k - PREFETCH_AHEAD])
        mx, my, a, b, c, o, cut = _record(splats, g)
        grad[:] = 0.0
        touched = False
        r0, r1 = _row_range(my, a, b, c, cut, y_lo, y_hi)
        u, inv_a, half_a, two_a_cut, det = _row_shape(mx, a, b, c, cut, x_lo)
        for py in range(r0, r1):
            if k >= row_end[py - y_lo]:  # every pixel of the row ended before Gaussian k
                continue
            dy = my - (py + 0.5)
            c0, c1 = _row_columns(dy, u, b, inv_a, two_a_cut, det, x_hi - x_lo)
            b_dy = b * dy
            half_c_dy2 = 0.5 * c * dy * dy
            for col in range(c0, c1):
                p = (py - y_lo) * tile_size + col
                if k >= last_p[p]:
                    continue
                dx = u - col
                sigma = _sigma(dx, half_a, b_dy, half_c_dy2)
                if sigma < 0.0:
                    continue
                vis = _exp_neg(sigma)
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
                    f = splats[g, SPLAT_FEATURES + d]
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


# ---- projection (gsplat's ``projection_ewa_3dgs_fused`` forward and backward) ------------------


@njit(inline="always", error_model="numpy")
def _rotation(w, x, y, z):
    """Rotation matrix of the unit quaternion (w, x, y, z), as 9 numbers (row-major)."""
    return (
        1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y),
        2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x),
        2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y),
    )


@njit(inline="always", error_model="numpy")
def _project_one(means, quats, scales, viewmats, Ks, b, n, cam, width, height):
    """Camera-space mean, the factor ``T = J R_v R(q) diag(s)`` of the 2D covariance (2 x 3,
    row-major; the covariance is ``T Tᵀ + eps2d I``) and the intermediate values the backward
    needs. Scalars and tuples only: no allocation per Gaussian."""
    qw, qx, qy, qz = quats[b, n, 0], quats[b, n, 1], quats[b, n, 2], quats[b, n, 3]
    qn = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    inv = 1.0 / max(qn, 1e-12)
    rot = _rotation(qw * inv, qx * inv, qy * inv, qz * inv)
    view = _view(viewmats, b, cam)
    m0, m1, m2 = means[b, n, 0], means[b, n, 1], means[b, n, 2]
    x = view[0] * m0 + view[1] * m1 + view[2] * m2 + view[9]
    y = view[3] * m0 + view[4] * m1 + view[5] * m2 + view[10]
    z = view[6] * m0 + view[7] * m1 + view[8] * m2 + view[11]
    # Mc = R_v R diag(s)
    mc = _view_rot_scale(view, rot, scales[b, n, 0], scales[b, n, 1], scales[b, n, 2])
    fx, fy, cx, cy = Ks[b, cam, 0, 0], Ks[b, cam, 1, 1], Ks[b, cam, 0, 2], Ks[b, cam, 1, 2]
    lim_x_pos = (width - cx) / fx + FOV_CLAMP_MARGIN * 0.5 * width / fx
    lim_x_neg = cx / fx + FOV_CLAMP_MARGIN * 0.5 * width / fx
    lim_y_pos = (height - cy) / fy + FOV_CLAMP_MARGIN * 0.5 * height / fy
    lim_y_neg = cy / fy + FOV_CLAMP_MARGIN * 0.5 * height / fy
    rz = 1.0 / z
    rz2 = rz * rz
    ux = x * rz
    uy = y * rz
    ucx = min(lim_x_pos, max(-lim_x_neg, ux))
    ucy = min(lim_y_pos, max(-lim_y_neg, uy))
    j00 = fx * rz
    j02 = -fx * (z * ucx) * rz2
    j11 = fy * rz
    j12 = -fy * (z * ucy) * rz2
    t = (
        j00 * mc[0] + j02 * mc[6], j00 * mc[1] + j02 * mc[7], j00 * mc[2] + j02 * mc[8],
        j11 * mc[3] + j12 * mc[6], j11 * mc[4] + j12 * mc[7], j11 * mc[5] + j12 * mc[8],
    )
    return x, y, z, rot, mc, t, ucx, ucy, ucx == ux, ucy == uy, inv, qn, view


@njit(inline="always", error_model="numpy")
def _pair_index(f, N, C):
    """Flat (image, Gaussian) pair ``f`` -> image i, Gaussian n, scene b and camera cam."""
    i = f // N
    b = i // C
    return i, f - i * N, b, i - b * C


@njit(inline="always", error_model="numpy")
def _covariance_2d(t):
    """The low-passed 2D covariance [[a, b], [b, c]] = T Tᵀ + eps2d I from ``T``'s two rows
    (``t[0:3]``, ``t[3:6]``) and its determinant."""
    a = t[0] * t[0] + t[1] * t[1] + t[2] * t[2] + EPS2D
    b = t[0] * t[3] + t[1] * t[4] + t[2] * t[5]
    c = t[3] * t[3] + t[4] * t[4] + t[5] * t[5] + EPS2D
    return a, b, c, a * c - b * b


@njit(inline="always", error_model="numpy")
def _view(viewmats, b, cam):
    """World -> camera rotation (row-major, 9 numbers) and translation (3) of one camera."""
    return (
        viewmats[b, cam, 0, 0], viewmats[b, cam, 0, 1], viewmats[b, cam, 0, 2],
        viewmats[b, cam, 1, 0], viewmats[b, cam, 1, 1], viewmats[b, cam, 1, 2],
        viewmats[b, cam, 2, 0], viewmats[b, cam, 2, 1], viewmats[b, cam, 2, 2],
        viewmats[b, cam, 0, 3], viewmats[b, cam, 1, 3], viewmats[b, cam, 2, 3],
    )


@njit(inline="always", error_model="numpy")
def _view_rot_scale(view, rot, s0, s1, s2):
    """``R_v R diag(s)`` as 9 numbers (row-major); ``rot`` row-major 9 numbers."""
    return (
        (view[0] * rot[0] + view[1] * rot[3] + view[2] * rot[6]) * s0,
        (view[0] * rot[1] + view[1] * rot[4] + view[2] * rot[7]) * s1,
        (view[0] * rot[2] + view[1] * rot[5] + view[2] * rot[8]) * s2,
        (view[3] * rot[0] + view[4] * rot[3] + view[5] * rot[6]) * s0,
        (view[3] * rot[1] + view[4] * rot[4] + view[5] * rot[7]) * s1,
        (view[3] * rot[2] + view[4] * rot[5] + view[5] * rot[8]) * s2,
        (view[6] * rot[0] + view[7] * rot[3] + view[8] * rot[6]) * s0,
        (view[6] * rot[1] + view[7] * rot[4] + view[8] * rot[7]) * s1,
        (view[6] * rot[2] + view[7] * rot[5] + view[8] * rot[8]) * s2,
    )


PROJECT_CHUNK = 4096  # Gaussians per claim of the projection


@njit(nogil=True, cache=True, error_model="numpy")
def project_forward(
    worker,
    workers,
    means,  # [B, N, 3] float64 world
    quats,  # [B, N, 4] wxyz
    scales,  # [B, N, 3]
    opacities,  # [B, N]
    viewmats,  # [B, C, 4, 4]
    Ks,  # [B, C, 3, 3]
    width,
    height,
    near,
    far,
    splats,  # [I * N, SPLAT_FIELDS] out: centre, conic, opacity, cut and depth of the visible
    depths,  # [I, N] zeros
    radii,  # [I, N, 2] int64 zeros
    visible,  # [I, N] bool False
    counter,  # [workers] int64 zeros: the chunks handed out (``_claim``)
):
    """EWA projection with gsplat's culling, box radii and FOV clamp, as
    ``torch_rasterizer.project_gaussians`` (I = B·C images, camera-major within a batch), of
    the I·N (image, Gaussian) pairs in chunks of ``PROJECT_CHUNK`` that the workers claim one
    at a time. The records' colour fields are the caller's (``sh_colors`` or a copy)."""
    total = depths.shape[0] * depths.shape[1]
    j = _claim(counter, worker, workers)
    while j * PROJECT_CHUNK < total:
        _project_chunk(j * PROJECT_CHUNK, min((j + 1) * PROJECT_CHUNK, total), means, quats,
                       scales, opacities, viewmats, Ks, width, height, near, far, splats,
                       depths, radii, visible)
        j = _claim(counter, worker, workers)


@njit(cache=True, fastmath=_FAST_MATH, error_model="numpy")
def _project_chunk(start, stop, means, quats, scales, opacities, viewmats, Ks, width, height,
                   near, far, splats, depths, radii, visible):
    """Gaussians ``start:stop`` (flattened over images) of ``project_forward``."""
    N = means.shape[1]
    C = viewmats.shape[1]
    for f in range(start, stop):
        i, n, b, cam = _pair_index(f, N, C)
        x, y, z, rot, mc, t, ucx, ucy, inx, iny, inv, qn, view = _project_one(
            means, quats, scales, viewmats, Ks, b, n, cam, width, height
        )
        depths[i, n] = z
        if not (z >= near and z <= far):
            continue
        a, bb, c, det = _covariance_2d(t)
        mx = Ks[b, cam, 0, 0] * x / z + Ks[b, cam, 0, 2]
        my = Ks[b, cam, 1, 1] * y / z + Ks[b, cam, 1, 2]
        if not det > 0.0:
            continue
        o = opacities[b, n]
        if not o >= ALPHA_THRESHOLD:
            continue
        log_o = math.log(o / ALPHA_THRESHOLD)
        _write_record(splats, f, mx, my, c / det, -bb / det, a / det, o, _cut(log_o))
        splats[f, SPLAT_FEATURES + 3] = z
        extend = min(math.sqrt(2.0 * log_o), BOX_EXTEND_MAX)
        rx = math.ceil(extend * math.sqrt(a))
        ry = math.ceil(extend * math.sqrt(c))
        if mx + rx <= 0 or mx - rx >= width or my + ry <= 0 or my - ry >= height:
            continue
        if rx <= 0 or ry <= 0:
            continue
        radii[i, n, 0] = int(rx)
        radii[i, n, 1] = int(ry)
        visible[i, n] = True


@njit(nogil=True, cache=True, error_model="numpy")
def project_backward(
    worker,
    workers,
    means,  # [B, N, 3] float64
    quats,  # [B, N, 4]
    scales,  # [B, N, 3]
    viewmats,  # [B, C, 4, 4]
    Ks,  # [B, C, 3, 3]
    width,
    height,
    visible,  # [I, N] bool from the forward
    v_means2d,  # [I, N, 2]
    v_conics,  # [I, N, 3]
    v_depths,  # [I, N]
    v_means,  # [I, N, 3] zeros: dL/dmeans per image
    v_quats,  # [I, N, 4] zeros
    v_scales,  # [I, N, 3] zeros
):
    """The chain rule through ``project_forward`` for the visible Gaussians (the others get no
    gradient, as in gsplat): conic = inverse of ``T Tᵀ + eps2d I``, ``T = J R_v R(q̂) diag(s)``,
    the perspective Jacobian ``J`` (with its FOV clamp: a clamped ``x/z`` passes no gradient
    to ``x``), the projected mean and the camera depth. This worker's contiguous share."""
    start, stop = _share(worker, workers, visible.shape[0] * visible.shape[1])
    _project_gradient_chunk(start, stop, means, quats, scales, viewmats, Ks, width, height,
                            visible, v_means2d, v_conics, v_depths, v_means, v_quats, v_scales)


@njit(cache=True, fastmath=_FAST_MATH, error_model="numpy")
def _project_gradient_chunk(start, stop, means, quats, scales, viewmats, Ks, width, height,
                            visible, v_means2d, v_conics, v_depths, v_means, v_quats, v_scales):
    """Gaussians ``start:stop`` (flattened over images) of ``project_backward``."""
    N = means.shape[1]
    C = viewmats.shape[1]
    for f in range(start, stop):
        i, n, b, cam = _pair_index(f, N, C)
        if not visible[i, n]:
            continue
        _project_gradient(means, quats, scales, viewmats, Ks, b, n, cam, i, width, height,
                          v_means2d, v_conics, v_depths, v_means, v_quats, v_scales)


@njit(inline="always", error_model="numpy")
def _project_gradient(means, quats, scales, viewmats, Ks, b, n, cam, i, width, height,
                      v_means2d, v_conics, v_depths, v_means, v_quats, v_scales):
    """Gradients of Gaussian n of scene b seen by camera cam (image i) into row [i, n] of
    ``v_means``, ``v_quats``, ``v_scales``."""
    x, y, z, rot, mc, t, ucx, ucy, inx, iny, inv, qn, view = _project_one(
        means, quats, scales, viewmats, Ks, b, n, cam, width, height
    )
    fx, fy = Ks[b, cam, 0, 0], Ks[b, cam, 1, 1]
    rz = 1.0 / z
    rz2 = rz * rz
    # conic (A, B, C) = (c, -b, a) / det of the 2D covariance [[a, b], [b, c]]
    a, bb, c, det = _covariance_2d(t)
    id2 = 1.0 / (det * det)
    vA, vB, vC = v_conics[i, n, 0], v_conics[i, n, 1], v_conics[i, n, 2]
    v_a = -vA * c * c * id2 + vB * bb * c * id2 + vC * (1.0 / det - a * c * id2)
    v_c = vA * (1.0 / det - a * c * id2) + vB * bb * a * id2 - vC * a * a * id2
    v_b = 2.0 * bb * (vA * c + vC * a) * id2 - vB * (1.0 / det + 2.0 * bb * bb * id2)
    # T rows: a = |T0|² + eps, b = T0·T1, c = |T1|² + eps
    vt0 = 2.0 * v_a * t[0] + v_b * t[3]
    vt1 = 2.0 * v_a * t[1] + v_b * t[4]
    vt2 = 2.0 * v_a * t[2] + v_b * t[5]
    vt3 = 2.0 * v_c * t[3] + v_b * t[0]
    vt4 = 2.0 * v_c * t[4] + v_b * t[1]
    vt5 = 2.0 * v_c * t[5] + v_b * t[2]
    # T = J Mc, J = [[j00, 0, j02], [0, j11, j12]]
    tx = z * ucx
    ty = z * ucy
    j00, j02 = fx * rz, -fx * tx * rz2
    j11, j12 = fy * rz, -fy * ty * rz2
    v_j00 = vt0 * mc[0] + vt1 * mc[1] + vt2 * mc[2]
    v_j02 = vt0 * mc[6] + vt1 * mc[7] + vt2 * mc[8]
    v_j11 = vt3 * mc[3] + vt4 * mc[4] + vt5 * mc[5]
    v_j12 = vt3 * mc[6] + vt4 * mc[7] + vt5 * mc[8]
    v_mc = (
        j00 * vt0, j00 * vt1, j00 * vt2,
        j11 * vt3, j11 * vt4, j11 * vt5,
        j02 * vt0 + j12 * vt3, j02 * vt1 + j12 * vt4, j02 * vt2 + j12 * vt5,
    )
    # J's dependence on the camera-space mean
    v_x = 0.0
    v_y = 0.0
    v_z = v_depths[i, n]
    v_z += -v_j00 * fx * rz2 + 2.0 * v_j02 * fx * tx * rz2 * rz
    v_z += -v_j11 * fy * rz2 + 2.0 * v_j12 * fy * ty * rz2 * rz
    v_tx = -v_j02 * fx * rz2
    v_ty = -v_j12 * fy * rz2
    if inx:  # tx = x
        v_x += v_tx
    else:  # tx = z · limit
        v_z += v_tx * ucx
    if iny:
        v_y += v_ty
    else:
        v_z += v_ty * ucy
    # projected mean (fx x / z + cx, fy y / z + cy)
    vmx, vmy = v_means2d[i, n, 0], v_means2d[i, n, 1]
    v_x += vmx * fx * rz
    v_y += vmy * fy * rz
    v_z -= (vmx * fx * x + vmy * fy * y) * rz2
    # x_c = R_v mean + t
    for k in range(3):
        v_means[i, n, k] = view[k] * v_x + view[3 + k] * v_y + view[6 + k] * v_z
    # Mc = R_v R diag(s): dL/dR = R_vᵀ dL/dMc diag(s); dL/ds_j = Σ_i (R_v R)_ij dL/dMc_ij
    s0, s1, s2 = scales[b, n, 0], scales[b, n, 1], scales[b, n, 2]
    u = _view_transpose_times(view, v_mc)
    v00, v01, v02 = u[0] * s0, u[1] * s1, u[2] * s2
    v10, v11, v12 = u[3] * s0, u[4] * s1, u[5] * s2
    v20, v21, v22 = u[6] * s0, u[7] * s1, u[8] * s2
    vr = _view_rot_scale(view, rot, 1.0, 1.0, 1.0)  # R_v R
    v_scales[i, n, 0] = vr[0] * v_mc[0] + vr[3] * v_mc[3] + vr[6] * v_mc[6]
    v_scales[i, n, 1] = vr[1] * v_mc[1] + vr[4] * v_mc[4] + vr[7] * v_mc[7]
    v_scales[i, n, 2] = vr[2] * v_mc[2] + vr[5] * v_mc[5] + vr[8] * v_mc[8]
    w, qx, qy, qz = quats[b, n, 0] * inv, quats[b, n, 1] * inv, quats[b, n, 2] * inv, quats[b, n, 3] * inv
    v_w = 2.0 * (-qz * v01 + qy * v02 + qz * v10 - qx * v12 - qy * v20 + qx * v21)
    v_qx = 2.0 * (qy * v01 + qz * v02 + qy * v10 - w * v12 + qz * v20 + w * v21) \
        - 4.0 * qx * (v11 + v22)
    v_qy = 2.0 * (qx * v01 + w * v02 + qx * v10 + qz * v12 - w * v20 + qz * v21) \
        - 4.0 * qy * (v00 + v22)
    v_qz = 2.0 * (-w * v01 + qx * v02 + w * v10 + qy * v12 + qx * v20 + qy * v21) \
        - 4.0 * qz * (v00 + v11)
    # q̂ = q / max(|q|, 1e-12)
    dot = 0.0
    if qn > 1e-12:
        dot = w * v_w + qx * v_qx + qy * v_qy + qz * v_qz
    v_quats[i, n, 0] = (v_w - w * dot) * inv
    v_quats[i, n, 1] = (v_qx - qx * dot) * inv
    v_quats[i, n, 2] = (v_qy - qy * dot) * inv
    v_quats[i, n, 3] = (v_qz - qz * dot) * inv


@njit(inline="always", error_model="numpy")
def _view_transpose_times(view, m):
    """``R_vᵀ M`` for a row-major 9-tuple ``M``."""
    return (
        view[0] * m[0] + view[3] * m[3] + view[6] * m[6],
        view[0] * m[1] + view[3] * m[4] + view[6] * m[7],
        view[0] * m[2] + view[3] * m[5] + view[6] * m[8],
        view[1] * m[0] + view[4] * m[3] + view[7] * m[6],
        view[1] * m[1] + view[4] * m[4] + view[7] * m[7],
        view[1] * m[2] + view[4] * m[5] + view[7] * m[8],
        view[2] * m[0] + view[5] * m[3] + view[8] * m[6],
        view[2] * m[1] + view[5] * m[4] + view[8] * m[7],
        view[2] * m[2] + view[5] * m[5] + view[8] * m[8],
    )


@njit(nogil=True, cache=True, error_model="numpy")
def put_colors(worker, workers, rgb, out):  # [F, 3] any float, [F, SPLAT_FIELDS] out
    """This worker's share of the records' colour fields from ``rgb`` (numpy's strided copy
    with the float32 -> float64 conversion took 2.8 ms for 150k Gaussians, this 0.3)."""
    start, stop = _share(worker, workers, rgb.shape[0])
    for f in range(start, stop):
        for d in range(3):
            out[f, SPLAT_FEATURES + d] = rgb[f, d]


@njit(nogil=True, cache=True, error_model="numpy")
def sh_colors(
    worker,
    workers,
    means,  # [B, N, 3] float64 world
    coeffs,  # [B, N, K, 3] float64 SH coefficients, K >= (degree + 1)²
    centres,  # [B, C, 3] float64 camera positions in the world
    degree,  # 0..4
    out,  # [B * C * N, SPLAT_FIELDS] float64 out: RGB into the records' colour fields
):
    """``torch_rasterizer.sh_to_rgb`` towards each camera (gsplat's basis order and constants,
    ``max(Σ Y_k(d̂) c_k + 0.5, 0)``, a zero-length direction counts as length 1), for renders
    that need no gradient; this worker's contiguous share of the (image, Gaussian) pairs."""
    B, N = means.shape[:2]
    C = centres.shape[1]
    start, stop = _share(worker, workers, B * C * N)
    y = np.empty(25)
    for f in range(start, stop):
        i = f // N
        n = f - i * N
        b = i // C
        cam = i - b * C
        x, yy, z, _, _ = _view_direction(means, centres, b, n, cam)
        used = _sh_bases(degree, x, yy, z, y)
        red = 0.0
        green = 0.0
        blue = 0.0
        for k in range(used):
            red += y[k] * coeffs[b, n, k, 0]
            green += y[k] * coeffs[b, n, k, 1]
            blue += y[k] * coeffs[b, n, k, 2]
        out[f, SPLAT_FEATURES] = max(red + 0.5, 0.0)
        out[f, SPLAT_FEATURES + 1] = max(green + 0.5, 0.0)
        out[f, SPLAT_FEATURES + 2] = max(blue + 0.5, 0.0)


@njit(inline="always", error_model="numpy")
def _view_direction(means, centres, b, n, cam):
    """The unit direction from camera ``cam`` to Gaussian ``n`` of scene ``b`` (a zero-length
    one is used as is, as ``sh_to_rgb`` does), its squared length and ``1 / length`` (1 at 0)."""
    dx = means[b, n, 0] - centres[b, cam, 0]
    dy = means[b, n, 1] - centres[b, cam, 1]
    dz = means[b, n, 2] - centres[b, cam, 2]
    sq = dx * dx + dy * dy + dz * dz
    inv = 1.0 / math.sqrt(sq) if sq > 0.0 else 1.0
    return dx * inv, dy * inv, dz * inv, sq, inv


@njit(inline="always", error_model="numpy")
def _sh_bases(degree, x, y, z, out):
    """The real SH basis values of degrees 0..``degree`` at the unit vector (x, y, z) into
    ``out``, as ``torch_rasterizer.eval_sh_bases``; returns how many."""
    out[0] = 0.2820947917738781
    if degree < 1:
        return 1
    c1 = 0.48860251190292
    out[1] = -c1 * y
    out[2] = c1 * z
    out[3] = -c1 * x
    if degree < 2:
        return 4
    z2 = z * z
    tmp_b = -1.092548430592079 * z
    cc1 = x * x - y * y
    ss1 = 2.0 * x * y
    sh6 = 0.9461746957575601 * z2 - 0.3153915652525201
    out[4] = 0.5462742152960395 * ss1
    out[5] = tmp_b * y
    out[6] = sh6
    out[7] = tmp_b * x
    out[8] = 0.5462742152960395 * cc1
    if degree < 3:
        return 9
    tmp_c = -2.285228997322329 * z2 + 0.4570457994644658
    tmp_b = 1.445305721320277 * z
    cc2 = x * cc1 - y * ss1
    ss2 = x * ss1 + y * cc1
    sh12 = z * (1.865881662950577 * z2 - 1.119528997770346)
    out[9] = -0.5900435899266435 * ss2
    out[10] = tmp_b * ss1
    out[11] = tmp_c * y
    out[12] = sh12
    out[13] = tmp_c * x
    out[14] = tmp_b * cc1
    out[15] = -0.5900435899266435 * cc2
    if degree < 4:
        return 16
    tmp_d = z * (-4.683325804901025 * z2 + 2.007139630671868)
    tmp_c = 3.31161143515146 * z2 - 0.47308734787878
    tmp_b = -1.770130769779931 * z
    cc3 = x * cc2 - y * ss2
    ss3 = x * ss2 + y * cc2
    sh20 = 1.984313483298443 * z * sh12 - 1.006230589874905 * sh6
    out[16] = 0.6258357354491763 * ss3
    out[17] = tmp_b * ss2
    out[18] = tmp_c * ss1
    out[19] = tmp_d * y
    out[20] = sh20
    out[21] = tmp_d * x
    out[22] = tmp_c * cc1
    out[23] = tmp_b * cc2
    out[24] = 0.6258357354491763 * cc3
    return 25


@njit(inline="always", error_model="numpy")
def _sh_basis_grads(degree, x, y, z, gx, gy, gz):
    """The partial derivatives of :func:`_sh_bases` (degrees 0..3) by x, y and z (the unit
    vector's components, as independent variables) into ``gx``, ``gy``, ``gz``."""
    for k in range(16):
        gx[k] = 0.0
        gy[k] = 0.0
        gz[k] = 0.0
    if degree < 1:
        return
    c1 = 0.48860251190292
    gy[1] = -c1
    gz[2] = c1
    gx[3] = -c1
    if degree < 2:
        return
    b2 = 1.092548430592079  # 2 x 0.5462742152960395 (basis 4 and 8) and -tmp_b / z (5, 7)
    gx[4] = b2 * y
    gy[4] = b2 * x
    gy[5] = -b2 * z
    gz[5] = -b2 * y
    gz[6] = 2.0 * 0.9461746957575601 * z
    gx[7] = -b2 * z
    gz[7] = -b2 * x
    gx[8] = b2 * x
    gy[8] = -b2 * y
    if degree < 3:
        return
    a9 = -0.5900435899266435
    b3 = 1.445305721320277
    tmp_c = -2.285228997322329 * z * z + 0.4570457994644658
    dtmp_c = -2.0 * 2.285228997322329 * z
    # s2 = 3 x² y - y³, c2 = x³ - 3 x y², s1 = 2 x y, c1 = x² - y²
    gx[9] = a9 * 6.0 * x * y
    gy[9] = a9 * (3.0 * x * x - 3.0 * y * y)
    gx[10] = b3 * z * 2.0 * y
    gy[10] = b3 * z * 2.0 * x
    gz[10] = b3 * 2.0 * x * y
    gy[11] = tmp_c
    gz[11] = dtmp_c * y
    gz[12] = 3.0 * 1.865881662950577 * z * z - 1.119528997770346
    gx[13] = tmp_c
    gz[13] = dtmp_c * x
    gx[14] = b3 * z * 2.0 * x
    gy[14] = -b3 * z * 2.0 * y
    gz[14] = b3 * (x * x - y * y)
    gx[15] = a9 * (3.0 * x * x - 3.0 * y * y)
    gy[15] = a9 * -6.0 * x * y


@njit(inline="always", error_model="numpy")
def _sh_value(y, coeffs, b, n, used, c):
    """``Σ_k Y_k c_k`` for channel ``c`` of Gaussian ``(b, n)``: the first ``used`` bases in ``y``."""
    total = 0.0
    for k in range(used):
        total += y[k] * coeffs[b, n, k, c]
    return total


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FAST_MATH)
def sh_rgb_forward(
    worker,
    workers,
    means,  # [B, N, 3] float64 world
    coeffs,  # [B, N, K, 3] float32 or float64 SH coefficients, K >= (degree + 1)²
    centres,  # [B, C, 3] float64 camera positions
    degree,  # 0..3
    rgb,  # [B, C, N, 3] float64 out
):
    """``torch_rasterizer.gaussian_colors`` with SH (``max(Σ Y_k(d̂) c_k + 0.5, 0)`` towards each
    camera), for training: this worker's contiguous share of the (scene, Gaussian) pairs, every
    camera of each."""
    B, N = means.shape[:2]
    C = centres.shape[1]
    start, stop = _share(worker, workers, B * N)
    y = np.empty(25)
    for f in range(start, stop):
        b = f // N
        n = f - b * N
        for cam in range(C):
            x, yy, z, _, _ = _view_direction(means, centres, b, n, cam)
            used = _sh_bases(degree, x, yy, z, y)
            for c in range(3):
                rgb[b, cam, n, c] = max(_sh_value(y, coeffs, b, n, used, c) + 0.5, 0.0)


@njit(nogil=True, cache=True, error_model="numpy", fastmath=_FAST_MATH)
def sh_rgb_backward(
    worker,
    workers,
    means,  # [B, N, 3] float64
    coeffs,  # [B, N, K, 3] float32 or float64 (as the caller's: the largest array, not copied)
    centres,  # [B, C, 3] float64
    degree,  # 0..3
    v_rgb,  # [B, C, N, 3] float64 gradient of the colours
    v_means,  # [B, N, 3] float64 out (zeros in)
    v_coeffs,  # [B, N, K, 3] out, the coefficients' dtype (zeros in)
):
    """The backward of :func:`sh_rgb_forward`, as PyTorch differentiates ``sh_to_rgb``: the clamp
    passes the gradient where ``Σ + 0.5 >= 0``; the direction's normalisation gives
    ``(g - d̂ (d̂·g)) / |d|`` (and ``g`` itself at a zero-length direction, which is used as is).
    Each (scene, Gaussian) sums its cameras in order, so results do not depend on threads."""
    B, N = means.shape[:2]
    C = centres.shape[1]
    start, stop = _share(worker, workers, B * N)
    y = np.empty(25)
    gx = np.empty(16)
    gy = np.empty(16)
    gz = np.empty(16)
    g = np.empty(3)
    acc = np.empty((25, 3))
    for f in range(start, stop):
        b = f // N
        n = f - b * N
        acc[:] = 0.0
        used = 1
        for cam in range(C):
            x, yy, z, sq, inv = _view_direction(means, centres, b, n, cam)
            used = _sh_bases(degree, x, yy, z, y)
            for c in range(3):
                total = _sh_value(y, coeffs, b, n, used, c)
                g[c] = v_rgb[b, cam, n, c] if total + 0.5 >= 0.0 else 0.0
            for k in range(used):
                for c in range(3):
                    acc[k, c] += y[k] * g[c]
            if degree < 1:
                continue
            _sh_basis_grads(degree, x, yy, z, gx, gy, gz)
            ux = 0.0
            uy = 0.0
            uz = 0.0
            for k in range(1, used):
                w = g[0] * coeffs[b, n, k, 0] + g[1] * coeffs[b, n, k, 1] + g[2] * coeffs[b, n, k, 2]
                ux += w * gx[k]
                uy += w * gy[k]
                uz += w * gz[k]
            if sq > 0.0:
                dot = x * ux + yy * uy + z * uz
                ux = (ux - x * dot) * inv
                uy = (uy - yy * dot) * inv
                uz = (uz - z * dot) * inv
            v_means[b, n, 0] += ux
            v_means[b, n, 1] += uy
            v_means[b, n, 2] += uz
        for k in range(used):
            for c in range(3):
                v_coeffs[b, n, k, c] = acc[k, c]
