"""Lean of single-view fits of people standing upright: before and after the landmark cues.

    python benchmarks/fit_lean.py [--photos DIR] [--names a.png,b.jpg] [--side-views OUT.png]
                                  [--body-model PATH]

For each photo: MediaPipe Holistic detects the person (timed), the photo is cropped around the
detected points to the fast preset's 256 px working image (as the pipeline crops), then two
keypoint fits (no mask, no silhouette stage) are timed and measured:

* ``before``: the detected body/feet/hand points as plain keypoints (no detector-specific
  placement), no landmark cues, no standing priors, the camera level (what the fit did before);
* ``after``: the full ``Landmarks`` (face mesh, world landmarks, hand depth) with the
  standing priors and the tilt folded into the camera's pitch.

Printed per photo: torso lean and leg rake in degrees in the camera's side plane (from the world
vertical; + = upper end towards the camera), the camera pitch the fit settled on, detection and
fit seconds. ``--side-views`` writes front | side renders of both fits, one row per photo.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from oneshot_avatar.body import load_body_model
from oneshot_avatar.detect import HolisticDetector
from oneshot_avatar.fit import FitConfig, fit_body
from oneshot_avatar.fit.lean import fit_lean
from oneshot_avatar.reconstruct.inputs import PHOTO_FOV_DEGREES
from oneshot_avatar.subject import load_photo
from oneshot_avatar.subject.crop import person_box

DEFAULT_NAMES = "pifu_ryota.png,mimicmotion_demo1.jpg,pifuhd_test.png"
SIZE = 256


def side_views(body, fits: list, path: Path) -> None:
    import cv2

    from oneshot_avatar.priors.labels import turnaround_cameras
    from oneshot_avatar.render.mesh import SurfaceTexture, render_textured

    with torch.no_grad():
        rest = body().vertices[0]
    colour = torch.tensor([0.9, 0.8, 0.7])
    texture = SurfaceTexture.from_function(
        rest, body.faces, lambda p, n: (0.35 + 0.6 * n[:, 2:3].abs()) * colour, 2)
    rows = []
    for label, fit in fits:
        with torch.no_grad():
            vertices = body(**fit.params).vertices[0]
        row = []
        for camera in turnaround_cameras(fit.params, body, fit.camera, (0.0, 90.0)):
            rgb, _ = render_textured(vertices, body.faces, texture, camera, background=(1, 1, 1))
            image = np.ascontiguousarray((rgb.numpy() * 255).astype(np.uint8))
            cv2.putText(image, label, (3, 12), 0, 0.35, (0, 0, 0), 1)
            row.append(image)
        rows.append(np.concatenate(row, axis=1))
    per_line = 2
    lines = [np.concatenate(rows[i:i + per_line], axis=1) for i in range(0, len(rows), per_line)]
    cv2.imwrite(str(path), np.concatenate(lines, axis=0)[..., ::-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/images"))
    parser.add_argument("--names", default=DEFAULT_NAMES)
    parser.add_argument("--side-views", type=Path, default=None)
    parser.add_argument("--body-model", default=None)
    args = parser.parse_args()
    body = load_body_model(args.body_model, device="cpu")
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, body {body.info.model_id}")
    print(f"{'photo':24s} {'fit':7s} {'torso':>7s} {'leg L':>7s} {'leg R':>7s} "
          f"{'cam pitch':>9s} {'detect s':>8s} {'fit s':>6s} {'total s':>7s}")
    fits = []
    for name in args.names.split(","):
        photo = load_photo(args.photos / name)
        height, width = photo.rgb.shape[:2]
        start = time.perf_counter()
        with HolisticDetector() as detector:
            landmarks = detector.detect(photo.rgb)
        detect_s = time.perf_counter() - start
        keypoints = landmarks.keypoints
        box = person_box((width, height), SIZE, points=keypoints.xy, conf=keypoints.conf)
        working = landmarks.mapped(box.to_crop, (SIZE, SIZE))
        focal = max(width, height) / 2 / math.tan(math.radians(PHOTO_FOV_DEGREES) / 2)
        fov = 2 * math.degrees(math.atan(SIZE / 2 / (focal * box.scale)))
        config = replace(FitConfig.fast(), fov_degrees=fov, silhouette_iterations=0)
        runs = {
            # main's fit knew no detector-specific placements: plain keypoints
            "before": {"keypoints": replace(working.keypoints, source="keypoints"),
                       "landmarks": None,
                           "config": replace(config, upright_weight=0.0, ground_weight=0.0,
                                                fold_tilt=False)},
            "after": {"keypoints": None, "landmarks": working, "config": config},
        }
        for label, run in runs.items():
            t0 = time.perf_counter()
            fit = fit_body(body, SIZE, mask=None, init=None, device="cpu", **run)
            fit_s = time.perf_counter() - t0
            lean = fit_lean(body, fit.params, fit.camera)
            print(f"{name:24s} {label:7s} {lean['torso']:7.1f} {lean['left_leg']:7.1f} "
                  f"{lean['right_leg']:7.1f} {fit.report['camera_pitch_down_degrees']:9.1f} "
                  f"{detect_s:8.2f} {fit_s:6.2f} {detect_s + fit_s:7.2f}", flush=True)
            if label == "after" and fit.report["notes"]:
                print(f"{'':24s}   notes: {'; '.join(fit.report['notes'])}")
            fits.append((f"{name[:14]} {label}", fit))
    if args.side_views is not None:
        side_views(body, fits, args.side_views)
        print(f"side views: {args.side_views}")


if __name__ == "__main__":
    main()
