"""Geometry of the body surface that the labeler's fills and the person's regions share:
the posed mesh, mirror images across the body's plane of symmetry, and the direction of the bone
each part hangs on (a module of its own so that ``priors.regions`` and ``priors.reprojection``
both use it without importing each other)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree
from torch import Tensor

from oneshot_avatar.body.smplx_layout import JOINT_INDEX, JOINT_NAMES, PARENTS
from oneshot_avatar.priors.labels import canonical_params
from oneshot_avatar.render.mesh import barycentric_grid, vertex_normals

_CHAIN_CHILD = {"pelvis": "spine1", "spine3": "neck", "left_wrist": "left_middle1",
                "right_wrist": "right_middle1"}


def _posed_vertices(body, params: Mapping[str, Tensor],
                    vertex_offsets: Tensor | None = None) -> Tensor:  # -> [B, V, 3]
    """The body posed by ``params``, its rest mesh first moved by ``vertex_offsets [V, 3]``
    (the person's shape beyond the body, :mod:`oneshot_avatar.priors.outline`) when given."""
    params = {k: v.to(device=body.device, dtype=body.dtype)
              for k, v in canonical_params(params).items()}
    if vertex_offsets is not None:
        params["vertex_offsets"] = vertex_offsets.to(device=body.device, dtype=body.dtype)
    with torch.no_grad():
        return body(**params).vertices


def sample_points(rest_vertices: Tensor, faces: Tensor, resolution: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rest positions and unit rest normals ``[F * S, 3]`` (float64) of the texture samples of
    ``faces`` (:func:`~oneshot_avatar.render.mesh.barycentric_grid` of ``resolution``)."""
    grid = barycentric_grid(resolution, dtype=torch.float64)
    rest = rest_vertices.detach().cpu().to(torch.float64)
    faces_cpu = faces.detach().cpu().long()
    points = torch.einsum("sk,fkc->fsc", grid, rest[faces_cpu]).reshape(-1, 3).numpy()
    normals = F.normalize(torch.einsum("sk,fkc->fsc", grid,
                                       vertex_normals(rest, faces_cpu)[faces_cpu]),
                          dim=-1).reshape(-1, 3).numpy()
    return points, normals


def mirror_fill(
    rest_vertices: Tensor,  # [V, 3] shaped rest mesh (symmetric about x = 0)
    faces: Tensor,  # [F, 3]
    colors: Tensor,  # [F, S, 3]
    seeded: Tensor,  # [F, S] bool
    resolution: int,
    *,
    tolerance: float = 0.02,
    min_normal_dot: float = 0.5,
    candidates: int = 4,
    groups: Tensor | None = None,  # [F, S] int: copy only within the same group (region)
) -> tuple[Tensor, Tensor]:
    """Copy seeded colours onto unseeded samples whose mirror image ``(-x, y, z)`` lies within
    ``tolerance`` metres of a seeded sample with a matching (mirrored) normal (and, with
    ``groups``, the same group). Returns the new colours and the mask of samples filled this
    way."""
    points, normals = sample_points(rest_vertices, faces, resolution)
    seeded_flat = seeded.detach().cpu().reshape(-1).numpy()
    filled = np.zeros_like(seeded_flat)
    source_ids = np.flatnonzero(seeded_flat)
    target_ids = np.flatnonzero(~seeded_flat)
    flat_colors = colors.reshape(-1, 3).clone()
    if source_ids.size == 0 or target_ids.size == 0:
        return flat_colors.reshape(colors.shape), torch.from_numpy(filled).reshape(seeded.shape)
    flip = np.array([-1.0, 1.0, 1.0])
    tree = cKDTree(points[source_ids])
    k = min(candidates, source_ids.size)
    distance, nearest = tree.query(points[target_ids] * flip, k=k,
                                   distance_upper_bound=tolerance, workers=-1)
    distance = distance.reshape(target_ids.size, k)
    nearest = nearest.reshape(target_ids.size, k)
    found = np.isfinite(distance)
    safe = np.where(found, nearest, 0)
    dots = (normals[source_ids[safe]] * (normals[target_ids] * flip)[:, None]).sum(-1)
    usable = found & (dots >= min_normal_dot)
    if groups is not None:
        group = groups.detach().cpu().reshape(-1).numpy()
        usable &= group[source_ids[safe]] == group[target_ids][:, None]
    first = usable.argmax(axis=1)
    ok = usable[np.arange(target_ids.size), first]
    targets = target_ids[ok]
    sources = source_ids[safe[np.arange(target_ids.size), first][ok]]
    device = colors.device
    flat_colors[torch.from_numpy(targets).to(device)] = \
        flat_colors[torch.from_numpy(sources).to(device)]
    filled[targets] = True
    return flat_colors.reshape(colors.shape), torch.from_numpy(filled).reshape(seeded.shape)


def bone_directions(rest_joints: Tensor) -> Tensor:
    """Unit direction ``[55, 3]`` of the bone each joint moves: from the joint to the next one
    down the chain (the arriving bone for joints that end or fork a chain, e.g. the head and
    the fingertips). ``rest_joints [55, 3]``."""
    joints = rest_joints.detach().cpu().to(torch.float64)
    directions = torch.zeros_like(joints)
    for joint, parent in enumerate(PARENTS):
        children = [c for c, p in enumerate(PARENTS) if p == joint]
        child = _CHAIN_CHILD.get(JOINT_NAMES[joint])
        if child is not None:
            directions[joint] = joints[JOINT_INDEX[child]] - joints[joint]
        elif len(children) == 1:
            directions[joint] = joints[children[0]] - joints[joint]
        elif parent >= 0:
            directions[joint] = joints[joint] - joints[parent]
    return F.normalize(directions, dim=-1, eps=1e-12)


def limb_axes(lbs_weights: Tensor, rest_joints: Tensor) -> Tensor:
    """Per-vertex unit bone direction ``[V, 3]`` of its strongest skinning joint."""
    dominant = lbs_weights.detach().cpu().argmax(dim=1)
    return bone_directions(rest_joints)[dominant]


def _limb_space(points: np.ndarray, normals: np.ndarray, axis: np.ndarray, stretch: float,
                normal_scale: float) -> np.ndarray:  # [N, 3] x 2 -> [N, 6]
    """Positions with their component along ``axis`` scaled by ``1 + stretch``, then the
    normals times ``normal_scale``."""
    along = (points @ axis)[:, None] * axis[None]
    return np.concatenate([points + stretch * along, normal_scale * normals], axis=1)
