"""Detection and fit on the shared real photos, from the photo alone.

    python benchmarks/fit.py                       # every photo in ../shared/data/images, fast preset
    python benchmarks/fit.py --photos pifu_ryota.png --preset quality --device cuda

For each photo: the subject stage with the embedded landmark detector (detection, then the mask
from its segmentation refined by GrabCut), then the body fit, as ``oneshot-avatar reconstruct``
runs them. Prints per photo the detection time, the mask time, the fit time, detection +
fit (target: <= 20 s per photo on a 2-core CPU; the process CPU time is printed too, as wall
time depends on what else runs), the fit's keypoint error (working-image px), and
where ground truth exists: PCK at 0.1 x the person's size and mean error per part against the
COCO-WholeBody annotation (``coco_000000000785.jpg``), and the mask IoU against
``pifu_ryota_mask.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from oneshot_avatar.body import load_body_model
from oneshot_avatar.detect.evaluate import mask_iou, pck
from oneshot_avatar.devices import resolve_device
from oneshot_avatar.fit import load_keypoints
from oneshot_avatar.reconstruct.pipeline import ReconstructOptions, fit_stage, prepare_subject
from oneshot_avatar.reconstruct.presets import preset as make_preset
from oneshot_avatar.subject import load_mask

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TRUTH_KEYPOINTS = {"coco_000000000785.jpg": DATA / "keypoints" / "mmpose_test_coco_wholebody.json"}
TRUTH_MASKS = {"pifu_ryota.png": DATA / "images" / "pifu_ryota_mask.png"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", nargs="*", default=None, help="file names in --data/images")
    parser.add_argument("--data", default=str(DATA), help="the shared data folder")
    parser.add_argument("--preset", default="fast", choices=("fast", "quality"))
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    images = Path(args.data) / "images"
    names = args.photos or sorted(p.name for p in images.glob("*")
                                  if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")
                                  and "_mask" not in p.stem)
    device = resolve_device(args.device)
    chosen = make_preset(args.preset, resolution=args.resolution)
    body = load_body_model(None, device=device)
    quiet = (lambda message: None)
    rows = []
    for name in names:
        photo = images / name
        options = ReconstructOptions(photo=photo, out=Path("unused.avatar"), preset=args.preset,
                                     device=str(device), quiet=True)
        started, cpu = time.perf_counter(), time.process_time()
        prepared = prepare_subject(options, chosen, device, quiet)
        subject_s, subject_cpu = time.perf_counter() - started, time.process_time() - cpu
        detect_s = float(prepared.detection["seconds"])
        started, cpu = time.perf_counter(), time.process_time()
        with tempfile.TemporaryDirectory() as work:
            fit, subject = fit_stage(body, prepared, chosen, device, Path(work), False, quiet)
        fit_s, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
        row = {"photo": name, "detect_s": detect_s, "mask_s": subject_s - detect_s,
               "fit_s": fit_s, "detect_plus_fit_s": subject_s + fit_s,
               "subject_cpu_s": subject_cpu, "fit_cpu_s": fit_cpu,
               "fit_keypoint_error_px": fit.report.get("keypoint_error_px"),
               "fit_mask_iou": fit.report.get("mask_iou"),
               "notes": prepared.detection.get("notes", [])}
        landmarks = prepared.photo_landmarks
        truth_path = TRUTH_KEYPOINTS.get(name)
        if truth_path is not None and truth_path.exists():
            truth = load_keypoints(truth_path, landmarks.image_size)
            row["pck"] = pck(landmarks.keypoints, truth, 0.1)
        truth_mask = TRUTH_MASKS.get(name)
        if truth_mask is not None and truth_mask.exists():
            full = load_mask(truth_mask, landmarks.image_size)
            row["mask_iou_vs_truth"] = mask_iou(
                subject.mask, subject.box.crop(full, pad="constant", fill=0.0))
        rows.append(row)
        line = (f"{name:28s} detect {detect_s:5.2f} s  mask {row['mask_s']:5.2f} s  "
                f"fit {fit_s:6.2f} s  detect+mask+fit {row['detect_plus_fit_s']:6.2f} s  "
                f"fit keypoint error {row['fit_keypoint_error_px']:.2f} px  "
                f"fit mask IoU {row['fit_mask_iou']:.3f}  (CPU time: subject {subject_cpu:.1f} s, "
                f"fit {fit_cpu:.1f} s)")
        print(line, flush=True)
        for part, score in row.get("pck", {}).items():
            print(f"    {part:6s} PCK@0.1 {score['pck']:.2f} ({score['points']} points), "
                  f"mean error {score['mean_error_px']:.1f} px", flush=True)
        if "mask_iou_vs_truth" in row:
            print(f"    mask IoU vs ground truth {row['mask_iou_vs_truth']:.3f}", flush=True)
        for note in row["notes"]:
            print(f"    note: {note}", flush=True)
    total = [r["detect_plus_fit_s"] for r in rows]
    print(f"detect + mask + fit: mean {np.mean(total):.1f} s, max {np.max(total):.1f} s per photo "
          f"(target <= 20 s on a 2-core CPU)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
