"""3D Gaussians bound to the triangles of the body mesh (a Gaussian-mesh hybrid).

``MeshGaussians`` holds, per Gaussian, its parent triangle (``binding``) and its mean, rotation
and scale in that triangle's frame (see :mod:`oneshot_avatar.avatar.binding`), its opacity and
its colour as spherical harmonics; plus learned per-vertex mesh offsets of the rest mesh.
Posing = body LBS (+ expression) of the offset mesh, then every Gaussian follows its triangle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from oneshot_avatar.avatar.binding import (
    closest_point_on_triangles,
    local_to_world,
    triangle_frames,
    world_to_local,
)
from oneshot_avatar.render.mesh import triangle_areas

SH_C0 = 0.28209479177387814  # Y_0^0: colour = SH_C0 * f_dc + 0.5
PER_GAUSSIAN = ("local_means", "local_quats", "log_scales", "opacity_logits", "sh0", "sh_rest")


def _compiled_place() -> bool:
    """Whether numba (the CPU kernels' compiler) is installed."""
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    return sh0 * SH_C0 + 0.5


def num_sh_coefficients(degree: int) -> int:
    return (degree + 1) ** 2


@dataclass
class PosedGaussians:
    """World-space Gaussians for B frames, ready to rasterize."""

    means: Tensor  # [B, N, 3]
    quats: Tensor  # [B, N, 4] wxyz, unit
    scales: Tensor  # [B, N, 3] linear
    opacities: Tensor  # [B, N] in (0, 1)
    sh: Tensor  # [B, N, K, 3] SH coefficients (expanded view, not copied)
    sh_degree: int
    vertices: Tensor  # [B, V, 3] the posed mesh they are bound to


class MeshGaussians(nn.Module):
    """Gaussians bound to a triangle mesh of ``num_faces`` faces and ``num_vertices`` vertices.

    Per-Gaussian tensors (all share dimension 0, N): ``binding [N]`` (buffer, parent triangle),
    ``local_means [N, 3]``, ``local_quats [N, 4]`` (wxyz), ``log_scales [N, 3]``,
    ``opacity_logits [N]``, ``sh0 [N, 1, 3]``, ``sh_rest [N, K-1, 3]``. Mesh: ``vertex_offsets
    [V, 3]`` (rest-pose offsets, learned).
    """

    def __init__(
        self,
        binding: Tensor,
        local_means: Tensor,
        local_quats: Tensor,
        log_scales: Tensor,
        opacity_logits: Tensor,
        sh0: Tensor,
        sh_rest: Tensor,
        *,
        num_faces: int,
        num_vertices: int,
        vertex_offsets: Tensor | None = None,
    ):
        super().__init__()
        n = binding.shape[0]
        shapes = {
            "local_means": (n, 3), "local_quats": (n, 4), "log_scales": (n, 3),
            "opacity_logits": (n,), "sh0": (n, 1, 3),
        }  # fmt: skip
        given = dict(local_means=local_means, local_quats=local_quats, log_scales=log_scales,
                     opacity_logits=opacity_logits, sh0=sh0)
        for name, shape in shapes.items():
            if tuple(given[name].shape) != shape:
                raise ValueError(f"{name} has shape {tuple(given[name].shape)}, expected {shape}")
        if sh_rest.ndim != 3 or sh_rest.shape[0] != n or sh_rest.shape[2] != 3:
            raise ValueError(f"sh_rest has shape {tuple(sh_rest.shape)}, expected ({n}, K-1, 3)")
        degree = math.isqrt(sh_rest.shape[1] + 1) - 1
        if num_sh_coefficients(degree) != sh_rest.shape[1] + 1 or not 0 <= degree <= 3:
            raise ValueError(f"sh_rest has {sh_rest.shape[1]} coefficients; expected 0, 3, 8 or 15")
        if n and (binding.min() < 0 or binding.max() >= num_faces):
            raise ValueError(f"binding must index faces in [0, {num_faces})")
        self.num_faces = int(num_faces)
        self.num_vertices = int(num_vertices)
        self.register_buffer("binding", binding.long())
        self.local_means = nn.Parameter(local_means)
        self.local_quats = nn.Parameter(local_quats)
        self.log_scales = nn.Parameter(log_scales)
        self.opacity_logits = nn.Parameter(opacity_logits)
        self.sh0 = nn.Parameter(sh0)
        self.sh_rest = nn.Parameter(sh_rest)
        if vertex_offsets is None:
            vertex_offsets = torch.zeros(num_vertices, 3, dtype=local_means.dtype, device=local_means.device)
        self.vertex_offsets = nn.Parameter(vertex_offsets)

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def num_gaussians(self) -> int:
        return int(self.binding.shape[0])

    @property
    def sh_degree(self) -> int:
        return math.isqrt(self.sh_rest.shape[1] + 1) - 1

    def binding_counter(self) -> Tensor:
        """Number of Gaussians on each triangle ``[F]``."""
        return torch.bincount(self.binding, minlength=self.num_faces)

    # -- world values --------------------------------------------------------------------------

    def opacities(self) -> Tensor:
        return torch.sigmoid(self.opacity_logits)

    def sh(self) -> Tensor:
        return torch.cat([self.sh0, self.sh_rest], dim=1)

    def place(self, vertices: Tensor, faces: Tensor) -> PosedGaussians:
        """World Gaussians on a batch of meshes ``vertices [B, V, 3]`` (already posed). On the
        CPU, compiled kernels do it when numba is installed (``cpu_place``: with a hand-written
        backward when gradients are needed); the PyTorch formulas otherwise (CUDA), which the
        kernels are tested against."""
        unit_quats = self.local_quats / self.local_quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        needs_grad = torch.is_grad_enabled() and (
            vertices.requires_grad or any(p.requires_grad for p in self.parameters()))
        if vertices.device.type == "cpu" and _compiled_place():
            from oneshot_avatar.avatar.cpu_place import place_cpu, place_cpu_grad

            place = place_cpu_grad if needs_grad else place_cpu
            means, quats, world_scales = place(vertices, faces, self.binding, self.local_means,
                                               unit_quats, torch.exp(self.log_scales))
        else:
            frames = triangle_frames(vertices, faces)
            means, quats, world_scales = local_to_world(
                frames, self.binding, self.local_means, unit_quats, torch.exp(self.log_scales))
        batch = vertices.shape[0]
        return PosedGaussians(
            means=means,
            quats=quats,
            scales=world_scales,
            opacities=self.opacities().expand(batch, -1),
            sh=self.sh().expand(batch, -1, -1, -1),
            sh_degree=self.sh_degree,
            vertices=vertices,
        )

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def on_mesh(
        cls,
        vertices: Tensor,  # [V, 3] rest mesh
        faces: Tensor,  # [F, 3]
        count: int,
        *,
        sh_degree: int = 3,
        color: tuple[float, float, float] = (0.5, 0.5, 0.5),
        opacity: float = 0.9,
        seed: int = 0,
    ) -> MeshGaussians:
        """``count`` Gaussians on the surface: at least one per triangle, the rest spread in
        proportion to area, at random barycentric spots, of uniform colour, flat along the
        surface and sized to cover it."""
        counts = _area_weighted_counts(vertices, faces, count)
        binding = torch.repeat_interleave(torch.arange(faces.shape[0], device=faces.device), counts)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        barycentric = _random_barycentric(binding.shape[0], generator).to(vertices)
        corners = vertices[faces[binding]]  # [N, 3, 3]
        points = torch.einsum("nk,nkd->nd", barycentric, corners)
        colors = torch.tensor(color, dtype=vertices.dtype, device=vertices.device).expand(len(points), 3)
        # Exact local coordinates: (u, w) from the barycentric spot (centroid = 0), on the face.
        local_means = torch.stack(
            [barycentric[:, 1] - 1 / 3, barycentric[:, 2] - 1 / 3, torch.zeros_like(barycentric[:, 0])],
            dim=-1,
        )
        return cls._from_surface_points(vertices, faces, binding, points, colors, counts,
                                        sh_degree=sh_degree, opacity=opacity,
                                        local_means=local_means)

    @classmethod
    def from_points(
        cls,
        vertices: Tensor,  # [V, 3] rest mesh
        faces: Tensor,  # [F, 3]
        points: Tensor,  # [M, 3] coloured point sample near the surface (rest pose)
        colors: Tensor,  # [M, 3] RGB in [0, 1]
        *,
        sh_degree: int = 3,
        opacity: float = 0.9,
        chunk: int = 4096,
    ) -> MeshGaussians:
        """Bind each point to its nearest triangle (closest point on the surface); triangles no
        point reached get one Gaussian at their centroid, coloured like their nearest point."""
        binding = _nearest_triangles(vertices, faces, points, chunk)
        counts = torch.bincount(binding, minlength=faces.shape[0])
        empty = torch.nonzero(counts == 0).squeeze(1)
        if len(empty):
            centroids = vertices[faces[empty]].mean(dim=1)
            nearest = torch.cdist(centroids, points).argmin(dim=1)
            binding = torch.cat([binding, empty])
            points = torch.cat([points, centroids])
            colors = torch.cat([colors, colors[nearest]])
            counts = torch.bincount(binding, minlength=faces.shape[0])
        return cls._from_surface_points(vertices, faces, binding, points, colors, counts,
                                        sh_degree=sh_degree, opacity=opacity)

    @classmethod
    def _from_surface_points(cls, vertices, faces, binding, points, colors, counts, *, sh_degree,
                             opacity, local_means=None):
        frames = triangle_frames(vertices, faces)
        scales = frames.scales
        if local_means is None:
            local_means = world_to_local(frames, binding, points)
        areas = triangle_areas(vertices, faces)
        # Each Gaussian covers its share of its triangle's area: sigma ~ half the spacing.
        spacing = torch.sqrt(areas[binding] / counts[binding].clamp_min(1)) / scales[binding]
        in_plane = (0.5 * spacing).clamp_min(1e-4)
        log_scales = torch.log(torch.stack([in_plane, in_plane, 0.2 * in_plane], dim=-1))
        n = binding.shape[0]
        dtype, device = vertices.dtype, vertices.device
        quats = torch.zeros(n, 4, dtype=dtype, device=device)
        quats[:, 0] = 1.0
        logit = math.log(opacity / (1.0 - opacity))
        return cls(
            binding=binding,
            local_means=local_means,
            local_quats=quats,
            log_scales=log_scales,
            opacity_logits=torch.full((n,), logit, dtype=dtype, device=device),
            sh0=rgb_to_sh0(colors.to(dtype))[:, None, :].clone(),
            sh_rest=torch.zeros(n, num_sh_coefficients(sh_degree) - 1, 3, dtype=dtype, device=device),
            num_faces=faces.shape[0],
            num_vertices=vertices.shape[0],
        )


def pose_gaussians(body, gaussians: MeshGaussians, **params) -> PosedGaussians:
    """Pose the body (SMPL-X parameters as for ``BodyModel``, batched over frames) with the
    avatar's mesh offsets, and place the Gaussians on the posed triangles."""
    out = body(**params, vertex_offsets=gaussians.vertex_offsets)
    return gaussians.place(out.vertices, body.faces)


@dataclass(frozen=True)
class FixedPose:
    """A batch of body poses whose only free input is the avatar's mesh offsets.

    Skinning is linear in the rest vertices, and the offsets move the skin, not the joints, so
    ``posed(offsets) = base + rotations @ offsets`` exactly: what training needs for views whose
    SMPL-X parameters never change, without running (and differentiating) the body model every
    step."""

    base: Tensor  # [B, V, 3] posed vertices without offsets
    rotations: Tensor  # [B, V, 3, 3] linear part of each vertex's blended skinning transform

    @classmethod
    @torch.no_grad()
    def of(cls, body, **params) -> FixedPose:
        out = body(**params)
        rotations = torch.einsum("vj,bjxy->bvxy", body.lbs_weights, out.skin_transforms[:, :, :3, :3])
        return cls(out.vertices, rotations)

    @staticmethod
    def cat(poses: list[FixedPose]) -> FixedPose:
        return FixedPose(torch.cat([p.base for p in poses]), torch.cat([p.rotations for p in poses]))

    def vertices(self, offsets: Tensor) -> Tensor:  # [V, 3] -> [B, V, 3]
        return self.base + torch.einsum("bvxy,vy->bvx", self.rotations, offsets)


def pose_gaussians_fixed(pose: FixedPose, gaussians: MeshGaussians, faces: Tensor) -> PosedGaussians:
    """``pose_gaussians`` for poses fixed in advance (``FixedPose.of``): the same Gaussians."""
    return gaussians.place(pose.vertices(gaussians.vertex_offsets), faces)


def _area_weighted_counts(vertices: Tensor, faces: Tensor, count: int) -> Tensor:
    """At least one per triangle; the remainder proportional to area (largest remainders)."""
    num_faces = faces.shape[0]
    if count < num_faces:
        raise ValueError(f"need at least one Gaussian per triangle: count {count} < {num_faces} faces")
    areas = triangle_areas(vertices, faces).double()
    share = areas / areas.sum() * (count - num_faces)
    counts = torch.floor(share).long()
    remainder = count - num_faces - int(counts.sum())
    if remainder > 0:
        order = torch.argsort(share - counts, descending=True, stable=True)
        counts[order[:remainder]] += 1
    return counts + 1


def _random_barycentric(n: int, generator: torch.Generator) -> Tensor:
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    flip = u.sum(dim=1) > 1
    u[flip] = 1 - u[flip]
    return torch.stack([1 - u[:, 0] - u[:, 1], u[:, 0], u[:, 1]], dim=1).float()


def _nearest_triangles(vertices: Tensor, faces: Tensor, points: Tensor, chunk: int) -> Tensor:
    """Index of the triangle closest to each point (exact, among the 16 nearest by centroid)."""
    centroids = vertices[faces].mean(dim=1)
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    result = []
    for start in range(0, len(points), chunk):
        p = points[start : start + chunk]
        candidates = torch.cdist(p, centroids).topk(16, largest=False).indices  # [M, 16]
        flat = candidates.reshape(-1)
        q = closest_point_on_triangles(p.repeat_interleave(16, 0), a[flat], b[flat], c[flat])
        distance = (q - p.repeat_interleave(16, 0)).norm(dim=-1).reshape(-1, 16)
        result.append(candidates.gather(1, distance.argmin(dim=1, keepdim=True)).squeeze(1))
    return torch.cat(result) if result else torch.zeros(0, dtype=torch.long, device=points.device)
