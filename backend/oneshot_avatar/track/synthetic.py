"""A driving video with known answers: the open body in a procedural outfit (textured face, eyes,
lips) performing a built-in clip, filmed by a fixed camera with the project's mesh renderer.
Tracking it back measures the tracker (tests, ``benchmarks/track.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from oneshot_avatar.cameras import Camera, look_at


@dataclass
class SyntheticVideo:
    path: Path
    clip: object  # MotionClip: the truth, per frame
    camera: Camera  # the truth
    betas: np.ndarray
    joints: np.ndarray  # [T, 55, 3] true world joints


def make_synthetic_video(body, path: str | Path, *, clip: str = "talk", fps: float = 15.0,
                         seconds: float | None = None, width: int = 384, height: int = 512,
                         look: str = "blue-stripes", upper_body: bool = True) -> SyntheticVideo:
    """Render ``clip`` (a built-in name) on the dressed open body to ``path`` (H.264, high
    quality). ``upper_body`` frames head to hips (hands and face large enough for the
    detector); else head to feet."""
    import imageio_ffmpeg

    from oneshot_avatar.motion.builtin import builtin_clip
    from oneshot_avatar.reconstruct.synthetic import (
        LOOKS,
        background_image,
        outfit_function,
    )
    from oneshot_avatar.render.mesh import SurfaceTexture, render_textured
    from oneshot_avatar.render.shots import expression_for_body

    motion = builtin_clip(clip, fps=fps, seconds=seconds)
    chosen = LOOKS[look]
    betas = torch.zeros(1, body.num_betas)
    betas[0, : len(chosen.betas)] = torch.tensor(chosen.betas[: body.num_betas])
    params = motion.to_torch("cpu")
    params.pop("expression", None)
    expression = expression_for_body(motion, body.expression_names)
    frames = motion.num_frames
    with torch.no_grad():
        rest = body(betas=betas)
        fn = outfit_function(rest.rest_vertices[0], rest.rest_joints[0], body.lbs_weights, chosen)
        texture = SurfaceTexture.from_function(rest.rest_vertices[0], body.faces, fn, 6)
        batch = {k: v.float() for k, v in params.items()}
        if expression is not None:
            batch["expression"] = torch.as_tensor(expression, dtype=torch.float32)
        out = body(betas=betas.expand(frames, -1), **batch)
    vertices, joints = out.vertices, out.joints
    first = vertices[0]
    top = float(first[:, 1].max())
    bottom = float(joints[0, 0, 1]) - 0.25 if upper_body else float(first[:, 1].min())
    centre_y = 0.5 * (top + bottom)
    fov = 35.0
    half = 0.5 * (top - bottom) / 0.9
    distance = half / np.tan(np.radians(fov) / 2)
    centre_x = float(joints[0, 0, 0])
    front = float(first[:, 2].max())
    camera = look_at((centre_x, centre_y, front + distance), (centre_x, centre_y, 0.0),
                     width=width, height=height, fov_y_degrees=fov)
    backdrop = background_image(width, height, 0)
    path = Path(path)
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", quality=9, macro_block_size=2,
                                         ffmpeg_log_level="error")
    writer.send(None)
    try:
        for t in range(frames):
            with torch.no_grad():
                rgb, mask = render_textured(vertices[t], body.faces, texture, camera,
                                            background=(0.0, 0.0, 0.0))
            image = rgb.numpy() + backdrop * (1 - mask.numpy()[..., None])
            writer.send(np.ascontiguousarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)))
    finally:
        writer.close()
    return SyntheticVideo(path=path, clip=motion, camera=camera,
                          betas=betas[0].numpy(), joints=joints.numpy())


def camera_joints(joints: np.ndarray, camera: Camera) -> np.ndarray:
    """World joints ``[T, J, 3]`` in the camera's frame (metres)."""
    rotation = camera.rotation.detach().double().numpy()
    translation = camera.translation.detach().double().numpy()
    return joints @ rotation.T + translation


def tracking_errors(truth: SyntheticVideo, fit, body) -> dict:
    """Errors of a :class:`~oneshot_avatar.track.fit.ClipFit` against the truth: body joint
    position error after aligning the pelvis, in each one's camera frame (cm; mean over the
    22 body joints), finger angle error (degrees, mean over the 30 finger joints' rotation
    difference), jaw and blink correlation with the truth (Pearson r)."""
    from scipy.spatial.transform import Rotation

    frames = truth.clip.num_frames
    params = {k: torch.as_tensor(v, dtype=body.dtype) for k, v in fit.params.items()}
    betas = torch.as_tensor(fit.betas, dtype=body.dtype)[None].expand(frames, -1)
    with torch.no_grad():
        joints = body(betas=betas, **params).joints.double().numpy()
    mine = camera_joints(joints, fit.camera)[:, :22]
    real = camera_joints(truth.joints.astype(np.float64), truth.camera)[:, :22]
    mine = mine - mine[:, :1]
    real = real - real[:, :1]
    mpjpe = float(np.linalg.norm(mine - real, axis=-1).mean() * 100)

    def finger_error(side: str) -> float:
        a = Rotation.from_rotvec(getattr(truth.clip, f"{side}_hand_pose").reshape(-1, 3))
        b = Rotation.from_rotvec(fit.params[f"{side}_hand_pose"].reshape(-1, 3))
        return float(np.degrees((a.inv() * b).magnitude()).mean())

    def correlation(x: np.ndarray, y: np.ndarray) -> float:
        if np.std(x) < 1e-9 or np.std(y) < 1e-9:
            return 0.0
        return float(np.corrcoef(x, y)[0, 1])

    jaw = correlation(truth.clip.jaw_pose[:, 0], fit.params["jaw_pose"][:, 0])
    out = {"joint_error_cm": mpjpe,
           "finger_error_deg": 0.5 * (finger_error("left") + finger_error("right")),
           "jaw_r": jaw}
    names = list(fit.expression_names)
    if "eyeBlinkLeft" in names and truth.clip.expression_space == "arkit52":
        from oneshot_avatar.motion.face_units import ARKIT_FACE_UNIT_INDEX

        k = names.index("eyeBlinkLeft")
        true_blink = truth.clip.expression[:, ARKIT_FACE_UNIT_INDEX["eyeBlinkLeft"]]
        out["blink_r"] = correlation(true_blink, fit.params["expression"][:, k])
    return out
