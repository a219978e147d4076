"""Fitting the body to the photo: keypoints (files or an ONNX detector), landmark targets on
the body, an initial pose, and the SMPL-X + camera fit with an optional silhouette term."""

from oneshot_avatar._lazy import lazy_exports

# name -> the module it lives in; imported on first use (reading keypoints or landmarks, as the
# server does at start, does not load the fitter and scipy).
_EXPORTS = {
    "KEYPOINT_NAMES": "oneshot_avatar.fit.keypoints",
    "Keypoints": "oneshot_avatar.fit.keypoints",
    "load_keypoints": "oneshot_avatar.fit.keypoints",
    "MEDIAPIPE_POSE_NAMES": "oneshot_avatar.fit.landmarks",
    "Landmarks": "oneshot_avatar.fit.landmarks",
    "FitConfig": "oneshot_avatar.fit.fitter",
    "FitResult": "oneshot_avatar.fit.fitter",
    "fit_body": "oneshot_avatar.fit.fitter",
    "KeypointTarget": "oneshot_avatar.fit.targets",
    "keypoint_targets": "oneshot_avatar.fit.targets",
    "OnnxKeypointDetector": "oneshot_avatar.fit.detector",
    "load_init": "oneshot_avatar.fit.init_params",
    "load_fit": "oneshot_avatar.fit.result",
    "save_fit": "oneshot_avatar.fit.result",
    "render_silhouette": "oneshot_avatar.fit.silhouette",
    "silhouette_gaussians": "oneshot_avatar.fit.silhouette",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [*_EXPORTS]
