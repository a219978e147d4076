"""Fidelity of an avatar against ground truth: PSNR / SSIM (and LPIPS when its weights are
present) between the avatar's render and a true image, both over a white background, measured
inside the bounding box of the person (union of both masks, plus 5 % margin) so an empty
background does not inflate the figures."""

from __future__ import annotations

import numpy as np
import torch

from oneshot_avatar.train.losses import psnr, ssim


def person_bbox(*masks: np.ndarray, margin: float = 0.05) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` around every pixel > 0.5 of the masks (whole image if empty)."""
    union = np.zeros_like(masks[0], dtype=bool)
    for mask in masks:
        union |= mask > 0.5
    height, width = union.shape
    if not union.any():
        return 0, height, 0, width
    ys, xs = np.nonzero(union)
    pad = round(float(margin * max(ys.max() - ys.min(), xs.max() - xs.min())))
    return (max(int(ys.min()) - pad, 0), min(int(ys.max()) + 1 + pad, height),
            max(int(xs.min()) - pad, 0), min(int(xs.max()) + 1 + pad, width))


def image_metrics(pred: np.ndarray, target: np.ndarray, pred_mask: np.ndarray,
                  target_mask: np.ndarray, perceptual=None) -> dict[str, float]:
    """Metrics of ``pred`` against ``target`` (float [H, W, 3] in [0, 1]) inside the person box."""
    y0, y1, x0, x1 = person_bbox(pred_mask, target_mask)
    p = torch.as_tensor(np.ascontiguousarray(pred[y0:y1, x0:x1])).permute(2, 0, 1)[None].float()
    t = torch.as_tensor(np.ascontiguousarray(target[y0:y1, x0:x1])).permute(2, 0, 1)[None].float()
    result = {"psnr": psnr(p, t), "ssim": float(ssim(p, t))}
    if perceptual is not None and getattr(perceptual, "is_lpips", False):
        with torch.no_grad():
            result["lpips"] = float(perceptual(p, t))
    return result


def summarize(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over views."""
    keys = sorted({k for row in rows for k in row})
    return {k: float(np.mean([row[k] for row in rows if k in row])) for k in keys}


def render_truth(body, texture, params: dict, camera) -> tuple[np.ndarray, np.ndarray]:
    """The true textured mesh in ``params`` over white: rgb [H, W, 3], mask [H, W]."""
    from oneshot_avatar.render.mesh import render_textured

    with torch.no_grad():
        vertices = body(**params).vertices[0]
        rgb, mask = render_textured(vertices, body.faces, texture, camera, background=(0.0, 0.0, 0.0))
    rgb, mask = rgb.cpu().numpy(), mask.cpu().numpy()
    return rgb + (1 - mask[..., None]), mask


def render_avatar(avatar, body, params: dict, camera) -> tuple[np.ndarray, np.ndarray]:
    """The avatar (its own betas) in the pose ``params`` over white: rgb, alpha."""
    from oneshot_avatar.cameras import stack_cameras
    from oneshot_avatar.render.rasterize import rasterize_gaussians

    device = body.device
    with torch.no_grad():
        pose = {k: v.to(device) for k, v in params.items() if k != "betas"}
        posed = avatar.pose(body, **pose)
        viewmats, Ks, width, height = stack_cameras([camera.to(device, torch.float32)])
        out = rasterize_gaussians(posed.means, posed.quats, posed.scales, posed.opacities, posed.sh,
                                  viewmats[None], Ks[None], width, height, sh_degree=posed.sh_degree,
                                  backgrounds=torch.ones(1, 1, 3, device=device))
    return (out.rgb[0, 0].clamp(0, 1).cpu().numpy(),
            out.alpha[0, 0, ..., 0].clamp(0, 1).cpu().numpy())
