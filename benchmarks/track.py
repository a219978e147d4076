"""Video tracking: frames per second at 720p (landmarks + clip fit) and errors on a synthetic
video with known answers.

    python benchmarks/track.py                      # the shared talk-show video, 720p, 150 frames
    python benchmarks/track.py VIDEO [--frames N] [--size 720]
    python benchmarks/track.py --synthetic-only

Speed: ``oneshot-avatar track``'s work without the preview (decoding, MediaPipe Holistic in video
mode, the clip fit), frames / wall second and frames / CPU second (all threads; the figure to
compare on a shared machine), split by stage. Target: >= 5 frames/s on a 2-core CPU.

Accuracy: the dressed open body performing the built-in ``talk`` clip (15 fps, 4 s, 384x512,
known camera) tracked back: body joint error after aligning the pelvis (cm), finger rotation
error (degrees), jaw and blink correlation with the truth (Pearson r), mean body keypoint
reprojection error (px).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"


def speed(body, video: Path, frames: int, size: int) -> None:
    from oneshot_avatar.track.pipeline import track_video

    with tempfile.TemporaryDirectory() as folder:
        cpu, wall = time.process_time(), time.perf_counter()
        result = track_video(video, Path(folder) / "m.npz", body=body, size=size,
                             max_frames=frames, preview=False, quiet=True)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    t = result.report["timings"]
    n = result.report["frames"]
    print(f"video: {video.name}, {n} frames at {result.size[0]}x{result.size[1]}, "
          f"person in {sum(result.report['present'])}")
    print(f"  landmarks: {n / t['landmarks_s']:.1f} frames/s wall, "
          f"{n / t['landmarks_cpu_s']:.1f} frames/CPU-s")
    print(f"  clip fit:  {n / t['fit_s']:.1f} frames/s wall, {n / t['fit_cpu_s']:.1f} frames/CPU-s")
    print(f"  total:     {n / wall:.1f} frames/s wall, {n / cpu:.1f} frames/CPU-s "
          f"(target >= 5 frames/s on 2 cores), mean keypoint error "
          f"{result.report['mean_keypoint_error_px']:.1f} px")


def accuracy(body) -> None:
    from oneshot_avatar.track.pipeline import track_video
    from oneshot_avatar.track.synthetic import make_synthetic_video, tracking_errors

    with tempfile.TemporaryDirectory() as folder:
        truth = make_synthetic_video(body, Path(folder) / "talk.mp4", clip="talk", fps=15.0,
                                     seconds=4.0, width=384, height=512)
        result = track_video(truth.path, Path(folder) / "talk.npz", body=body, preview=False,
                             quiet=True)
    errors = tracking_errors(truth, result.fit, body)
    print(f"synthetic talk clip ({truth.clip.num_frames} frames, 384x512): joint error "
          f"{errors['joint_error_cm']:.1f} cm (pelvis-aligned), fingers "
          f"{errors['finger_error_deg']:.1f} deg, jaw r {errors['jaw_r']:.2f}, blink r "
          f"{errors.get('blink_r', float('nan')):.2f}, keypoints "
          f"{np.nanmean(result.fit.errors_px):.1f} px")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(SHARED / "show_seth_half.mp4"))
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--size", type=int, default=720)
    parser.add_argument("--synthetic-only", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()
    from oneshot_avatar.body.model import load_body_model

    body = load_body_model(None)
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average), torch threads "
          f"{__import__('torch').get_num_threads()}")
    if not args.synthetic_only:
        speed(body, Path(args.video), args.frames, args.size)
    if not args.speed_only:
        accuracy(body)


if __name__ == "__main__":
    main()
