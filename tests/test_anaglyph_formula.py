"""The fast anaglyph (compiled kernel; OpenCV fallback) against the Dubois formula written out in float64."""

from __future__ import annotations

import numpy as np

from stereo_lit.io.fast_layouts import DUBOIS_LEFT as _DUBOIS_LEFT, DUBOIS_RIGHT as _DUBOIS_RIGHT, _anaglyph_opencv
from stereo_lit.io.layouts import anaglyph_dubois


def _formula(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    def linear(s: np.ndarray) -> np.ndarray:
        x = s.astype(np.float64) / 255.0
        return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)

    mixed = np.clip(linear(left) @ _DUBOIS_LEFT.T.astype(np.float64) + linear(right) @ _DUBOIS_RIGHT.T.astype(np.float64), 0, 1)
    srgb = np.where(mixed <= 0.0031308, mixed * 12.92, 1.055 * mixed ** (1 / 2.4) - 0.055)
    return np.floor(srgb * 255.0 + 0.5).astype(np.uint8)


def test_anaglyph_equals_the_formula_on_every_byte_pair_of_a_gradient() -> None:
    ramp = np.arange(256, dtype=np.uint8)
    left = np.broadcast_to(ramp[None, None, :, None], (1, 3, 256, 3)).copy()
    left[0, 1] = left[0, 1, :, ::-1]  # channels in another order on the second row
    right = left[:, :, ::-1].copy()
    np.testing.assert_array_equal(anaglyph_dubois(left, right), _formula(left, right))


def test_anaglyph_equals_the_formula_on_noise_and_strided_views() -> None:
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8) for _ in range(2))
    np.testing.assert_array_equal(anaglyph_dubois(left, right), _formula(left, right))
    flipped = left[:, :, ::-1]  # a view with a negative stride
    np.testing.assert_array_equal(anaglyph_dubois(flipped, right), _formula(flipped, right))


def test_the_opencv_fallback_is_within_one_level_of_the_formula() -> None:
    rng = np.random.default_rng(1)
    left, right = (rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8) for _ in range(2))
    diff = np.abs(_anaglyph_opencv(left, right).astype(int) - _formula(left, right).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_the_byte_thresholds_reproduce_the_formula_around_every_boundary() -> None:
    from stereo_lit.io.fast_layouts import _THRESHOLDS, linear_to_srgb_byte_formula

    below = np.nextafter(_THRESHOLDS[1:], 0.0)
    np.testing.assert_array_equal(linear_to_srgb_byte_formula(_THRESHOLDS[1:]), np.arange(1, 256))
    np.testing.assert_array_equal(linear_to_srgb_byte_formula(below), np.arange(0, 255))
