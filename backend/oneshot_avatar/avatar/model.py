"""``Avatar``: a loaded avatar -- Gaussians on the mesh, the body shape and the metadata of the
package it came from (read and written by :mod:`oneshot_avatar.package`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from oneshot_avatar.avatar.gaussians import MeshGaussians, PosedGaussians, pose_gaussians
from oneshot_avatar.errors import UserError


def check_body_matches(meta: dict, body, what: str = "avatar") -> None:
    """Fail clearly when the avatar (its package metadata ``meta``) was made with another body
    model than ``body``."""
    expected = meta["body_model"]
    if expected["sha256"] != body.info.sha256:
        raise UserError(
            f"this {what} was made with body model {expected['id']} (sha256 "
            f"{expected['sha256'][:12]}…), but the loaded body model is {body.info.model_id} "
            f"(sha256 {body.info.sha256[:12]}…); pass --body-model with the model it was made "
            "with (or unset SMPLX_MODEL_PATH for the open default body)",
            field="body_model.sha256",
        )


@dataclass
class Avatar:
    """A loaded avatar: Gaussians on the mesh, the body shape, and the package's metadata."""

    gaussians: MeshGaussians
    betas: torch.Tensor  # [num_betas]
    meta: dict[str, Any]
    rig: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def expression_names(self) -> list[str]:
        return list(self.meta["body_model"]["expression_names"])

    def pose(self, body, **params) -> PosedGaussians:
        """Posed Gaussians for SMPL-X parameters batched over frames (betas are the avatar's)."""
        check_body_matches(self.meta, body, "avatar")
        params = dict(params)
        params.pop("betas", None)
        return pose_gaussians(body, self.gaussians, betas=self.betas[None].to(body.device), **params)

    def to(self, device) -> Avatar:
        self.gaussians.to(device)
        self.betas = self.betas.to(device)
        return self
