"""Colour spaces between Blender (scene-linear) and the backend (sRGB), and message counts."""

from __future__ import annotations

import numpy as np
from blender_addon.core.colors import linear_to_srgb, srgb_to_linear
from blender_addon.core.jobs import count_text


def test_blender_swatch_colour_becomes_the_srgb_the_backend_paints():
    """Issue 17: linear (0.2, 0.3, 0.4) was sent as if sRGB (PNG 51, 77, 102); the swatch
    shows sRGB (124, 149, 170)."""
    srgb = linear_to_srgb([0.2, 0.3, 0.4])
    np.testing.assert_array_equal(np.round(srgb * 255), [124, 149, 170])


def test_transfer_functions_invert_each_other_and_clip():
    values = np.linspace(0, 1, 101)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(values)), values, atol=1e-12)
    np.testing.assert_allclose(linear_to_srgb([-1.0, 0.0, 1.0, 2.0]), [0, 0, 1, 1])
    assert srgb_to_linear(0.5) == np.float64(0.21404114048223255)


def test_counts_read_right():
    assert count_text(1, "frame") == "1 frame"
    assert count_text(3, "frame") == "3 frames" and count_text(0, "frame") == "0 frames"
