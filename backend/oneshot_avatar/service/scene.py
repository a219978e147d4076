"""Scene renders for Blender's render engine (``POST /v1/render-scene``): several avatars, each
with its pose and its rig's place in the scene, rasterized together so they occlude each other
Gaussian by Gaussian; the answer is RGBA plus a depth pass.

Answer format (``application/x-npz``, ``numpy.load`` reads it): ``color`` [T, H, W, 3] straight
(un-premultiplied) sRGB 0..1, ``alpha`` [T, H, W] coverage 0..1, ``depth`` [T, H, W] distance
along the camera's viewing axis in scene units (Blender's Z pass), ``inf`` where nothing is
drawn; rows top to bottom. Arrays are float32 (or float16 on request). With ``crop`` the
arrays hold only the box around every frame's drawn pixels, placed by ``box`` [x0, y0, x1, y1]
in the ``size`` [width, height] frame (most of a viewport is empty: a 1280x720 answer shrinks
several times); ``depth: false`` leaves the depth pass out. The box, the precision and the copy
to the host are done where the frames were rendered (the GPU), not on the server's CPU.

Frames: each avatar's Gaussians are posed in its rig's armature space (the SMPL-X frame, Y up),
then moved by ``BLENDER_TO_WORLD @ matrix_world`` into the backend's world, where the scene's
Blender cameras are placed as usual. View-dependent colour is evaluated in each avatar's own
frame (SH are not rotated), so an avatar looks the same as in its own render.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

from oneshot_avatar.cameras import BLENDER_TO_WORLD, Camera, stack_cameras
from oneshot_avatar.errors import UserError
from oneshot_avatar.motion import MotionClip
from oneshot_avatar.service import schemas

SCALE_TOLERANCE = 1e-3  # relative spread of the axis lengths still called "uniform"


class UnknownAvatar(LookupError):
    """A scene names an avatar the server does not have (a 404 naming ``field``)."""

    def __init__(self, avatar_id: str, field: str):
        super().__init__(f"no avatar {avatar_id}")
        self.field = field


@dataclass
class SceneItem:
    avatar_id: str
    clip: MotionClip
    to_world: np.ndarray  # 4x4 armature (SMPL-X) -> backend world


@dataclass
class ScenePlan:
    items: list[SceneItem]
    cameras: list[Camera]
    width: int
    height: int
    num_frames: int
    dtype: str
    crop: bool = False
    depth: bool = True


def _to_world(matrix: list[list[float]], field: str) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-6):
        raise UserError("the last row must be 0 0 0 1 (an object matrix)", field=field)
    lengths = np.linalg.norm(m[:3, :3], axis=0)
    if lengths.min() < 1e-9:
        raise UserError("the rig has zero scale; give it a non-zero scale", field=field)
    if lengths.max() - lengths.min() > SCALE_TOLERANCE * lengths.max():
        raise UserError(f"the rig is scaled unevenly ({lengths.round(4).tolist()}); avatars "
                        "take one scale for all axes: apply the scale or make it uniform",
                        field=field)
    rotation = m[:3, :3] / lengths
    if np.linalg.det(rotation) < 0 or not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-4):
        raise UserError("the rig's matrix is mirrored or sheared; avatars take rotation, "
                        "location and one uniform scale", field=field)
    to_world = np.eye(4)
    to_world[:3, :3] = np.asarray(BLENDER_TO_WORLD)
    return to_world @ m


def _scene_camera(spec, index: int) -> Camera:
    from oneshot_avatar.cameras import from_blender
    from oneshot_avatar.service.rendering import camera_error, opencv_camera

    try:
        if isinstance(spec, schemas.BlenderCamera):
            return from_blender(**spec.blender.model_dump())
        camera = opencv_camera(spec)
        # OpenCV cameras come in the Blender world: move them to the backend's world.
        to_blender = torch.eye(4, dtype=camera.world_to_cam.dtype)
        to_blender[:3, :3] = torch.as_tensor(np.asarray(BLENDER_TO_WORLD).T, dtype=camera.world_to_cam.dtype)
        return Camera(camera.K, camera.world_to_cam @ to_blender, camera.width, camera.height,
                      camera.near, camera.far)
    except UserError as error:
        raise camera_error(error, spec, index) from None


def plan_scene(request: schemas.SceneRenderRequest, *, known_avatar, max_frames: int,
               max_pixels: int, num_expressions: int) -> ScenePlan:
    """Check a scene request (no rendering); ``known_avatar(id)`` says whether it exists."""
    from oneshot_avatar.service.rendering import _clip_from_params, request_cameras

    items: list[SceneItem] = []
    for i, entry in enumerate(request.avatars):
        where = f"avatars[{i}]"
        if not known_avatar(entry.avatar):
            raise UnknownAvatar(entry.avatar, f"{where}.avatar")
        motion = schemas.MotionParams(params=entry.params, expression_space=entry.expression_space)
        try:
            clip = _clip_from_params(motion, max_frames)
        except UserError as error:
            field = (error.field or "").replace("motion.params", f"{where}.params")
            raise UserError(error.message, field=field or where) from None
        items.append(SceneItem(entry.avatar, clip, _to_world(entry.matrix_world,
                                                             f"{where}.matrix_world")))
    counts = {item.clip.num_frames for item in items}
    if len(counts) > 1:
        raise UserError(f"every avatar needs the same number of rows (frames); got "
                        f"{sorted(counts)}", field="avatars")
    frames = counts.pop() if counts else len(request.cameras)
    if frames > max_frames:
        raise UserError(f"{frames} frames; a request renders 1..{max_frames}", field="cameras")
    cameras = request_cameras(request.cameras, frames, _scene_camera)
    if request.size is not None:
        cameras = [c.resized(*request.size) for c in cameras]
    width, height = cameras[0].width, cameras[0].height
    if width * height > max_pixels:
        raise UserError(f"{width}x{height} is over the limit of {max_pixels} pixels per frame",
                        field="size")
    return ScenePlan(items, cameras, width, height, frames, request.dtype, request.crop,
                     request.depth)


def _matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit wxyz quaternion."""
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1.0 + r[i, i] - r[j, j] - r[k, k], 1e-300))
        q = [0.0] * 4
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def _quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], dim=-1)


def render_scene(plan: ScenePlan, load_avatar, body, *, backend: str, batch_frames: int = 4
                 ) -> dict[str, np.ndarray]:
    """Render the plan (worker thread): ``{"color", "alpha", "depth"}`` (and ``box``/``size``
    when cropped) as in the module doc, already in the plan's precision."""
    from oneshot_avatar.render.rasterize import rasterize_gaussians
    from oneshot_avatar.render.shots import expression_for_body
    from oneshot_avatar.render.torch_rasterizer import gaussian_colors

    T, H, W = plan.num_frames, plan.height, plan.width
    device = body.device
    if not plan.items:
        zeros = torch.zeros(T, H, W, device=device)
        return _answer(plan, zeros[..., None].expand(T, H, W, 3), zeros, zeros)
    avatars = [load_avatar(item.avatar_id) for item in plan.items]
    rendered = []  # per batch of frames: premultiplied colour, alpha, depth as rasterized
    for start in range(0, T, max(1, batch_frames)):
        chunk = list(range(start, min(T, start + batch_frames)))
        chosen = [plan.cameras[i] if len(plan.cameras) > 1 else plan.cameras[0] for i in chunk]
        viewmats, Ks, _, _ = stack_cameras([c.to(device, torch.float32) for c in chosen])
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("means", "quats", "scales",
                                                                 "opacities", "colors")}
        index = torch.tensor(chunk, device=device)
        for item, avatar in zip(plan.items, avatars):
            params = item.clip.to_torch(device)
            params.pop("expression")
            frame_params = {k: v[index] for k, v in params.items()}
            expression = expression_for_body(item.clip, body.expression_names)
            if expression is not None:
                frame_params["expression"] = torch.as_tensor(expression[chunk], device=device)
            to_world = torch.as_tensor(item.to_world, dtype=torch.float32, device=device)
            scale = float(np.linalg.norm(item.to_world[:3, 0]))
            rotation = item.to_world[:3, :3] / scale
            with torch.no_grad():
                posed = avatar.pose(body, **frame_params)
                # Colour towards each camera in the avatar's own frame.
                local_views = viewmats @ to_world  # [B, 4, 4] armature -> camera (scaled)
                rgb = gaussian_colors(posed.means, posed.sh, local_views[:, None],
                                      posed.sh_degree)[:, 0]
                parts["means"].append(posed.means @ to_world[:3, :3].T + to_world[:3, 3])
                q = torch.as_tensor(_matrix_to_quat(rotation), dtype=torch.float32,
                                    device=device)
                parts["quats"].append(_quat_multiply(q.expand_as(posed.quats), posed.quats))
                parts["scales"].append(posed.scales * scale)
                parts["opacities"].append(posed.opacities)
                parts["colors"].append(rgb)
        joined = {k: torch.cat(v, dim=1) for k, v in parts.items()}
        with torch.no_grad():
            out = rasterize_gaussians(joined["means"], joined["quats"], joined["scales"],
                                      joined["opacities"], joined["colors"], viewmats[:, None],
                                      Ks[:, None], W, H, backend=backend)
        rendered.append((out.rgb[:, 0], out.alpha[:, 0, ..., 0], out.depth[:, 0, ..., 0]))
    return _answer(plan, *(torch.cat(parts) for parts in zip(*rendered)))


def drawn_box(alpha: torch.Tensor) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` around the pixels with alpha > 0 in any frame of ``alpha`` [T, H, W]
    (end exclusive); ``(0, 0, 0, 0)`` when nothing is drawn."""
    seen = alpha > 0
    rows = torch.nonzero(seen.any(dim=2).any(dim=0)).flatten()
    if rows.numel() == 0:
        return 0, 0, 0, 0
    cols = torch.nonzero(seen.any(dim=1).any(dim=0)).flatten()
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _answer(plan: ScenePlan, premultiplied: torch.Tensor, alpha: torch.Tensor,
            depth: torch.Tensor) -> dict[str, np.ndarray]:
    """The arrays of the module doc from what the rasterizer gave ([T, H, W, 3] premultiplied
    colour, [T, H, W] alpha and expected depth): cropped first (when asked), so the rest works
    on the box only; straight colour, ``inf`` depth where nothing is drawn; cast and copied to
    the host on the frames' own device."""
    alpha = alpha.clamp(0, 1)
    extra = {}
    if plan.crop:
        x0, y0, x1, y1 = drawn_box(alpha)
        premultiplied, alpha, depth = (v[:, y0:y1, x0:x1] for v in (premultiplied, alpha, depth))
        extra = {"box": np.array([x0, y0, x1, y1], np.int32),
                 "size": np.array([plan.width, plan.height], np.int32)}
    seen = alpha > 0
    color = premultiplied.clamp(0, 1) / alpha[..., None].clamp_min(1e-6) * seen[..., None]
    arrays = {"color": color.clamp(0, 1), "alpha": alpha}
    if plan.depth:
        arrays["depth"] = torch.where(seen, depth, torch.full_like(depth, float("inf")))
    dtype = torch.float16 if plan.dtype == "float16" else torch.float32
    return {**{k: v.to(dtype).cpu().numpy() for k, v in arrays.items()}, **extra}


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The answer's bytes (:func:`render_scene` gives the arrays in the plan's precision): an
    uncompressed ``.npz``, as fast to write and read as the arrays' own bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
