"""Landmark detectors that need no user-supplied weights: the embedded MediaPipe Holistic
plug-in (:class:`HolisticDetector`), which gives :class:`~oneshot_avatar.fit.Landmarks`."""

from oneshot_avatar.detect.face68 import MEDIAPIPE_TO_FACE70, MEDIAPIPE_TO_IBUG68, face70_from_mesh
from oneshot_avatar.detect.holistic import (
    DETECTOR_NAME,
    INSTALL_COMMAND,
    MEDIAPIPE_DISTRIBUTION,
    MEDIAPIPE_VERSION,
    DetectorUnavailable,
    HolisticConfig,
    HolisticDetector,
    NoPersonError,
    mediapipe_problem,
)

__all__ = [
    "DETECTOR_NAME", "INSTALL_COMMAND", "MEDIAPIPE_DISTRIBUTION", "MEDIAPIPE_TO_FACE70",
    "MEDIAPIPE_TO_IBUG68", "MEDIAPIPE_VERSION", "DetectorUnavailable", "HolisticConfig",
    "HolisticDetector", "NoPersonError", "face70_from_mesh", "mediapipe_problem",
]
