"""Photo -> ``.avatar``: the reconstruction pipeline.

Stages (each prints what it does and which plug-in ran):

1. **subject** -- load the photo (EXIF orientation), the person mask (``--mask``, the photo's
   alpha, an ONNX matting model, the embedded detector's person segmentation refined by GrabCut,
   or later GrabCut seeded by the body fit), the keypoints (``--keypoints``, ``--keypoint-model``,
   or by default the embedded landmark detector, MediaPipe Holistic) or an initial pose
   (``--init``), crop around the person to the preset's working size.
2. **fit** -- SMPL-X shape, pose, expression and camera fitted to the keypoints (and the
   detector's landmarks) and the mask.
3. **labels** -- pseudo-label frames of the person in other poses and views.
4. **train** -- Gaussians bound to the mesh, fitted to the photo and the labels.
5. **package** -- one ``.avatar`` file, a JSON report and preview images.

Work in progress lives in ``NAME.avatar.work/`` next to the output: the fit, the labels and
training checkpoints. ``resume=True`` continues from there after an interruption; the folder is
removed once the ``.avatar`` is written. The ``.avatar`` itself is written atomically, so a
failed run never leaves a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from oneshot_avatar.atomic import atomic_output, write_bytes_atomic
from oneshot_avatar.cameras.makers import focal_from_fov
from oneshot_avatar.devices import resolve_device
from oneshot_avatar.errors import UserError
from oneshot_avatar.reconstruct.inputs import PHOTO_FOV_DEGREES, PHOTO_FOV_RANGE, check_paths
from oneshot_avatar.reconstruct.presets import Preset
from oneshot_avatar.reconstruct.presets import preset as make_preset

Log = Callable[[str], None]
# ``progress(stage, fraction)``: the stage starting or advancing (fraction 0..1 of the stage, or
# None when unknown). An exception raised there stops the job (the work folder stays, so a
# later ``resume`` continues); the service uses this for progress bars and cancelling.
Progress = Callable[[str, "float | None"], None]
STAGES = ("subject", "fit", "labels", "train", "package")

# A detector segmentation with fewer person pixels than this is not used as the mask.
MIN_SEGMENTATION_PIXELS = 64


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class ReconstructOptions:
    photo: Path
    out: Path
    mask: Path | None = None
    keypoints: Path | None = None
    keypoint_model: Path | None = None
    matting_model: Path | None = None
    init: Path | None = None
    # The embedded landmark detector (MediaPipe Holistic): keypoints when no --keypoints,
    # --keypoint-model or --init is given, and the mask when no --mask, alpha or matting model.
    detector: bool = True
    preset: str = "fast"
    # Grow the body where the mask says the person is bigger (hair, loose clothes); False keeps
    # the avatar on the bare body (a mask that spills onto the background).
    outline: bool = True
    steps: int | None = None
    resolution: int | None = None
    # The photo's field of view across its long side, degrees: given, else from the photo's
    # EXIF focal length, else PHOTO_FOV_DEGREES (the fit's depth and lean depend on it).
    fov_degrees: float | None = None
    body_model: str | None = None
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    keep_work: bool = False
    previews: bool = True
    vgg_weights: Path | None = None
    quiet: bool = False
    extra_report: dict = field(default_factory=dict)
    # Benchmarks only: a function of the prepared subject giving the fit to use instead of
    # fitting (the "oracle" fit of a synthetic subject).
    fit_override: Callable | None = None
    progress: Progress | None = None
    # An already loaded body model (on the chosen device) to use instead of loading one.
    body: object | None = None


def output_paths(out: Path) -> dict[str, Path]:
    """Where a reconstruction writes: the package, its report, previews and the work folder."""
    stem = out.name[: -len(".avatar")] if out.name.endswith(".avatar") else out.stem
    return {
        "avatar": out,
        "report": out.with_name(stem + ".report.json"),
        "preview": out.with_name(stem + ".preview.png"),
        "turnaround": out.with_name(stem + ".turnaround.png"),
        "labels": out.with_name(stem + ".labels.png"),
        "landmarks": out.with_name(stem + ".landmarks.png"),
        "regions": out.with_name(stem + ".regions.png"),
        "work": out.with_name(out.name + ".work"),
    }


def _file_sha(path: Path | None) -> str | None:
    if path is None:
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _inputs_fingerprint(options: ReconstructOptions, chosen: Preset) -> dict:
    return {
        "photo": _file_sha(options.photo),
        "mask": _file_sha(options.mask),
        "keypoints": _file_sha(options.keypoints),
        "keypoint_model": _file_sha(options.keypoint_model),
        "matting_model": _file_sha(options.matting_model),
        "init": _file_sha(options.init),
        "detector": _detector_name() if options.detector else None,
        "preset": chosen.to_dict(),
        "body_model": options.body_model,
        "seed": options.seed,
        "fov_degrees": options.fov_degrees,
    }


def _detector_name() -> str:
    from oneshot_avatar.detect import DETECTOR_NAME

    return DETECTOR_NAME


# ---------------------------------------------------------------------------------------------
# Stage 1: subject


@dataclass
class Prepared:
    subject: object  # oneshot_avatar.subject.Subject
    keypoints: object | None  # oneshot_avatar.fit.Keypoints in working-image pixels
    init_file: Path | None  # --init (parsed against the body model by ``reconstruct``, once)
    plugins: dict
    # oneshot_avatar.fit.Landmarks in working-image pixels, when the detector gave the keypoints
    landmarks: object | None = None
    # oneshot_avatar.fit.Landmarks in photo pixels (for the landmarks preview), when detected
    photo_landmarks: object | None = None
    detection: dict | None = None  # the report's "detection" section
    # The photo's field of view across its long side (degrees) and where it came from.
    fov_degrees: float = PHOTO_FOV_DEGREES


def _mask_seeds(landmarks) -> np.ndarray:
    """Detected points the refined mask should reach: feet, ankles, hands, head."""
    keypoints = landmarks.keypoints
    wanted = np.array([("toe" in n or "heel" in n or "ankle" in n or "_hand_" in n
                        or "wrist" in n or n in ("nose", "left_ear", "right_ear"))
                       for n in keypoints.names])
    return keypoints.xy[(keypoints.conf > 0.3) & wanted]


def detect_landmarks(options: ReconstructOptions, photo, need_keypoints: bool, log: Log):
    """Run the embedded detector on the photo: ``(landmarks | None, detection report)``.

    When the keypoints depend on it, a missing detector or an empty photo is a
    :class:`UserError`; when only the mask does, the pipeline falls back to GrabCut."""
    from oneshot_avatar.detect import HolisticDetector, NoPersonError, mediapipe_problem
    from oneshot_avatar.reconstruct.inputs import no_way_to_find_the_body

    problem = mediapipe_problem()
    if problem is not None:
        if need_keypoints:
            raise no_way_to_find_the_body(problem)
        log(f"subject: no embedded detector ({problem.split(':')[0]}); the mask comes from "
            "GrabCut after the fit")
        return None, {"source": None, "notes": [problem]}
    started = time.perf_counter()
    with HolisticDetector() as detector:
        try:
            landmarks = detector.detect(photo.rgb)
        except NoPersonError:
            if need_keypoints:
                raise
            log("subject: the detector found no person; the mask comes from GrabCut after the fit")
            return None, {"source": detector.name, "notes": ["no person found by the detector"]}
        info = detector.last_info
    seconds = time.perf_counter() - started
    report = {**landmarks.report(), "seconds": seconds,
              "refined_on_crop": bool(info and info.refined), "passes": info.passes if info else 0}
    for note in landmarks.notes:
        log(f"subject: note: {note}")
    return landmarks, report


def prepare_subject(options: ReconstructOptions, chosen: Preset, device: torch.device, log: Log) -> Prepared:
    from oneshot_avatar.fit import OnnxKeypointDetector, load_keypoints
    from oneshot_avatar.subject import (
        OnnxMatting,
        check_person,
        load_mask,
        load_photo,
        make_subject,
        mask_from_alpha,
        person_box,
    )

    photo = load_photo(options.photo)
    height, width = photo.rgb.shape[:2]
    plugins: dict[str, str] = {}
    fov = photo_field_of_view(options, photo)
    plugins["field_of_view"] = fov[1]
    mask_full, mask_source = None, "none"
    if options.mask is not None:
        mask_full, mask_source = load_mask(options.mask, (width, height)), "file"
    elif photo.alpha is not None and (alpha_mask := mask_from_alpha(photo.alpha)) is not None:
        mask_full, mask_source = alpha_mask, "alpha"
    elif options.matting_model is not None:
        matting = OnnxMatting(options.matting_model, device=str(device))
        mask_full, mask_source = matting(photo.rgb), matting.name
    if mask_full is not None:
        check_person(mask_full, "mask")

    need_keypoints = (options.keypoints is None and options.keypoint_model is None
                      and options.init is None)
    landmarks, detection = None, None
    if options.detector and (need_keypoints or mask_full is None):
        landmarks, detection = detect_landmarks(options, photo, need_keypoints, log)
        if landmarks is not None and mask_full is None and landmarks.segmentation is not None:
            from oneshot_avatar.subject import refine_segmentation

            if (landmarks.segmentation > 0.5).sum() >= MIN_SEGMENTATION_PIXELS:
                mask_full = refine_segmentation(photo.rgb, landmarks.segmentation,
                                                _mask_seeds(landmarks))
                mask_source = f"detector:{landmarks.source}+grabcut"
                # (a small person in a large photo is fine here: no check_person fraction)
                if mask_full.sum() < MIN_SEGMENTATION_PIXELS:
                    mask_full, mask_source = None, "none"
                    detection["notes"].append("the person segmentation is nearly empty: the "
                                              "mask comes from GrabCut after the fit")
    plugins["mask"] = mask_source if mask_full is not None else "grabcut (after the body fit)"

    keypoints, init_file = None, None
    if options.keypoints is not None:
        keypoints = load_keypoints(options.keypoints, (width, height))
        plugins["keypoints"] = keypoints.source
    elif options.keypoint_model is not None:
        detector = OnnxKeypointDetector(options.keypoint_model, device=str(device))
        box = None
        if mask_full is not None:
            ys, xs = np.nonzero(mask_full > 0.5)
            box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        keypoints = detector(photo.rgb, box)
        plugins["keypoints"] = detector.name
    if options.init is not None:
        init_file = Path(options.init)
        plugins.setdefault("keypoints", "none (initial pose from --init)")
        plugins["init"] = str(options.init)
    if keypoints is None and init_file is None and landmarks is not None:
        keypoints = landmarks.keypoints
        plugins["keypoints"] = landmarks.source
    if keypoints is None and init_file is None:
        from oneshot_avatar.reconstruct.inputs import no_way_to_find_the_body

        raise no_way_to_find_the_body("the embedded detector is switched off")
    box = person_box((width, height), chosen.resolution, mask=mask_full,
                     points=None if keypoints is None else keypoints.xy,
                     conf=None if keypoints is None else keypoints.conf)
    subject = make_subject(photo, box, mask_full=mask_full, mask_source=mask_source)
    size = (chosen.resolution, chosen.resolution)
    if keypoints is not None:
        keypoints = keypoints.mapped(box.to_crop, image_size=size)
    fit_landmarks = None
    if landmarks is not None and plugins.get("keypoints") == landmarks.source:
        segmentation = None
        if landmarks.segmentation is not None:
            segmentation = np.clip(box.crop(landmarks.segmentation, pad="constant", fill=0.0),
                                   0.0, 1.0)
        fit_landmarks = landmarks.mapped(box.to_crop, size, segmentation=segmentation)
    if landmarks is not None:
        plugins["detector"] = landmarks.source
    log(f"subject: {options.photo} {width}x{height} -> {chosen.resolution}x{chosen.resolution} "
        f"working image; mask: {plugins['mask']}; keypoints: {plugins.get('keypoints', 'none')}")
    return Prepared(subject=subject, keypoints=keypoints, init_file=init_file, plugins=plugins,
                    landmarks=fit_landmarks, photo_landmarks=landmarks, detection=detection,
                    fov_degrees=fov[0])


def make_labeler(settings):
    """The pseudo-labeler a preset's :class:`~oneshot_avatar.reconstruct.presets.LabelConfig`
    asks for."""
    from oneshot_avatar.priors import MeshReprojectionLabeler

    return MeshReprojectionLabeler(resolution=settings.texture_resolution, clips=settings.clips,
                                   frames_per_clip=settings.frames_per_clip,
                                   azimuths=settings.azimuths, regions=settings.regions)


def photo_field_of_view(options: ReconstructOptions, photo) -> tuple[float, str]:
    """The photo's field of view across its long side (degrees) and its source, for the report:
    ``--fov``, else the photo's EXIF focal length, else the assumed ``PHOTO_FOV_DEGREES``."""
    if options.fov_degrees is not None:
        value = float(options.fov_degrees)
        low, high = PHOTO_FOV_RANGE
        if not low <= value <= high:
            raise UserError(f"--fov must be between {low:g} and {high:g} degrees, got {value:g}",
                            field="fov_degrees")
        return value, f"{value:.1f} degrees (given)"
    if photo.fov_degrees is not None:
        return photo.fov_degrees, f"{photo.fov_degrees:.1f} degrees (EXIF focal length)"
    return PHOTO_FOV_DEGREES, f"{PHOTO_FOV_DEGREES:.1f} degrees (assumed: no EXIF focal length)"


# ---------------------------------------------------------------------------------------------
# Stage 2: fit (+ GrabCut mask when none was given)


def fit_stage(body, prepared: Prepared, chosen: Preset, device: torch.device, work: Path,
              resume: bool, log: Log, fit_override: Callable | None = None,
              progress: Progress | None = None, *, init: dict | None = None):
    """The body fit of the prepared subject (resumed from ``work`` when saved there);
    ``init``: the initial SMPL-X parameters parsed from ``prepared.init_file``.

    Returns ``(fit, subject)``: the fit and the subject it was fitted to, which is
    ``prepared.subject`` itself or, when that had no mask, a copy with the GrabCut mask seeded
    by the fit (``prepared`` is never changed)."""
    from oneshot_avatar.fit import fit_body, load_fit, render_silhouette, save_fit
    from oneshot_avatar.subject import grabcut_mask

    saved = work / "fit.npz"
    subject = prepared.subject
    if resume and saved.exists():
        fit, mask = load_fit(saved, device)
        if mask is not None:
            subject = replace(subject, mask=mask, mask_source="grabcut"
                              if subject.mask_source == "none" else subject.mask_source)
        log(f"fit: resumed from {saved}")
        return fit, subject
    started = time.perf_counter()
    if fit_override is not None:
        fit = fit_override(subject)
        fit = replace(fit, report={**fit.report, "seconds_total": fit.report.get(
            "seconds_total", time.perf_counter() - started)})
        log("fit: given (oracle)")
        return fit, subject
    if (init is None) != (prepared.init_file is None):
        raise ValueError("fit_stage needs init= (load_init of prepared.init_file) exactly when "
                         "the subject was prepared with --init")
    size = chosen.resolution
    photo_scale = 1.0 / subject.box.scale
    # The focal length is assumed from the whole photo's field of view (a crop narrows it).
    photo_height, photo_width = subject.photo.rgb.shape[:2]
    photo_focal = focal_from_fov(prepared.fov_degrees, max(photo_height, photo_width))
    working_fov = 2 * math.degrees(math.atan(size / 2 / (photo_focal * subject.box.scale)))
    fit_config = replace(chosen.fit, fov_degrees=working_fov)
    # The optical axis goes through the photo's centre, wherever the crop around the person is.
    principal_point = subject.box.to_crop((photo_width / 2, photo_height / 2))
    step = (lambda message: progress("fit", None)) if progress is not None else None
    if prepared.keypoints is not None:
        from oneshot_avatar.fit.pose_correspondence import is_measured
        from oneshot_avatar.fit.targets import is_mediapipe

        if is_mediapipe(prepared.keypoints.source) and not is_measured(body):
            log("fit: first use of the detector with this body: measuring where it puts the "
                "body's joints on 15 renders (about 15 s, once; cached)")
    fit = fit_body(body, size, keypoints=prepared.keypoints, mask=subject.mask, init=init,
                   config=fit_config, device=device, photo_scale=photo_scale, progress=step,
                   landmarks=prepared.landmarks, principal_point=principal_point)
    if subject.mask is None:
        with torch.no_grad():
            prior = render_silhouette(body, fit.params, fit.camera, size).detach().cpu().numpy()
        rgb8 = (np.clip(subject.image, 0, 1) * 255 + 0.5).astype(np.uint8)
        subject = replace(subject, mask=grabcut_mask(rgb8, prior), mask_source="grabcut")
        # A short second pass from the first fit, now with the silhouette term.
        refine = replace(fit_config, pose_prior_weights=fit_config.pose_prior_weights[-1:],
                         body_iterations=max(fit_config.body_iterations // 2, 1))
        fit_with_mask = fit_body(body, size, keypoints=prepared.keypoints, mask=subject.mask,
                                 init={**{k: v for k, v in fit.params.items() if k != "transl"},
                                       "camera": fit.camera},
                                 config=refine, device=device, photo_scale=photo_scale,
                                 progress=step, landmarks=prepared.landmarks,
                                 principal_point=principal_point)
        fit = replace(fit_with_mask, report={**fit_with_mask.report, "first_pass": fit.report})
    fit = replace(fit, report={**fit.report, "seconds_total": time.perf_counter() - started})
    save_fit(saved, fit, subject.mask if subject.mask_source == "grabcut" else None)
    iou, error = fit.report.get("mask_iou"), fit.report.get("keypoint_error_px")
    log(f"fit: keypoint error {'n/a' if error is None else f'{error:.2f} px'}, "
        f"mask IoU {'n/a' if iou is None else f'{iou:.3f}'}, {fit.report['seconds_total']:.1f} s")
    return fit, subject


# ---------------------------------------------------------------------------------------------
# Stage 3: pseudo-labels


@dataclass
class LabelStage:
    """What the labels stage made: pseudo-label frames, the photo's texture on the body, the
    person's regions found in the photo (None when the labeler does not look for them)."""

    labeler: str  # the labeler's name (for the report's plug-ins)
    texture: object  # the photo's colours on the body surface
    labels: object  # oneshot_avatar.priors.labels.PseudoLabels
    regions: object | None  # oneshot_avatar.priors.regions.Regions
    seconds: float
    # the person's shape beyond the body (oneshot_avatar.priors.outline.OutlineGrowth), or None
    growth: object | None = None

    @property
    def vertex_offsets(self):
        return None if self.growth is None else self.growth.offsets


def labels_stage(body, fit, subject, chosen: Preset, device: torch.device, log: Log) -> LabelStage:
    """Pseudo-labels from the photo (cheap and deterministic, so they are remade on resume),
    on the body grown to the person mask's outline when the preset says so."""
    from oneshot_avatar.priors.outline import outline_growth

    settings = chosen.labels
    labeler = make_labeler(settings)
    started = time.perf_counter()
    image = torch.as_tensor(subject.image, device=device)
    mask = torch.as_tensor(subject.mask, device=device)
    params = {k: v.to(device) for k, v in fit.params.items()}
    camera = fit.camera.to(device)
    growth = None
    if settings.outline:
        growth = outline_growth(body, params, camera, mask)
        figures = growth.report()
        log(f"labels: shape beyond the body from the mask's outline: {figures['grown_fraction']:.0%}"
            f" of the surface grown, up to {figures['max_cm']:.1f} cm")
    offsets = None if growth is None else growth.offsets
    texture, regions = labeler.texture_and_regions(body, params, camera, image, mask,
                                                   vertex_offsets=offsets)
    labels = labeler.make_labels(body, params, camera, image, mask, device=device, texture=texture,
                                 vertex_offsets=offsets)
    seconds = time.perf_counter() - started
    log(f"labels: {len(labels)} frames from '{labeler.name}' ({seconds:.1f} s)")
    return LabelStage(labeler=labeler.name, texture=texture, labels=labels, regions=regions,
                      seconds=seconds, growth=growth)


# ---------------------------------------------------------------------------------------------
# Stage 4: training


def train_stage(body, fit, subject, labels, texture, chosen: Preset, options: ReconstructOptions,
                device: torch.device, work: Path, log: Log, vertex_offsets=None):
    """Train the avatar; ``vertex_offsets [V, 3]``: the person's shape beyond the body, where
    the mesh offsets start and what they are regularised towards."""
    from oneshot_avatar.train import TrainView, initial_gaussians, make_perceptual, train_avatar

    gaussians = initial_gaussians(body, fit.params["betas"], texture,
                                  num_gaussians=chosen.train.num_gaussians,
                                  sh_degree=chosen.train.sh_degree, seed=options.seed, device=device,
                                  vertex_offsets=vertex_offsets)
    photo_view = TrainView(
        image=torch.as_tensor(subject.image, device=device),
        mask=torch.as_tensor(subject.mask, device=device),
        params={k: v.to(device) for k, v in fit.params.items()},
        camera=fit.camera.to(device),
        kind="photo",
    )
    label_views = [
        TrainView(image=labels.images[i].to(device), mask=labels.masks[i].to(device),
                  params={k: v.to(device) for k, v in labels.frame_params(i).items()},
                  camera=labels.cameras[i].to(device), kind=labels.kinds[i],
                  background=labels.background)
        for i in range(len(labels))
    ]
    perceptual = make_perceptual(device, vgg_weights=options.vgg_weights)
    log(f"train: {gaussians.num_gaussians} Gaussians, {chosen.train.steps} steps at "
        f"{chosen.resolution} px on {device}; perceptual loss: {perceptual.name}")
    from oneshot_avatar.progress import advance_to, progress_bar

    bar = progress_bar(chosen.train.steps, "train", "step", quiet=options.quiet)

    def progress(step: int, total: int, losses: dict) -> None:
        advance_to(bar, step, loss=f"{losses.get('total', float('nan')):.4f}")
        if options.progress is not None:
            options.progress("train", step / max(total, 1))

    try:
        result = train_avatar(body, gaussians, photo_view, label_views, chosen.train, device=device,
                              seed=options.seed, checkpoint=work / "train.ckpt", resume=options.resume,
                              progress=progress, perceptual=perceptual,
                              offset_prior=vertex_offsets)
    finally:
        bar.close()
    return result


# ---------------------------------------------------------------------------------------------
# Previews


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def write_previews(paths: dict[str, Path], gaussians, body, fit, subject, labels) -> list[Path]:
    from PIL import Image

    from oneshot_avatar.priors import turnaround_cameras
    from oneshot_avatar.reconstruct.evaluate import render_views

    written = []
    white = np.ones(3, np.float32)
    photo = subject.image * subject.mask[..., None] + white * (1 - subject.mask[..., None])
    rendered = render_views(gaussians, body, fit.params, [fit.camera])[0][0]
    side = np.concatenate([_to_uint8(subject.image), _to_uint8(photo), _to_uint8(rendered)], axis=1)
    with atomic_output(paths["preview"]) as tmp:
        Image.fromarray(side).save(tmp, format="PNG")
    written.append(paths["preview"])
    cameras = turnaround_cameras(fit.params, body, fit.camera,
                                 azimuths=(0, 45, 90, 135, 180, 225, 270, 315))
    views, _ = render_views(gaussians, body, fit.params, cameras)
    with atomic_output(paths["turnaround"]) as tmp:
        Image.fromarray(_to_uint8(np.concatenate(list(views), axis=1))).save(tmp, format="PNG")
    written.append(paths["turnaround"])
    if hasattr(labels, "save_preview"):
        labels.save_preview(paths["labels"])
        written.append(paths["labels"])
    return written


# ---------------------------------------------------------------------------------------------
# The whole job


def reconstruct(options: ReconstructOptions, log: Log = _stderr) -> dict:
    """Run the pipeline; returns the report (also written next to the ``.avatar``)."""
    from oneshot_avatar import __version__
    from oneshot_avatar.body import load_body_model
    from oneshot_avatar.package.avatar_file import save_avatar

    started = time.perf_counter()
    options = replace(options, photo=Path(options.photo), out=Path(options.out))  # the caller's stay
    # Cheap checks first: nothing long starts before the inputs and the output are known good.
    check_paths(options)
    device = resolve_device(options.device)
    chosen = make_preset(options.preset, steps=options.steps, resolution=options.resolution)
    if not options.outline:
        chosen.labels = replace(chosen.labels, outline=False)
    torch.manual_seed(options.seed)
    np.random.seed(options.seed % (2**32))
    paths = output_paths(options.out)
    timings: dict[str, float] = {}

    def stage(name: str, fraction: float | None = 0.0) -> None:
        if options.progress is not None:
            options.progress(name, fraction)

    t = time.perf_counter()
    stage("subject")
    prepared = prepare_subject(options, chosen, device, log)
    timings["subject"] = time.perf_counter() - t
    body = options.body if options.body is not None else load_body_model(options.body_model, device=device)
    init = None
    if prepared.init_file is not None:  # parsed against the body once, before long work
        from oneshot_avatar.fit import load_init

        init = load_init(prepared.init_file, body)

    work = paths["work"]
    fingerprint = json.loads(json.dumps(_inputs_fingerprint(options, chosen)))  # tuples -> lists
    fingerprint_file = work / "inputs.json"
    if work.exists():
        same = fingerprint_file.exists() and json.loads(fingerprint_file.read_text()) == fingerprint
        if options.resume and not same:
            log(f"resume: {work} was made from other inputs or settings; starting over")
            shutil.rmtree(work)
        elif not options.resume:
            shutil.rmtree(work)
    elif options.resume:
        log(f"resume: no earlier work at {work}; starting from the beginning")
    work.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(fingerprint_file, json.dumps(fingerprint, indent=1).encode())

    t = time.perf_counter()
    stage("fit")
    fit, subject = fit_stage(body, prepared, chosen, device, work, options.resume, log,
                             options.fit_override, options.progress, init=init)
    timings["fit"] = time.perf_counter() - t
    stage("labels")
    labelled = labels_stage(body, fit, subject, chosen, device, log)
    texture, labels, timings["labels"] = labelled.texture, labelled.labels, labelled.seconds
    t = time.perf_counter()
    stage("train")
    result = train_stage(body, fit, subject, labels, texture, chosen, options, device, work, log,
                         vertex_offsets=labelled.vertex_offsets)
    timings["train"] = time.perf_counter() - t

    plugins = dict(prepared.plugins)
    plugins["mask"] = subject.mask_source
    plugins["labels"] = labelled.labeler
    plugins["perceptual"] = result.report.get("perceptual")
    plugins["body_model"] = body.info.model_id
    report = {
        "tool": "oneshot-avatar", "version": __version__,
        "photo": str(options.photo), "device": str(device),
        "preset": chosen.to_dict(), "seed": options.seed,
        "subject": {"crop": subject.box.to_dict(), "mask_source": subject.mask_source},
        "fit": {**fit.report,
                "params": {k: v.detach().cpu().tolist() for k, v in fit.params.items()},
                "camera": fit.camera.to("cpu").to_dict()},
        "labels": {"labeler": labelled.labeler, "frames": len(labels), "kinds": list(labels.kinds),
                   **_regions_report(labelled.regions),
                   **({} if labelled.growth is None else {"outline": labelled.growth.report()})},
        "training": result.report,
        "plugins": plugins,
        "detection": prepared.detection,
        **options.extra_report,
    }
    t = time.perf_counter()
    stage("package")
    gaussians = result.gaussians
    with torch.no_grad():
        gaussians_cpu = gaussians.to("cpu")
    body_cpu = body if device.type == "cpu" else load_body_model(options.body_model, device="cpu")
    timings["total"] = time.perf_counter() - started
    report["timings_s"] = timings
    save_avatar(options.out, gaussians_cpu, body_cpu, fit.params["betas"][0].detach().cpu(),
                fit_camera=fit.camera.to("cpu").to_dict(), report=report,
                source_photo_sha256=subject.photo.sha256)
    outputs = {"avatar": str(options.out), "report": str(paths["report"])}
    if options.previews:
        for path in write_previews(paths, gaussians_cpu, body_cpu, fit.to("cpu"), subject, labels):
            outputs[path.stem.split(".")[-1]] = str(path)
        from oneshot_avatar.reconstruct.landmarks_preview import write_landmarks_preview

        write_landmarks_preview(paths["landmarks"], body_cpu, fit.to("cpu"), subject,
                                prepared.photo_landmarks, prepared.keypoints)
        outputs["landmarks"] = str(paths["landmarks"])
        if labelled.regions is not None:
            from oneshot_avatar.priors.labels import turnaround_cameras
            from oneshot_avatar.priors.regions import save_region_preview

            cpu_fit = fit.to("cpu")
            save_region_preview(paths["regions"], labelled.regions, body_cpu, cpu_fit.params,
                                cpu_fit.camera, subject.image,
                                views=turnaround_cameras(cpu_fit.params, body_cpu, cpu_fit.camera,
                                                         (90.0, 180.0)),
                                vertex_offsets=None if labelled.vertex_offsets is None
                                else labelled.vertex_offsets.cpu())
            outputs["regions"] = str(paths["regions"])
    timings["package"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    report["outputs"] = outputs
    write_bytes_atomic(paths["report"], json.dumps(report, indent=1, default=_json_default).encode())
    if not options.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    stage("package", 1.0)
    log(f"done in {timings['total']:.0f} s: {options.out}")
    return report


def _regions_report(regions) -> dict:
    """The person's regions for the report: share of the body surface in each, and whether
    hair and skin were found in the photo."""
    if regions is None:
        return {}
    return {"regions": {"surface_fraction": {k: round(v, 4) for k, v in regions.fractions().items()},
                        "hair_seen": regions.has_hair,
                        "skin_rgb": None if regions.skin_rgb is None else
                        [round(c, 4) for c in regions.skin_rgb]}}


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)
