"""Regions of the person on the body surface: face skin, body skin, hair, upper clothes, lower
clothes, shoes — from the photo, the fitted body and colour clustering (no learned weights).

The fitted body carries the landmarks' answer to *where* things are (the face oval, the hands
and the feet are where the fit put the head, the wrists and the ankles; the fit is made to the
detected face, hand and foot points); the photo's colours say *what* is there. Per texture
sample of the body surface (see :class:`~oneshot_avatar.render.mesh.SurfaceTexture`):

1. **Body part**: each triangle's strongest skinning joint, grouped into head, neck, torso,
   pelvis, upper arm, forearm, hand, thigh, shin and foot.
2. **Skin colour**: the median colour (CIELAB) of the seen face between the eyes and the mouth
   (cheeks and nose); the seen hands when the face is not seen.
3. **Colour clusters**: k-means (CIELAB, deterministic) over the seen samples; a cluster is
   skin when its centre is within ``skin_distance`` of the skin colour (lightness counts half:
   shading changes it most).
4. **Seen samples**: head — when the crown (the top of the head, seen from the front) is not
   skin-coloured (or is far darker than the skin: under ``hair_luminance`` of its luminance,
   more than the crown's slant to the light explains — short dark hair over a tanned face is
   near the skin's hue), samples nearer the crown's colour than the skin's are hair, except the
   face's features (eyes, brows, lips: below the brow line, facing the camera), which are face
   skin like the rest; hands are body skin;
   feet are shoes unless the colour itself is within half ``skin_distance`` of the skin's
   (bare feet; white shoes fall into a pale skin's cluster); neck, torso and arms are body skin or
   upper clothes (skin on the torso ``beside_occluder`` — next to a nearer part of the body,
   such as a forearm across the belly — is that part's, so the torso there is clothes);
   thighs and shins body skin or lower clothes; the pelvis is upper or lower
   clothes by which garment's median colour is nearer.
5. **Unseen samples**: first the mirror image's region (the hidden arm is dressed like the
   seen one); on the head, hair when the photo shows hair (at least ``min_hair_fraction`` of the
   seen head's area: the face's triangles are far smaller than the scalp's) and the sample is
   above the lowest seen hair or on the back half above the jaw,
   face skin otherwise (ears, a bald head); elsewhere the region of the nearest seen sample of
   the same part with distances along the bone stretched (the same height around the limb);
   parts with nothing seen take their part's default (torso and upper arms upper clothes,
   forearms body skin, pelvis and legs lower clothes, feet shoes, hands body skin).

:class:`SurfaceRegions` also lists the seen samples whose colour cannot be what the region
says: hand samples far from the skin colour (the background seen through a badly fitted or
badly masked hand) — the labeler treats them as unseen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from oneshot_avatar.body.smplx_layout import JOINT_INDEX, JOINT_NAMES
from oneshot_avatar.errors import UserError
from oneshot_avatar.render.mesh import barycentric_grid, triangle_areas

REGIONS: tuple[str, ...] = ("face_skin", "body_skin", "hair", "upper_clothes", "lower_clothes",
                            "shoes")
FACE_SKIN, BODY_SKIN, HAIR, UPPER, LOWER, SHOES = range(len(REGIONS))
SKIN_REGIONS = (FACE_SKIN, BODY_SKIN)
# Preview colours (sRGB 0-255), one per region.
PALETTE: tuple[tuple[int, int, int], ...] = ((255, 190, 150), (200, 120, 80), (90, 50, 20),
                                             (40, 120, 230), (30, 170, 90), (230, 200, 30))

PARTS: tuple[str, ...] = ("head", "neck", "torso", "pelvis", "upper_arm", "forearm", "hand",
                          "thigh", "shin", "foot")
_PART_DEFAULT = {"head": FACE_SKIN, "neck": BODY_SKIN, "torso": UPPER, "pelvis": LOWER,
                 "upper_arm": UPPER, "forearm": BODY_SKIN, "hand": BODY_SKIN, "thigh": LOWER,
                 "shin": LOWER, "foot": SHOES}


def _part_of_joint(name: str) -> str:
    if name in ("head", "jaw", "left_eye_smplhf", "right_eye_smplhf"):
        return "head"
    if name == "neck":
        return "neck"
    if name in ("spine1", "spine2", "spine3", "left_collar", "right_collar"):
        return "torso"
    if name == "pelvis":
        return "pelvis"
    if name.endswith("_shoulder"):
        return "upper_arm"
    if name.endswith("_elbow"):
        return "forearm"
    if name.endswith("_hip"):
        return "thigh"
    if name.endswith("_knee"):
        return "shin"
    if name.endswith(("_ankle", "_foot")):
        return "foot"
    return "hand"  # wrists and fingers


JOINT_PART: np.ndarray = np.array([PARTS.index(_part_of_joint(n)) for n in JOINT_NAMES])


@dataclass(eq=False)
class SurfaceRegions:
    """Region per texture sample (``labels [F, S]``, indices into :data:`REGIONS`), the body
    part per sample (``parts [F, S]``, indices into :data:`PARTS`), seen samples whose colour
    contradicts their region (``rejected [F, S]``), the skin colour (sRGB, or None when no
    skin was seen) and whether the photo shows hair."""

    labels: Tensor
    parts: Tensor
    rejected: Tensor
    resolution: int
    skin_rgb: tuple[float, float, float] | None
    has_hair: bool

    def fractions(self, seen: Tensor | None = None) -> dict[str, float]:
        """Share of the samples (of the ``seen`` ones when given) in each region."""
        labels = self.labels if seen is None else self.labels[seen.to(self.labels.device)]
        total = max(int(labels.numel()), 1)
        return {name: int((labels == i).sum()) / total for i, name in enumerate(REGIONS)}

    def palette_texture(self):
        """A :class:`SurfaceTexture` painting each region in its :data:`PALETTE` colour."""
        from oneshot_avatar.render.mesh import SurfaceTexture

        palette = torch.tensor(PALETTE, dtype=torch.float32) / 255.0
        colors = palette[self.labels.cpu().long()]
        return SurfaceTexture(colors, torch.ones_like(self.labels, dtype=torch.bool).cpu(),
                              self.resolution)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] ``[..., 3]`` -> CIELAB (L in 0..100)."""
    import cv2

    flat = np.ascontiguousarray(np.clip(rgb, 0, 1).reshape(-1, 1, 3).astype(np.float32))
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(rgb.shape)


def skin_distance_lab(lab: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Distance to the skin colour with lightness counted half (shading changes it most)."""
    d = lab - skin
    return np.sqrt((0.5 * d[..., 0]) ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2)


def _luminance(lightness: float) -> float:
    """CIELAB lightness (0..100) -> relative luminance Y (0..1)."""
    return ((float(lightness) + 16.0) / 116.0) ** 3


def _kmeans_labels(lab: np.ndarray, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means (k-means++ start, fixed seed) -> (centres [k, 3], labels [N])."""
    from scipy.cluster.vq import kmeans2

    k = max(1, min(clusters, len(lab)))
    rng = np.random.default_rng(seed)
    pick = lab if len(lab) <= 20000 else lab[rng.choice(len(lab), 20000, replace=False)]
    centres, _ = kmeans2(pick.astype(np.float64), k, minit="++", seed=seed)
    _, labels = cKDTree(centres).query(lab)
    return centres, labels


def surface_regions(
    rest_vertices: Tensor,  # [V, 3] shaped rest mesh
    faces: Tensor,  # [F, 3]
    lbs_weights: Tensor,  # [V, 55]
    rest_joints: Tensor,  # [55, 3]
    colors: Tensor,  # [F, S, 3] observed colours (valid where seen)
    seen: Tensor,  # [F, S] bool
    resolution: int,
    *,
    clusters: int = 8,
    skin_distance: float = 14.0,
    min_hair_fraction: float = 0.03,
    hair_luminance: float = 0.45,
    along_weight: float = 0.05,
    beside_occluder: Tensor | None = None,  # [F, S] bool: seen next to a nearer body part
) -> SurfaceRegions:
    """The regions of every texture sample (module docstring)."""
    from oneshot_avatar.priors.surface import (
        _limb_space,
        bone_directions,
        mirror_fill,
        sample_points,
    )

    grid = barycentric_grid(resolution, dtype=torch.float64)
    rest = rest_vertices.detach().cpu().to(torch.float64)
    faces_cpu = faces.detach().cpu().long()
    num_faces, per_face = int(faces_cpu.shape[0]), int(grid.shape[0])
    if tuple(seen.shape) != (num_faces, per_face):
        raise UserError(f"expected seen of shape {(num_faces, per_face)}, got "
                        f"{tuple(seen.shape)}", field="seen")
    points, normals = sample_points(rest, faces_cpu, resolution)
    joint = lbs_weights.detach().cpu()[faces_cpu].sum(dim=1).argmax(dim=1).numpy()  # [F]
    joint = np.repeat(joint, per_face)
    part = JOINT_PART[joint]
    seen_np = seen.detach().cpu().reshape(-1).numpy().astype(bool)
    rgb = colors.detach().cpu().to(torch.float32).reshape(-1, 3).numpy()
    joints = rest_joints.detach().cpu().to(torch.float64).numpy()
    head = joints[JOINT_INDEX["head"]]
    eye_y = float((joints[JOINT_INDEX["left_eye_smplhf"], 1]
                   + joints[JOINT_INDEX["right_eye_smplhf"], 1]) / 2)
    jaw_y = float(joints[JOINT_INDEX["jaw"], 1])
    is_part = {name: part == i for i, name in enumerate(PARTS)}

    labels = np.full(points.shape[0], -1, dtype=np.int64)
    rejected = np.zeros(points.shape[0], dtype=bool)
    lab = np.zeros_like(rgb)
    lab[seen_np] = to_lab(rgb[seen_np])

    # 2. The skin colour: cheeks and nose, else the hands.
    cheeks = (seen_np & is_part["head"] & (normals[:, 2] > 0.5)
              & (points[:, 1] < eye_y - 0.012) & (points[:, 1] > eye_y - 0.06)
              & (np.abs(points[:, 0] - head[0]) < 0.05))
    hands = seen_np & is_part["hand"]
    skin_lab = None
    if cheeks.sum() >= 5:
        skin_lab = np.median(lab[cheeks], axis=0)
    elif hands.sum() >= 5:
        skin_lab = np.median(lab[hands], axis=0)
    # 3. Colour clusters of the seen samples; which are skin.
    skin = np.zeros(points.shape[0], dtype=bool)
    if skin_lab is not None and seen_np.any():
        centres, cluster = _kmeans_labels(lab[seen_np], clusters)
        skin_cluster = skin_distance_lab(centres, skin_lab) < skin_distance
        skin[seen_np] = skin_cluster[cluster] | (skin_distance_lab(lab[seen_np], skin_lab)
                                                 < 0.5 * skin_distance)
    # 4. Seen samples. The head: hair when the colour is nearer the crown's than the skin's
    # and the crown is not skin-coloured (a bald head); the face's features stay face skin.
    s = seen_np
    face_front = (normals[:, 2] > 0.3) & (points[:, 1] < eye_y + 0.03)
    head_seen = s & is_part["head"]
    crown = head_seen & (points[:, 1] > eye_y + 0.07) & (normals[:, 1] > 0.3)
    hairy = np.zeros(points.shape[0], dtype=bool)
    if crown.sum() >= 5:
        crown_lab = np.median(lab[crown], axis=0)
        if skin_lab is None:
            hairy[head_seen] = True
        elif (skin_distance_lab(crown_lab[None], skin_lab)[0] > skin_distance
              or _luminance(crown_lab[0]) < hair_luminance * _luminance(skin_lab[0])):
            to_crown = np.linalg.norm(lab[head_seen] - crown_lab, axis=1)
            to_skin = skin_distance_lab(lab[head_seen], skin_lab) * 1.5
            hairy[head_seen] = to_crown < to_skin
    hairy &= ~np.isin(joint, [JOINT_INDEX["left_eye_smplhf"], JOINT_INDEX["right_eye_smplhf"]])
    labels[head_seen & (~hairy | face_front)] = FACE_SKIN
    labels[head_seen & hairy & ~face_front] = HAIR
    labels[s & is_part["hand"]] = BODY_SKIN
    if skin_lab is not None:
        rejected = s & is_part["hand"] & (skin_distance_lab(lab, skin_lab) > 2.0 * skin_distance)
    # Feet: bare only where the colour itself is close to the skin's (white or beige shoes
    # fall into a pale skin's cluster).
    feet = s & is_part["foot"]
    bare = np.zeros(points.shape[0], dtype=bool)
    if skin_lab is not None:
        bare[feet] = skin_distance_lab(lab[feet], skin_lab) < 0.5 * skin_distance
    labels[feet] = np.where(bare[feet], BODY_SKIN, SHOES)
    if beside_occluder is not None:
        # Skin on the torso next to a nearer part of the body (the belly beside a forearm
        # crossing it, whose outline in the photo is a few pixels off the fitted one) is that
        # part's skin, not the torso's.
        beside = beside_occluder.detach().cpu().reshape(-1).numpy().astype(bool)
        skin &= ~(beside & is_part["torso"])
    for name in ("neck", "torso", "upper_arm", "forearm"):
        sel = s & is_part[name]
        labels[sel] = np.where(skin[sel], BODY_SKIN, UPPER)
    for name in ("thigh", "shin"):
        sel = s & is_part[name]
        labels[sel] = np.where(skin[sel], BODY_SKIN, LOWER)
    pelvis = s & is_part["pelvis"]
    if pelvis.any():
        upper_ref = labels == UPPER
        lower_ref = labels == LOWER
        if upper_ref.any() and lower_ref.any():
            to_upper = np.linalg.norm(lab[pelvis] - np.median(lab[upper_ref], axis=0), axis=1)
            to_lower = np.linalg.norm(lab[pelvis] - np.median(lab[lower_ref], axis=0), axis=1)
            garment = np.where(to_upper < to_lower, UPPER, LOWER)
        else:
            garment = np.full(int(pelvis.sum()), UPPER if upper_ref.any() else LOWER)
        labels[pelvis] = np.where(skin[pelvis], BODY_SKIN, garment)

    hair_seen = labels == HAIR
    area = np.repeat(triangle_areas(rest, faces_cpu).numpy(), per_face)  # each sample stands for an equal share of its triangle
    has_hair = bool(hair_seen.sum() >= 10
                    and area[hair_seen].sum() >= min_hair_fraction * area[head_seen].sum())
    if not has_hair:
        labels[hair_seen] = FACE_SKIN
        hair_seen = labels == HAIR

    # 5. Unseen samples: the mirror image first.
    coded = torch.zeros(points.shape[0], 3, dtype=torch.float64)
    coded[:, 0] = torch.from_numpy(labels.astype(np.float64))
    known = torch.from_numpy(labels >= 0)
    mirrored, filled = mirror_fill(rest_vertices, faces, coded.reshape(num_faces, per_face, 3),
                                   known.reshape(num_faces, per_face), resolution,
                                   tolerance=0.03)
    filled = filled.reshape(-1).numpy()
    labels[filled] = mirrored.reshape(-1, 3)[:, 0].numpy()[filled].round().astype(np.int64)
    # The head: hair where the photo shows hair, on the cap above its lowest seen line and
    # the back of the head down to the jaw.
    open_head = (labels < 0) & is_part["head"]
    if has_hair:
        hairline = float(np.percentile(points[hair_seen, 1], 5))
        back = points[:, 2] < head[2]
        labels[open_head & ((points[:, 1] > hairline) | (back & (points[:, 1] > jaw_y)))] = HAIR
    labels[(labels < 0) & is_part["head"]] = FACE_SKIN
    labels[(labels < 0) & is_part["hand"]] = BODY_SKIN
    # Other parts: the nearest labelled sample of the part, the same height around the limb.
    directions = bone_directions(rest_joints).numpy()
    stretch = 1.0 / math.sqrt(along_weight) - 1.0
    for j in np.unique(joint[labels < 0]):
        ids = np.flatnonzero(joint == j)
        sources = ids[labels[ids] >= 0]
        targets = ids[labels[ids] < 0]
        if sources.size == 0:
            continue
        axis = directions[j]
        tree = cKDTree(_limb_space(points[sources], normals[sources], axis, stretch, 0.0))
        _, nearest = tree.query(_limb_space(points[targets], normals[targets], axis, stretch,
                                            0.0), workers=-1)
        labels[targets] = labels[sources[nearest]]
    for i, name in enumerate(PARTS):
        labels[(labels < 0) & (part == i)] = _PART_DEFAULT[name]

    skin_rgb = None
    if skin_lab is not None:
        import cv2

        skin_rgb = tuple(float(c) for c in cv2.cvtColor(
            skin_lab.astype(np.float32).reshape(1, 1, 3), cv2.COLOR_LAB2RGB).reshape(3))
    shape = (num_faces, per_face)
    return SurfaceRegions(labels=torch.from_numpy(labels.reshape(shape)),
                          parts=torch.from_numpy(part.reshape(shape)),
                          rejected=torch.from_numpy(rejected.reshape(shape)),
                          resolution=resolution, skin_rgb=skin_rgb, has_hair=has_hair)


def region_image(regions: SurfaceRegions, vertices: Tensor, faces: Tensor, camera
                 ) -> np.ndarray:
    """Per-pixel region index ``[H, W]`` (-1 where the body does not cover the pixel) of the
    posed body ``vertices`` seen by ``camera``: the region of the texture sample nearest each
    pixel's surface point."""
    from oneshot_avatar.render.mesh import rasterize_mesh

    raster = rasterize_mesh(vertices, faces, camera.to(device=vertices.device,
                                                       dtype=vertices.dtype))
    grid = barycentric_grid(regions.resolution, dtype=torch.float64)
    out = np.full(raster.face_id.shape, -1, dtype=np.int64)
    hit = (raster.face_id >= 0).cpu()
    if bool(hit.any()):
        bary = raster.bary[hit.to(raster.bary.device)].cpu().to(torch.float64)  # [N, 3]
        nearest = torch.cdist(bary, grid).argmin(dim=1)
        face = raster.face_id[hit.to(raster.face_id.device)].cpu().long()
        out[hit.numpy()] = regions.labels[face, nearest].numpy()
    return out


def save_region_preview(path: str | Path, regions: SurfaceRegions, body, params, camera,
                        image, views=(), vertex_offsets: Tensor | None = None) -> Path:
    """A PNG: the photo | the regions over it (photo camera) | the regions from each of
    ``views`` (cameras), with a legend; the body grown by ``vertex_offsets`` when given."""
    from PIL import Image, ImageDraw

    from oneshot_avatar.atomic import atomic_output
    from oneshot_avatar.priors.surface import _posed_vertices

    path = Path(path)
    photo = np.asarray(image, dtype=np.float32)
    if photo.dtype != np.float32 or photo.max() > 1.0:
        photo = photo / 255.0
    vertices = _posed_vertices(body, params, vertex_offsets)[0]
    faces = body.faces
    palette = np.asarray(PALETTE, dtype=np.float32) / 255.0
    tiles = [photo]
    for view in [camera, *views]:
        index = region_image(regions, vertices, faces, view)
        tile = photo * 0.35 if view is camera else np.full_like(photo, 0.15)
        tile = tile.copy()
        tile[index >= 0] = palette[index[index >= 0]] * (0.75 if view is camera else 1.0) + \
            (photo[index >= 0] * 0.25 if view is camera else 0.0)
        tiles.append(tile)
    sheet = (np.concatenate(tiles, axis=1).clip(0, 1) * 255 + 0.5).astype(np.uint8)
    legend_h = 16
    canvas = Image.new("RGB", (sheet.shape[1], sheet.shape[0] + legend_h), (20, 20, 20))
    canvas.paste(Image.fromarray(sheet), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x = 4
    for name, colour in zip(REGIONS, PALETTE):
        draw.rectangle((x, sheet.shape[0] + 3, x + 10, sheet.shape[0] + 13), fill=colour)
        draw.text((x + 13, sheet.shape[0] + 2), name, fill=(230, 230, 230))
        x += 13 + 7 * len(name) + 10
    with atomic_output(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


__all__ = [
    "BODY_SKIN",
    "FACE_SKIN",
    "HAIR",
    "LOWER",
    "PALETTE",
    "PARTS",
    "REGIONS",
    "SHOES",
    "UPPER",
    "SurfaceRegions",
    "region_image",
    "save_region_preview",
    "surface_regions",
    "to_lab",
]
