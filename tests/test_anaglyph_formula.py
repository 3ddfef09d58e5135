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


def test_the_bin_tables_give_the_formulas_byte_at_every_boundary_and_bin_edge() -> None:
    """The kernel's lookup, ``start[i] + (x >= threshold[i])`` with ``i = int(x * bins)``, at each
    byte threshold, one float below it, and every bin's edges; and too few bins are refused."""
    import pytest

    from stereo_lit.io.fast_layouts import _BINS, _THRESHOLDS, bin_tables, linear_to_srgb_byte_formula

    start, threshold = bin_tables(_THRESHOLDS, _BINS)
    edges = np.arange(_BINS + 1) / _BINS
    x = np.concatenate([_THRESHOLDS[1:], np.nextafter(_THRESHOLDS[1:], 0.0), edges, np.nextafter(edges[1:], 0.0), [0.0, 1.0]])
    i = np.minimum((x * _BINS).astype(np.int64), _BINS - 1)
    np.testing.assert_array_equal(start[i] + (x >= threshold[i]), linear_to_srgb_byte_formula(x))
    with pytest.raises(ValueError, match="two byte thresholds"):
        bin_tables(_THRESHOLDS, 2048)


def test_the_compiled_kernel_rounds_exactly_at_every_threshold() -> None:
    """The kernel itself on linear values placed at each byte threshold and one float below:
    an identity mix (left eye only) makes ``mixed`` equal the table value bit for bit."""
    from stereo_lit.io import fast_layouts as fl

    if fl._compiled is None:  # pragma: no cover - numba missing
        return
    probes = np.concatenate([fl._THRESHOLDS[1:], np.nextafter(fl._THRESHOLDS[1:], 0.0)])
    identity, zeros = np.eye(3), np.zeros((3, 3))
    left = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, None, :, None], (1, 1, 256, 3))
    for chunk in np.array_split(probes, 2):
        to_linear = np.zeros(256)
        to_linear[: len(chunk)] = chunk
        out = np.empty((1, 1, 256, 3), np.uint8)
        fl._compiled(left, left, to_linear, identity, zeros, fl._BIN_START, fl._BIN_THRESHOLD, fl._BINS, out)
        np.testing.assert_array_equal(out[0, 0, : len(chunk), 0], fl.linear_to_srgb_byte_formula(chunk))
