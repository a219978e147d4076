"""Fitting the body to the photo: keypoints (files or an ONNX detector), landmark targets on
the body, an initial pose, and the SMPL-X + camera fit with an optional silhouette term."""

from oneshot_avatar.fit.detector import OnnxKeypointDetector
from oneshot_avatar.fit.fitter import FitConfig, FitResult, fit_body
from oneshot_avatar.fit.init_params import load_init
from oneshot_avatar.fit.keypoints import KEYPOINT_NAMES, Keypoints, load_keypoints
from oneshot_avatar.fit.landmarks import MEDIAPIPE_POSE_NAMES, Landmarks
from oneshot_avatar.fit.result import load_fit, save_fit
from oneshot_avatar.fit.silhouette import render_silhouette, silhouette_gaussians
from oneshot_avatar.fit.targets import KeypointTarget, keypoint_targets

__all__ = [
    "KEYPOINT_NAMES",
    "MEDIAPIPE_POSE_NAMES",
    "FitConfig",
    "FitResult",
    "KeypointTarget",
    "Keypoints",
    "Landmarks",
    "OnnxKeypointDetector",
    "fit_body",
    "keypoint_targets",
    "load_fit",
    "load_init",
    "load_keypoints",
    "render_silhouette",
    "save_fit",
    "silhouette_gaussians",
]
