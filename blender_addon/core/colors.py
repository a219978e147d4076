"""Colour spaces between Blender and the backend.

Blender's colour properties and float colour attributes hold *scene-linear* values; the
backend's renders, its ``background`` field and the package's splat colours are *sRGB* (display)
values in 0..1. These are the standard sRGB transfer functions (IEC 61966-2-1), elementwise.
"""

from __future__ import annotations

import numpy as np


def srgb_to_linear(values) -> np.ndarray:
    """sRGB-encoded 0..1 -> scene-linear (clipped to 0..1 first)."""
    c = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values) -> np.ndarray:
    """Scene-linear -> sRGB-encoded 0..1 (clipped to 0..1 first)."""
    c = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1.0 / 2.4) - 0.055)
