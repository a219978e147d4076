"""Regularisers of the mesh offsets and of the Gaussians relative to their triangles.

Mesh terms act on the learned ``vertex_offsets [V, 3]`` (metres) and on the offset rest mesh;
Gaussian terms act on local coordinates, which are already relative to the parent triangle
(see :mod:`oneshot_avatar.avatar.binding`): ``(u, w)`` place the mean in the triangle's plane
(centroid = 0; barycentric ``(1/3 - u - w, 1/3 + u, 1/3 + w)``), ``d`` is the offset along the
normal and local scales are world scales divided by the triangle's mean edge length.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from oneshot_avatar.avatar.binding import barycentric_from_local
from oneshot_avatar.train.losses import compiled_losses

if TYPE_CHECKING:
    from oneshot_avatar.train.cpu_losses import MeshIndex


@dataclass(frozen=True)
class MeshTopology:
    """Edges and face adjacency of a triangle mesh, computed once."""

    edges: Tensor  # [E, 2] long, unique undirected edges (i < j)
    degree: Tensor  # [V] float, number of neighbours per vertex
    face_pairs: Tensor  # [P, 2] long, faces sharing an edge (consecutive faces around it)
    num_vertices: int
    faces: Tensor | None = None  # [F, 3] the faces it was made from

    @classmethod
    def from_faces(cls, faces: Tensor, num_vertices: int) -> MeshTopology:
        faces = faces.long()
        directed = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # [3F, 2]
        undirected = torch.sort(directed, dim=1).values
        key = undirected[:, 0] * num_vertices + undirected[:, 1]
        unique_keys, inverse = torch.unique(key, return_inverse=True)
        edges = torch.stack([unique_keys // num_vertices, unique_keys % num_vertices], dim=1)
        degree = torch.bincount(edges.reshape(-1), minlength=num_vertices).to(torch.float32)
        # Faces around each edge: sort the 3F face-edge slots by edge, pair neighbours in a run.
        face_of_slot = torch.arange(faces.shape[0], device=faces.device).repeat(3)
        order = torch.argsort(inverse, stable=True)
        sorted_edges, sorted_faces = inverse[order], face_of_slot[order]
        same = sorted_edges[1:] == sorted_edges[:-1]
        face_pairs = torch.stack([sorted_faces[:-1][same], sorted_faces[1:][same]], dim=1)
        return cls(edges=edges, degree=degree, face_pairs=face_pairs, num_vertices=num_vertices,
                   faces=faces)

    def to(self, device: torch.device | str) -> MeshTopology:
        return MeshTopology(self.edges.to(device), self.degree.to(device),
                            self.face_pairs.to(device), self.num_vertices,
                            None if self.faces is None else self.faces.to(device))

    @functools.cached_property
    def index(self) -> MeshIndex:
        """The adjacency as CSR arrays for the compiled CPU regularisers, built on first use."""
        from oneshot_avatar.train.cpu_losses import MeshIndex

        if self.faces is None:
            raise ValueError("this topology was made without its faces (MeshTopology.from_faces "
                             "keeps them)")
        return MeshIndex.build(self.faces, self.edges, self.face_pairs, self.num_vertices)

    def compiled_for(self, values: Tensor, faces: Tensor | None = None) -> bool:
        """Whether the compiled CPU terms apply: CPU tensors, numba installed and, for a face
        term, the faces this topology was made from."""
        if values.device.type != "cpu" or self.edges.device.type != "cpu" or not compiled_losses():
            return False
        if faces is None:
            return True
        return self.faces is not None and (faces is self.faces or (
            faces.shape == self.faces.shape and bool(torch.equal(faces.cpu(), self.faces.cpu()))))


def uniform_laplacian(values: Tensor, topology: MeshTopology) -> Tensor:
    """``L(x)_i = x_i - mean of x over i's neighbours`` for ``values [V, D]``; isolated
    vertices get 0."""
    i, j = topology.edges[:, 0], topology.edges[:, 1]
    neighbour_sum = torch.zeros_like(values)
    neighbour_sum.index_add_(0, i, values[j])
    neighbour_sum.index_add_(0, j, values[i])
    degree = topology.degree.to(values)[:, None]
    connected = degree > 0
    mean = neighbour_sum / degree.clamp_min(1.0)
    return torch.where(connected, values - mean, torch.zeros_like(values))


def laplacian_loss(offsets: Tensor, topology: MeshTopology) -> Tensor:
    """Mean over vertices of ``|L(offsets)_i|²`` (m²): 0 for any constant offset field. On the
    CPU with numba its compiled twin (``cpu_losses``) computes it."""
    if topology.compiled_for(offsets):
        from oneshot_avatar.train.cpu_losses import laplacian_loss_cpu

        return laplacian_loss_cpu(offsets, topology.index)
    return uniform_laplacian(offsets, topology).pow(2).sum(dim=-1).mean()


def offset_magnitude_loss(offsets: Tensor) -> Tensor:
    """Mean over vertices of ``|offset_i|²`` (m²)."""
    return offsets.pow(2).sum(dim=-1).mean()


def face_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Unit normals ``[F, 3]`` of a mesh ``vertices [V, 3]`` (counter-clockwise = front)."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    n = torch.cross(v1 - v0, v2 - v0, dim=-1)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def normal_consistency_loss(vertices: Tensor, faces: Tensor, topology: MeshTopology) -> Tensor:
    """Mean over pairs of adjacent faces of ``1 - cos(angle between their normals)``; 0 for a
    flat mesh. On a curved body it is not 0, and its gradient smooths creases: use a small
    weight and let the photo loss decide where detail is. On the CPU with numba its compiled
    twin (``cpu_losses``) computes it."""
    if topology.compiled_for(vertices, faces):
        from oneshot_avatar.train.cpu_losses import normal_consistency_loss_cpu

        return normal_consistency_loss_cpu(vertices, topology.index)
    return normal_consistency_torch(vertices, faces, topology)


def normal_consistency_torch(vertices: Tensor, faces: Tensor, topology: MeshTopology) -> Tensor:
    """``normal_consistency_loss`` by PyTorch's operations (any device; the compiled one's twin)."""
    normals = face_normals(vertices, faces)
    a, b = normals[topology.face_pairs[:, 0]], normals[topology.face_pairs[:, 1]]
    return (1.0 - (a * b).sum(dim=-1)).mean()


def position_loss(local_means: Tensor, normal_tolerance: float = 0.0) -> Tensor:
    """Mean over Gaussians of ``max(|d| - tol, 0) + Σ_k max(-b_k, 0)``: the distance from the
    triangle's plane beyond ``normal_tolerance`` plus how far the in-plane spot lies outside
    the triangle (negative barycentric coordinates), both in triangle units."""
    beyond = (local_means[:, 2].abs() - normal_tolerance).clamp_min(0.0)
    outside = (-barycentric_from_local(local_means)).clamp_min(0.0).sum(dim=-1)
    return (beyond + outside).mean()


def scale_loss(log_scales: Tensor, tolerance: float) -> Tensor:
    """Mean over Gaussians of ``max(largest local scale - tolerance, 0)``: Gaussians larger
    than ``tolerance`` times their triangle's mean edge length cost in proportion."""
    return (torch.exp(log_scales).amax(dim=-1) - tolerance).clamp_min(0.0).mean()
