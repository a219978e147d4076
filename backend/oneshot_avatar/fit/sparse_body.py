"""The body posed only where keypoints look: the 55 joints and a few landmark vertices.

The same functions of :mod:`oneshot_avatar.body.lbs` as :class:`oneshot_avatar.body.BodyModel`
(shape and expression blend shapes, pose-corrective blend shapes when the model has them, the
rigid transform chain, linear blend skinning), applied to ``M`` vertices, so a keypoint fit step
costs well under a millisecond of arithmetic instead of posing the whole mesh.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from oneshot_avatar.body import lbs
from oneshot_avatar.body.smplx_layout import PARENTS


class SparseBody(nn.Module):
    """Joints ``[B, 55, 3]`` and the vertices ``vertex_ids`` ``[B, M, 3]`` of a posed body,
    followed by ``P`` surface points when ``surface`` is given, then ``A`` anchored points when
    ``anchored`` is given.

    A surface point is a blend of a triangle's vertices (``surface = (ids [P, 3], weights [P,
    3])``): its rest position, blend shapes and pose correctives blend exactly; its skinning
    weights are the blend of the corners' (linear blend skinning of the blended point, which
    differs from blending the skinned corners by far less than a millimetre within one small
    triangle). One row per point instead of three vertices keeps dense landmark sets cheap.

    An anchored point is a joint moved by a fixed offset that turns with a bone (``anchored =
    (joint ids [A], frame joint ids [A], offsets [A, 3])``, offsets in metres in the rest pose's
    axes): posed, it is the joint plus the offset rotated by the frame joint's world rotation.
    With the frame the joint itself or its parent this is exactly where the bone carries a
    point rigidly attached to it (a detector's idea of "the hip", a little off SMPL-X's).
    """

    def __init__(self, body, vertex_ids: list[int] | tuple[int, ...],
                 surface: tuple[Tensor, Tensor] | None = None,
                 anchored: tuple[Tensor, Tensor, Tensor] | None = None):
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
        all_dirs = body.blend_directions  # [V, 3, C]
        regressor = body.joint_regressor  # [55, V]
        self.register_buffer("joint_template", lbs.regress_joints(regressor, body.v_template),
                             persistent=False)
        self.register_buffer("joint_dirs", lbs.regress_directions(regressor, all_dirs),
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
        posedirs = body.pose_directions  # [D, V * 3] or None
        self.has_posedirs = posedirs is not None
        if self.has_posedirs:
            posedirs = posedirs.reshape(-1, body.v_template.shape[0], 3)
            picked = pick(posedirs.permute(1, 0, 2))  # [M + P, D, 3]
            self.register_buffer("posedirs", picked.permute(1, 0, 2).reshape(
                posedirs.shape[0], -1), persistent=False)
        self.num_vertices = self.vertex_template.shape[0]
        self.has_anchored = anchored is not None and len(anchored[0]) > 0
        if self.has_anchored:
            joint, frame, offset = anchored
            self.register_buffer("anchor_joints", torch.as_tensor(
                joint, dtype=torch.long, device=body.device).reshape(-1), persistent=False)
            self.register_buffer("anchor_frames", torch.as_tensor(
                frame, dtype=torch.long, device=body.device).reshape(-1), persistent=False)
            self.register_buffer("anchor_offsets", torch.as_tensor(
                offset, dtype=body.dtype, device=body.device).reshape(-1, 3), persistent=False)
            self.num_vertices += len(self.anchor_joints)

    def forward(self, **params: Tensor | None) -> tuple[Tensor, Tensor]:
        """Joints ``[B, 55, 3]`` and selected vertices ``[B, M, 3]`` for SMPL-X parameters named
        as for ``BodyModel`` (missing ones are zero)."""
        body = self.body
        batch = body.batch_size(params)
        coefficient = body.blend_coefficients(params, batch)  # [B, C]
        rest_joints = self.joint_template + lbs.blend_shapes(coefficient, self.joint_dirs)
        rest_vertices = self.vertex_template + lbs.blend_shapes(coefficient, self.vertex_dirs)
        rotations = body.joint_rotations(params, batch)
        if self.has_posedirs:
            rest_vertices = rest_vertices + lbs.pose_correctives(rotations, self.posedirs)
        joints, skin = lbs.rigid_transforms(rotations, rest_joints, PARENTS)
        vertices = lbs.skin_points(self.weights, skin, rest_vertices)
        if self.has_anchored:
            turn = skin[:, self.anchor_frames, :3, :3]  # [B, A, 3, 3] world rotations
            anchored = joints[:, self.anchor_joints] + (turn @ self.anchor_offsets[..., None])[..., 0]
            vertices = torch.cat([vertices, anchored], dim=1)
        transl = body.parameter(params, "transl", batch)
        return joints + transl[:, None], vertices + transl[:, None]
