"""The one render seam: mesh-bound Gaussians posed by SMPL-X parameters, then rasterized for
cameras. ``render/shots.py`` (CLI and service frames), ``reconstruct/evaluate.py`` (fidelity)
and ``train/trainer.py`` (the differentiable training render) all render through
``render_posed``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from oneshot_avatar.avatar import (
    FixedPose,
    MeshGaussians,
    PosedGaussians,
    pose_gaussians,
    pose_gaussians_fixed,
)
from oneshot_avatar.cameras import Camera, stack_cameras
from oneshot_avatar.render.rasterize import RasterBackend, RasterOutput, rasterize_gaussians


@dataclass(frozen=True)
class PosedRender:
    """What one call rendered: the posed Gaussians (``means [B, N, 3]``, ...) and the images
    of the ``B`` poses seen by ``C`` cameras each (``raster.rgb [B, C, H, W, 3]``)."""

    posed: PosedGaussians
    raster: RasterOutput


def render_posed(
    body,
    gaussians: MeshGaussians,
    params: dict[str, Tensor] | FixedPose,  # SMPL-X parameters as for BodyModel, batch B
    # (betas may be 1), or poses fixed in advance (training: FixedPose.of each view once)
    viewmats: Tensor,  # [B, C, 4, 4] world -> camera, as rasterize_gaussians takes them
    Ks: Tensor,  # [B, C, 3, 3]
    width: int,
    height: int,
    *,
    backgrounds: Tensor | None = None,  # [B, C, 3]; None renders over black
    backend: RasterBackend = "auto",
    near: float = 0.01,  # clip distances along the optical axis, metres
    far: float = 1e10,
) -> PosedRender:
    """Pose ``gaussians`` (bound to ``body``'s triangles, with their mesh offsets) by
    ``params`` and rasterize pose ``b`` for the cameras ``viewmats[b], Ks[b]``.

    Differentiable: gradients reach the Gaussians' parameters (and the pose) unless the
    caller renders under ``torch.no_grad()``."""
    if isinstance(params, FixedPose):
        posed = pose_gaussians_fixed(params, gaussians, body.faces)
    else:
        posed = pose_gaussians(body, gaussians, **params)
    raster = rasterize_gaussians(
        posed.means, posed.quats, posed.scales, posed.opacities, posed.sh, viewmats, Ks,
        width, height, sh_degree=posed.sh_degree, backgrounds=backgrounds, backend=backend,
        near=near, far=far,
    )
    return PosedRender(posed=posed, raster=raster)


def camera_tensors(cameras: Sequence[Camera], device: torch.device | str
                   ) -> tuple[Tensor, Tensor, int, int]:
    """``(viewmats [C, 4, 4], Ks [C, 3, 3], width, height)`` of same-size cameras, float32 on
    ``device`` (the rasterizer's form)."""
    return stack_cameras([camera.to(device, torch.float32) for camera in cameras])
