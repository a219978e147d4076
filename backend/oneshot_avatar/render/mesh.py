"""Triangle-mesh rendering in pure PyTorch: a z-buffer rasterizer and "mesh colours".

:func:`rasterize_mesh` finds, for every pixel centre, the nearest triangle, its
perspective-correct barycentric coordinates and its camera depth. It is vectorised over
(triangle, pixel) candidate pairs taken from each triangle's pixel bounding box, processed in
chunks of bounded size, and runs on any device. No gradients.

:class:`SurfaceTexture` stores colours on the surface without UVs: every triangle carries a
barycentric grid of resolution ``n`` (sample ``(i, j)`` at barycentrics ``(i/n, j/n,
(n-i-j)/n)`` for ``i + j <= n``, so ``(n+1)(n+2)/2`` samples per triangle); colours are
interpolated linearly within the grid's sub-triangles. Neighbouring triangles store their
shared edge samples separately.

Conventions are :mod:`oneshot_avatar.cameras`': pixel ``(i, j)`` (row, column) is sampled at
its centre ``(j + 0.5, i + 0.5)``; depth is camera ``z`` in metres.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from oneshot_avatar.cameras import Camera
from oneshot_avatar.errors import BadFileError, UserError

TEXTURE_SCHEMA = "oneshot-avatar/surface-texture/1"
_KEY_EMPTY = torch.iinfo(torch.int64).max
_FACE_BITS = 32
_MIN_AREA_PX = 1e-10  # twice the screen area below which a triangle is skipped


# --------------------------------------------------------------------------------------------
# Rasterization


@dataclass
class MeshRaster:
    """What covers each pixel centre of an ``H x W`` image (``H``, ``W`` include supersampling)."""

    face_id: Tensor  # [H, W] long, -1 = background
    bary: Tensor  # [H, W, 3] perspective-correct barycentrics of face_id's vertices (0 on background)
    depth: Tensor  # [H, W] camera z, metres; inf on background

    @property
    def mask(self) -> Tensor:  # [H, W] bool, True where a triangle covers the pixel centre
        return self.face_id >= 0


def _check_mesh(vertices: Tensor, faces: Tensor) -> None:
    if not isinstance(vertices, Tensor) or vertices.ndim != 2 or vertices.shape[1] != 3:
        shape = tuple(vertices.shape) if isinstance(vertices, Tensor) else type(vertices).__name__
        raise UserError(f"expected vertices of shape [V, 3], got {shape}", field="vertices")
    if not vertices.is_floating_point():
        raise UserError(f"vertices must be floating point, got {vertices.dtype}", field="vertices")
    if not isinstance(faces, Tensor) or faces.ndim != 2 or faces.shape[1] != 3:
        shape = tuple(faces.shape) if isinstance(faces, Tensor) else type(faces).__name__
        raise UserError(f"expected faces of shape [F, 3], got {shape}", field="faces")
    if faces.dtype not in (torch.int32, torch.int64):
        raise UserError(f"faces must be integer vertex indices, got {faces.dtype}", field="faces")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[0]):
        raise UserError(f"faces index vertices outside [0, {vertices.shape[0]}): "
                        f"min {int(faces.min())}, max {int(faces.max())}", field="faces")
    if faces.device != vertices.device:
        raise UserError(f"faces are on {faces.device} but vertices on {vertices.device}",
                        field="faces")


def _check_supersample(supersample: int) -> int:
    if isinstance(supersample, bool) or not isinstance(supersample, int) or supersample < 1:
        raise UserError(f"supersample must be a whole number >= 1, got {supersample!r}",
                        field="supersample")
    return supersample


def _screen_barycentrics(u: Tensor, v: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """Screen-space barycentrics ``[N, 3]`` of points ``(px, py) [N]`` in triangles with corner
    pixels ``u, v [N, 3]`` (either winding); outside points get a negative coordinate."""
    e0 = (u[:, 2] - u[:, 1]) * (py - v[:, 1]) - (v[:, 2] - v[:, 1]) * (px - u[:, 1])
    e1 = (u[:, 0] - u[:, 2]) * (py - v[:, 2]) - (v[:, 0] - v[:, 2]) * (px - u[:, 2])
    e2 = (u[:, 1] - u[:, 0]) * (py - v[:, 0]) - (v[:, 1] - v[:, 0]) * (px - u[:, 0])
    edges = torch.stack([e0, e1, e2], dim=-1)
    return edges / edges.sum(dim=-1, keepdim=True)


def rasterize_mesh(
    vertices: Tensor,  # [V, 3] world, metres
    faces: Tensor,  # [F, 3] vertex indices
    camera: Camera,
    *,
    supersample: int = 1,
    chunk_size: int = 1 << 22,
) -> MeshRaster:
    """Z-buffer rasterization of a triangle mesh at pixel centres (both windings are drawn).

    The image is ``camera.height * supersample`` by ``camera.width * supersample`` pixels (the
    camera resized by ``supersample``; average ``supersample x supersample`` blocks for an
    anti-aliased image). Triangles with a vertex at or before the camera's near plane are
    dropped whole. Ties in depth go to the lower face index. ``chunk_size`` bounds the number of
    (triangle, pixel) candidates held at once (about 100 bytes each).
    """
    _check_mesh(vertices, faces)
    k = _check_supersample(supersample)
    device = vertices.device
    dtype = vertices.dtype
    camera = camera.to(device=device, dtype=dtype)
    if k > 1:
        camera = camera.resized(camera.width * k, camera.height * k)
    width, height = camera.width, camera.height
    faces = faces.long()
    with torch.no_grad():
        cam_points = camera.world_to_camera_points(vertices.detach())
        z = cam_points[:, 2]
        safe_z = torch.where(z > camera.near, z, torch.ones_like(z))
        u_all = camera.fx * cam_points[:, 0] / safe_z + camera.cx
        v_all = camera.fy * cam_points[:, 1] / safe_z + camera.cy
        fu, fv, fz = u_all[faces], v_all[faces], z[faces]  # [F, 3]
        area2 = ((fu[:, 1] - fu[:, 0]) * (fv[:, 2] - fv[:, 0])
                 - (fv[:, 1] - fv[:, 0]) * (fu[:, 2] - fu[:, 0]))
        valid = (fz > camera.near).all(dim=1) & (area2.abs() > _MIN_AREA_PX)
        valid &= torch.isfinite(fu).all(dim=1) & torch.isfinite(fv).all(dim=1)
        # Columns j whose centre j + 0.5 lies in [min u, max u], clipped to the image.
        col0 = torch.ceil(fu.amin(dim=1).clamp(-1, width + 1) - 0.5).long().clamp(min=0)
        col1 = torch.floor(fu.amax(dim=1).clamp(-1, width + 1) - 0.5).long().clamp(max=width - 1)
        row0 = torch.ceil(fv.amin(dim=1).clamp(-1, height + 1) - 0.5).long().clamp(min=0)
        row1 = torch.floor(fv.amax(dim=1).clamp(-1, height + 1) - 0.5).long().clamp(max=height - 1)
        box_w = (col1 - col0 + 1).clamp(min=0)
        box_h = (row1 - row0 + 1).clamp(min=0)
        counts = torch.where(valid, box_w * box_h, torch.zeros_like(box_w))
        drawn = torch.nonzero(counts > 0).squeeze(1)
        keys = torch.full((height * width,), _KEY_EMPTY, dtype=torch.int64, device=device)
        if drawn.numel():
            counts_d = counts[drawn]
            ends = torch.cumsum(counts_d, dim=0)
            # Split the drawn faces into groups of about chunk_size candidates each.
            total = int(ends[-1])
            cuts = torch.arange(chunk_size, max(total, chunk_size), chunk_size, device=device)
            bounds = [0, *torch.searchsorted(ends, cuts, right=True).tolist(), drawn.numel()]
            for start, stop in itertools.pairwise(bounds):
                if stop > start:
                    _rasterize_chunk(drawn[start:stop], counts_d[start:stop], fu, fv, fz, col0,
                                     row0, box_w, width, keys)
        hit = keys != _KEY_EMPTY
        face_id = torch.full((height * width,), -1, dtype=torch.long, device=device)
        bary = torch.zeros(height * width, 3, dtype=dtype, device=device)
        depth = torch.full((height * width,), float("inf"), dtype=dtype, device=device)
        pixels = torch.nonzero(hit).squeeze(1)
        if pixels.numel():
            winners = keys[pixels] & ((1 << _FACE_BITS) - 1)
            px = (pixels % width).to(dtype) + 0.5
            py = torch.div(pixels, width, rounding_mode="floor").to(dtype) + 0.5
            screen = _screen_barycentrics(fu[winners], fv[winners], px, py).clamp(min=0)
            weighted = screen / fz[winners]
            inverse_depth = weighted.sum(dim=1)
            face_id[pixels] = winners
            bary[pixels] = weighted / inverse_depth[:, None]
            depth[pixels] = 1.0 / inverse_depth
    return MeshRaster(face_id.reshape(height, width), bary.reshape(height, width, 3),
                      depth.reshape(height, width))


def _rasterize_chunk(face_ids: Tensor, counts: Tensor, fu: Tensor, fv: Tensor, fz: Tensor,
                     col0: Tensor, row0: Tensor, box_w: Tensor, width: int, keys: Tensor) -> None:
    """Test one group of faces against the pixel centres of their boxes and fold the inside
    candidates into ``keys`` (float32 depth bits above the face index, min-reduced)."""
    device = face_ids.device
    owner = torch.repeat_interleave(torch.arange(face_ids.numel(), device=device), counts)
    starts = torch.cumsum(counts, dim=0) - counts
    local = torch.arange(owner.numel(), device=device) - starts[owner]
    face = face_ids[owner]
    w = box_w[face]
    row = row0[face] + torch.div(local, w, rounding_mode="floor")
    col = col0[face] + local % w
    px = col.to(fu.dtype) + 0.5
    py = row.to(fu.dtype) + 0.5
    screen = _screen_barycentrics(fu[face], fv[face], px, py)
    inside = (screen >= 0).all(dim=1)
    face, screen, row, col = face[inside], screen[inside], row[inside], col[inside]
    depth = 1.0 / (screen / fz[face]).sum(dim=1)
    depth_bits = depth.to(torch.float32).view(torch.int32).to(torch.int64)
    key = (depth_bits << _FACE_BITS) | face
    keys.scatter_reduce_(0, row * width + col, key, reduce="amin", include_self=True)


# --------------------------------------------------------------------------------------------
# Surface texture


def barycentric_grid(resolution: int, *, device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """The grid's sample barycentrics ``[S, 3]``, ``S = (n+1)(n+2)/2``: sample ``(i, j)`` (in
    the order i = 0..n, j = 0..n-i) is at ``(i/n, j/n, (n-i-j)/n)``."""
    n = _check_resolution(resolution)
    ij = [(i, j) for i in range(n + 1) for j in range(n + 1 - i)]
    grid = torch.tensor([(i, j, n - i - j) for i, j in ij], dtype=torch.float64) / n
    return grid.to(device=device, dtype=dtype)


def _grid_index(n: int, device: torch.device) -> Tensor:
    """``[n+1, n+1]`` long: sample index of grid point ``(i, j)``, -1 where ``i + j > n``."""
    table = torch.full((n + 1, n + 1), -1, dtype=torch.long)
    index = 0
    for i in range(n + 1):
        for j in range(n + 1 - i):
            table[i, j] = index
            index += 1
    return table.to(device)


def _check_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not (
            1 <= int(resolution) <= 64):
        raise UserError(f"the texture resolution must be a whole number from 1 to 64, got "
                        f"{resolution!r}", field="resolution")
    return int(resolution)


def samples_per_face(resolution: int) -> int:
    n = _check_resolution(resolution)
    return (n + 1) * (n + 2) // 2


def triangle_areas(vertices: Tensor, faces: Tensor) -> Tensor:  # [V, 3], [F, 3] -> [F]
    """The area of each triangle."""
    v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
    return 0.5 * torch.linalg.cross(v1 - v0, v2 - v0).norm(dim=-1)


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:  # [V, 3], [F, 3] -> [V, 3]
    """Area-weighted unit vertex normals (counter-clockwise faces point outwards)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    face_normals = torch.linalg.cross(b - a, c - a)  # length = 2 * area
    normals = torch.zeros_like(vertices)
    for i in range(3):
        normals.index_add_(0, faces[:, i], face_normals)
    return F.normalize(normals, dim=-1, eps=1e-12)


def face_normals(vertices: Tensor, faces: Tensor) -> Tensor:  # [..., V, 3], [F, 3] -> [..., F, 3]
    a, b, c = (vertices[..., faces[:, i], :] for i in range(3))
    return F.normalize(torch.linalg.cross(b - a, c - a, dim=-1), dim=-1, eps=1e-12)


@dataclass(eq=False)
class SurfaceTexture:
    """Colours on the triangles of a mesh ("mesh colours"; see the module docstring).

    ``known`` marks samples whose colour was observed (e.g. seen in a photo) rather than filled
    in; every sample has a colour either way. ``confidence`` (optional) says how reliable each
    colour is (e.g. the cosine of the viewing angle; 0 for filled samples).
    """

    colors: Tensor  # [F, S, 3] linear RGB in [0, 1]
    known: Tensor  # [F, S] bool
    resolution: int  # n: S = (n+1)(n+2)/2
    confidence: Tensor | None = None  # [F, S] in [0, 1]

    def __post_init__(self) -> None:
        n = _check_resolution(self.resolution)
        self.resolution = n
        s = samples_per_face(n)
        if not isinstance(self.colors, Tensor) or self.colors.ndim != 3 or \
                self.colors.shape[1:] != (s, 3):
            shape = tuple(self.colors.shape) if isinstance(self.colors, Tensor) else None
            raise UserError(f"expected colours of shape [F, {s}, 3] for resolution {n}, got "
                            f"{shape}", field="colors")
        if not self.colors.is_floating_point():
            raise UserError(f"colours must be floating point, got {self.colors.dtype}",
                            field="colors")
        if not isinstance(self.known, Tensor) or self.known.shape != self.colors.shape[:2]:
            shape = tuple(self.known.shape) if isinstance(self.known, Tensor) else None
            raise UserError(f"expected known of shape {tuple(self.colors.shape[:2])}, got "
                            f"{shape}", field="known")
        self.known = self.known.to(device=self.colors.device, dtype=torch.bool)
        if self.confidence is not None:
            if not isinstance(self.confidence, Tensor) or \
                    self.confidence.shape != self.colors.shape[:2]:
                shape = tuple(self.confidence.shape) if isinstance(self.confidence, Tensor) \
                    else type(self.confidence).__name__
                raise UserError(f"expected confidence of shape {tuple(self.colors.shape[:2])}, "
                                f"got {shape}", field="confidence")
            self.confidence = self.confidence.to(device=self.colors.device,
                                                 dtype=self.colors.dtype)

    @property
    def num_faces(self) -> int:
        return int(self.colors.shape[0])

    @property
    def device(self) -> torch.device:
        return self.colors.device

    def to(self, device: torch.device | str) -> SurfaceTexture:
        confidence = None if self.confidence is None else self.confidence.to(device)
        return SurfaceTexture(self.colors.to(device), self.known.to(device), self.resolution,
                              confidence)

    @classmethod
    def from_function(
        cls,
        vertices: Tensor,  # [V, 3] rest positions
        faces: Tensor,  # [F, 3]
        fn: Callable[[Tensor, Tensor], Tensor],
        resolution: int,
    ) -> SurfaceTexture:
        """A procedural texture: ``fn(points [N, 3], normals [N, 3]) -> rgb [N, 3]`` evaluated at
        every sample's position and (interpolated, unit) vertex normal on the given mesh."""
        _check_mesh(vertices, faces)
        faces = faces.long()
        with torch.no_grad():
            grid = barycentric_grid(resolution, device=vertices.device, dtype=vertices.dtype)
            points = torch.einsum("sk,fkc->fsc", grid, vertices[faces])
            normals = F.normalize(torch.einsum("sk,fkc->fsc", grid,
                                               vertex_normals(vertices, faces)[faces]),
                                  dim=-1, eps=1e-12)
            rgb = fn(points.reshape(-1, 3), normals.reshape(-1, 3))
        if not isinstance(rgb, Tensor) or tuple(rgb.shape) != (points.shape[0] * points.shape[1], 3):
            shape = tuple(rgb.shape) if isinstance(rgb, Tensor) else type(rgb).__name__
            raise UserError(f"the texture function must return rgb of shape "
                            f"[{points.shape[0] * points.shape[1]}, 3], got {shape}", field="fn")
        colors = rgb.to(dtype=torch.float32).reshape(points.shape)
        known = torch.ones(colors.shape[:2], dtype=torch.bool, device=colors.device)
        return cls(colors, known, resolution)

    def sample_points(self, vertices: Tensor, faces: Tensor) -> Tensor:  # -> [F, S, 3]
        """Positions of the samples on the mesh ``vertices [V, 3]`` (any pose)."""
        _check_mesh(vertices, faces)
        if faces.shape[0] != self.num_faces:
            raise UserError(f"the mesh has {faces.shape[0]} faces but the texture "
                            f"{self.num_faces}", field="faces")
        grid = barycentric_grid(self.resolution, device=vertices.device, dtype=vertices.dtype)
        return torch.einsum("sk,fkc->fsc", grid, vertices[faces.long()])

    def sample(self, face_id: Tensor, bary: Tensor) -> Tensor:
        """Colours ``[..., 3]`` at barycentrics ``bary [..., 3]`` of faces ``face_id [...]``,
        linear within the grid's sub-triangle holding the point; ``face_id < 0`` gives 0."""
        if bary.shape[:-1] != face_id.shape or bary.shape[-1] != 3:
            raise UserError(f"bary must be face_id's shape {tuple(face_id.shape)} + (3,), got "
                            f"{tuple(bary.shape)}", field="bary")
        n = self.resolution
        device = self.colors.device
        shape = face_id.shape
        face = face_id.reshape(-1).to(device)
        b = bary.reshape(-1, 3).to(device=device, dtype=self.colors.dtype).clamp(min=0)
        b = b / b.sum(dim=1, keepdim=True).clamp(min=1e-12)
        background = face < 0
        face = face.clamp(min=0)
        scaled_i = b[:, 0] * n
        scaled_j = b[:, 1] * n
        i = torch.floor(scaled_i).long().clamp(0, n)
        j = torch.floor(scaled_j).long().clamp(0, n)
        # On the far edge (i + j == n) step back one cell so that (i, j) opens a cell.
        over = i + j >= n
        step_i = over & (i > 0)
        i = i - step_i.long()
        j = j - (over & ~step_i).long()
        fi = scaled_i - i
        fj = scaled_j - j
        flipped = (fi + fj > 1) & (i + j <= n - 2)
        table = _grid_index(n, device)
        # Upright cell: corners (i, j), (i+1, j), (i, j+1); flipped: (i+1, j+1), (i, j+1), (i+1, j).
        # The weights reproduce the point (i + fi, j + fj) in grid units.
        corner_i = torch.stack([torch.where(flipped, i + 1, i), torch.where(flipped, i, i + 1),
                                torch.where(flipped, i + 1, i)], dim=1)
        corner_j = torch.stack([torch.where(flipped, j + 1, j), torch.where(flipped, j + 1, j),
                                torch.where(flipped, j, j + 1)], dim=1)
        weights = torch.where(
            flipped[:, None],
            torch.stack([fi + fj - 1, 1 - fi, 1 - fj], dim=1),
            torch.stack([1 - fi - fj, fi, fj], dim=1),
        ).clamp(min=0)
        weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)
        index = table[corner_i.clamp(0, n), corner_j.clamp(0, n)].clamp(min=0)  # [N, 3]
        colours = self.colors[face[:, None], index]  # [N, 3, 3]
        rgb = (weights[..., None] * colours).sum(dim=1)
        rgb = torch.where(background[:, None], torch.zeros_like(rgb), rgb)
        return rgb.reshape(*shape, 3)

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` (schema, resolution, colours float32 [F, S, 3], known bool [F, S],
        confidence float32 [F, S] when present), atomically."""
        from oneshot_avatar.atomic import atomic_output

        path = Path(path)
        arrays = {
            "schema": np.array(TEXTURE_SCHEMA),
            "resolution": np.array(self.resolution, dtype=np.int64),
            "colors": self.colors.detach().cpu().to(torch.float32).numpy(),
            "known": self.known.detach().cpu().numpy(),
        }
        if self.confidence is not None:
            arrays["confidence"] = self.confidence.detach().cpu().to(torch.float32).numpy()
        with atomic_output(path) as temporary, open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, path: str | Path, *, device: torch.device | str = "cpu") -> SurfaceTexture:
        """Read :meth:`save`'s file, validating every field (errors name it)."""
        path = Path(path)
        try:
            npz = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise BadFileError("texture file not found", path=path) from None
        except (OSError, ValueError) as error:
            raise BadFileError(f"not a readable .npz texture file: {error}", path=path) from None
        with npz:
            for key in ("schema", "resolution", "colors", "known"):
                if key not in npz.files:
                    raise BadFileError(f"missing (present: {sorted(npz.files)})", path=path,
                                       field=key)
            try:
                schema = str(npz["schema"])
                resolution = int(npz["resolution"])
                colors = np.asarray(npz["colors"])
                known = np.asarray(npz["known"])
                confidence = np.asarray(npz["confidence"]) if "confidence" in npz.files \
                    else None
            except ValueError as error:
                raise BadFileError(f"unreadable array: {error}", path=path) from None
        if schema != TEXTURE_SCHEMA:
            raise BadFileError(f"unknown schema {schema!r}; this version reads "
                               f"{TEXTURE_SCHEMA!r}", path=path, field="schema")
        if not 1 <= resolution <= 64:
            raise BadFileError(f"resolution must be 1..64, got {resolution}", path=path,
                               field="resolution")
        s = samples_per_face(resolution)
        if colors.ndim != 3 or colors.shape[1:] != (s, 3) or colors.dtype.kind != "f":
            raise BadFileError(f"expected float colours [F, {s}, 3], got {colors.dtype} "
                               f"{colors.shape}", path=path, field="colors")
        if not np.isfinite(colors).all():
            raise BadFileError("colours contain NaN or infinity", path=path, field="colors")
        if known.shape != colors.shape[:2] or known.dtype != np.bool_:
            raise BadFileError(f"expected bool [{colors.shape[0]}, {s}], got {known.dtype} "
                               f"{known.shape}", path=path, field="known")
        if confidence is not None and (confidence.shape != known.shape or
                                       confidence.dtype.kind != "f" or
                                       not np.isfinite(confidence).all()):
            raise BadFileError(f"expected finite floats {known.shape}, got {confidence.dtype} "
                               f"{confidence.shape}", path=path, field="confidence")
        return cls(torch.from_numpy(colors.astype(np.float32)).to(device),
                   torch.from_numpy(known).to(device), resolution,
                   None if confidence is None else
                   torch.from_numpy(confidence.astype(np.float32)).to(device))


# --------------------------------------------------------------------------------------------
# Textured rendering


def downsample(image: Tensor, factor: int) -> Tensor:  # [kH, kW, ...] -> [H, W, ...]
    """Average ``factor x factor`` pixel blocks (undoes supersampling)."""
    if factor == 1:
        return image
    height, width = image.shape[0] // factor, image.shape[1] // factor
    blocks = image.reshape(height, factor, width, factor, *image.shape[2:])
    return blocks.mean(dim=(1, 3))


def render_textured(
    vertices: Tensor,  # [V, 3] world, metres
    faces: Tensor,  # [F, 3]
    texture: SurfaceTexture,
    camera: Camera,
    *,
    background: Sequence[float] = (0.0, 0.0, 0.0),
    supersample: int = 2,
) -> tuple[Tensor, Tensor]:
    """The textured mesh seen by ``camera``: ``rgb [H, W, 3]`` composited over ``background``
    and coverage ``mask [H, W]`` in [0, 1], both anti-aliased by averaging ``supersample^2``
    pixel-centre samples per pixel. Tensors are on the vertices' device."""
    k = _check_supersample(supersample)
    if len(tuple(background)) != 3:
        raise UserError(f"background must be 3 numbers (rgb), got {background!r}",
                        field="background")
    raster = rasterize_mesh(vertices, faces, camera, supersample=k)
    device = vertices.device
    tex = texture if texture.device == device else texture.to(device)
    with torch.no_grad():
        hit = raster.mask
        back = torch.tensor(tuple(float(c) for c in background), dtype=torch.float32,
                            device=device)
        rgb = back.expand(*hit.shape, 3).clone()
        rgb[hit] = tex.sample(raster.face_id[hit], raster.bary[hit]).to(torch.float32)
        return downsample(rgb, k), downsample(hit.to(torch.float32), k)


__all__ = [
    "TEXTURE_SCHEMA",
    "MeshRaster",
    "SurfaceTexture",
    "barycentric_grid",
    "downsample",
    "face_normals",
    "rasterize_mesh",
    "render_textured",
    "samples_per_face",
    "vertex_normals",
]
