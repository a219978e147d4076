"""Avatar packages and expected posings for the add-on's tests and benchmark, made with the
backend (main venv: torch + oneshot_avatar).

``build_test_package(path, body, count)`` writes a ``.avatar`` with ``count`` Gaussians on the
body's surface (random colours, scales, small offsets and vertex offsets, like a trained
avatar); ``expected_posed_means(path, body, poses)`` poses it with the backend's
``Avatar.pose`` (the reference the Blender rig must match).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from oneshot_avatar.avatar import MeshGaussians
from oneshot_avatar.package import load_avatar, save_avatar

# Named body poses (joint name -> axis-angle, radians) used by the rig tests; "moderate" body
# poses of the kind animation uses.
TEST_POSES: dict[str, dict[str, tuple[float, float, float]]] = {
    "arms_legs": {
        "left_shoulder": (0.0, 0.0, -0.9), "right_shoulder": (0.0, 0.3, 0.8),
        "left_elbow": (0.0, -1.2, 0.0), "right_elbow": (0.0, 0.9, 0.2),
        "left_hip": (-0.7, 0.0, 0.1), "right_hip": (0.4, 0.0, -0.2),
        "left_knee": (1.0, 0.0, 0.0), "right_knee": (0.6, 0.0, 0.0),
    },
    "torso_head": {
        "pelvis": (0.1, 0.6, 0.05), "spine1": (0.25, 0.0, 0.0), "spine2": (0.0, 0.3, 0.1),
        "spine3": (0.1, 0.0, -0.15), "neck": (0.2, 0.2, 0.0), "head": (-0.2, 0.4, 0.1),
        "left_wrist": (0.3, 0.4, 0.2), "right_index1": (0.0, 0.0, -0.6),
    },
}
TEST_TRANSL: dict[str, tuple[float, float, float]] = {"arms_legs": (0.0, 0.0, 0.0),
                                                      "torso_head": (0.3, -0.1, 0.5)}


def build_test_package(path: str | Path, body, count: int = 2000, *, seed: int = 0,
                       sh_degree: int = 1) -> Path:
    """Write a ``.avatar`` of ``count`` Gaussians on ``body`` (betas set from ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    betas = 0.5 * torch.randn(body.num_betas, generator=generator)
    with torch.no_grad():
        rest = body(betas=betas[None]).vertices[0]
    num_faces = int(body.faces.shape[0])
    gaussians = MeshGaussians.on_mesh(rest, body.faces, max(count, num_faces),
                                      sh_degree=sh_degree, seed=seed)
    if count < num_faces:  # a random subset (packages need not cover every triangle)
        keep = torch.randperm(num_faces, generator=generator)[:count].sort().values
        gaussians = MeshGaussians(
            binding=gaussians.binding[keep], local_means=gaussians.local_means[keep].detach(),
            local_quats=gaussians.local_quats[keep].detach(),
            log_scales=gaussians.log_scales[keep].detach(),
            opacity_logits=gaussians.opacity_logits[keep].detach(),
            sh0=gaussians.sh0[keep].detach(), sh_rest=gaussians.sh_rest[keep].detach(),
            num_faces=num_faces, num_vertices=gaussians.num_vertices,
            vertex_offsets=gaussians.vertex_offsets.detach())
    with torch.no_grad():
        gaussians.sh0.add_(0.8 * torch.randn(gaussians.sh0.shape, generator=generator))
        gaussians.opacity_logits.add_(torch.randn(gaussians.opacity_logits.shape,
                                                  generator=generator))
        gaussians.local_means.add_(0.002 * torch.randn(gaussians.local_means.shape,
                                                       generator=generator))
        gaussians.vertex_offsets.add_(0.002 * torch.randn(gaussians.vertex_offsets.shape,
                                                          generator=generator))
    return save_avatar(Path(path), gaussians, body, betas)


def pose_params(pose: dict[str, tuple[float, float, float]],
                transl: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> dict[str, torch.Tensor]:
    """SMPL-X keyword arguments (batch of one) for a named-joint pose."""
    from oneshot_avatar.body.smplx_layout import JOINT_INDEX, POSE_PARAM_JOINTS

    full = torch.zeros(55, 3)
    for name, value in pose.items():
        full[JOINT_INDEX[name]] = torch.tensor(value)
    params = {name: full[first:first + n].reshape(1, n, 3) if n > 1 else full[first][None]
              for name, (first, n) in POSE_PARAM_JOINTS.items()}
    params["transl"] = torch.tensor(transl, dtype=torch.float32)[None]
    return params


def expected_posing_arrays(path: str | Path, body) -> dict[str, np.ndarray]:
    """Arrays for the Blender-side rig test: per pose name, ``pose_<name>`` (55, 3) axis-angle,
    ``transl_<name>`` (3,) and ``means_<name>`` (N, 3) (the backend's posed centres)."""
    from oneshot_avatar.body.smplx_layout import JOINT_INDEX

    out = {}
    for name, means in expected_posed_means(path, body).items():
        full = np.zeros((55, 3))
        for joint, value in TEST_POSES[name].items():
            full[JOINT_INDEX[joint]] = value
        out[f"pose_{name}"] = full
        out[f"transl_{name}"] = np.array(TEST_TRANSL.get(name, (0.0, 0.0, 0.0)))
        out[f"means_{name}"] = means
    return out


def expected_posed_means(path: str | Path, body,
                         poses: dict[str, dict[str, tuple[float, float, float]]] = TEST_POSES,
                         transl: dict[str, tuple[float, float, float]] = TEST_TRANSL,
                         ) -> dict[str, np.ndarray]:
    """The backend's posed Gaussian centres ``(N, 3)`` (SMPL-X world, metres) per pose name."""
    avatar = load_avatar(path, body=body)
    out = {}
    with torch.no_grad():
        for name, pose in poses.items():
            posed = avatar.pose(body, **pose_params(pose, transl.get(name, (0.0, 0.0, 0.0))))
            out[name] = posed.means[0].numpy().astype(np.float64)
    return out


FACE_POSE = {"neck": (0.1, 0.3, 0.0), "head": (0.2, 0.0, 0.1)}
FACE_UNITS = {"jawOpen": 1.0, "mouthSmileLeft": 0.7, "eyeBlinkRight": 0.5}


def expected_face_arrays(path: str | Path, body) -> dict[str, np.ndarray]:
    """The backend's posed centres with face units on and the head turned, for the Blender
    face test: ``face_pose`` (55, 3), ``face_expression`` (E,), ``face_means`` (N, 3)."""
    from oneshot_avatar.body.smplx_layout import JOINT_INDEX

    names = list(body.expression_names)
    expression = np.zeros(len(names), np.float32)
    for name, value in FACE_UNITS.items():
        expression[names.index(name)] = value
    avatar = load_avatar(path, body=body)
    with torch.no_grad():
        posed = avatar.pose(body, **pose_params(FACE_POSE),
                            expression=torch.as_tensor(expression)[None])
    full = np.zeros((55, 3))
    for joint, value in FACE_POSE.items():
        full[JOINT_INDEX[joint]] = value
    return {"face_pose": full, "face_expression": expression,
            "face_means": posed.means[0].numpy().astype(np.float64)}
