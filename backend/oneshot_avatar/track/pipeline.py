"""``oneshot-avatar track``: a driving video -> our motion file, the tracked camera, a report and a
preview video.

1. **Probe and check** the video (:mod:`oneshot_avatar.track.video`): not a video, a still image,
   over 10 minutes (without ``max_frames``) fail here, before any long work.
2. **Landmarks per frame** (:class:`~oneshot_avatar.track.detect.VideoHolistic`, video mode),
   with a progress bar in frames/s.
3. **One fit over the clip** (:func:`~oneshot_avatar.track.fit.fit_clip`).
4. **Outputs**, each complete or absent: ``OUT.npz`` (``oneshot-motion/1``), ``OUT.camera.json``
   (the static camera, for ``render --camera``), ``OUT.track.json`` (report: video, frames, notes,
   per-frame presence and keypoint error, timings) and ``OUT.preview.mp4`` (the video with the
   landmarks and the fitted body's outline, beside the fitted body rendered from the tracked
   camera). They are written to temporary files and moved into place only when all are done,
   so an interruption (Ctrl-C) leaves none of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from oneshot_avatar.atomic import commit, discard, new_temporary
from oneshot_avatar.errors import UserError
from oneshot_avatar.fit.landmarks import Landmarks
from oneshot_avatar.track.fit import ClipFit, TrackFitConfig, fit_clip
from oneshot_avatar.track.outputs import output_paths
from oneshot_avatar.track.video import (
    VideoInfo,
    check_length,
    output_rate,
    probe_video,
    read_frames,
    working_size,
)

PREVIEW_HEIGHT = 360
StageFn = Callable[[str], None]


@dataclass
class TrackResult:
    clip: object  # MotionClip
    fit: ClipFit
    info: VideoInfo
    fps: float
    size: tuple[int, int]
    landmarks: list[Landmarks | None]
    masks: list[np.ndarray | None]
    report: dict
    outputs: dict[str, Path] = field(default_factory=dict)


def detect_video(info: VideoInfo, fps: float, size: tuple[int, int], frames: int, *,
                 quiet: bool = False, keep_frames: bool = False, keep_masks: bool = True,
                 progress: Callable[[int, int], None] | None = None
                 ) -> tuple[list[Landmarks | None], list[np.ndarray | None], list[np.ndarray]]:
    """Landmarks of every frame (video mode), the person masks when ``keep_masks`` (else
    None), and the frames themselves when ``keep_frames``."""
    from oneshot_avatar.progress import progress_bar
    from oneshot_avatar.track.detect import VideoHolistic

    landmarks: list[Landmarks | None] = []
    masks: list[np.ndarray | None] = []
    kept: list[np.ndarray] = []
    bar = progress_bar(frames, "landmarks", "frame", quiet=quiet)
    with VideoHolistic() as detector:
        for frame in read_frames(info, fps, size, frames):
            found, mask = detector.track(frame)
            landmarks.append(found)
            masks.append(mask if keep_masks else None)
            if keep_frames:
                kept.append(frame)
            bar.update(1)
            if progress is not None:
                progress(len(landmarks), frames)
    bar.close()
    if not landmarks:
        raise UserError("no frame could be decoded from the video", path=info.path,
                        field="video")
    return landmarks, masks, kept


def clip_from_fit(fit: ClipFit, fps: float, name: str, source: str):
    from oneshot_avatar.body.smplx_layout import expression_space
    from oneshot_avatar.motion.clip import MotionClip

    p = fit.params
    expression = p.get("expression")
    space = None
    if expression is not None and expression.shape[1]:
        space = expression_space(fit.expression_names)
    else:
        expression = None
    return MotionClip(fps=fps, global_orient=p["global_orient"], body_pose=p["body_pose"],
                      jaw_pose=p["jaw_pose"], leye_pose=p["leye_pose"], reye_pose=p["reye_pose"],
                      left_hand_pose=p["left_hand_pose"], right_hand_pose=p["right_hand_pose"],
                      transl=p["transl"], expression=expression, expression_space=space,
                      betas=fit.betas, name=name, source=source)


def track_video(video: str | Path, out: str | Path, *, body, avatar_betas: np.ndarray | None = None,
                fps: float | None = None, size: int | None = None, max_frames: int | None = None,
                preview: bool = True, config: TrackFitConfig | None = None, quiet: bool = False,
                keep_masks: bool = False,
                say: StageFn | None = None,
                progress: Callable[[str, float], None] | None = None) -> TrackResult:
    """Track ``video`` and write the outputs next to ``out`` (see the module docstring).
    ``progress(stage, fraction)`` reports the whole job's progress (for the service).
    ``keep_masks`` keeps the person masks (1/4 size) in the result (benchmarks); the frames are
    decoded a second time for the preview, so memory does not grow with the video's length."""
    say = say or (lambda message: None)
    out = Path(out)
    paths = output_paths(out)
    if out.is_dir():
        raise UserError("is a folder; give a file name ending in .npz", path=out, field="out")
    info = probe_video(video)
    rate = output_rate(info, fps)
    frame_size = working_size(info, size)
    count = check_length(info, rate, max_frames)
    say(f"video: {info.width}x{info.height} {info.codec}, {info.fps:g} fps, {info.duration:.1f} s"
        + (f", rotation flag {info.rotation} deg (applied)" if info.rotation else "")
        + f" -> {count} frames at {rate:g} fps, {frame_size[0]}x{frame_size[1]}")
    timings: dict[str, float] = {}
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def detect_progress(done: int, total: int) -> None:
        if progress is not None:
            progress("landmarks", 0.8 * done / max(total, 1))

    landmarks, masks, _ = detect_video(info, rate, frame_size, count, quiet=quiet,
                                       keep_masks=keep_masks, progress=detect_progress)
    timings["landmarks_s"] = time.perf_counter() - wall0
    timings["landmarks_cpu_s"] = time.process_time() - cpu0
    found = sum(lm is not None for lm in landmarks)
    say(f"landmarks: a person in {found} of {len(landmarks)} frames "
        f"({len(landmarks) / max(timings['landmarks_s'], 1e-9):.1f} frames/s)")
    cpu1, wall1 = time.process_time(), time.perf_counter()
    from oneshot_avatar.progress import advance_to, progress_bar

    bar = progress_bar(len(landmarks), "fit", "frame", quiet=quiet)

    def fit_progress(done: int) -> None:
        advance_to(bar, done)
        if progress is not None:
            progress("fit", 0.8 + 0.15 * done / len(landmarks))

    fit = fit_clip(body, landmarks, frame_size, config=config, betas=avatar_betas,
                   progress=fit_progress)
    bar.close()
    timings["fit_s"] = time.perf_counter() - wall1
    timings["fit_cpu_s"] = time.process_time() - cpu1
    total_s = timings["landmarks_s"] + timings["fit_s"]
    timings["frames_per_s"] = len(landmarks) / max(total_s, 1e-9)
    timings["frames_per_cpu_s"] = len(landmarks) / max(
        timings["landmarks_cpu_s"] + timings["fit_cpu_s"], 1e-9)
    say(f"fit: {len(landmarks)} frames in {timings['fit_s']:.1f} s; landmarks + fit "
        f"{timings['frames_per_s']:.1f} frames/s")
    clip = clip_from_fit(fit, rate, out.stem, str(Path(video)))
    errors = fit.errors_px
    report = {
        "video": {"path": str(video), "width": info.width, "height": info.height,
                  "fps": info.fps, "duration_s": info.duration, "rotation": info.rotation,
                  "codec": info.codec},
        "frames": len(landmarks), "fps": rate, "size": list(frame_size),
        "body_model": {"id": body.info.model_id, "sha256": body.info.sha256}, "shape_from": "avatar" if avatar_betas is not None
        else "video",
        "camera": fit.camera.to_dict(), "notes": fit.notes,
        "present": [bool(p) for p in fit.present],
        "keypoint_error_px": [None if not np.isfinite(e) else round(float(e), 2)
                              for e in errors],
        "mean_keypoint_error_px": None if not np.isfinite(errors).any()
        else float(np.nanmean(errors)),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    temporaries: list[tuple[Path, Path]] = []
    try:
        if preview:
            temp = new_temporary(paths["preview"], suffix=".mp4")
            temporaries.append((temp, paths["preview"]))
            write_preview(temp, read_frames(info, rate, frame_size, len(landmarks)), landmarks,
                          fit, body, rate, quiet=quiet)
        from oneshot_avatar.cameras import save_cameras_json
        from oneshot_avatar.motion.io import save_motion

        temp = new_temporary(paths["motion"], suffix=".npz")
        temporaries.append((temp, paths["motion"]))
        save_motion(clip, temp)
        temp = new_temporary(paths["camera"], suffix=".json")
        temporaries.append((temp, paths["camera"]))
        save_cameras_json(temp, [fit.camera])
        temp = new_temporary(paths["report"], suffix=".json")
        temporaries.append((temp, paths["report"]))
        temp.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
        for temp, final in temporaries:
            commit(temp, final)
    except BaseException:
        for temp, _ in temporaries:
            discard(temp)
        raise
    outputs = {k: v for k, v in paths.items() if k != "preview" or preview}
    if progress is not None:
        progress("done", 1.0)
    return TrackResult(clip=clip, fit=fit, info=info, fps=rate, size=frame_size,
                       landmarks=landmarks, masks=masks, report=report, outputs=outputs)


# ---------------------------------------------------------------------------------------------
# Preview


def posed_vertices(body, fit: ClipFit, frames: list[int]) -> torch.Tensor:
    """Full posed meshes ``[len(frames), V, 3]`` of the fit."""
    params = {k: torch.as_tensor(v[frames], dtype=body.dtype) for k, v in fit.params.items()}
    betas = torch.as_tensor(fit.betas, dtype=body.dtype)[None].expand(len(frames), -1)
    with torch.no_grad():
        return body(betas=betas, **params).vertices


def draw_landmarks(image: np.ndarray, landmarks: Landmarks | None, scale: float) -> None:
    import cv2

    if landmarks is None:
        return
    kp = landmarks.keypoints
    radius = max(1, round(2 * scale * 2))
    for (x, y), conf, name in zip(kp.xy, kp.conf, kp.names):
        if conf < 0.3 or not np.isfinite([x, y]).all():
            continue
        colour = ((255, 150, 40) if "_hand_" in name else (40, 220, 255)
                  if name.startswith("face_") else (60, 230, 60))
        cv2.circle(image, (round(x * scale), round(y * scale)),
                   1 if name.startswith("face_") else radius, colour, -1, cv2.LINE_AA)


def shaded_body(vertices: torch.Tensor, faces: torch.Tensor, camera) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Grey Lambert shading of the mesh seen by ``camera`` and its coverage mask."""
    from oneshot_avatar.render.mesh import face_normals, rasterize_mesh

    raster = rasterize_mesh(vertices, faces, camera)
    hit = raster.mask
    normals = face_normals(vertices, faces)
    rotation = camera.rotation.to(vertices.dtype)
    n_cam = normals @ rotation.T
    shade = torch.zeros(hit.shape, dtype=vertices.dtype)
    light = torch.tensor([-0.3, -0.5, -0.8], dtype=vertices.dtype)
    light = light / light.norm()
    values = (n_cam[raster.face_id[hit]] @ light).abs()
    shade[hit] = 0.25 + 0.7 * values
    rgb = np.full((*hit.shape, 3), 30, np.uint8)
    grey = (shade.numpy() * 255).clip(0, 255).astype(np.uint8)
    rgb[hit.numpy()] = np.stack([grey, grey, (grey * 0.95).astype(np.uint8)], -1)[hit.numpy()]
    return rgb, hit.numpy()


def preview_frame(frame: np.ndarray, landmarks: Landmarks | None, vertices: torch.Tensor,
                  faces: torch.Tensor, camera, present: bool) -> np.ndarray:
    """One preview frame: the video frame with landmarks and the fitted outline | the body."""
    import cv2

    height, width = frame.shape[:2]
    scale = min(1.0, PREVIEW_HEIGHT / height)
    pw, ph = max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
    left = cv2.resize(frame, (pw, ph), interpolation=cv2.INTER_AREA)
    cam = camera.resized(pw, ph).to(dtype=vertices.dtype)
    right, hit = shaded_body(vertices, faces, cam)
    contours, _ = cv2.findContours(hit.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(left, contours, -1, (255, 230, 0), 1, cv2.LINE_AA)
    draw_landmarks(left, landmarks, pw / width)
    if not present:
        cv2.putText(left, "no person", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 80, 80), 2)
    return np.concatenate([left, right], axis=1)


def write_preview(path: Path, frames: Iterable[np.ndarray], landmarks: list[Landmarks | None],
                  fit: ClipFit, body, fps: float, *, quiet: bool = False) -> None:
    """The preview video of ``frames`` (any iterable, read once, in order)."""
    import imageio_ffmpeg

    from oneshot_avatar.progress import progress_bar

    faces = body.faces
    writer = None
    total = len(landmarks)
    frames = iter(frames)
    bar = progress_bar(total, "preview", "frame", quiet=quiet)
    try:
        for start in range(0, total, 16):
            index = list(range(start, min(start + 16, total)))
            vertices = posed_vertices(body, fit, index).float()
            for k, i in enumerate(index):
                frame = next(frames, None)
                if frame is None:
                    return
                image = preview_frame(frame, landmarks[i], vertices[k], faces, fit.camera,
                                      bool(fit.present[i]))
                if writer is None:
                    writer = imageio_ffmpeg.write_frames(
                        str(path), (image.shape[1], image.shape[0]), fps=fps, codec="libx264",
                        pix_fmt_out="yuv420p", quality=6, macro_block_size=2,
                        ffmpeg_log_level="error")
                    writer.send(None)
                writer.send(np.ascontiguousarray(image))
                bar.update(1)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
