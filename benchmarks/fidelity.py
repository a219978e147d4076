"""Reconstruction fidelity on synthetic subjects with ground truth.

    python benchmarks/fidelity.py                                  # fast preset, all looks, CPU/GPU auto
    python benchmarks/fidelity.py --preset quality --device cuda
    python benchmarks/fidelity.py --looks blue-stripes --fits estimated --steps 100   # quick look
    python benchmarks/fidelity.py --fits oracle,detected      # the photo alone vs the truth

Each subject (``oneshot_avatar.reconstruct.synthetic.LOOKS``: different shapes and outfits) is
photographed once from the front (``--size``, 512 px by default; ``--size 256`` measures the fast
preset at the resolution it trains at) and saved as a camera would, with its focal length in
EXIF (``--no-exif``: without, and the fit assumes a field of view); the avatar is reconstructed from that one photo
with the **oracle** fit (true SMPL-X parameters and camera, true mask), with the
**estimated** fit (keypoints: the true body points projected with 1 px noise; mask: GrabCut
seeded by the fit) and with the **detected** fit (the photo alone, as a user's photo runs:
landmarks and mask from the embedded detector, then the fit). Target: the detected fit's
held-out-pose PSNR within 2 dB of the oracle's (the summary prints the difference).
Then the avatar and the true textured mesh are rendered and compared:

* input view: the photo's pose and camera;
* held-out poses: three frames of the built-in ``idle`` clip (not used by the pseudo-labels),
  photo camera;
* ±45° and back (180°) views of the photo's pose, cameras on a circle about the body at the
  photo camera's distance.

PSNR / SSIM (LPIPS when its weights are found) are measured over white inside the person's
bounding box (see ``reconstruct.evaluate``). Prints a table per run and the time per stage;
writes everything to ``--out/fidelity.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from oneshot_avatar.body import load_body_model
from oneshot_avatar.fit import FitResult
from oneshot_avatar.package import load_avatar
from oneshot_avatar.reconstruct.demo import write_coco_wholebody
from oneshot_avatar.reconstruct.evaluate import (
    evaluation_views,
    fitted_frame,
    image_metrics,
    render_avatar,
    render_truth,
    summarize,
)
from oneshot_avatar.reconstruct.pipeline import (
    ReconstructOptions,
    reconstruct,
)
from oneshot_avatar.reconstruct.synthetic import LOOKS, make_subject, save_photo


def evaluate(avatar_path: Path, report: dict, subject, body, perceptual=None) -> dict:
    """Metrics of the avatar in its own fitted frame (fitted shape, placement and camera)
    against the truth in the true frame, driven by the same poses."""
    avatar = load_avatar(avatar_path)
    size = (subject.camera.width, subject.camera.height)
    fitted, fitted_camera = fitted_frame(report, *size)
    truth_params = dict(subject.params)
    truth_params.setdefault("expression", torch.zeros_like(fitted["expression"]))
    pairs = evaluation_views(body, (truth_params, subject.camera), (fitted, fitted_camera), size)
    result = {}
    for name, items in pairs.items():
        rows = []
        for (t_params, t_cam), (f_params, f_cam) in items:
            truth, truth_mask = render_truth(body, subject.texture, subject.truth_params(t_params),
                                             t_cam)
            pred, pred_mask = render_avatar(avatar, body, f_params, f_cam)
            rows.append(image_metrics(pred, truth, pred_mask, truth_mask, perceptual))
        result[name] = summarize(rows)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fast", choices=("fast", "quality"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--looks", default="all", help=f"comma list of {', '.join(LOOKS)} or 'all'")
    parser.add_argument("--fits", default="oracle,estimated",
                        help="comma list of oracle, estimated, detected")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the preset's)")
    parser.add_argument("--size", type=int, default=512,
                        help="the synthetic photo's side in pixels, where everything is measured "
                             "(default 512; the fast preset trains at 256)")
    parser.add_argument("--no-outline", action="store_true",
                        help="do not grow the body to the mask's outline (A/B of the shape beyond the body)")
    parser.add_argument("--no-exif", action="store_true",
                        help="write the photo without its EXIF focal length (the fit then assumes "
                             "a 40 degree field of view; the synthetic camera's is 35)")
    parser.add_argument("--out", default=None, help="folder for avatars and fidelity.json (default: a temp dir)")
    args = parser.parse_args()

    looks = list(LOOKS) if args.looks == "all" else args.looks.split(",")
    fits = args.fits.split(",")
    out = Path(args.out or tempfile.mkdtemp(prefix="fidelity-"))
    out.mkdir(parents=True, exist_ok=True)
    body_cpu = load_body_model(None, device="cpu")
    perceptual = None
    try:
        from oneshot_avatar.train import make_perceptual

        candidate = make_perceptual("cpu")
        perceptual = candidate if candidate.name.lower().startswith("lpips") else None
        if perceptual is not None:
            perceptual.is_lpips = True
    except Exception:  # noqa: BLE001 - LPIPS is optional here
        perceptual = None
    device_name = args.device
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name(0) if device_name.startswith("cuda") else "cpu"
    print(f"fidelity: preset {args.preset}, device {device_name} ({gpu}), torch {torch.__version__}, "
          f"looks {looks}, fits {fits}", flush=True)
    results = []
    for look in looks:
        subject = make_subject(body_cpu, look, size=args.size)
        folder = out / look
        folder.mkdir(exist_ok=True)
        photo = folder / "photo.png"
        save_photo(subject, photo, exif=not args.no_exif)  # as a camera writes it
        mask_path = folder / "mask.png"
        Image.fromarray((subject.mask * 255 + 0.5).astype(np.uint8)).save(mask_path)
        keypoints = write_coco_wholebody(folder / "keypoints.json", body_cpu, subject.params, subject.camera)
        for fit_kind in fits:
            if fit_kind == "detected":  # the photo alone: the product's default path
                options = ReconstructOptions(photo=photo, out=folder / "detected.avatar",
                                             preset=args.preset, steps=args.steps,
                                             device=device_name, quiet=True, previews=True,
                                             outline=not args.no_outline)
            else:
                options = ReconstructOptions(photo=photo, out=folder / f"{fit_kind}.avatar",
                                             keypoints=keypoints, preset=args.preset,
                                             steps=args.steps, device=device_name, quiet=True,
                                             previews=True, outline=not args.no_outline,
                                             detector=False)  # the mask as documented above
            if fit_kind == "oracle":
                options.mask = mask_path

                def oracle(prepared_subject, subject=subject):
                    params = {k: v.clone() for k, v in subject.params.items()}
                    params["expression"] = torch.zeros(1, len(body_cpu.expression_names))
                    return FitResult(params=params, camera=prepared_subject.box.camera_to_crop(subject.camera),
                                     report={"oracle": True})

                options.fit_override = oracle
            elif fit_kind not in ("estimated", "detected"):
                print(f"unknown fit {fit_kind!r}", file=sys.stderr)
                return 2
            started = time.perf_counter()
            report = reconstruct(options, log=lambda message: print("  " + message, flush=True))
            seconds = time.perf_counter() - started
            metrics = evaluate(options.out, report, subject, body_cpu, perceptual)
            row = {"look": look, "fit": fit_kind, "seconds": seconds, "timings_s": report["timings_s"],
                   "fit_report": {k: report["fit"].get(k) for k in ("keypoint_error_px", "mask_iou")},
                   "metrics": metrics, "gaussians": report["training"].get("num_gaussians")}
            results.append(row)
            print(f"{look:13s} {fit_kind:9s} " + "  ".join(
                f"{k} {v['psnr']:.2f} dB / {v['ssim']:.4f}" for k, v in metrics.items()), flush=True)
            t = report["timings_s"]
            print(f"{'':23s}time: subject {t['subject']:.1f} s, fit {t['fit']:.1f} s, labels {t['labels']:.1f} s, "
                  f"train {t['train']:.1f} s, package {t.get('package', 0):.1f} s, total {seconds:.1f} s",
                  flush=True)
    (out / "fidelity.json").write_text(json.dumps({"preset": args.preset, "device": gpu, "results": results},
                                                  indent=1, default=float))
    print("\nmean over looks (PSNR dB / SSIM):")
    for fit_kind in fits:
        rows = [r for r in results if r["fit"] == fit_kind]
        if not rows:
            continue
        line = []
        for group in rows[0]["metrics"]:
            psnr = np.mean([r["metrics"][group]["psnr"] for r in rows])
            ssim = np.mean([r["metrics"][group]["ssim"] for r in rows])
            line.append(f"{group} {psnr:.2f} / {ssim:.4f}")
        train = np.mean([r["timings_s"]["train"] for r in rows])
        total = np.mean([r["seconds"] for r in rows])
        print(f"  {fit_kind:9s} " + "  ".join(line) + f"  | train {train:.1f} s, total {total:.1f} s")
    for fit_kind in fits:
        if fit_kind == "oracle":
            continue
        gaps = [np.mean([r["metrics"]["held_out_poses"]["psnr"] for r in results
                         if r["fit"] == "oracle"])
                - np.mean([r["metrics"]["held_out_poses"]["psnr"] for r in results
                           if r["fit"] == fit_kind])] if "oracle" in fits else []
        if gaps:
            print(f"  held-out poses: oracle - {fit_kind} = {gaps[0]:.2f} dB"
                  + (" (target <= 2 dB)" if fit_kind == "detected" else ""))
    print(f"written: {out / 'fidelity.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
