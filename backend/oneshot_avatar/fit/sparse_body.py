"""The body posed only where keypoints look: the 55 joints and a few landmark vertices.

Same maths as :class:`oneshot_avatar.body.BodyModel` (shape and expression blend shapes,
pose-corrective blend shapes when the model has them, ``smplx``'s ``batch_rigid_transform``,
linear blend skinning), restricted to ``M`` vertices, so a keypoint fit step costs well under a
millisecond of arithmetic instead of posing the whole mesh.
"""

from __future__ import annotations

import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues
from torch import Tensor, nn

from oneshot_avatar.body.smplx_layout import NUM_JOINTS


class SparseBody(nn.Module):
    """Joints ``[B, 55, 3]`` and the vertices ``vertex_ids`` ``[B, M, 3]`` of a posed body,
    followed by ``P`` surface points when ``surface`` is given.

    A surface point is a blend of a triangle's vertices (``surface = (ids [P, 3], weights [P,
    3])``): its rest position, blend shapes and pose correctives blend exactly; its skinning
    weights are the blend of the corners' (linear blend skinning of the blended point, which
    differs from blending the skinned corners by far less than a millimetre within one small
    triangle). One row per point instead of three vertices keeps dense landmark sets cheap.
    """

    def __init__(self, body, vertex_ids: list[int] | tuple[int, ...],
                 surface: tuple[Tensor, Tensor] | None = None):
        super().__init__()
        self.body = body
        ids = torch.as_tensor(list(vertex_ids), dtype=torch.long, device=body.device)
        if surface is not None and len(surface[0]):
            corner_ids = torch.as_tensor(surface[0], dtype=torch.long, device=body.device)
            blend = torch.as_tensor(surface[1], dtype=body.dtype, device=body.device)
            count = len(ids)
            # Rows of a [M + P, V] matrix mixing the template's vertices.
            mix = torch.zeros(count + len(corner_ids), body.v_template.shape[0],
                              dtype=body.dtype, device=body.device)
            mix[torch.arange(count, device=body.device), ids] = 1.0
            rows = torch.arange(count, count + len(corner_ids), device=body.device)
            for k in range(corner_ids.shape[1]):
                mix.index_put_((rows, corner_ids[:, k]), blend[:, k], accumulate=True)
            mix = mix.to_sparse()
        else:
            mix = None
        smplx_model = body.smplx
        num_expr = len(body.expression_names)
        dirs = [smplx_model.shapedirs]
        if num_expr:
            dirs.append(smplx_model.expr_dirs[..., :num_expr])
        all_dirs = torch.cat(dirs, dim=-1)  # [V, 3, C]
        regressor = smplx_model.J_regressor  # [55, V]
        self.register_buffer("joint_template", regressor @ body.v_template, persistent=False)
        self.register_buffer("joint_dirs", torch.einsum("jv,vdc->jdc", regressor, all_dirs),
                             persistent=False)
        if mix is None:
            def pick(values: Tensor) -> Tensor:  # [V, ...] -> [M, ...]
                return values[ids]
        else:
            def pick(values: Tensor) -> Tensor:  # [V, ...] -> [M + P, ...]
                flat = values.reshape(values.shape[0], -1)
                return torch.sparse.mm(mix, flat).reshape(-1, *values.shape[1:])
        self.register_buffer("vertex_template", pick(body.v_template), persistent=False)
        self.register_buffer("vertex_dirs", pick(all_dirs), persistent=False)
        self.register_buffer("weights", pick(body.lbs_weights), persistent=False)
        self.has_posedirs = bool(body._has_posedirs)
        if self.has_posedirs:
            posedirs = smplx_model.posedirs.reshape(-1, body.v_template.shape[0], 3)
            picked = pick(posedirs.permute(1, 0, 2))  # [M + P, D, 3]
            self.register_buffer("posedirs", picked.permute(1, 0, 2).reshape(
                posedirs.shape[0], -1), persistent=False)
        self.num_vertices = self.vertex_template.shape[0]

    def forward(self, **params: Tensor | None) -> tuple[Tensor, Tensor]:
        """Joints ``[B, 55, 3]`` and selected vertices ``[B, M, 3]`` for SMPL-X parameters named
        as for ``BodyModel`` (missing ones are zero)."""
        body = self.body
        batch = body._batch(params)
        coefficients = [body._param(params, "betas", batch, body.num_betas)]
        if len(body.expression_names):
            coefficients.append(body._param(params, "expression", batch,
                                             len(body.expression_names)))
        coefficient = torch.cat(coefficients, dim=1)  # [B, C]
        rest_joints = self.joint_template + torch.einsum("jdc,bc->bjd", self.joint_dirs,
                                                         coefficient)
        rest_vertices = self.vertex_template + torch.einsum("mdc,bc->bmd", self.vertex_dirs,
                                                            coefficient)
        pose = body.full_pose(params, batch)
        rotations = batch_rodrigues(pose.reshape(-1, 3)).reshape(batch, NUM_JOINTS, 3, 3)
        if self.has_posedirs:
            eye = torch.eye(3, device=pose.device, dtype=pose.dtype)
            feature = (rotations[:, 1:] - eye).reshape(batch, -1)
            rest_vertices = rest_vertices + (feature @ self.posedirs).reshape(batch, -1, 3)
        joints, skin = batch_rigid_transform(rotations, rest_joints, body.parents,
                                             dtype=pose.dtype)
        transl = body._param(params, "transl", batch, 3)
        blended = torch.einsum("mj,bjxy->bmxy", self.weights, skin[:, :, :3, :])
        vertices = torch.einsum("bmxy,bmy->bmx", blended[..., :3], rest_vertices)
        vertices = vertices + blended[..., 3]
        return joints + transl[:, None], vertices + transl[:, None]
