"""Fidelity without training, in seconds: how good the pseudo-labels' colours are where the photo
cannot see, and how far a fit alone caps the avatar.

    python benchmarks/labels.py                          # every look, oracle fit (~30 s)
    python benchmarks/labels.py --fits oracle,detected   # + the photo alone (detector + fit)
    python benchmarks/labels.py --looks blue-stripes --save /tmp/labels   # + side-by-side PNGs

Each synthetic subject (``reconstruct.synthetic.LOOKS``) is photographed from the front at
``--size`` (512 px) as ``benchmarks/fidelity.py`` does, and the views are fidelity.py's (input
view, three held-out poses, +-45 degrees, back; ``reconstruct.evaluate.evaluation_views``),
measured the same way (PSNR / SSIM inside the person box, over white). Per fit it prints:

* **labels**: the labeler's texture (what the photo shows, filled elsewhere region by region;
  the preset's label settings, the shape beyond the body included) on the fitted body, against
  the truth. With the oracle fit this is the appearance the pseudo-labels teach the avatar: the
  back view here is about what a trained avatar's back view reaches.
* **fit ceiling** (non-oracle fits): the *true* texture on the fitted body, against the truth —
  the most any avatar bound to that fit can reach, so the part of a detected fit's gap that
  training cannot close. Beside it, the fit's orientation error in the photo camera's frame
  (pitch = leaning towards/away from the camera, yaw, roll; degrees) and its focal length
  against the truth's. The photo carries its camera's focal length in EXIF as a camera
  writes it (``--no-exif``: it does not, and the fit assumes a field of view).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from oneshot_avatar.body import load_body_model
from oneshot_avatar.priors.outline import outline_growth
from oneshot_avatar.reconstruct.evaluate import evaluation_views, image_metrics, render_truth
from oneshot_avatar.reconstruct.pipeline import (
    ReconstructOptions,
    fit_stage,
    make_labeler,
    prepare_subject,
)
from oneshot_avatar.reconstruct.presets import preset as make_preset
from oneshot_avatar.reconstruct.synthetic import LOOKS, make_subject, save_photo


def _camera_orientation(camera, params: dict) -> np.ndarray:
    """The body's root orientation in the camera's frame, a 3x3 matrix."""
    root = Rotation.from_rotvec(params["global_orient"].reshape(3).double().numpy()).as_matrix()
    return camera.rotation.detach().cpu().double().numpy() @ root


def _measure(body, texture, subject, views, offsets, save: Path | None, tag: str) -> dict:
    rows: dict[str, list[dict]] = {}
    strips = []
    for name, pairs in views.items():
        for (t_params, t_cam), (f_params, f_cam) in pairs:
            truth, truth_mask = render_truth(body, subject.texture, subject.truth_params(t_params),
                                             t_cam)
            drawn = f_params if offsets is None else {**f_params, "vertex_offsets": offsets}
            pred, pred_mask = render_truth(body, texture, drawn, f_cam)
            rows.setdefault(name, []).append(image_metrics(pred, truth, pred_mask, truth_mask))
            if save is not None and name in ("input_view", "views_45", "back_view"):
                strips.append(np.concatenate([truth, pred], axis=1))
    if save is not None:
        sheet = (np.clip(np.concatenate(strips, axis=0), 0, 1) * 255 + 0.5).astype(np.uint8)
        Image.fromarray(sheet).save(save / f"{subject.name}-{tag}.png")
    return {name: {k: float(np.mean([r[k] for r in items])) for k in items[0]}
            for name, items in rows.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--looks", default="all", help=f"comma list of {', '.join(LOOKS)} or 'all'")
    parser.add_argument("--fits", default="oracle", help="comma list of oracle, detected")
    parser.add_argument("--preset", default="quality", choices=("fast", "quality"),
                        help="whose label and fit settings (default quality)")
    parser.add_argument("--size", type=int, default=512, help="the photo's side in pixels")
    parser.add_argument("--no-exif", action="store_true",
                        help="the detected fit's photo without its EXIF focal length")
    parser.add_argument("--save", default=None, help="folder for truth | result PNGs per look")
    args = parser.parse_args()
    looks = list(LOOKS) if args.looks == "all" else args.looks.split(",")
    fits = args.fits.split(",")
    unknown = [f for f in fits if f not in ("oracle", "detected")]
    if unknown:
        print(f"unknown fit(s) {unknown}; choose from oracle, detected", file=sys.stderr)
        return 2
    save = None if args.save is None else Path(args.save)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    body = load_body_model(None, device="cpu")
    chosen = make_preset(args.preset)
    settings = chosen.labels
    work = Path(tempfile.mkdtemp(prefix="labels-bench-"))
    size = (args.size, args.size)
    print(f"labels: preset {args.preset}'s label settings, photos {args.size} px, looks {looks}, "
          f"fits {fits}")
    results = []
    for look in looks:
        subject = make_subject(body, look, size=args.size)
        truth = dict(subject.params)
        truth.setdefault("expression", torch.zeros(1, len(body.expression_names)))
        for fit_kind in fits:
            started = time.perf_counter()
            row = {"look": look, "fit": fit_kind}
            if fit_kind == "oracle":
                params, camera = truth, subject.camera
                image, mask = torch.as_tensor(subject.image), torch.as_tensor(subject.mask)
            else:
                photo = work / f"{look}.png"
                save_photo(subject, photo, exif=not args.no_exif)
                options = ReconstructOptions(photo=photo, out=work / f"{look}.avatar",
                                             preset=args.preset, device="cpu", quiet=True)
                prepared = prepare_subject(options, chosen, torch.device("cpu"), lambda m: None)
                folder = work / f"fit-{look}"
                folder.mkdir(exist_ok=True)
                fit, fitted_subject = fit_stage(body, prepared, chosen, torch.device("cpu"),
                                                folder, False, lambda m: None)
                params = {k: v.detach().cpu().float() for k, v in fit.params.items()}
                # Labels are made in the working crop, as the pipeline does; measured in the photo.
                crop_camera = fit.camera.to("cpu")
                camera = fitted_subject.box.camera_from_crop(crop_camera, *size)
                image = torch.as_tensor(fitted_subject.image)
                mask = torch.as_tensor(fitted_subject.mask)
            label_camera = camera if fit_kind == "oracle" else crop_camera
            offsets = None
            if settings.outline:
                offsets = outline_growth(body, params, label_camera, mask).offsets
            texture, _ = make_labeler(settings).texture_and_regions(
                body, params, label_camera, image, mask, vertex_offsets=offsets)
            views = evaluation_views(body, (truth, subject.camera), (params, camera), size)
            row["labels"] = _measure(body, texture, subject, views, offsets, save,
                                     f"{fit_kind}-labels")
            if fit_kind != "oracle":
                row["fit_ceiling"] = _measure(body, subject.texture, subject, views, None, save,
                                              f"{fit_kind}-ceiling")
                delta = Rotation.from_matrix(_camera_orientation(camera, params)
                                             @ _camera_orientation(subject.camera, truth).T)
                pitch, yaw, roll = np.degrees(delta.as_rotvec())
                row["orientation_deg"] = {"pitch": pitch, "yaw": yaw, "roll": roll,
                                          "total": math.degrees(delta.magnitude())}
                row["focal_px"] = {"fit": camera.fx, "truth": subject.camera.fx}
            row["seconds"] = time.perf_counter() - started
            results.append(row)
            for kind in ("labels", "fit_ceiling"):
                if kind in row:
                    print(f"{look:13s} {fit_kind:9s} {kind:12s}" + "  ".join(
                        f"{k} {v['psnr']:.2f} dB / {v['ssim']:.4f}" for k, v in row[kind].items()),
                        flush=True)
            if "orientation_deg" in row:
                o, f = row["orientation_deg"], row["focal_px"]
                print(f"{'':36s}orientation error {o['total']:.1f} deg (pitch {o['pitch']:+.1f}, "
                      f"yaw {o['yaw']:+.1f}, roll {o['roll']:+.1f}); focal {f['fit']:.0f} px "
                      f"(truth {f['truth']:.0f}); {row['seconds']:.1f} s", flush=True)
    print("\nmean over looks (PSNR dB):")
    for fit_kind in fits:
        for kind in ("labels", "fit_ceiling"):
            rows = [r[kind] for r in results if r["fit"] == fit_kind and kind in r]
            if rows:
                print(f"  {fit_kind:9s} {kind:12s}" + "  ".join(
                    f"{g} {np.mean([r[g]['psnr'] for r in rows]):.2f}" for g in rows[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
