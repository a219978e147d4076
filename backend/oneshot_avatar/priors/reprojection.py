"""The embedded pseudo-labeler (no weights): the photo projected onto the fitted body mesh.

1. **Observe.** The body posed with the fitted parameters is rasterized in the fit camera. A
   texture sample (see :class:`~oneshot_avatar.render.mesh.SurfaceTexture`) is *seen* when the
   3 x 3 pixels around it are covered by the mesh (and the person mask, when given, is above
   0.5 there: outline pixels mix in the background), it is no deeper than the z-buffer there
   plus ``depth_tolerance``, and its triangle faces the camera with ``cos(angle) >= min_cos``.
   It takes the photo's colour there (bilinear); its confidence is ``cos(angle)``.
2. **Mirror.** Unseen samples take the colour of the seen sample nearest their mirror image
   ``(x, y, z) -> (-x, y, z)`` on the shaped rest mesh (within ``mirror_tolerance`` and with a
   matching normal): a hidden arm gets the visible one's sleeve.
3. **Around the limb.** Clothing changes slowly around a limb or the torso and quickly along
   it (sleeve ends, waistbands). Within each body part (faces grouped by their strongest
   skinning joint) an unseen sample averages the seeded samples nearest to it with distances
   along the part's bone stretched, weighted by normal similarity, so the back of an arm or of
   the torso takes the colours seen at the same height on its sides, and the front (opposite
   normal) never paints the back.
4. **Diffuse.** Whatever is left (parts with no seed at all) is filled harmonically over the
   mesh: per-vertex colours are averaged from the seeded samples around each vertex, the
   remaining vertices solve the graph Laplace equation (the converged result of diffusing the
   seeds over the surface, with edges along the bones conducting less; a small pull towards
   the mean colour keeps parts without any seed defined), and unseeded samples interpolate
   their triangle's vertex colours.

A front-to-back copy (the colour at the same (x, y) on the front) is deliberately not used: it
paints the face onto the back of the head and a shirt's print onto its back; steps 3-4 give the
colours of the sides instead, which match a garment's back more often.

The labels are then the textured mesh rendered in driving poses with the photo camera and in
the fitted pose from turnaround views.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree
from torch import Tensor

from oneshot_avatar.cameras import Camera
from oneshot_avatar.errors import UserError
from oneshot_avatar.priors.labels import (
    DRIVING_CLIPS,
    TURNAROUND_AZIMUTHS,
    LabelSet,
    azimuth_kind,
    canonical_params,
    concat_params,
    driving_frames,
    driving_poses,
    repeat_params,
    turnaround_cameras,
)
from oneshot_avatar.priors.surface import (
    _limb_space,
    _posed_vertices,
    bone_directions,
    limb_axes,
    mirror_fill,
    sample_points,
)
from oneshot_avatar.render.mesh import (
    SurfaceTexture,
    barycentric_grid,
    face_normals,
    rasterize_mesh,
    render_textured,
)

_MEAN_PULL = 1e-4  # screening of the Laplace fill: parts without seeds go to the mean colour
# Seeds whose normal is at least this opposite (cosine) to a sample's never colour it.
_OPPOSITE = -0.3
# Where a joint's bone continues when the chain forks there (other joints: their only child).


# --------------------------------------------------------------------------------------------
# Inputs


def _as_image(value: Any, field: str, device: torch.device, channels: int | None) -> Tensor:
    """A float32 image tensor ``[H, W, channels]`` (or ``[H, W]`` when channels is None)."""
    tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
    expected = "[H, W, 3]" if channels else "[H, W]"
    if (channels and (tensor.ndim != 3 or tensor.shape[2] != channels)) or \
            (not channels and tensor.ndim != 2):
        raise UserError(f"expected an image of shape {expected}, got {tuple(tensor.shape)}",
                        field=field)
    if tensor.dtype == torch.uint8:
        tensor = tensor.to(torch.float32) / 255.0
    tensor = tensor.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(tensor).all()):
        raise UserError("contains NaN or infinity", field=field)
    return tensor


def _bilinear(image: Tensor, uv: Tensor) -> Tensor:
    """``image [H, W, C]`` at continuous pixel coordinates ``uv [N, 2]`` (pixel centres at
    ``+0.5``), edge-clamped -> ``[N, C]``."""
    height, width = image.shape[:2]
    grid = torch.stack([uv[:, 0] / width * 2 - 1, uv[:, 1] / height * 2 - 1], dim=-1)
    sampled = F.grid_sample(image.permute(2, 0, 1)[None], grid[None, None].to(image.dtype),
                            mode="bilinear", padding_mode="border", align_corners=False)
    return sampled[0, :, 0].T


# --------------------------------------------------------------------------------------------
# The fill steps


class Observation(NamedTuple):
    """What the photo shows of each texture sample (:func:`observe_photo`)."""

    colors: Tensor  # [F, S, 3]
    seen: Tensor  # [F, S] bool
    confidence: Tensor  # [F, S] viewing cosine where seen, else 0
    beside_occluder: Tensor  # [F, S] bool: seen, but next to a nearer part of the body


def observe_photo(
    vertices: Tensor,  # [V, 3] posed mesh, world
    faces: Tensor,  # [F, 3]
    camera: Camera,
    image: Tensor,  # [H, W, 3] float in [0, 1], H x W = the camera's size
    mask: Tensor | None,  # [H, W] or None
    resolution: int,
    *,
    min_cos: float = 0.1,
    depth_tolerance: float = 0.02,
    outline_margin: int = 0,
    occlusion_margin: int = 0,
    occlusion_gap: float = 0.03,
) -> Observation:
    """Colours ``[F, S, 3]``, seen ``[F, S]`` (bool) and confidence ``[F, S]`` (cosine of the
    viewing angle where seen, else 0) of the texture samples of the posed mesh in the photo.
    With ``outline_margin`` ``m > 0``, seen samples within ``m`` pixels of the covered area's
    outline (anti-aliased pixels that mix in the background) get a quarter of the confidence.
    With ``occlusion_margin`` ``m > 0``, ``beside_occluder`` marks the seen samples within
    ``m`` pixels of a part of the body at least ``occlusion_gap`` metres nearer the camera:
    where a forearm crosses the belly, the photo's arm is a few pixels off the fitted one, and
    its skin (or what the hand holds) is read as the shirt's there."""
    device = vertices.device
    camera = camera.to(device=device, dtype=vertices.dtype)
    height, width = image.shape[:2]
    raster = rasterize_mesh(vertices, faces, camera)
    grid = barycentric_grid(resolution, device=device, dtype=vertices.dtype)
    points = torch.einsum("sk,fkc->fsc", grid, vertices[faces])  # [F, S, 3]
    num_faces, per_face = points.shape[:2]
    flat = points.reshape(-1, 3)
    uv, depth = camera.project(flat)
    normals = face_normals(vertices, faces)[:, None].expand(-1, per_face, -1).reshape(-1, 3)
    towards_camera = F.normalize(camera.position[None] - flat, dim=-1)
    cosine = (normals * towards_camera).sum(dim=-1)
    col = torch.floor(uv[:, 0]).long()
    row = torch.floor(uv[:, 1]).long()
    inside = (depth > camera.near) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    pixel = row.clamp(0, height - 1) * width + col.clamp(0, width - 1)
    # Pixels on the person's outline mix in the background: use only pixels whose 3 x 3
    # neighbourhood is all covered by the mesh (and inside the mask).
    covered = raster.face_id >= 0
    if mask is not None:
        covered &= mask > 0.5
    interior = -F.max_pool2d(-covered[None, None].to(torch.float32), 3, stride=1, padding=1)
    interior = interior[0, 0].reshape(-1) > 0.5
    in_front = depth <= raster.depth.reshape(-1)[pixel] + depth_tolerance
    seen = inside & interior[pixel] & in_front & (cosine >= min_cos)
    beside = torch.zeros_like(seen)
    if occlusion_margin > 0:
        size = 2 * int(occlusion_margin) + 1
        nearest = -F.max_pool2d(-raster.depth[None, None], size, stride=1, padding=size // 2)
        beside = seen & (nearest.reshape(-1)[pixel] < depth - occlusion_gap)
    colors = torch.zeros_like(flat, dtype=torch.float32)
    if bool(seen.any()):
        colors[seen] = _bilinear(image, uv[seen]).clamp(0, 1)
    confidence = torch.where(seen, cosine, torch.zeros_like(cosine)).clamp(0, 1)
    if outline_margin > 0:
        size = 2 * int(outline_margin) + 3
        deep = -F.max_pool2d(-covered[None, None].to(torch.float32), size, stride=1,
                             padding=size // 2)
        deep = deep[0, 0].reshape(-1)[pixel] > 0.5
        confidence = torch.where(deep, confidence, 0.25 * confidence)
    return Observation(colors.reshape(num_faces, per_face, 3), seen.reshape(num_faces, per_face),
                       confidence.reshape(num_faces, per_face).to(torch.float32),
                       beside.reshape(num_faces, per_face))


def around_fill(
    rest_vertices: Tensor,  # [V, 3] shaped rest mesh
    faces: Tensor,  # [F, 3]
    lbs_weights: Tensor,  # [V, J] skinning weights
    rest_joints: Tensor,  # [J, 3]
    colors: Tensor,  # [F, S, 3]
    seeded: Tensor,  # [F, S] bool
    resolution: int,
    *,
    along_weight: float = 0.05,
    candidates: int = 8,
    normal_scale: float = 0.05,
    groups: Tensor | None = None,  # [F, S] int, e.g. regions: parts are split by group too
    weights: Tensor | None = None,  # [F, S] reliability of the seeded samples
    min_weight: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Give unseeded samples the colours found around their limb (module docstring, step 3).

    Per body part (the faces whose strongest skinning joint is one joint), each unseeded sample
    averages its ``candidates`` nearest seeded samples of that part in a space of rest position,
    with the bone-direction component stretched by ``1 / sqrt(along_weight)`` (so "at the same
    height around the limb" is near), and rest normal times ``normal_scale`` metres (so the
    surface facing the other way, across a thin limb or the torso, is far); weights are
    ``1 / distance^2`` times how alike the normals are (``((n.n' + 0.3) / 1.3)^2``, zero for
    ``n.n' <= -0.3``: the front never paints the back). Samples without a usable candidate,
    and parts without seeds, are left for :func:`diffuse_fill`. With ``groups`` (the person's
    regions), a part is split by group: hair only from hair, a shirt only from the shirt.
    With ``weights``, seeds below ``min_weight`` (seen at a grazing angle, where the outline
    mixes in the background) are used only by parts that have fewer than 3 other seeds.
    Returns the colours and the mask of samples filled here.
    """
    faces_cpu = faces.detach().cpu().long()
    per_face = int(colors.shape[1])
    points, normals = sample_points(rest_vertices, faces, resolution)
    part = lbs_weights.detach().cpu()[faces_cpu].sum(dim=1).argmax(dim=1)  # [F]
    part = part[:, None].expand(-1, per_face).reshape(-1).numpy()
    directions = bone_directions(rest_joints).numpy()
    num_joints = directions.shape[0]
    if groups is not None:
        group = groups.detach().cpu().reshape(-1).long().numpy()
        part = part + num_joints * group
        directions = np.tile(directions, (int(group.max()) + 1, 1))
    seeded_flat = seeded.detach().cpu().reshape(-1).numpy()
    reliable = seeded_flat if weights is None else \
        seeded_flat & (weights.detach().cpu().reshape(-1).numpy() >= min_weight)
    flat = colors.detach().cpu().to(torch.float64).reshape(-1, 3).numpy().copy()
    filled = np.zeros_like(seeded_flat)
    stretch = 1.0 / math.sqrt(along_weight) - 1.0
    order = np.argsort(part, kind="stable")
    starts = np.searchsorted(part[order], np.arange(directions.shape[0] + 1))
    for joint in np.unique(part[~seeded_flat]):
        ids = order[starts[joint] : starts[joint + 1]]  # the samples of this part
        sources = ids[reliable[ids]]
        if sources.size < 3:
            sources = ids[seeded_flat[ids]]
        targets = ids[~seeded_flat[ids]]
        if sources.size < 3:
            continue
        axis, k = directions[joint], min(candidates, sources.size)  # joint: part (+ group)
        tree = cKDTree(_limb_space(points[sources], normals[sources], axis, stretch,
                                   normal_scale))
        distance, nearest = tree.query(_limb_space(points[targets], normals[targets], axis,
                                                   stretch, normal_scale), k=k, workers=-1)
        distance, nearest = distance.reshape(targets.size, k), nearest.reshape(targets.size, k)
        cosine = (normals[sources[nearest]] * normals[targets][:, None]).sum(-1)
        alike = np.clip((cosine - _OPPOSITE) / (1.0 - _OPPOSITE), 0.0, None) ** 2
        weight = alike / (distance ** 2 + 1e-6)
        ok = alike.max(axis=1) > 0.0
        weight = weight[ok] / weight[ok].sum(axis=1, keepdims=True)
        flat[targets[ok]] = (weight[..., None] * flat[sources[nearest[ok]]]).sum(axis=1)
        filled[targets[ok]] = True
    out = torch.from_numpy(flat).to(device=colors.device, dtype=colors.dtype)
    return out.reshape(colors.shape), torch.from_numpy(filled).reshape(seeded.shape)


def diffuse_fill(
    rest_vertices: Tensor,  # [V, 3] rest mesh (edge directions for ``axes``)
    faces: Tensor,  # [F, 3]
    colors: Tensor,  # [F, S, 3]
    seeded: Tensor,  # [F, S] bool
    resolution: int,
    *,
    weights: Tensor | None = None,  # [F, S] reliability of seeded samples (default 1)
    axes: Tensor | None = None,  # [V, 3] limb directions (see limb_axes); None = isotropic
    along_weight: float = 0.05,
    fixed_fraction: float = 0.5,
    groups: Tensor | None = None,  # [F, S] int (regions): edges between groups conduct little
    cross_group: float = 0.02,
) -> Tensor:
    """Fill every unseeded sample by harmonic interpolation over the mesh (module docstring,
    step 4); seeded samples keep their colours. With ``axes``, a mesh edge at angle ``a`` to
    the limb axis conducts ``1 / (sin^2 a + cos^2 a / along_weight)``: 1 around the limb,
    ``along_weight`` along it, so colours travel around limbs and the torso rather than up and
    down across garment edges. With ``groups`` (the person's regions; a vertex takes its corner
    sample's), an edge between two groups conducts ``cross_group`` times as much: hair does not
    bleed into the face, nor a shirt into the trousers. Returns colours ``[F, S, 3]``."""
    device = colors.device
    num_vertices = int(rest_vertices.shape[0])
    faces_np = faces.detach().cpu().long().numpy()
    grid = barycentric_grid(resolution, dtype=torch.float64).numpy()  # [S, 3]
    seeded_np = seeded.detach().cpu().numpy()
    colors_np = colors.detach().cpu().to(torch.float64).numpy()
    reliability = np.ones(seeded_np.shape) if weights is None else \
        weights.detach().cpu().to(torch.float64).numpy().clip(min=1e-3)
    # Each sample speaks for a vertex with weight bary^4 (mostly the samples next to it).
    near = grid ** 4  # [S, 3]
    vertex_ids = faces_np[:, None, :].repeat(grid.shape[0], axis=1)  # [F, S, 3]
    possible = np.bincount(vertex_ids.ravel(), np.broadcast_to(near, vertex_ids.shape).ravel(),
                           minlength=num_vertices)
    w = near[None] * (seeded_np * reliability)[..., None]  # [F, S, 3]
    seen_weight = np.bincount(vertex_ids.ravel(), (near[None] * seeded_np[..., None]).ravel(),
                              minlength=num_vertices)
    total = np.bincount(vertex_ids.ravel(), w.ravel(), minlength=num_vertices)
    vertex_colors = np.stack([
        np.bincount(vertex_ids.ravel(), (w * colors_np[:, :, None, c]).ravel(),
                    minlength=num_vertices) for c in range(3)], axis=1)
    fixed = seen_weight >= fixed_fraction * np.maximum(possible, 1e-12)
    fixed &= total > 0
    vertex_colors[fixed] /= total[fixed, None]
    if not fixed.any():
        raise UserError("no part of the body mesh was seen in the photo, so there are no "
                        "colours to spread; check the fitted camera and the person mask",
                        field="mask")
    free = ~fixed
    if free.any():
        edges = np.concatenate([faces_np[:, [0, 1]], faces_np[:, [1, 2]], faces_np[:, [2, 0]]])
        edges = np.unique(np.sort(edges, axis=1), axis=0)
        conductance = np.ones(edges.shape[0])
        if axes is not None:
            rest = rest_vertices.detach().cpu().to(torch.float64).numpy()
            axes_np = axes.detach().cpu().to(torch.float64).numpy()
            direction = rest[edges[:, 1]] - rest[edges[:, 0]]
            direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
            cos2 = 0.5 * ((direction * axes_np[edges[:, 0]]).sum(1) ** 2
                          + (direction * axes_np[edges[:, 1]]).sum(1) ** 2)
            # Edge length^2 over its length^2 with the along-limb part stretched by
            # 1/sqrt(along_weight): diagonal edges are nearly as weak as along ones.
            conductance = 1.0 / (1.0 - cos2 + cos2 / along_weight)
        if groups is not None:
            group_np = groups.detach().cpu().long().numpy()
            corner = grid.argmax(axis=0)  # the sample at each triangle corner
            vertex_group = np.zeros(num_vertices, dtype=np.int64)
            for k in range(3):
                vertex_group[faces_np[:, k]] = group_np[:, corner[k]]
            same = vertex_group[edges[:, 0]] == vertex_group[edges[:, 1]]
            conductance = conductance * np.where(same, 1.0, cross_group)
        rows = np.concatenate([edges[:, 0], edges[:, 1]])
        cols = np.concatenate([edges[:, 1], edges[:, 0]])
        adjacency = scipy.sparse.csr_matrix((np.tile(conductance, 2), (rows, cols)),
                                            shape=(num_vertices, num_vertices))
        degree = np.asarray(adjacency.sum(axis=1)).ravel()
        free_ids = np.flatnonzero(free)
        fixed_ids = np.flatnonzero(fixed)
        a_ff = adjacency[free_ids][:, free_ids]
        a_fx = adjacency[free_ids][:, fixed_ids]
        mean = vertex_colors[fixed].mean(axis=0)
        system = scipy.sparse.diags(degree[free_ids] + _MEAN_PULL) - a_ff
        rhs = a_fx @ vertex_colors[fixed_ids] + _MEAN_PULL * mean[None]
        solve = scipy.sparse.linalg.factorized(system.tocsc())
        vertex_colors[free_ids] = np.stack([solve(rhs[:, c]) for c in range(3)], axis=1)
    interpolated = np.einsum("sk,fkc->fsc", grid, vertex_colors[faces_np])  # [F, S, 3]
    out = np.where(seeded_np[..., None], colors_np, interpolated)
    return torch.from_numpy(out.clip(0, 1)).to(device=device, dtype=colors.dtype)


def _hair_fill(colors: Tensor, seen: Tensor, seeded: Tensor, weights: Tensor, regions,
               device) -> tuple[Tensor, Tensor]:
    """Unseen hair takes the median colour of the confidently seen hair (viewing cosine
    >= 0.3; else all seen hair), of its half least like the skin: the back of the head is far
    from every seen hair sample, and the nearest ones (the hairline, mixed with the forehead's
    skin) would paint it skin-tinted.
    Returns the colours and the new seeded mask."""
    from oneshot_avatar.priors.regions import HAIR

    hair = regions.labels.to(device) == HAIR
    source = seen & hair & (weights >= 0.3)
    if int(source.sum()) < 3:
        source = seen & hair
    if int(source.sum()) < 3:
        return colors, seeded
    sources = colors[source]
    if regions.skin_rgb is not None:
        # Hair seen at its edge (the hairline, a fringe over the forehead) mixes in the skin:
        # keep the half of the seen hair least like the skin.
        distance = (sources - torch.tensor(regions.skin_rgb, dtype=sources.dtype,
                                           device=sources.device)).norm(dim=1)
        sources = sources[distance >= distance.median()]
    colors = colors.clone()
    colors[hair & ~seeded] = sources.median(dim=0).values
    return colors, seeded | hair


def garment_back_fill(
    rest_vertices: Tensor,  # [V, 3] shaped rest mesh (the body faces +Z)
    faces: Tensor,  # [F, 3]
    colors: Tensor,  # [F, S, 3]
    seen: Tensor,  # [F, S] bool: observed in the photo
    seeded: Tensor,  # [F, S] bool: coloured so far (seen, mirrored, ...)
    regions,  # SurfaceRegions of these samples
    resolution: int,
    *,
    garments: Sequence[int] | None = None,  # region indices (default: upper, lower clothes)
    tolerance: float = 0.05,
    min_normal_dot: float = 0.3,
    clusters: int = 10,
    side_cosine: float = 0.5,
    fabric_share: float = 0.02,
    common_share: float = 0.10,
    skin_distance: float = 14.0,
    print_margin: float = 0.01,
) -> tuple[Tensor, Tensor, Tensor]:
    """The back of each garment from its front, without the front's prints.

    A garment's pattern (stripes, checks, the fabric's colour) goes around the body; a print
    (a badge, a logo) is a small patch on the front. So the seen colours of each garment
    (``garments``: region indices, default body skin, upper and lower clothes) are clustered
    (k-means in CIELAB), and a cluster counts as **fabric** when it makes up ``common_share``
    of the garment's seen samples, or ``fabric_share`` of those seen from the side (rest normal
    with ``|n_z| < side_cosine``: what goes around the body); on clothes, a rare cluster near
    the skin's colour (a hand hanging beside the thigh) never does; seen samples within
    ``print_margin`` metres of a print's patch (non-fabric samples that are at least half of
    the seen samples around them) count with the print: its edge mixes it with the fabric. An unseeded sample of the
    garment facing backwards (rest normal ``n_z < 0``) then takes the colour of the seen fabric
    sample of the same garment and body part at the same place seen from the front: the
    nearest in rest ``(x, y)`` within ``tolerance`` metres whose normal, mirrored front to
    back, is alike (cosine at least ``min_normal_dot``); samples left without take the nearest
    fabric of their part within ``2.5 * tolerance`` (behind a large print). Heights count
    double in "nearest": where a print was, the fabric beside it at the same height stands in,
    so a stripe goes on behind the print's hole (the nearest fabric in any direction drew a
    wedge of the stripe above or below it there). Samples with no such source are left to
    the later fills, and the print's samples (seen, not fabric) are returned so that those fills
    do not spread them either.
    Returns the colours, the mask of samples filled here and the mask of print samples."""
    from oneshot_avatar.priors.regions import (
        BODY_SKIN,
        LOWER,
        SKIN_REGIONS,
        UPPER,
        _kmeans_labels,
        skin_distance_lab,
        to_lab,
    )

    garments = (BODY_SKIN, UPPER, LOWER) if garments is None else tuple(garments)
    skin = None if regions.skin_rgb is None else \
        to_lab(np.asarray(regions.skin_rgb, dtype=np.float32)[None])[0]
    points, normals = sample_points(rest_vertices, faces, resolution)
    labels = regions.labels.detach().cpu().reshape(-1).numpy()
    parts = regions.parts.detach().cpu().reshape(-1).numpy()
    seen_flat = seen.detach().cpu().reshape(-1).numpy()
    seeded_flat = seeded.detach().cpu().reshape(-1).numpy()
    flat = colors.detach().cpu().to(torch.float64).reshape(-1, 3).numpy().copy()
    filled = np.zeros_like(seeded_flat)
    prints = np.zeros_like(seeded_flat)
    for garment in garments:
        in_garment = labels == garment
        observed = np.flatnonzero(in_garment & seen_flat)
        if observed.size < 10:
            continue
        lab = to_lab(flat[observed].astype(np.float32))
        centres, cluster = _kmeans_labels(lab, clusters)
        overall = np.bincount(cluster, minlength=len(centres)) / cluster.size
        fabric = overall >= common_share
        side = np.abs(normals[observed, 2]) < side_cosine
        if side.sum() >= 20:
            fabric |= np.bincount(cluster[side], minlength=len(centres)) / side.sum() >= fabric_share
        if garment not in SKIN_REGIONS and skin is not None:
            # Skin seen on a garment (a hand hanging beside the thigh) is not its fabric.
            fabric &= (skin_distance_lab(centres, skin) >= skin_distance) | (overall >= common_share)
        # A print's edge mixes it with the fabric into colours the clusters may count as
        # fabric: samples within print_margin of a print's are left out with it.
        is_print = ~fabric[cluster]
        if is_print.any() and print_margin > 0:
            # ... around a print's patch, not around a stray sample of a rare colour.
            spots = points[observed[is_print]]
            local = cKDTree(spots).query_ball_point(spots, print_margin, return_length=True)
            around = cKDTree(points[observed]).query_ball_point(spots, print_margin,
                                                                return_length=True)
            patch = spots[local >= 0.5 * around]
            if len(patch):
                near, _ = cKDTree(patch).query(points[observed],
                                               distance_upper_bound=print_margin, workers=-1)
                is_print |= np.isfinite(near)
        prints[observed[is_print]] = True
        front = normals[observed, 2] > 0.0
        sources_all = observed[~is_print & front]
        targets_all = np.flatnonzero(in_garment & ~seeded_flat & (normals[:, 2] < 0.0))
        for part in np.unique(parts[targets_all]):
            sources = sources_all[parts[sources_all] == part]
            targets = targets_all[parts[targets_all] == part]
            _copy_from_front(flat, filled, points, normals, sources, targets, tolerance,
                             min_normal_dot, height_scale=2.0)
            # What that left (behind a large print): the part's fabric from further around.
            _copy_from_front(flat, filled, points, normals, sources, targets[~filled[targets]],
                             2.5 * tolerance, 0.0, height_scale=2.0)
    out = torch.from_numpy(flat).to(device=colors.device, dtype=colors.dtype)
    return (out.reshape(colors.shape), torch.from_numpy(filled).reshape(seeded.shape),
            torch.from_numpy(prints).reshape(seeded.shape))


def _copy_from_front(flat: np.ndarray, filled: np.ndarray, points: np.ndarray,
                     normals: np.ndarray, sources: np.ndarray, targets: np.ndarray,
                     tolerance: float, min_normal_dot: float, candidates: int = 4,
                     height_scale: float = 1.0) -> None:
    """:func:`garment_back_fill`'s copy, in place: each target takes the first of its nearest
    sources in rest ``(x, y)`` (``y`` distances times ``height_scale``) within ``tolerance``
    whose normal, mirrored front to back, has a cosine of at least ``min_normal_dot`` with the
    target's."""
    if sources.size == 0 or targets.size == 0:
        return
    k = min(candidates, sources.size)
    scale = np.array([1.0, height_scale])
    distance, nearest = cKDTree(points[sources, :2] * scale).query(
        points[targets, :2] * scale, k=k, distance_upper_bound=tolerance, workers=-1)
    distance, nearest = distance.reshape(targets.size, k), nearest.reshape(targets.size, k)
    found = np.isfinite(distance)
    safe = np.where(found, nearest, 0)
    flip = np.array([1.0, 1.0, -1.0])
    dots = (normals[sources[safe]] * (normals[targets] * flip)[:, None]).sum(-1)
    usable = found & (dots >= min_normal_dot)
    first = usable.argmax(axis=1)
    ok = usable[np.arange(targets.size), first]
    flat[targets[ok]] = flat[sources[safe[np.arange(targets.size), first][ok]]]
    filled[targets[ok]] = True


def _region_fallback(colors: Tensor, seen: Tensor, seeded: Tensor, regions, device
                     ) -> tuple[Tensor, Tensor]:
    """Samples still unseeded after the mirror and around-the-limb fills (no usable seed
    nearby, e.g. the back of the head when the seen hair all faces forwards) take the median
    seeded colour of their own part and region, else the region's median seen colour (skin
    regions never seen: the face's skin colour), so a hand whose photo samples were all
    dropped is skin-coloured and the back of the head hair-coloured, never the mean of
    their neighbours. Returns the colours and the new seeded mask."""
    from oneshot_avatar.priors.regions import REGIONS, SKIN_REGIONS

    labels = regions.labels.to(device)
    parts = regions.parts.to(device)
    colors = colors.clone()
    filled = seeded.clone()
    for region in range(len(REGIONS)):
        in_region = labels == region
        if not bool((in_region & ~seeded).any()):
            continue
        source = seen & in_region
        if bool(source.any()):
            overall = colors[source].median(dim=0).values
        elif region in SKIN_REGIONS and regions.skin_rgb is not None:
            overall = torch.tensor(regions.skin_rgb, dtype=colors.dtype, device=device)
        else:
            continue
        for part in torch.unique(parts[in_region & ~seeded]).tolist():
            group = in_region & (parts == part)
            own = group & seeded
            fill = colors[own].median(dim=0).values if int(own.sum()) >= 3 else overall
            colors[group & ~seeded] = fill
            filled = filled | group
    return colors, filled


# --------------------------------------------------------------------------------------------
# The labeler


class MeshReprojectionLabeler:
    """The default labeler: the photo reprojected onto the fitted mesh (module docstring).

    ``resolution``: texture grid per triangle; ``supersample``: anti-aliasing of the labels;
    ``background``: rgb the labels are composited over; ``min_cos``, ``depth_tolerance``
    (metres): what counts as seen; ``symmetry``, ``mirror_tolerance`` (metres): the mirror
    fill; ``along_weight``: how much cheaper it is for colours to travel around a limb than
    along it (squared distance ratio; 1 turns step 3 off and makes the diffusion isotropic);
    ``clips``, ``frames_per_clip``, ``azimuths``: the default poses and views; ``regions``:
    fill each of the person's regions from its own kind (see :mod:`oneshot_avatar.priors.regions`
    and :meth:`texture_and_regions`; the presets turn it on); ``garment_backs`` (with regions):
    the back of each garment from its front's fabric, prints left out (:func:`garment_back_fill`);
    ``occlusion_margin`` (with regions; a fraction of the image's longer side): skin seen on the
    torso that close to a nearer part of the body (the belly beside a crossing forearm, whose
    photo outline is a few pixels off the fitted one) is not taken for the torso's own skin
    (:func:`~oneshot_avatar.priors.regions.surface_regions`' ``beside_occluder``).
    """

    name = "mesh-reprojection"

    def __init__(self, *, resolution: int = 4, supersample: int = 2,
                 background: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 min_cos: float = 0.1, depth_tolerance: float = 0.02, symmetry: bool = True,
                 mirror_tolerance: float = 0.02, along_weight: float = 0.05,
                 clips: Sequence[str] = DRIVING_CLIPS,
                 frames_per_clip: int = 4,
                 azimuths: Sequence[float] = TURNAROUND_AZIMUTHS,
                 regions: bool = False, garment_backs: bool = True,
                 occlusion_margin: float = 0.025):
        if not 0.0 < float(along_weight) <= 1.0:
            raise UserError(f"along_weight must be in (0, 1], got {along_weight!r}",
                            field="along_weight")
        if not -1.0 <= float(min_cos) < 1.0:
            raise UserError(f"min_cos must be in [-1, 1), got {min_cos!r}", field="min_cos")
        self.resolution = resolution
        self.supersample = supersample
        self.background = tuple(float(c) for c in background)
        self.min_cos = float(min_cos)
        self.depth_tolerance = float(depth_tolerance)
        self.symmetry = bool(symmetry)
        self.mirror_tolerance = float(mirror_tolerance)
        self.along_weight = float(along_weight)
        self.clips = tuple(clips)
        self.frames_per_clip = frames_per_clip
        self.azimuths = tuple(float(a) for a in azimuths)
        self.regions = bool(regions)
        self.garment_backs = bool(garment_backs)
        if not 0.0 <= float(occlusion_margin) < 0.2:
            raise UserError("occlusion_margin is a fraction of the image's longer side in "
                            f"[0, 0.2), got {occlusion_margin!r}", field="occlusion_margin")
        self.occlusion_margin = float(occlusion_margin)

    def texture_from_photo(self, body, params: Mapping[str, Tensor], camera: Camera,
                           image: Any, mask: Any, *, resolution: int | None = None,
                           vertex_offsets: Tensor | None = None) -> SurfaceTexture:
        """The person's colours on the body surface: observed where the photo sees the fitted
        mesh, filled elsewhere by symmetry, around the limbs and by diffusion (each region from
        its own kind when ``regions`` is on). ``image`` ``[H, W, 3]`` (float in [0, 1] or
        uint8) and ``mask`` ``[H, W]`` (or None) must match the camera's size. ``known`` marks
        observed samples, ``confidence`` their viewing cosine. ``vertex_offsets [V, 3]``: the
        person's shape beyond the body (rest-pose offsets, see
        :func:`oneshot_avatar.priors.outline.outline_growth`): the photo is observed on the
        grown mesh, so hair and loose clothes outside the bare body are seen."""
        return self.texture_and_regions(body, params, camera, image, mask,
                                        resolution=resolution, vertex_offsets=vertex_offsets)[0]

    def texture_and_regions(self, body, params: Mapping[str, Tensor], camera: Camera,
                            image: Any, mask: Any, *, resolution: int | None = None,
                            vertex_offsets: Tensor | None = None):
        """:meth:`texture_from_photo` and the person's
        :class:`~oneshot_avatar.priors.regions.SurfaceRegions` (None with ``regions`` off).

        With regions, the fill keeps each region to its own kind: seen hand samples whose
        colour is far from the skin's are dropped (the background through a hand), the mirror
        copies only within a region, the back of the head takes the seen hair, the back of a
        garment its front's fabric at the same place (:func:`garment_back_fill`: stripes and
        checks go around, prints stay on the front), the around-the-limb fill runs per part
        *and* region for the rest (the sides), a
        region left without any seed in a part takes the region's median seen colour (skin:
        the face's), and the diffusion barely crosses region borders."""
        from oneshot_avatar.priors.regions import surface_regions

        resolution = self.resolution if resolution is None else resolution
        device = body.device
        rgb = _as_image(image, "image", device, 3)
        person = None if mask is None else _as_image(mask, "mask", device, None)
        if tuple(rgb.shape[:2]) != (camera.height, camera.width):
            raise UserError(f"the image is {rgb.shape[1]}x{rgb.shape[0]} but the camera "
                            f"{camera.width}x{camera.height}; give the working image the fit "
                            "camera was made for", field="image")
        if person is not None and tuple(person.shape) != tuple(rgb.shape[:2]):
            raise UserError(f"the mask is {person.shape[1]}x{person.shape[0]} but the image "
                            f"{rgb.shape[1]}x{rgb.shape[0]}", field="mask")
        faces = body.faces
        vertices = _posed_vertices(body, params, vertex_offsets)[0]
        margin = round(self.occlusion_margin * max(rgb.shape[:2])) if self.regions else 0
        colors, seen, confidence, beside = observe_photo(
            vertices, faces, camera, rgb, person, resolution, min_cos=self.min_cos,
            depth_tolerance=self.depth_tolerance, outline_margin=2 if self.regions else 0,
            occlusion_margin=margin)
        if not bool(seen.any()):
            raise UserError("no part of the fitted body is visible in the photo (inside the "
                            "mask); check the fit camera and the person mask", field="mask")
        betas = canonical_params(params).get("betas")
        with torch.no_grad():
            rest, rest_joints = body.shape_rest(None if betas is None else betas.to(device))
        regions = groups = None
        if self.regions:
            regions = surface_regions(rest[0], faces, body.lbs_weights, rest_joints[0], colors,
                                      seen, resolution, along_weight=self.along_weight,
                                      beside_occluder=beside)
            groups = regions.labels.to(device)
            rejected = regions.rejected.to(device)
            seen = seen & ~rejected
            confidence = torch.where(rejected, torch.zeros_like(confidence), confidence)
        seeded = seen
        if self.symmetry:
            colors, mirrored = mirror_fill(rest[0], faces, colors, seen, resolution,
                                           tolerance=self.mirror_tolerance, groups=groups)
            seeded = seen | mirrored.to(device)
        weights = torch.where(seen, confidence.clamp(min=0.05), torch.full_like(confidence, 0.5))
        around_weights = weights
        if regions is not None:
            colors, seeded = _hair_fill(colors, seen, seeded, weights, regions, device)
            if self.garment_backs:
                colors, backs, prints = garment_back_fill(rest[0], faces, colors, seen,
                                                          seeded, regions, resolution)
                seeded = seeded | backs.to(device)
                # A print stays where it was seen: no around-the-limb colour comes from it.
                around_weights = torch.where(prints.to(device), torch.zeros_like(weights),
                                             around_weights)
        if self.along_weight < 1:
            colors, around = around_fill(rest[0], faces, body.lbs_weights, rest_joints[0],
                                         colors, seeded, resolution,
                                         along_weight=self.along_weight, groups=groups,
                                         weights=around_weights if self.regions else None,
                                         min_weight=0.3)
            seeded = seeded | around.to(device)
        if regions is not None:
            colors, seeded = _region_fallback(colors, seen, seeded, regions, device)
        axes = limb_axes(body.lbs_weights, rest_joints[0]) if self.along_weight < 1 else None
        filled = diffuse_fill(rest[0], faces, colors, seeded, resolution, weights=weights,
                              axes=axes, along_weight=self.along_weight, groups=groups)
        return SurfaceTexture(filled.to(torch.float32), seen, resolution, confidence), regions

    def make_labels(self, body, fit_params: Mapping[str, Tensor], camera: Camera, image: Any,
                    mask: Any, *, poses: Mapping[str, Tensor] | None = None,
                    views: Sequence[Camera] | None = None,
                    device: torch.device | str, texture: SurfaceTexture | None = None,
                    vertex_offsets: Tensor | None = None) -> LabelSet:
        """Label frames: the textured person in ``poses`` (batched SMPL-X parameters, missing
        ones taken from the fit; default :func:`driving_poses` of ``self.clips``) seen by the
        photo ``camera``, then in the
        fitted pose seen by ``views`` (default :func:`turnaround_cameras` at
        ``self.azimuths``). An empty dict / list leaves that part out. ``texture``: the result of
        :meth:`texture_from_photo` for these inputs when the caller already has it;
        ``vertex_offsets [V, 3]``: the person's shape beyond the body, observed and drawn (the
        labels then carry the hair and the loose clothes)."""
        device = torch.device(device)
        if texture is None:
            texture = self.texture_from_photo(body, fit_params, camera, image, mask,
                                              vertex_offsets=vertex_offsets)
        texture = texture.to(device)
        if poses is None:
            pairs = driving_frames(self.clips, self.frames_per_clip)
            poses = driving_poses(fit_params, clips=self.clips,
                                  frames_per_clip=self.frames_per_clip,
                                  expression_names=body.expression_names)
            pose_kinds = [f"pose:{clip}:{frame}" for clip, frame in pairs]
        else:
            given = canonical_params(poses)
            count = int(next(iter(given.values())).shape[0]) if given else 0
            # Parameters the poses leave out (betas, usually) are the fitted ones.
            poses = {**repeat_params(fit_params, count), **given} if count else {}
            pose_kinds = [f"pose:{i}" for i in range(count)]
        if views is None:
            views = turnaround_cameras(fit_params, body, camera, self.azimuths)
            view_kinds = [azimuth_kind(a) for a in self.azimuths]
        else:
            views = list(views)
            view_kinds = [f"view:{i}" for i in range(len(views))]
        for i, view in enumerate(views):
            if (view.width, view.height) != (camera.width, camera.height):
                raise UserError(f"view {i} is {view.width}x{view.height} but the photo camera "
                                f"{camera.width}x{camera.height}; label views must share its "
                                "size", field=f"views[{i}]")
        faces = body.faces.to(device)
        images, masks = [], []

        def draw(vertices: Tensor, view: Camera) -> None:
            rgb, alpha = render_textured(vertices.to(device), faces, texture, view.to(device),
                                         background=self.background,
                                         supersample=self.supersample)
            images.append(rgb)
            masks.append(alpha)

        batch = 8
        for start in range(0, len(pose_kinds), batch):
            chunk = {k: v[start : start + batch] for k, v in poses.items()}
            for vertices in _posed_vertices(body, chunk, vertex_offsets):
                draw(vertices, camera)
        if views:
            fitted = _posed_vertices(body, fit_params, vertex_offsets)[0]
            for view in views:
                draw(fitted, view)
        if not images:
            raise UserError("no poses and no views were asked for; nothing to label",
                            field="poses")
        params = concat_params([dict(poses) if pose_kinds else {},
                                repeat_params(fit_params, len(views)) if views else {}])
        return LabelSet(
            images=torch.stack(images),
            masks=torch.stack(masks),
            params={k: v.to(device) for k, v in params.items()},
            cameras=[camera.to(device)] * len(pose_kinds) + [v.to(device) for v in views],
            kinds=pose_kinds + view_kinds,
            background=self.background,
        )


__all__ = [
    "MeshReprojectionLabeler",
    "around_fill",
    "bone_directions",
    "diffuse_fill",
    "limb_axes",
    "mirror_fill",
    "observe_photo",
]
