"""Fitting the body to the photo: keypoints (files or an ONNX detector), landmark targets on
the body, an initial pose, and the SMPL-X + camera fit with an optional silhouette term."""

from oneshot_avatar._lazy import lazy_exports

# submodule -> the names it exports; imported on first use (reading keypoints or landmarks, as
# the server does at start, does not load the fitter and scipy).
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".keypoints": ("KEYPOINT_NAMES", "Keypoints", "load_keypoints"),
    ".landmarks": ("MEDIAPIPE_POSE_NAMES", "Landmarks"),
    ".fitter": ("FitConfig", "FitResult", "fit_body"),
    ".targets": ("KeypointTarget", "keypoint_targets"),
    ".detector": ("OnnxKeypointDetector",),
    ".init_params": ("load_init",),
    ".result": ("load_fit", "save_fit"),
    ".silhouette": ("render_silhouette", "silhouette_gaussians"),
})
