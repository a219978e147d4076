"""Where MediaPipe's 478 face-mesh points lie on a body's surface, found on the body itself.

Any body (the open body, a real SMPL-X file) gets its correspondences the same way, once, and
cached with the body's checksum: the rest-pose head is dressed with the synthetic subjects'
skin, eyes, brows and lips, lit from the front and above so a face detector sees a face, and
rendered by the project's mesh renderer from several views; MediaPipe FaceMesh runs on each
render and every detected point is back-projected onto the surface under it (the rasterizer's
triangle and barycentrics). A point's surface positions from the views that see it face-on
are averaged and the mean is snapped back onto the surface (closest point on the head's
triangles). Points no view saw reliably are marked invalid.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from oneshot_avatar.atomic import atomic_output
from oneshot_avatar.body.smplx_layout import JOINT_INDEX
from oneshot_avatar.fit.landmarks import FACE_MESH_POINTS

SCHEMA = "oneshot-avatar/face-correspondence/1"
# (yaw, pitch) degrees of the rendering views: the face from the front, turned, from above and
# below. A point counts in a view when the surface under it faces that camera.
VIEWS: tuple[tuple[float, float], ...] = ((0.0, 0.0), (-22.0, 0.0), (22.0, 0.0), (0.0, -14.0),
                                          (0.0, 14.0))
RENDER_SIZE = 320
HEAD_FILL = 0.55  # of the image height taken by the head (eyes to chin ~ 1/3 of that)
MIN_FACING = 0.2  # cos(angle) between the surface normal and the direction to the camera
MAX_SPREAD = 0.012  # metres: a point whose views disagree more than this is dropped


@dataclass
class FaceCorrespondence:
    """Surface points of the 478 face-mesh landmarks on one body's mesh."""

    faces: np.ndarray  # int64 [478] triangle index (any value where invalid)
    bary: np.ndarray  # float64 [478, 3] barycentrics in that triangle
    valid: np.ndarray  # bool [478]
    spread: np.ndarray  # float64 [478] metres: RMS distance of the views' points to their mean
    views: np.ndarray  # int64 [478] number of views that saw the point
    body_sha256: str

    def vertex_blend(self, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(vertex ids [478, 3], weights [478, 3])`` of each point on the mesh ``triangles``."""
        return np.asarray(triangles)[self.faces], self.bary

    def positions(self, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:  # [478, 3]
        ids, weights = self.vertex_blend(triangles)
        return (np.asarray(vertices)[ids] * weights[..., None]).sum(axis=1)


def _cache_path(cache_dir: Path, body) -> Path:
    key = hashlib.sha256(f"{SCHEMA}|{body.info.sha256}|{VIEWS}|{RENDER_SIZE}".encode()).hexdigest()
    return Path(cache_dir) / "face_correspondence" / f"{key[:24]}.npz"


def face_correspondence(body, cache_dir: Path | str | None = None, *,
                        recompute: bool = False) -> FaceCorrespondence:
    """The body's face correspondences, from ``cache_dir`` (default: the project's cache
    folder) or computed (a few seconds) and stored there."""
    from oneshot_avatar.body.model import default_cache_dir

    path = _cache_path(Path(cache_dir) if cache_dir is not None else default_cache_dir(), body)
    if path.exists() and not recompute:
        with np.load(path, allow_pickle=False) as data:
            if str(data["schema"]) == SCHEMA and str(data["body_sha256"]) == body.info.sha256:
                return FaceCorrespondence(data["faces"].astype(np.int64),
                                          data["bary"].astype(np.float64),
                                          data["valid"].astype(bool),
                                          data["spread"].astype(np.float64),
                                          data["views"].astype(np.int64), body.info.sha256)
    result = compute_face_correspondence(body)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary of its own: two processes that compute at once (two commands, two test
    # workers) must not write into one file (a fixed ``.tmp.npz`` name interleaved them).
    with atomic_output(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, schema=np.array(SCHEMA), body_sha256=np.array(body.info.sha256),
                 faces=result.faces, bary=result.bary, valid=result.valid,
                 spread=result.spread, views=result.views)
    return result


def _head_views(rest_joints: np.ndarray, head_height: float):
    from oneshot_avatar.cameras import look_at

    j = JOINT_INDEX
    eyes = 0.5 * (rest_joints[j["left_eye_smplhf"]] + rest_joints[j["right_eye_smplhf"]])
    target = eyes + np.array([0.0, -0.03, 0.0])
    fov = 30.0
    distance = 0.5 * head_height / HEAD_FILL / math.tan(math.radians(fov / 2))
    cameras = []
    for yaw, pitch in VIEWS:
        y, p = math.radians(yaw), math.radians(pitch)
        direction = np.array([math.sin(y) * math.cos(p), math.sin(p), math.cos(y) * math.cos(p)])
        eye = target + distance * direction
        cameras.append(look_at(tuple(eye), tuple(target), width=RENDER_SIZE, height=RENDER_SIZE,
                               fov_y_degrees=fov, dtype=torch.float64))
    return cameras


def _lit_texture(body, rest_vertices: Tensor, rest_joints: Tensor):
    from oneshot_avatar.reconstruct.synthetic import LOOKS, outfit_function
    from oneshot_avatar.render.mesh import SurfaceTexture

    paint = outfit_function(rest_vertices.float(), rest_joints.float(), body.lbs_weights.cpu(),
                            LOOKS["blue-stripes"])
    light = torch.tensor([0.25, 0.45, 1.0])
    light = light / light.norm()

    def fn(points: Tensor, normals: Tensor) -> Tensor:
        rgb = paint(points, normals).float()
        lambert = (normals.float() @ light).clamp_min(0.0)
        return (rgb * (0.35 + 0.75 * lambert)[:, None]).clamp(0, 1).to(points)

    return SurfaceTexture.from_function(rest_vertices.float(), body.faces.cpu(), fn, 4)


def compute_face_correspondence(body) -> FaceCorrespondence:
    """Render the rest head from :data:`VIEWS`, detect, back-project and average (see the
    module's docstring). Raises RuntimeError when no view gives a face."""
    from oneshot_avatar.detect.face_mesh import detect_face_mesh
    from oneshot_avatar.render.mesh import face_normals, rasterize_mesh, render_textured

    with torch.no_grad():
        rest = body()
        vertices = rest.vertices[0].detach().cpu()
        joints = rest.joints[0].detach().cpu()
    triangles = body.faces.detach().cpu().long()
    v64 = vertices.double()
    head = _head_triangles(body, triangles.numpy())
    head_v = np.unique(triangles.numpy()[head])
    head_height = float(v64[head_v, 1].max() - v64[head_v, 1].min())
    texture = _lit_texture(body, vertices, joints)
    normals = face_normals(v64, triangles).numpy()
    samples: list[list[np.ndarray]] = [[] for _ in range(FACE_MESH_POINTS)]
    for camera in _head_views(joints.double().numpy(), head_height):
        rgb, _ = render_textured(vertices.float(), triangles, texture, camera.to(dtype=torch.float32),
                                 background=(0.55, 0.55, 0.55), supersample=2)
        points = detect_face_mesh(rgb.numpy())
        if points is None:
            continue
        raster = rasterize_mesh(v64, triangles, camera)
        position = camera.position.detach().cpu().double().numpy()
        cols = np.clip(np.floor(points[:, 0]).astype(int), 0, RENDER_SIZE - 1)
        rows = np.clip(np.floor(points[:, 1]).astype(int), 0, RENDER_SIZE - 1)
        face_id = raster.face_id[rows, cols].numpy()
        bary = raster.bary[rows, cols].numpy()
        for k in range(FACE_MESH_POINTS):
            f = face_id[k]
            if f < 0 or not head[f]:
                continue
            point = (v64[triangles[f]].numpy() * bary[k][:, None]).sum(axis=0)
            to_camera = position - point
            to_camera /= np.linalg.norm(to_camera)
            if abs(float(normals[f] @ to_camera)) < MIN_FACING:  # grazing: unreliable
                continue
            samples[k].append(point)
    if not any(samples):
        raise RuntimeError("MediaPipe FaceMesh found no face in any render of the body's head")
    out_faces = np.zeros(FACE_MESH_POINTS, dtype=np.int64)
    out_bary = np.zeros((FACE_MESH_POINTS, 3))
    valid = np.zeros(FACE_MESH_POINTS, dtype=bool)
    spread = np.full(FACE_MESH_POINTS, np.inf)
    views = np.array([len(s) for s in samples], dtype=np.int64)
    tri_points = v64[triangles[head]].numpy()  # [H, 3, 3]
    head_index = np.flatnonzero(head)
    for k, found in enumerate(samples):
        if not found:
            continue
        found = np.asarray(found)
        mean = found.mean(axis=0)
        spread[k] = float(np.sqrt(((found - mean) ** 2).sum(axis=1).mean()))
        _closest, bary, which = closest_point_on_triangles(mean, tri_points)
        out_faces[k] = head_index[which]
        out_bary[k] = bary
        valid[k] = spread[k] <= MAX_SPREAD
    return FaceCorrespondence(out_faces, out_bary, valid, spread, views, body.info.sha256)


def _head_triangles(body, triangles: np.ndarray) -> np.ndarray:  # bool [F]
    dominant = body.lbs_weights.detach().cpu().numpy().argmax(axis=1)
    head_joints = [JOINT_INDEX[n] for n in ("head", "jaw", "left_eye_smplhf", "right_eye_smplhf")]
    in_head = np.isin(dominant, head_joints)
    return in_head[triangles].any(axis=1)


def closest_point_on_triangles(point: np.ndarray, triangles: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray, int]:
    """The closest point to ``point [3]`` on any of ``triangles [T, 3, 3]``: ``(position [3],
    barycentrics [3], triangle index)``."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    ab, ac = b - a, c - a
    normal = np.cross(ab, ac)
    area2 = (normal**2).sum(axis=1)
    ok = area2 > 1e-20
    # Project onto each plane, take barycentrics, clamp to the triangle by testing its edges.
    p = point[None]
    best = (np.inf, None, None, -1)
    # Candidates: the nearest triangles by centroid distance keep this cheap.
    centroid = triangles.mean(axis=1)
    order = np.argsort(((centroid - p) ** 2).sum(axis=1))[:64]
    for t in order:
        if not ok[t]:
            continue
        q, bary = _closest_on_triangle(point, a[t], b[t], c[t])
        d = float(((q - point) ** 2).sum())
        if d < best[0]:
            best = (d, q, bary, int(t))
    return best[1], best[2], best[3]


def _closest_on_triangle(p, a, b, c):
    """Closest point on triangle ``abc`` to ``p`` and its barycentrics (Ericson's regions)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = ab @ ap, ac @ ap
    if d1 <= 0 and d2 <= 0:
        return a, np.array([1.0, 0.0, 0.0])
    bp = p - b
    d3, d4 = ab @ bp, ac @ bp
    if d3 >= 0 and d4 <= d3:
        return b, np.array([0.0, 1.0, 0.0])
    vc = d1 * d4 - d3 * d2
    if vc <= 0 and d1 >= 0 and d3 <= 0:
        v = d1 / (d1 - d3)
        return a + v * ab, np.array([1 - v, v, 0.0])
    cp = p - c
    d5, d6 = ab @ cp, ac @ cp
    if d6 >= 0 and d5 <= d6:
        return c, np.array([0.0, 0.0, 1.0])
    vb = d5 * d2 - d1 * d6
    if vb <= 0 and d2 >= 0 and d6 <= 0:
        w = d2 / (d2 - d6)
        return a + w * ac, np.array([1 - w, 0.0, w])
    va = d3 * d6 - d5 * d4
    if va <= 0 and (d4 - d3) >= 0 and (d5 - d6) >= 0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return b + w * (c - b), np.array([0.0, 1 - w, w])
    denom = 1.0 / (va + vb + vc)
    v, w = vb * denom, vc * denom
    return a + ab * v + ac * w, np.array([1 - v - w, v, w])
