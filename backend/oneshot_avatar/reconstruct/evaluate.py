"""Fidelity of an avatar against ground truth: PSNR / SSIM (and LPIPS when its weights are
present) between the avatar's render and a true image, both over a white background, measured
inside the bounding box of the person (union of both masks, plus 5 % margin) so an empty
background does not inflate the figures."""

from __future__ import annotations

import math

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


HELD_OUT_PARTS = ("body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose")


def held_out_poses(params: dict, fractions=(0.25, 0.5, 0.75), parts=HELD_OUT_PARTS) -> list[dict]:
    """``params`` (shape and placement kept) with the ``parts`` of frames of the built-in 'idle'
    clip at ``fractions`` of its length; the pseudo-labels never use that clip."""
    from oneshot_avatar.motion import builtin_clip

    clip = builtin_clip("idle").to_torch()
    frames = clip["body_pose"].shape[0]
    poses = []
    for fraction in fractions:
        k = int(frames * fraction)
        pose = {name: value.clone() for name, value in params.items()}
        for name in parts:
            pose[name] = clip[name][k : k + 1].clone()
        poses.append(pose)
    return poses


def orbit_view(camera, body, params: dict, azimuth: float, size: tuple[int, int]):
    """A camera on a horizontal circle about the posed body's vertical axis, at the given
    camera's distance and focal length, aimed at the body's centre (so the truth and the avatar,
    each in its own frame, are framed alike)."""
    from oneshot_avatar.cameras import look_at

    with torch.no_grad():
        vertices = body(**params).vertices[0].cpu()
    centre = ((vertices.min(0).values + vertices.max(0).values) / 2).double()
    eye = camera.position.detach().cpu().double()
    radius = float(torch.linalg.norm(eye - centre))
    a = math.radians(azimuth)
    new_eye = (float(centre[0]) + radius * math.sin(a), float(centre[1]),
               float(centre[2]) + radius * math.cos(a))
    return look_at(new_eye, tuple(float(c) for c in centre), width=size[0], height=size[1],
                   focal=(camera.fx, camera.fy))


def evaluation_views(body, truth: tuple[dict, object], fitted: tuple[dict, object],
                     size: tuple[int, int]) -> dict[str, list[tuple[tuple, tuple]]]:
    """The views a fidelity benchmark compares, each a pair ``((truth params, camera), (fitted
    params, camera))`` with the truth in its frame and the avatar in its fitted one: the input
    view, three held-out poses (:func:`held_out_poses`) from the photo camera, +-45 degrees and
    the back (:func:`orbit_view`). ``truth`` / ``fitted``: (SMPL-X parameters, photo camera)."""
    (truth_params, truth_camera), (fitted_params, fitted_camera) = truth, fitted
    return {
        "input_view": [(truth, fitted)],
        "held_out_poses": [((t, truth_camera), (f, fitted_camera)) for t, f in
                           zip(held_out_poses(truth_params), held_out_poses(fitted_params))],
        "views_45": [((truth_params, orbit_view(truth_camera, body, truth_params, a, size)),
                      (fitted_params, orbit_view(fitted_camera, body, fitted_params, a, size)))
                     for a in (45.0, -45.0)],
        "back_view": [((truth_params, orbit_view(truth_camera, body, truth_params, 180.0, size)),
                       (fitted_params, orbit_view(fitted_camera, body, fitted_params, 180.0,
                                                  size)))],
    }


def fitted_frame(report: dict, width: int, height: int) -> tuple[dict, object]:
    """The fitted SMPL-X parameters and the fitted camera as a camera of the whole
    ``width`` x ``height`` photo, read from a reconstruction report."""
    from oneshot_avatar.cameras import Camera
    from oneshot_avatar.subject import CropBox

    params = {k: torch.tensor(v, dtype=torch.float32) for k, v in report["fit"]["params"].items()}
    box = CropBox.from_dict(report["subject"]["crop"])
    camera = box.camera_from_crop(Camera.from_dict(report["fit"]["camera"]), width, height)
    return params, camera


def render_truth(body, texture, params: dict, camera) -> tuple[np.ndarray, np.ndarray]:
    """The true textured mesh in ``params`` over white: rgb [H, W, 3], mask [H, W]."""
    from oneshot_avatar.render.mesh import render_textured

    with torch.no_grad():
        vertices = body(**params).vertices[0]
        rgb, mask = render_textured(vertices, body.faces, texture, camera, background=(0.0, 0.0, 0.0))
    rgb, mask = rgb.cpu().numpy(), mask.cpu().numpy()
    return rgb + (1 - mask[..., None]), mask


def render_views(gaussians, body, params: dict, cameras, background=(1.0, 1.0, 1.0)
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Mesh-bound Gaussians posed by ``params`` (betas included), seen by ``cameras`` over
    ``background``: rgb ``[C, H, W, 3]`` and alpha ``[C, H, W]``."""
    from oneshot_avatar.render.posed import camera_tensors, render_posed

    device = gaussians.sh0.device
    with torch.no_grad():
        viewmats, Ks, width, height = camera_tensors(cameras, device)
        bg = torch.tensor(background, device=device, dtype=torch.float32).expand(1, len(cameras), 3)
        out = render_posed(body, gaussians, {k: v.to(device) for k, v in params.items()},
                           viewmats[None], Ks[None], width, height, backgrounds=bg).raster
    return out.rgb[0].clamp(0, 1).cpu().numpy(), out.alpha[0, ..., 0].clamp(0, 1).cpu().numpy()


def render_avatar(avatar, body, params: dict, camera) -> tuple[np.ndarray, np.ndarray]:
    """The avatar (its own betas) in the pose ``params`` over white: rgb, alpha."""
    pose = {k: v for k, v in params.items() if k != "betas"}
    pose["betas"] = avatar.betas[None]
    rgb, alpha = render_views(avatar.gaussians, body, pose, [camera])
    return rgb[0], alpha[0]
