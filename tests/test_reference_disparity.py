"""Reference disparity from a matcher with a left-right check, and the zero-parallax shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereo_lit.data.synthetic import SKY_DEPTH_M, render_sequence
from stereo_lit.metrics.reference_disparity import reference_disparity, reference_disparity_video, zero_parallax_shift

H, W = 80, 128
BG, FG = 2, 6  # disparities (px) of the background and of the front rectangle
RECT = (slice(20, 60), slice(40, 80))


def _texture(seed: int) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).uniform(0, 255, (H, W + 40, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.2) * 1.8 - 100, 0, 255)


def _two_planes(bg_shift: int, fg_shift: int) -> np.ndarray:
    """A textured background plane and a front rectangle; a left pixel x is seen at x - shift."""
    bg, fg = _texture(1), _texture(2)
    x = np.arange(W)
    image = bg[:, x + 20 + bg_shift].copy()
    xs = np.arange(RECT[1].start, RECT[1].stop)
    image[RECT[0], xs - fg_shift] = fg[RECT[0], xs + 20]
    return image.astype(np.uint8)


def _pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth = np.full((H, W), float(BG))
    truth[RECT] = FG
    return _two_planes(0, 0), _two_planes(BG, FG), truth


def _converge(right: np.ndarray, shift: int) -> np.ndarray:
    """Move the right view's content ``shift`` px to the right: every disparity drops by ``shift``."""
    return np.ascontiguousarray(right[:, np.clip(np.arange(right.shape[1]) - shift, 0, right.shape[1] - 1)])


def test_known_disparity_of_a_parallel_pair_is_recovered() -> None:
    left, right, truth = _pair()
    ref = reference_disparity(left, right, 0, 16)
    assert ref.valid.mean() > 0.9
    err = np.abs(ref.disparity_px - truth)[ref.valid]
    assert np.median(err) < 0.1 and np.percentile(err, 99) <= 0.5
    assert np.isnan(ref.disparity_px[~ref.valid]).all()
    assert ref.failed == int((~ref.valid).sum()) > 0
    # background just left of the rectangle is hidden behind it in the right view: excluded
    occluded = ref.valid[RECT[0], RECT[1].start - (FG - BG) + 1 : RECT[1].start]
    assert occluded.mean() < 0.5


def test_left_right_check_counts_the_pixels_it_drops() -> None:
    left, right, _ = _pair()
    loose = reference_disparity(left, right, 0, 16, max_diff_px=100.0)
    strict = reference_disparity(left, right, 0, 16, max_diff_px=1.0)
    assert strict.lr_failed > loose.lr_failed
    assert strict.failed - loose.failed == strict.lr_failed - loose.lr_failed


def test_converged_pair_has_both_signs_and_the_known_zero_parallax_shift() -> None:
    left, right, truth = _pair()
    shift = 4
    ref = reference_disparity(left, _converge(right, shift), -8, 16)
    assert ref.valid.mean() > 0.85
    err = np.abs(ref.disparity_px - (truth - shift))[ref.valid]
    assert np.median(err) < 0.1 and np.percentile(err, 99) <= 0.5
    d = ref.disparity_px[ref.valid]
    assert (d < -1).mean() > 0.5 and (d > 1).mean() > 0.15  # both signs
    assert zero_parallax_shift(ref.disparity_px, ref.valid) == pytest.approx(BG - shift, abs=0.25)
    parallel = reference_disparity(left, right, 0, 16)
    assert zero_parallax_shift(parallel.disparity_px, parallel.valid) == pytest.approx(BG, abs=0.25)


def test_synthetic_scene_disparity_matches_its_ground_truth() -> None:
    seq = render_sequence(num_frames=1, height=96, width=160)
    truth = seq.disparity_left_px[0]
    ref = reference_disparity(seq.left[0], seq.right[0], 0, 16)
    scene = seq.depth_left_m[0] < SKY_DEPTH_M  # the sky has no texture along rows
    ok = ref.valid & scene
    assert ok.sum() > 0.8 * scene.sum()
    assert np.median(np.abs(ref.disparity_px - truth)[ok]) < 0.25


def test_video_wrapper_and_percentile_rules() -> None:
    left, right, truth = _pair()
    lv = torch.from_numpy(np.stack([left, left])).permute(3, 0, 1, 2).float() / 255
    rv = torch.from_numpy(np.stack([right, right])).permute(3, 0, 1, 2).float() / 255
    disparity, valid, failed = reference_disparity_video(lv, rv, 0.0, 12.5)
    assert disparity.shape == valid.shape == (1, 2, H, W)
    single = reference_disparity(left, right, 0, 16)
    assert failed == 2 * single.failed
    assert torch.equal(valid[0, 1].bool(), torch.from_numpy(single.valid))
    assert (disparity[valid == 0] == 0).all()
    assert np.isnan(zero_parallax_shift(np.zeros((2, 2)), np.zeros((2, 2))))
    assert zero_parallax_shift(np.arange(101.0), percentile=10.0) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="percentile"):
        zero_parallax_shift(np.zeros(3), percentile=120)
    with pytest.raises(ValueError, match="one size"):
        reference_disparity(left, right[:, :-1])
