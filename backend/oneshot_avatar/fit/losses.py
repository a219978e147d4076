"""Loss terms of the body fit: robust reprojection, pose priors, silhouette overlap.

No learned pose prior is available without weights, so the pose prior is quadratic (per-joint
weighted) plus hinge penalties on bends that joints cannot make (knees and elbows bending
backwards, fingers bending far back). Signs are for SMPL-X's rest pose (arms straight out
along +-X, palms down, legs down, the body facing +Z).
"""

from __future__ import annotations

import torch
from torch import Tensor

from oneshot_avatar.body.smplx_layout import JOINT_INDEX


def gmof(residual: Tensor, sigma: float) -> Tensor:
    """Geman-McClure robust penalty ``sigma^2 r^2 / (sigma^2 + r^2)`` of the squared norm of
    ``residual [..., D]`` (the last dimension): ~``r^2`` for small errors, at most ``sigma^2``."""
    squared = residual.pow(2).sum(dim=-1)
    return sigma**2 * squared / (sigma**2 + squared)


def body_joint_prior_weights(device=None, dtype=torch.float32) -> Tensor:  # [21]
    """Relative quadratic prior weight of each ``body_pose`` joint: the spine and collars are
    stiffer so that arm motion goes into the shoulders and the torso stays upright unless the
    keypoints insist; neck, head and knees are held a little more, since small systematic
    offsets between annotated and model landmarks (ears, hips) otherwise bend them."""
    weights = torch.ones(21, device=device, dtype=dtype)
    for name, weight in (("spine1", 3.0), ("spine2", 3.0), ("spine3", 3.0),
                         ("left_collar", 4.0), ("right_collar", 4.0), ("neck", 3.0),
                         ("head", 2.0), ("left_knee", 2.0), ("right_knee", 2.0),
                         ("left_foot", 2.0), ("right_foot", 2.0)):
        weights[JOINT_INDEX[name] - 1] = weight
    return weights


def _body_row(name: str) -> int:
    return JOINT_INDEX[name] - 1  # body_pose row of a joint


# (body_pose row, axis, sign): the bend is impossible when sign * angle > 0.
_IMPOSSIBLE_BENDS = (
    (_body_row("left_knee"), 0, -1.0),  # knees flex with +x (the shin swings back)
    (_body_row("right_knee"), 0, -1.0),
    (_body_row("left_elbow"), 1, 1.0),  # the left forearm flexes forward with -y
    (_body_row("right_elbow"), 1, -1.0),  # the right one with +y
)
# Knees and elbows are hinges: their other axes get this much extra stiffness.
_HINGES = ((_body_row("left_knee"), (1, 2)), (_body_row("right_knee"), (1, 2)),
           (_body_row("left_elbow"), (0, 2)), (_body_row("right_elbow"), (0, 2)))
FINGER_HYPEREXTENSION = 0.15  # radians a finger may bend backwards before it is penalised


def bend_penalty(body_pose: Tensor) -> Tensor:  # [B, 21, 3] -> [B]
    """Squared angle of knees/elbows bent the impossible way."""
    total = body_pose.new_zeros(body_pose.shape[0])
    for row, axis, sign in _IMPOSSIBLE_BENDS:
        total = total + torch.relu(sign * body_pose[:, row, axis]).pow(2)
    return total


def hinge_penalty(body_pose: Tensor) -> Tensor:  # [B, 21, 3] -> [B]
    """Squared rotation of knees and elbows about axes other than their hinge axis."""
    total = body_pose.new_zeros(body_pose.shape[0])
    for row, axes in _HINGES:
        total = total + body_pose[:, row, list(axes)].pow(2).sum(dim=-1)
    return total


# Rows of the four fingers' middle and end joints (hinges): index, middle, pinky, ring 1..3
# are rows 0..11 (thumb 12..14); the first joint of each finger (rows 0, 3, 6, 9) also spreads.
_FINGER_HINGES = [i for i in range(12) if i % 3]
_FINGER_BASES = [i for i in range(12) if i % 3 == 0]


def finger_penalty(hand_pose: Tensor, side: str) -> Tensor:  # [B, 15, 3] -> [B]
    """Fingers (not thumbs) curl towards the palm: about -z on the left hand, +z on the right.
    Bending back beyond ``FINGER_HYPEREXTENSION`` is penalised quadratically, and so is any
    turn of a finger's middle and end joints off their hinge (x, y) or of its first joint
    about the finger's own axis (x)."""
    sign = 1.0 if side == "left" else -1.0
    angle = sign * hand_pose[:, :12, 2]
    total = torch.relu(angle - FINGER_HYPEREXTENSION).pow(2).sum(dim=-1)
    total = total + hand_pose[:, _FINGER_HINGES, :2].pow(2).sum(dim=(-1, -2))
    return total + hand_pose[:, _FINGER_BASES, 0].pow(2).sum(dim=-1)


def soft_iou_loss(alpha: Tensor, mask: Tensor) -> Tensor:
    """``1 - soft IoU`` of a rendered alpha and a target mask (same shape, values in [0, 1])."""
    intersection = (alpha * mask).sum()
    union = (alpha + mask - alpha * mask).sum().clamp_min(1e-6)
    return 1.0 - intersection / union


def mask_iou(alpha: Tensor, mask: Tensor, threshold: float = 0.5) -> float:
    """IoU of two masks binarised at ``threshold``."""
    a = alpha > threshold
    m = mask > threshold
    union = (a | m).sum().item()
    return float((a & m).sum().item() / union) if union else 1.0
