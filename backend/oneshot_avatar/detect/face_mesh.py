"""MediaPipe FaceMesh alone: the 478 face points of the most prominent face. The face-mesh
correspondences of a body (``fit.face_correspondence``) are found with it on the project's own
renders of the body's face, where a whole-body detector would find no body."""

from __future__ import annotations

import numpy as np


def detect_face_mesh(rgb: np.ndarray) -> np.ndarray | None:
    """The 478 face-mesh points ``[478, 3]`` (pixels; z relative, scaled like x) of the most
    prominent face in ``rgb`` (uint8, or float in [0, 1], ``[H, W, 3]``), or None when no face
    is found (FaceMesh in static image mode, irises refined)."""
    import mediapipe as mp

    image = np.asarray(rgb)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    image = np.ascontiguousarray(image[..., :3])
    height, width = image.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         max_num_faces=1) as mesh:
        results = mesh.process(image)
    if not results.multi_face_landmarks:
        return None
    return np.array([[p.x * width, p.y * height, p.z * width]
                     for p in results.multi_face_landmarks[0].landmark])
