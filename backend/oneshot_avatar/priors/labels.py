"""Pseudo-labels: frames of the photographed person in other poses and from other views.

A :class:`Labeler` turns the fitted body, the fit camera and the photo into a :class:`LabelSet`
that training uses next to the photo. This module holds what every labeler shares: the label
container, the driving poses (frames of the built-in clips with the person's own shape and
placement) and the turnaround cameras (the fit camera carried around the body).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from oneshot_avatar.body.smplx_layout import POSE_PARAM_JOINTS
from oneshot_avatar.cameras import Camera
from oneshot_avatar.errors import UserError

DRIVING_CLIPS: tuple[str, ...] = ("talk", "wave", "point", "shrug")
TURNAROUND_AZIMUTHS: tuple[float, ...] = (45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0)
# Parameters that stay the person's own in the driving poses.
KEPT_FROM_FIT: tuple[str, ...] = ("betas", "global_orient", "transl")
_WIDTHS: dict[str, int] = {name: count for name, (_, count) in POSE_PARAM_JOINTS.items()}


@dataclass(eq=False)
class LabelSet:
    """``N`` pseudo-label frames. ``images`` are composited over the labeler's background and
    anti-aliased; ``masks`` are the person's coverage. ``kinds`` name each frame:
    ``"pose:<clip>:<frame>"`` (a driving pose seen by the photo camera) or
    ``"view:azimuth=<degrees>"`` (the fitted pose seen from another side)."""

    images: Tensor  # [N, H, W, 3] in [0, 1]
    masks: Tensor  # [N, H, W] in [0, 1]
    params: dict[str, Tensor]  # SMPL-X parameters, each [N, ...] (betas repeated)
    cameras: list[Camera]  # N cameras, all H x W
    kinds: list[str]  # N names
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # rgb the images are composited over

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise UserError(f"expected images [N, H, W, 3], got {tuple(self.images.shape)}",
                            field="images")
        n = int(self.images.shape[0])
        if tuple(self.masks.shape) != tuple(self.images.shape[:3]):
            raise UserError(f"expected masks {tuple(self.images.shape[:3])}, got "
                            f"{tuple(self.masks.shape)}", field="masks")
        if len(self.cameras) != n or len(self.kinds) != n:
            raise UserError(f"{n} images but {len(self.cameras)} cameras and "
                            f"{len(self.kinds)} kinds", field="cameras")
        for name, value in self.params.items():
            if value.shape[0] != n:
                raise UserError(f"expected {n} frames, got {value.shape[0]}", field=name)
        height, width = int(self.images.shape[1]), int(self.images.shape[2])
        for i, camera in enumerate(self.cameras):
            if (camera.width, camera.height) != (width, height):
                raise UserError(f"camera {i} is {camera.width}x{camera.height}, the images "
                                f"{width}x{height}", field=f"cameras[{i}]")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def frame_params(self, index: int) -> dict[str, Tensor]:
        """The SMPL-X parameters of frame ``index`` with batch size 1."""
        return {name: value[index : index + 1] for name, value in self.params.items()}

    def save_preview(self, path: str | Path, *, columns: int = 6, thumb: int = 160,
                     background: tuple[int, int, int] = (40, 40, 40)) -> Path:
        """Write a contact sheet PNG: every frame composited over ``background`` as a
        ``thumb``-pixel-high tile captioned with its kind, ``columns`` tiles per row."""
        from PIL import Image, ImageDraw

        path = Path(path)
        n = len(self)
        if n == 0:
            raise UserError("the label set is empty; nothing to preview", field="images")
        height, width = int(self.images.shape[1]), int(self.images.shape[2])
        tile_w = max(1, round(thumb * width / height))
        caption = 14
        columns = max(1, min(int(columns), n))
        rows = math.ceil(n / columns)
        sheet = Image.new("RGB", (columns * tile_w, rows * (thumb + caption)), background)
        draw = ImageDraw.Draw(sheet)
        back = torch.tensor(background, dtype=torch.float32) / 255.0
        for i in range(n):
            mask = self.masks[i].detach().float().cpu()[..., None]
            rgb = self.images[i].detach().float().cpu()
            # Images hold colour x coverage + label background x (1 - coverage): swap the
            # label background for the sheet's.
            label_back = torch.tensor(self.background, dtype=torch.float32)
            shown = rgb + (back - label_back) * (1 - mask)
            array = (shown.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
            tile = Image.fromarray(array).resize((tile_w, thumb), Image.Resampling.BILINEAR)
            x, y = (i % columns) * tile_w, (i // columns) * (thumb + caption)
            sheet.paste(tile, (x, y))
            draw.text((x + 2, y + thumb + 1), self.kinds[i][: max(4, tile_w // 6)],
                      fill=(230, 230, 230))
        from oneshot_avatar.atomic import atomic_output

        with atomic_output(path) as tmp:
            sheet.save(tmp, format="PNG")
        return path


class Labeler(Protocol):
    """Makes pseudo-label frames of the person in the photo (see :class:`LabelSet`)."""

    name: str

    def make_labels(self, body, fit_params: Mapping[str, Tensor], camera: Camera,
                    image: Any, mask: Any, *, poses: Mapping[str, Tensor] | None = None,
                    views: Sequence[Camera] | None = None,
                    device: torch.device | str) -> LabelSet:
        ...


# --------------------------------------------------------------------------------------------
# Driving poses


def canonical_params(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """SMPL-X parameters with joint groups shaped ``[B, J, 3]`` (``body_pose [B, 21, 3]``,
    hands ``[B, 15, 3]``, single joints ``[B, 3]``); other entries unchanged."""
    out = {}
    for name, value in params.items():
        value = torch.as_tensor(value)
        if name in _WIDTHS:
            if value.ndim == 1:
                value = value[None]
            count = _WIDTHS[name]
            try:
                value = value.reshape(value.shape[0], count, 3) if count > 1 else \
                    value.reshape(value.shape[0], 3)
            except RuntimeError:
                raise UserError(f"expected {count * 3} values per frame, got "
                                f"{tuple(value.shape)}", field=name) from None
        out[name] = value
    return out


def driving_frames(clips: Sequence[str] = DRIVING_CLIPS, frames_per_clip: int = 4
                   ) -> list[tuple[str, int]]:
    """``(clip, frame)`` pairs: ``frames_per_clip`` frames of each built-in clip, as different
    from each other as possible (farthest-point sampling of the joint rotations and face
    units, starting from the frame farthest from the clip's first frame, the shared stance,
    and keeping picks at least ``T / (2 n)`` frames apart); frames in time order within a
    clip. Deterministic."""
    from oneshot_avatar.motion import builtin_clip

    if isinstance(frames_per_clip, bool) or not isinstance(frames_per_clip, int) or \
            frames_per_clip < 1:
        raise UserError(f"frames_per_clip must be a whole number >= 1, got {frames_per_clip!r}",
                        field="frames_per_clip")
    pairs = []
    for name in clips:
        clip = builtin_clip(name)
        features = np.concatenate([clip.full_pose()[:, 1:].reshape(clip.num_frames, -1),
                                   0.3 * clip.expression.reshape(clip.num_frames, -1)], axis=1)
        count = min(frames_per_clip, clip.num_frames)
        gap = clip.num_frames // (2 * count)  # keep picks apart in time, too
        nearest = np.linalg.norm(features - features[:1], axis=1)
        chosen: list[int] = []
        for _ in range(count):
            pick = int(np.argmax(nearest))  # first maximum: deterministic
            chosen.append(pick)
            nearest = np.minimum(nearest, np.linalg.norm(features - features[pick], axis=1))
            nearest[max(0, pick - gap) : pick + gap + 1] = -1.0
            nearest[chosen] = -2.0
        pairs += [(name, frame) for frame in sorted(chosen)]
    return pairs


def driving_poses(
    fit_params: Mapping[str, Tensor],
    *,
    clips: Sequence[str] = DRIVING_CLIPS,
    frames_per_clip: int = 4,
    expression_names: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    """The fitted person in frames of the built-in clips (see :func:`driving_frames`), batched
    ``[N, ...]`` in that order.

    ``betas``, ``global_orient`` and ``transl`` stay the fitted ones, so the person stays where
    the photo camera sees them; body, hand, jaw and eye poses come from the clip frames. The
    clips' ARKit-52 expressions are used when ``expression_names`` (the body's) takes them (see
    :func:`oneshot_avatar.render.shots.expression_for_body`); otherwise, and for clips without a
    face track, the fitted expression is kept.
    """
    from oneshot_avatar.motion import builtin_clip
    from oneshot_avatar.render.shots import expression_for_body

    fit = canonical_params(fit_params)
    if "betas" not in fit:
        raise UserError("the fitted parameters have no betas", field="betas")
    reference = fit["betas"]
    device, dtype = reference.device, reference.dtype
    pairs = driving_frames(clips, frames_per_clip)
    frames: dict[str, list[Tensor]] = {}
    by_clip: dict[str, list[int]] = {}
    for name, frame in pairs:
        by_clip.setdefault(name, []).append(frame)
    for name in dict.fromkeys(c for c, _ in pairs):
        clip = builtin_clip(name)
        index = torch.tensor(by_clip[name])
        clip_params = clip.to_torch(device, dtype)
        count = index.numel()
        for key in _WIDTHS:
            if key in KEPT_FROM_FIT:
                continue
            frames.setdefault(key, []).append(clip_params[key][index.to(device)])
        expression = None
        if expression_names is not None:
            mapped = expression_for_body(clip, expression_names)
            if mapped is not None:
                expression = torch.as_tensor(mapped[index.numpy()], device=device, dtype=dtype)
        if expression is None and "expression" in fit:
            expression = fit["expression"][:1].expand(count, -1)
        if expression is not None:
            frames.setdefault("expression", []).append(expression)
    total = len(pairs)
    out = {key: torch.cat(parts) for key, parts in frames.items()}
    for key in KEPT_FROM_FIT:
        if key in fit:
            value = fit[key].to(device=device, dtype=dtype)
            out[key] = value[:1].expand(total, *value.shape[1:]).clone()
    return out


def repeat_params(params: Mapping[str, Tensor], count: int) -> dict[str, Tensor]:
    """Batch-1 parameters repeated ``count`` times along the batch."""
    fit = canonical_params(params)
    return {key: value[:1].expand(count, *value.shape[1:]).clone() for key, value in fit.items()}


def concat_params(parts: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Concatenate batched parameter dicts; a key missing from some part is filled with zeros."""
    parts = [canonical_params(p) for p in parts if p]
    if not parts:
        return {}
    keys = list(dict.fromkeys(k for p in parts for k in p))
    out = {}
    for key in keys:
        template = next(p[key] for p in parts if key in p)
        pieces = []
        for p in parts:
            size = int(next(iter(p.values())).shape[0])
            pieces.append(p[key].to(template) if key in p else
                          template.new_zeros(size, *template.shape[1:]))
        out[key] = torch.cat(pieces)
    return out


# --------------------------------------------------------------------------------------------
# Turnaround views


def _yaw_about(centre: Tensor, degrees: float) -> Tensor:  # [4, 4] rotation about +Y through centre
    angle = math.radians(degrees)
    c, s = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=centre.dtype,
                            device=centre.device)
    transform = torch.eye(4, dtype=centre.dtype, device=centre.device)
    transform[:3, :3] = rotation
    transform[:3, 3] = centre - rotation @ centre
    return transform


def body_centre(body, fit_params: Mapping[str, Tensor]) -> Tensor:
    """Centre ``[3]`` of the posed body's bounding box, world metres."""
    params = {k: v.to(body.device) for k, v in canonical_params(fit_params).items()}
    with torch.no_grad():
        vertices = body(**params).vertices[0]
    return (vertices.amin(dim=0) + vertices.amax(dim=0)) / 2


def turnaround_cameras(fit_params: Mapping[str, Tensor], body, camera: Camera,
                       azimuths: Sequence[float] = TURNAROUND_AZIMUTHS) -> list[Camera]:
    """The fit camera carried around the body: for each azimuth ``a`` (degrees) the camera rig
    rotated by ``a`` about the vertical (+Y) line through the posed body's centre. Intrinsics,
    distance, height and the body's place in the image stay; ``a = 90`` looks from the body's
    left (+X) when the photo shows the front, ``a = 180`` from behind."""
    centre = body_centre(body, fit_params).to(device=camera.device, dtype=torch.float64)
    world_to_cam = camera.world_to_cam.detach().to(torch.float64)
    cameras = []
    for azimuth in azimuths:
        moved = world_to_cam @ torch.linalg.inv(_yaw_about(centre, float(azimuth)))
        cameras.append(Camera(camera.K.detach().clone(), moved.to(camera.dtype), camera.width,
                              camera.height, camera.near, camera.far))
    return cameras


def azimuth_kind(azimuth: float) -> str:
    return f"view:azimuth={azimuth:g}"


__all__ = [
    "DRIVING_CLIPS",
    "TURNAROUND_AZIMUTHS",
    "LabelSet",
    "Labeler",
    "azimuth_kind",
    "body_centre",
    "canonical_params",
    "concat_params",
    "driving_frames",
    "driving_poses",
    "repeat_params",
    "turnaround_cameras",
]
