"""Self-driven reenactment, the protocol of the One Shot One Talk paper: an avatar made from one
frame of a video, driven by the tracked motion of the other frames, rendered with the tracked
camera and compared with the real frames inside the person's mask.

    python benchmarks/reenactment.py VIDEO --frame K [--frames N] [--size 360] [--steps 300]
    python benchmarks/reenactment.py ../shared/data/video/gvhmr_tennis.mp4 --frame 0

Steps: frame ``K`` (of the frames decoded at ``--size`` short side) -> ``oneshot-avatar
reconstruct`` (fast preset, ``--steps``) -> ``oneshot-avatar track`` of the first ``--frames``
frames with the avatar's shape -> each other frame rendered from the tracked camera with the
tracked pose -> PSNR over the pixels of the person mask (the detector's segmentation of the real
frame) and SSIM over the mask's bounding box, both images black outside the mask. Prints ours
beside the paper's 29.31 dB / 0.943 (its own videos and a GPU-trained model; ours is a CPU fast
preset), mean and per-frame. Target for a full-body video: >= 25 dB and >= 0.92.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

PAPER = {"psnr": 29.31, "ssim": 0.943, "lpips": 0.0299}


def masked_metrics(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR inside ``mask`` and SSIM over its bounding box, images black outside the mask."""
    from oneshot_avatar.reconstruct.evaluate import person_bbox
    from oneshot_avatar.train.losses import psnr, ssim

    m = (mask > 0.5).astype(np.float32)[..., None]
    p = torch.as_tensor(pred * m).permute(2, 0, 1)[None].float()
    t = torch.as_tensor(target * m).permute(2, 0, 1)[None].float()
    value = psnr(p, t, torch.as_tensor(m).permute(2, 0, 1)[None])
    y0, y1, x0, x1 = person_bbox(mask)
    return {"psnr": value, "ssim": float(ssim(p[..., y0:y1, x0:x1], t[..., y0:y1, x0:x1]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video")
    parser.add_argument("--frame", type=int, default=0, help="the frame the avatar is made from")
    parser.add_argument("--frames", type=int, default=60, help="frames tracked and compared")
    parser.add_argument("--size", type=int, default=360, help="short side of the frames")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the avatar")
    parser.add_argument("--keep", metavar="DIR", default=None, help="keep the work here")
    args = parser.parse_args()

    import cv2
    from PIL import Image

    from oneshot_avatar.body.model import load_body_model
    from oneshot_avatar.package.avatar_file import load_avatar, read_avatar_members
    from oneshot_avatar.reconstruct.pipeline import ReconstructOptions, reconstruct
    from oneshot_avatar.render.shots import ShotSettings, render_shot
    from oneshot_avatar.track.pipeline import track_video
    from oneshot_avatar.track.video import output_rate, probe_video, read_frames, working_size

    print(f"load: {os.getloadavg()[0]:.2f} (1-min average)")
    folder = Path(args.keep or tempfile.mkdtemp(prefix="reenact-"))
    folder.mkdir(parents=True, exist_ok=True)
    info = probe_video(args.video)
    rate = output_rate(info, None)
    size = working_size(info, args.size)
    frames = list(read_frames(info, rate, size, args.frames))
    if not 0 <= args.frame < len(frames):
        raise SystemExit(f"--frame must be in 0..{len(frames) - 1}")
    photo = folder / f"frame_{args.frame:05d}.png"
    Image.fromarray(frames[args.frame]).save(photo)
    body = load_body_model(None)
    started = time.process_time()
    reconstruct(ReconstructOptions(photo=photo, out=folder / "avatar.avatar", steps=args.steps,
                                   quiet=True, previews=False, body=body), log=lambda m: None)
    reconstruct_cpu = time.process_time() - started
    meta, _, _ = read_avatar_members(folder / "avatar.avatar")
    betas = np.asarray(meta["betas"], dtype=np.float32)
    started = time.process_time()
    result = track_video(args.video, folder / "motion.npz", body=body, avatar_betas=betas,
                         size=args.size, max_frames=args.frames, quiet=True, keep_masks=True)
    track_cpu = time.process_time() - started
    avatar = load_avatar(folder / "avatar.avatar", body=body)
    camera = result.fit.camera.to(dtype=torch.float32)
    others = [k for k in range(len(frames)) if result.fit.present[k]]
    settings = ShotSettings(width=size[0], height=size[1], background=(0.0, 0.0, 0.0),
                            backend="auto")
    rows = []
    source = None
    sample = None
    for k, rgba in render_shot(avatar, body, result.clip, [camera], others, settings):
        mask = result.masks[k]
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
        pred = rgba[..., :3].astype(np.float32) / 255
        real = frames[k].astype(np.float32) / 255
        if k == args.frame:  # the avatar's own frame: a check of the avatar and the tracking
            source = masked_metrics(pred, real, mask)
            continue
        rows.append(masked_metrics(pred, real, mask))
        if sample is None and k >= len(frames) // 2:
            sample = np.concatenate([frames[k], rgba[..., :3]], axis=1)
    # The avatar in its own fit (the reconstruction's pose and camera) against frame K: how well
    # the avatar itself reproduces its photo, apart from the tracking.
    import json

    from oneshot_avatar.motion.clip import MotionClip
    from oneshot_avatar.reconstruct.evaluate import fitted_frame

    report = json.loads((folder / "avatar.report.json").read_text())
    params, fit_camera = fitted_frame(report, size[0], size[1])
    own = MotionClip(fps=rate, **{k: params[k].numpy() if k in params else
                                  np.zeros((1, *shape)) for k, shape in
                                  (("global_orient", (3,)), ("body_pose", (21, 3)),
                                   ("jaw_pose", (3,)), ("leye_pose", (3,)), ("reye_pose", (3,)),
                                   ("left_hand_pose", (15, 3)), ("right_hand_pose", (15, 3)),
                                   ("transl", (3,)))})
    mask_k = cv2.resize(result.masks[args.frame], size).astype(np.float32) / 255
    for _, rgba in render_shot(avatar, body, own, [fit_camera.to(dtype=torch.float32)], [0],
                               settings):
        own_fit = masked_metrics(rgba[..., :3].astype(np.float32) / 255,
                                 frames[args.frame].astype(np.float32) / 255, mask_k)
    if sample is not None:
        Image.fromarray(sample).save(folder / "reenactment_sample.png")
    psnr = np.array([r["psnr"] for r in rows])
    ssim = np.array([r["ssim"] for r in rows])
    print(f"video: {Path(args.video).name}, avatar from frame {args.frame}, "
          f"{len(rows)} other frames at {size[0]}x{size[1]}")
    print(f"  ours:  PSNR {np.nanmean(psnr):.2f} dB (median {np.nanmedian(psnr):.2f}), "
          f"SSIM {np.nanmean(ssim):.3f} inside the person mask")
    if source is not None:
        print(f"  frame {args.frame} itself (not in the figures above): PSNR "
              f"{source['psnr']:.2f} dB, SSIM {source['ssim']:.3f}")
    print(f"  frame {args.frame} in the avatar's own fit (its pose and camera): PSNR "
          f"{own_fit['psnr']:.2f} dB, SSIM {own_fit['ssim']:.3f}")
    print(f"  paper: PSNR {PAPER['psnr']:.2f} dB, SSIM {PAPER['ssim']:.3f}, LPIPS "
          f"{PAPER['lpips']:.4f} (One Shot One Talk, its videos, self-driven)")
    print(f"  CPU: reconstruct {reconstruct_cpu:.0f} s ({args.steps} steps), track "
          f"{track_cpu:.0f} s; work in {folder}")


if __name__ == "__main__":
    main()
