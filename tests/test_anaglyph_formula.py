"""The fast anaglyph (lookup table, OpenCV kernels) against the Dubois formula written out in float64."""

from __future__ import annotations

import numpy as np

from stereo_lit.io.layouts import _DUBOIS_LEFT, _DUBOIS_RIGHT, anaglyph_dubois


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


def test_anaglyph_is_within_one_level_of_the_formula_on_noise() -> None:
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8) for _ in range(2))
    diff = np.abs(anaglyph_dubois(left, right).astype(int) - _formula(left, right).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
