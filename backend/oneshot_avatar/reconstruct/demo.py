"""``oneshot-avatar demo``: the whole product on a synthetic person, with nothing downloaded.

1. A synthetic subject (the open body in a procedural outfit, photographed by the project's
   mesh renderer in front of a backdrop) is written as ``photo.png`` with its 2D keypoints
   (``keypoints.json``, COCO-WholeBody, as a whole-body detector would give them: the true
   body points projected, with 1 px of noise).
2. ``reconstruct`` makes ``avatar.avatar`` from that one photo and its keypoints: the estimated
   fit, the GrabCut mask, pseudo-labels, training, previews and a report.
3. The avatar is rendered with the built-in ``talk`` clip to ``talk.mp4``; because the subject
   is synthetic, the demo also prints how close the avatar comes to the truth in the photo's
   view and in a held-out pose.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from oneshot_avatar.atomic import atomic_output, write_bytes_atomic
from oneshot_avatar.errors import UserError


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def target_points(body, params: dict, names) -> tuple[torch.Tensor, list[str]]:
    """World positions ``[K, 3]`` of the keypoint targets ``names`` that ``body`` has."""
    from oneshot_avatar.fit import keypoint_targets

    targets = keypoint_targets(body)
    with torch.no_grad():
        out = body(**params)
    points, kept = [], []
    for name in names:
        target = targets.get(name)
        if target is None:
            continue
        points.append(target.position(out.joints[0], out.vertices[0]))
        kept.append(name)
    return torch.stack(points), kept


def write_coco_wholebody(path: Path, body, params: dict, camera, *, noise_px: float = 1.0,
                         seed: int = 0) -> Path:
    """The subject's keypoints as a COCO-WholeBody JSON file (pixel centres on whole numbers, as
    COCO writes them), visibility 2 for every point the body has, 0 for the others."""
    from oneshot_avatar.fit.keypoints import COCO_WHOLEBODY_NAMES

    points, kept = target_points(body, params, COCO_WHOLEBODY_NAMES)
    xy, _ = camera.project(points.to(camera.K))
    rng = np.random.default_rng(seed)
    xy = xy.detach().cpu().numpy() - 0.5 + rng.normal(0, noise_px, size=(len(kept), 2))
    found = dict(zip(kept, xy.tolist()))
    flat = []
    for name in COCO_WHOLEBODY_NAMES:
        if name in found:
            flat += [round(found[name][0], 2), round(found[name][1], 2), 2]
        else:
            flat += [0.0, 0.0, 0]
    sizes = (17, 6, 68, 21, 21)
    keys = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")
    annotation, start = {"image_id": 1, "category_id": 1}, 0
    for key, size in zip(keys, sizes):
        annotation[key] = flat[3 * start : 3 * (start + size)]
        start += size
    payload = {"images": [{"id": 1, "width": camera.width, "height": camera.height,
                           "file_name": "photo.png"}],
               "annotations": [annotation]}
    write_bytes_atomic(path, json.dumps(payload).encode())
    return path


def run_demo(out_dir: Path, *, preset: str = "fast", steps: int | None = None, device: str = "auto",
             look: str = "blue-stripes", seed: int = 0, body_model: str | None = None,
             render_size: int = 384, quiet: bool = False) -> dict[str, str]:
    from PIL import Image

    from oneshot_avatar.body import load_body_model
    from oneshot_avatar.devices import resolve_device
    from oneshot_avatar.reconstruct.pipeline import ReconstructOptions, reconstruct
    from oneshot_avatar.reconstruct.synthetic import LOOKS, make_subject

    started = time.perf_counter()
    if look not in LOOKS:
        raise UserError(f"unknown --look {look!r}; choose one of {', '.join(LOOKS)}", field="look")
    if render_size < 64 or render_size > 4096:
        raise UserError(f"--size must be between 64 and 4096 pixels, got {render_size}", field="size")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {str(out_dir)!r} exists and is not a folder", field="out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create the output folder {str(out_dir)!r}: {error.strerror or error}",
                        field="out") from error
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UserError(f"cannot write into {str(out_dir)!r}; choose another --out", field="out")
    resolved = resolve_device(device)

    _log("demo: making the synthetic subject (open body, procedural outfit, own renderer)")
    body = load_body_model(body_model, device="cpu")
    subject = make_subject(body, look, size=512, seed=seed)
    photo_path = out_dir / "photo.png"
    with atomic_output(photo_path) as tmp:
        Image.fromarray((subject.image * 255 + 0.5).astype(np.uint8)).save(tmp, format="PNG")
    keypoints_path = write_coco_wholebody(out_dir / "keypoints.json", body, subject.params,
                                          subject.camera, seed=seed)
    avatar_path = out_dir / "avatar.avatar"
    options = ReconstructOptions(
        photo=photo_path, out=avatar_path, keypoints=keypoints_path, preset=preset, steps=steps,
        body_model=body_model, device=device, seed=seed, quiet=quiet,
        extra_report={"demo": {"look": look}},
    )
    report = reconstruct(options)
    outputs = {"photo": str(photo_path), "keypoints": str(keypoints_path), **report["outputs"]}

    _log("demo: rendering the 'talk' clip")
    video = out_dir / "talk.mp4"
    render_clip(avatar_path, video, body_model, resolved, render_size, quiet)
    outputs["video"] = str(video)

    truth = evaluate_against_truth(avatar_path, subject, body_model, resolved, report)
    write_bytes_atomic(out_dir / "fidelity.json", json.dumps(truth, indent=1).encode())
    outputs["fidelity"] = str(out_dir / "fidelity.json")
    _log(f"demo: photo view PSNR {truth['input_view']['psnr']:.2f} dB, SSIM "
         f"{truth['input_view']['ssim']:.4f}; held-out pose PSNR {truth['held_out_pose']['psnr']:.2f} dB, "
         f"SSIM {truth['held_out_pose']['ssim']:.4f} (against the synthetic ground truth)")
    _log(f"demo: finished in {time.perf_counter() - started:.0f} s")
    return outputs


def render_clip(avatar_path: Path, out: Path, body_model, device: torch.device, size: int,
                quiet: bool, clip_name: str = "talk") -> Path:
    from oneshot_avatar.avatar import check_body_matches
    from oneshot_avatar.body import load_body_model
    from oneshot_avatar.motion import builtin_clip
    from oneshot_avatar.package import load_avatar
    from oneshot_avatar.render.output import open_sink
    from oneshot_avatar.render.shots import ShotSettings, front_shot_cameras, render_to_sink

    avatar = load_avatar(avatar_path)
    body = load_body_model(body_model, device=device)
    check_body_matches(avatar.meta, body)
    avatar.to(device)
    clip = builtin_clip(clip_name)
    settings = ShotSettings(width=size, height=size, background=(1.0, 1.0, 1.0))
    with torch.no_grad():
        rest = avatar.pose(body).vertices[0].cpu()
    cameras = front_shot_cameras(rest, settings)
    sink = open_sink(out, clip.fps, settings.background)
    render_to_sink(avatar, body, clip, cameras, range(clip.num_frames), settings, sink, quiet=quiet)
    return out


def evaluate_against_truth(avatar_path: Path, subject, body_model, device: torch.device,
                           report: dict | None = None) -> dict:
    """PSNR / SSIM of the avatar against the synthetic subject's true renders, in the photo's
    pose and in a held-out pose (the middle of the 'idle' clip). The avatar is shown in its own
    fitted frame (fitted placement and camera, from ``report``) and the truth in the true frame,
    both driven by the same body pose."""
    from oneshot_avatar.body import load_body_model
    from oneshot_avatar.package import load_avatar
    from oneshot_avatar.reconstruct.evaluate import (
        fitted_frame,
        held_out_poses,
        image_metrics,
        render_avatar,
        render_truth,
    )

    avatar = load_avatar(avatar_path)
    body = load_body_model(body_model, device="cpu")
    truth = dict(subject.params)
    fitted, camera = truth, subject.camera
    if report is not None:
        fitted, camera = fitted_frame(report, subject.camera.width, subject.camera.height)

    def held_out(params):
        return held_out_poses(params, fractions=(0.5,), parts=("body_pose",))[0]

    results = {}
    pairs = (("input_view", truth, fitted), ("held_out_pose", held_out(truth), held_out(fitted)))
    for name, true_params, avatar_params in pairs:
        truth_rgb, truth_mask = render_truth(body, subject.texture, subject.truth_params(true_params),
                                             subject.camera)
        pred_rgb, pred_mask = render_avatar(avatar, body, avatar_params, camera)
        results[name] = image_metrics(pred_rgb, truth_rgb, pred_mask, truth_mask)
    return results
