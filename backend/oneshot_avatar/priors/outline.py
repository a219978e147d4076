"""Shape beyond the body: hair volume and loose clothes from the person mask's outline.

The fitted SMPL-X surface is skin-tight; the person in the photo is not. Where the person mask
reaches past the fitted body's silhouette (hair above and beside the head, a loose sweatshirt, a
skirt, wide trousers, shoes), the body's surface is grown outward along its normals by that much:

1. **Measure on the outline.** Each vertex on the fitted body's outline (its posed normal about
   perpendicular to the view ray, and the silhouette edge within a few pixels of it along the
   normal's image direction) marches outward through the mask from the silhouette edge. The run
   of mask pixels outside the body is how far the person extends there; a run that ends on
   another body part (the gap between the legs under a skirt, between a loose sleeve and the
   torso) counts half for each side. Runs shorter than ``min_pixels`` (the mask's edge noise, a
   pixel of fit misalignment) measure zero growth, which is a measurement too: tight clothes stay
   tight. Pixels become metres at the vertex's depth.
2. **Around the limb.** A garment or a head of hair is about as thick behind as at its sides, and
   the photo's outline is the back view's outline mirrored: every other vertex of a body part
   takes the growth measured at the same height around its limb (inverse-distance weights in the
   labeler's limb space, with distances along the bone stretched), so the back of the head gets
   the hair volume seen at its sides and a skirt is a skirt from the side too.
3. **Keep the skin.** The face and the hands never grow (the photo sees them directly; the hair
   beside a cheek belongs to the head's sides), and a few sweeps of mesh smoothing join the parts
   without seams.

The result is a rest-pose vertex offset field (growth x rest normal) that moves with the skin under
skinning: the labeler observes and renders the grown mesh (so the pseudo-labels carry the hair and
the skirt) and training starts from it (and is regularised towards it, not towards the bare body).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree
from torch import Tensor

from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from oneshot_avatar.cameras import Camera
from oneshot_avatar.errors import UserError
from oneshot_avatar.priors.labels import canonical_params
from oneshot_avatar.priors.regions import JOINT_PART, PARTS
from oneshot_avatar.priors.surface import _limb_space, bone_directions
from oneshot_avatar.render.mesh import rasterize_mesh, vertex_normals
from oneshot_avatar.train.regularizers import MeshTopology, uniform_laplacian


@dataclass(frozen=True)
class OutlineSettings:
    """How the outline is read. ``contour_cos``: a vertex is on the outline when
    ``|cos(normal, view ray)|`` is below this; ``exit_pixels``: the silhouette edge must be this
    close along the normal's image direction (else the vertex is hidden behind another part);
    ``min_fraction``: runs shorter than this fraction of the image's longer side (and at least
    1.5 px) measure zero; ``max_growth``: metres; ``along_weight``: squared-distance ratio of
    travelling along a limb against around it when spreading the growth (step 2);
    ``candidates``: measured vertices each vertex averages; ``smooth_sweeps``: final smoothing."""

    contour_cos: float = 0.35
    exit_pixels: float = 3.0
    min_fraction: float = 0.006
    max_growth: float = 0.15
    along_weight: float = 0.05
    candidates: int = 8
    smooth_sweeps: int = 8


@dataclass(eq=False)
class OutlineGrowth:
    """Growth ``[V]`` (metres along the shaped rest mesh's vertex normals, >= 0), which vertices
    were measured on the outline ``[V]`` (bool), and the rest-pose offsets ``[V, 3]``."""

    growth: Tensor
    measured: Tensor
    offsets: Tensor

    def report(self) -> dict:
        """Figures for the reconstruction report (centimetres)."""
        growth = self.growth.detach().cpu().double()
        grown = growth > 0.01
        return {"measured_vertices": int(self.measured.sum()),
                "grown_fraction": round(float(grown.double().mean()), 4),
                "max_cm": round(float(growth.max()) * 100, 2) if growth.numel() else 0.0,
                "mean_grown_cm": round(float(growth[grown].mean()) * 100, 2) if bool(grown.any())
                else 0.0}


def _project(camera: Camera, points: Tensor) -> tuple[Tensor, Tensor]:
    cam = camera.world_to_camera_points(points)
    z = cam[:, 2]
    safe = torch.where(z > camera.near, z, torch.ones_like(z))
    uv = torch.stack([camera.fx * cam[:, 0] / safe + camera.cx,
                      camera.fy * cam[:, 1] / safe + camera.cy], dim=1)
    return uv, z


def _lookup(image: Tensor, uv: Tensor) -> Tensor:
    """Nearest-pixel values of the bool image ``[H, W]`` at ``uv [..., 2]``; False outside."""
    height, width = image.shape
    col, row = torch.floor(uv[..., 0]).long(), torch.floor(uv[..., 1]).long()
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    values = image[row.clamp(0, height - 1), col.clamp(0, width - 1)]
    return values & inside


def measure_outline(vertices: Tensor, normals: Tensor, faces: Tensor, camera: Camera,
                    mask: Tensor, settings: OutlineSettings) -> tuple[Tensor, Tensor, Tensor]:
    """Step 1 of the module docstring for the posed mesh ``vertices [V, 3]`` with unit
    ``normals [V, 3]``: ``(growth [V] metres, measured [V] bool, weight [V])``."""
    device, dtype = vertices.device, vertices.dtype
    camera = camera.to(device=device, dtype=dtype)
    person = mask.to(device) > 0.5
    body = rasterize_mesh(vertices, faces, camera).face_id >= 0
    uv, z = _project(camera, vertices)
    towards = F.normalize(camera.position[None] - vertices, dim=-1)
    cosine = (normals * towards).sum(-1)
    ahead, _ = _project(camera, vertices + 0.01 * normals)
    direction = ahead - uv
    length = direction.norm(dim=-1)
    direction = direction / length.clamp_min(1e-9)[:, None]
    candidate = (cosine.abs() < settings.contour_cos) & (length > 1e-6) & (z > camera.near)
    focal = float((camera.fx + camera.fy) / 2)
    reach = math.ceil(settings.max_growth * focal / float(z[candidate].min())) \
        if bool(candidate.any()) else 0
    steps = torch.arange(1, 2 * (reach + int(settings.exit_pixels) + 2) + 1, device=device,
                         dtype=dtype) * 0.5  # half-pixel steps
    ids = torch.nonzero(candidate).squeeze(1)
    growth = torch.zeros(vertices.shape[0], device=device, dtype=dtype)
    measured = torch.zeros(vertices.shape[0], device=device, dtype=torch.bool)
    if ids.numel() == 0:
        return growth, measured, torch.zeros_like(growth)
    height, width = person.shape
    min_pixels = max(1.5, settings.min_fraction * max(height, width))
    for chunk in torch.split(ids, 8192):
        samples = uv[chunk][:, None] + steps[None, :, None] * direction[chunk][:, None]  # [n, T, 2]
        on_body = _lookup(body, samples)
        in_mask = _lookup(person, samples)
        off_image = ~((samples[..., 0] >= 0) & (samples[..., 0] < width) & (samples[..., 1] >= 0)
                      & (samples[..., 1] < height))
        # The silhouette edge: the first step off the body.
        off_body = ~on_body
        exit_index = torch.where(off_body.any(1), off_body.float().argmax(1),
                                 torch.full_like(chunk, steps.numel()))
        exits = exit_index < int(2 * settings.exit_pixels) + 1
        index = torch.arange(steps.numel(), device=device)[None]
        after = index >= exit_index[:, None]
        # The run of person pixels off the body from the edge on: until the mask ends, the body
        # comes back (another part) or the image ends.
        stop = after & (~in_mask | on_body | off_image)
        stop_index = torch.where(stop.any(1), stop.float().argmax(1),
                                 torch.full_like(chunk, steps.numel()))
        run = (stop_index - exit_index).clamp_min(0).to(dtype) * 0.5
        row = torch.arange(chunk.numel(), device=device)
        ended_on = on_body[row, stop_index.clamp(max=steps.numel() - 1)] & \
            (stop_index < steps.numel())
        run = torch.where(ended_on, run / 2, run)
        run = torch.where(run < min_pixels, torch.zeros_like(run), run)
        metres = (run * z[chunk] / focal).clamp(max=settings.max_growth)
        growth[chunk[exits]] = metres[exits]
        measured[chunk[exits]] = True
    weight = torch.where(measured, 1.0 - cosine.abs() / settings.contour_cos,
                         torch.zeros_like(cosine)).clamp_min(0.05)
    return growth, measured, torch.where(measured, weight, torch.zeros_like(weight))


def fixed_skin(body, rest_vertices: Tensor, rest_normals: Tensor, rest_joints: Tensor) -> Tensor:
    """Vertices that never grow ``[V]`` (bool): the hands, the face and the throat (head and
    neck vertices facing forwards or down, below the brow line): skin the photo sees directly,
    whose hair hangs beside and behind it."""
    dominant = body.lbs_weights.detach().argmax(dim=1).cpu().numpy()
    hands = torch.from_numpy(JOINT_PART[dominant] == PARTS.index("hand"))
    head = torch.from_numpy(np.isin(JOINT_PART[dominant], [PARTS.index("head"),
                                                            PARTS.index("neck")]))
    joints = rest_joints.detach().cpu()
    eyes = (joints[JOINT_INDEX["left_eye_smplhf"]] + joints[JOINT_INDEX["right_eye_smplhf"]]) / 2
    rest = rest_vertices.detach().cpu()
    normals = rest_normals.detach().cpu()
    face = head & ((normals[:, 2] > 0.3) | (normals[:, 1] < -0.5)) & (rest[:, 1] < eyes[1] + 0.04)
    return (hands | face).to(rest_vertices.device)


def spread_growth(rest_vertices: Tensor, rest_normals: Tensor, faces: Tensor, lbs_weights: Tensor,
                  rest_joints: Tensor, growth: Tensor, measured: Tensor, weight: Tensor,
                  fixed: Tensor, settings: OutlineSettings) -> Tensor:
    """Steps 2 and 3 of the module docstring: the growth ``[V]`` of every vertex."""
    points = rest_vertices.detach().cpu().double().numpy()
    normals = rest_normals.detach().cpu().double().numpy()
    values = growth.detach().cpu().double().numpy().copy()
    known = measured.detach().cpu().numpy() & ~fixed.detach().cpu().numpy()
    w = weight.detach().cpu().double().numpy()
    fixed_np = fixed.detach().cpu().numpy()
    part = lbs_weights.detach().cpu().argmax(dim=1).numpy()
    directions = bone_directions(rest_joints).numpy()
    stretch = 1.0 / math.sqrt(settings.along_weight) - 1.0
    out = np.zeros_like(values)
    out[known] = values[known]
    for joint in np.unique(part):
        ids = np.flatnonzero(part == joint)
        sources = ids[known[ids]]
        targets = ids[~known[ids] & ~fixed_np[ids]]
        if targets.size == 0 or sources.size == 0:
            continue
        k = min(settings.candidates, sources.size)
        axis = directions[joint]
        tree = cKDTree(_limb_space(points[sources], normals[sources], axis, stretch, 0.0))
        distance, nearest = tree.query(_limb_space(points[targets], normals[targets], axis,
                                                   stretch, 0.0), k=k, workers=-1)
        distance, nearest = distance.reshape(targets.size, k), nearest.reshape(targets.size, k)
        inverse = w[sources[nearest]] / (distance ** 2 + 1e-6)
        out[targets] = (inverse * values[sources[nearest]]).sum(1) / inverse.sum(1)
    out[fixed_np] = 0.0
    # Join the parts: a few sweeps of neighbour averaging, x <- x - L(x) / 2 with the training's
    # uniform Laplacian (fixed skin stays at zero).
    topology = MeshTopology.from_faces(faces.detach().cpu(), points.shape[0])
    smoothed = torch.from_numpy(out)[:, None]
    fixed_t = torch.from_numpy(fixed_np)
    for _ in range(settings.smooth_sweeps):
        smoothed = smoothed - 0.5 * uniform_laplacian(smoothed, topology)
        smoothed[fixed_t] = 0.0
    out = smoothed[:, 0].clamp(0.0, settings.max_growth)
    return out.to(device=rest_vertices.device, dtype=rest_vertices.dtype)


def outline_growth(body, params: Mapping[str, Tensor], camera: Camera, mask,
                   settings: OutlineSettings | None = None) -> OutlineGrowth:
    """The person's shape beyond the fitted body (module docstring): ``params`` the fit (batch
    1), ``camera`` the fit camera and ``mask [H, W]`` the person mask of the same size."""
    settings = settings or OutlineSettings()
    mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask)
    if mask.ndim != 2 or tuple(mask.shape) != (camera.height, camera.width):
        raise UserError(f"the mask is {tuple(mask.shape)} but the camera is "
                        f"{camera.height}x{camera.width} (H x W)", field="mask")
    params = {k: v.to(device=body.device, dtype=body.dtype)
              for k, v in canonical_params(params).items()}
    faces = body.faces
    with torch.no_grad():
        out = body(**params)
        posed = out.vertices[0]
        rest, rest_joints = out.rest_vertices[0], out.rest_joints[0]
        rest_normals = vertex_normals(rest, faces)
        growth, measured, weight = measure_outline(posed, vertex_normals(posed, faces), faces,
                                                   camera, mask.float(), settings)
        fixed = fixed_skin(body, rest, rest_normals, rest_joints)
        spread = spread_growth(rest, rest_normals, faces, body.lbs_weights, rest_joints, growth,
                               measured, weight, fixed, settings)
    return OutlineGrowth(growth=spread, measured=measured & ~fixed,
                         offsets=spread[:, None] * rest_normals)


__all__ = ["OutlineGrowth", "OutlineSettings", "fixed_skin", "measure_outline", "outline_growth",
           "spread_growth"]
