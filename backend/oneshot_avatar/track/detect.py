"""The embedded detector (MediaPipe Holistic) in video mode: landmarks per frame, tracked.

In video mode (``static_image_mode=False``) Holistic finds the person once and then tracks the
body, hands and face from frame to frame (re-detecting when it loses them), which is both
faster and steadier than detecting every frame from scratch. MediaPipe's own landmark filter is
switched off: the clip fit smooths without lag (:mod:`oneshot_avatar.track.fit`). Hands that
Holistic misses are not searched again per frame (the fit bridges them from the neighbouring
frames). The person mask is kept at a quarter of the frame size (for previews and benchmarks).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from oneshot_avatar.detect.holistic import HolisticConfig, HolisticDetector
from oneshot_avatar.fit.landmarks import Landmarks

MASK_FACTOR = 4  # masks are kept at 1/MASK_FACTOR of the frame size


class VideoHolistic(HolisticDetector):
    """:class:`HolisticDetector` with Holistic in video (tracking) mode, one frame at a time.

    A person counts as found with a lower torso visibility than in photos (0.2 instead of 0.5),
    so head-and-shoulders shots, whose hips are below the frame, keep being tracked."""

    def __init__(self, config: HolisticConfig | None = None):
        super().__init__(config or HolisticConfig(min_torso_visibility=0.2))

    input_field = "video"

    def _holistic_options(self) -> dict[str, Any]:
        """Video mode, with MediaPipe's own landmark and mask smoothing off (the clip fit
        smooths without lag)."""
        return {"static_image_mode": False, "smooth_landmarks": False,
                "smooth_segmentation": False, "min_tracking_confidence": 0.5}

    def track(self, rgb: np.ndarray) -> tuple[Landmarks | None, np.ndarray | None]:
        """Landmarks of the tracked person in one frame (uint8 ``[H, W, 3]``, frames in order)
        and the person mask (uint8 0..255 at 1/``MASK_FACTOR`` size), or ``(None, None)`` when
        nobody is in view."""
        import cv2

        height, width = rgb.shape[:2]
        person = self._run(rgb, (0.0, 0.0, float(width), float(height)))
        if person is None:
            return None, None
        segmentation, person.segmentation = person.segmentation, None
        landmarks = self._landmarks(person, (width, height), 1, person.box((width, height)))
        mask = None
        if segmentation is not None:
            small = (max(1, width // MASK_FACTOR), max(1, height // MASK_FACTOR))
            mask = (np.clip(cv2.resize(segmentation, small, interpolation=cv2.INTER_AREA), 0, 1)
                    * 255 + 0.5).astype(np.uint8)
        return replace(landmarks, segmentation=None), mask
