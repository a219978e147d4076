"""``oneshot-avatar reconstruct`` and ``oneshot-avatar demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from oneshot_avatar.reconstruct.inputs import PHOTO_FOV_DEGREES, PHOTO_FOV_RANGE


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text)


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from oneshot_avatar.reconstruct.inputs import check_paths

    check_paths(args)  # a missing file or a bad --out answers before torch loads
    from oneshot_avatar.reconstruct.pipeline import ReconstructOptions, reconstruct

    options = ReconstructOptions(
        photo=Path(args.photo), out=Path(args.out), mask=_path(args.mask),
        keypoints=_path(args.keypoints), keypoint_model=_path(args.keypoint_model),
        matting_model=_path(args.matting_model), init=_path(args.init), preset=args.preset,
        steps=args.steps, resolution=args.resolution, body_model=args.body_model,
        device=args.device, seed=args.seed, resume=args.resume, keep_work=args.keep_work,
        previews=not args.no_previews, vgg_weights=_path(args.vgg_weights), quiet=args.quiet,
        detector=not args.no_detector, outline=not args.no_outline, fov_degrees=args.fov,
    )
    report = reconstruct(options)
    for name, where in report["outputs"].items():
        print(f"{name:11s} {where}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from oneshot_avatar.reconstruct.demo import run_demo

    outputs = run_demo(Path(args.out), preset=args.preset, steps=args.steps, device=args.device,
                       look=args.look, seed=args.seed, body_model=args.body_model,
                       render_size=args.size, quiet=args.quiet)
    print("demo outputs:")
    for name, where in outputs.items():
        print(f"  {name:11s} {where}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="fast", choices=("fast", "quality"),
                        help="fast: about a minute on a CPU (default); quality: 512 px, more detail "
                             "(about 10 min on a 2-core CPU, minutes on a GPU)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the preset's)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="random seed (runs are repeatable)")
    parser.add_argument("--body-model", default=None, metavar="PATH",
                        help="SMPL-X model file (default: $SMPLX_MODEL_PATH, else the open body)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def register(subparsers) -> None:
    rec = subparsers.add_parser(
        "reconstruct", help="make an avatar from one photo",
        description="Photo -> fitted SMPL-X body -> pseudo-label frames -> trained Gaussian avatar. "
                    "The photo alone is enough: the embedded landmark detector (MediaPipe Holistic) "
                    "finds the body, hands and face and segments the person; --keypoints, "
                    "--keypoint-model, --init and --mask replace its parts. Writes "
                    "NAME.avatar, NAME.report.json and preview images next to it; work in progress "
                    "is kept in NAME.avatar.work/ until the avatar is written (--resume continues).",
    )
    rec.add_argument("photo", help="PNG, JPEG or WebP photo of one person (an alpha channel is used as the mask)")
    rec.add_argument("--out", required=True, help="output package, NAME.avatar")
    rec.add_argument("--mask", default=None, help="person mask image (white = person), same size as the photo")
    rec.add_argument("--keypoints", default=None,
                     help="2D keypoints JSON: OpenPose (BODY_25 with optional hands/face) or COCO-WholeBody "
                          "(default: the embedded landmark detector)")
    rec.add_argument("--keypoint-model", default=None, metavar="FILE.onnx",
                     help="whole-body keypoint detector (RTMPose/DWPose-style ONNX export)")
    rec.add_argument("--matting-model", default=None, metavar="FILE.onnx",
                     help="matting/segmentation ONNX model for the mask (default: the detector's person "
                          "segmentation refined by GrabCut; without a detector GrabCut seeded by the fit)")
    rec.add_argument("--no-detector", action="store_true",
                     help="do not run the embedded landmark detector (then give --keypoints, "
                          "--keypoint-model or --init; the mask falls back to GrabCut seeded by the fit)")
    rec.add_argument("--no-outline", action="store_true",
                     help="keep the avatar on the bare body: do not grow it where the person mask is "
                          "bigger (hair, loose clothes); for a mask that spills onto the background")
    rec.add_argument("--fov", type=float, default=None, metavar="DEGREES",
                     help="the photo's field of view across its long side, "
                          f"{PHOTO_FOV_RANGE[0]:g} to {PHOTO_FOV_RANGE[1]:g} (default: from the "
                          f"photo's EXIF focal length, else {PHOTO_FOV_DEGREES:g}); the fit's depth "
                          "and lean depend on it")
    rec.add_argument("--init", default=None, help="initial SMPL-X parameters (.npz or .json), e.g. from Blender")
    rec.add_argument("--resolution", type=int, default=None,
                     help="working image size in pixels (default: 256 fast, 512 quality)")
    rec.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    rec.add_argument("--keep-work", action="store_true", help="keep NAME.avatar.work/ after success")
    rec.add_argument("--no-previews", action="store_true", help="skip the preview images")
    rec.add_argument("--vgg-weights", default=None, metavar="FILE",
                     help="torchvision VGG16 weights for LPIPS (default: $ONESHOT_AVATAR_VGG16 or the "
                          "torch hub cache; without them an SSIM-based perceptual loss is used)")
    _common(rec)
    rec.set_defaults(func=_cmd_reconstruct)

    demo = subparsers.add_parser(
        "demo", help="reconstruct a synthetic person and render it talking (no downloads)",
        description="Makes a synthetic subject (the open body with a procedural outfit, photographed "
                    "by the project's own renderer), reconstructs it from that one photo with its "
                    "keypoints, and renders the avatar with the built-in 'talk' clip to a video.",
    )
    demo.add_argument("--out", default="oneshot-demo", help="output folder (default: ./oneshot-demo)")
    demo.add_argument("--look", default="blue-stripes", help="synthetic subject: blue-stripes, red-check, green-plain, flared (big hair, flared trousers)")
    demo.add_argument("--size", type=int, default=384, help="video size in pixels (default 384)")
    _common(demo)
    demo.set_defaults(func=_cmd_demo)
