"""OpenCV SGBM geometry metric on exact synthetic stereo pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.metrics import StereoMatchError, num_disparities_for, sgbm_disparity


def _video(frames_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames_u8).permute(3, 0, 1, 2)[None].float() / 255.0


@pytest.fixture(scope="module")
def scene():
    seq = render_sequence(2, 192, 256)
    return _video(seq.left), _video(seq.right), torch.from_numpy(seq.disparity_left_px)[None, None]


def test_num_disparities_is_a_multiple_of_16_above_the_maximum() -> None:
    assert num_disparities_for(0.0) == 16
    assert num_disparities_for(15.9) == 16
    assert num_disparities_for(16.0) == 32
    assert num_disparities_for(100.0) == 112
    assert num_disparities_for(1000.0, cap=256) == 256
    assert num_disparities_for(float("nan")) == 16


def test_sgbm_recovers_an_integer_shift() -> None:
    rng = np.random.default_rng(0)
    texture = (rng.random((64, 112, 3)) * 255).astype(np.uint8)
    texture = np.repeat(np.repeat(texture, 2, axis=0), 2, axis=1)[:64, :112]  # some spatial correlation
    shift = 6
    left = texture
    right = np.zeros_like(left)
    right[:, :-shift] = left[:, shift:]  # left column x is seen at x - 6 in the right view
    disparity = sgbm_disparity(left, right, 16)
    interior = disparity[8:-8, 24:-8]
    finite = interior[np.isfinite(interior)]
    assert finite.size > 0.8 * interior.size
    assert np.median(np.abs(finite - shift)) < 0.25


def test_true_pair_has_small_error_and_copy_left_large(scene) -> None:
    left, right, disparity = scene
    true_pair, copy_left = StereoMatchError(), StereoMatchError()
    true_pair.update(left, right, disparity)
    copy_left.update(left, left, disparity)
    ok = {k: float(v) for k, v in true_pair.compute().items()}
    bad = {k: float(v) for k, v in copy_left.compute().items()}
    assert ok["sgbm_epe"] < 0.5 and ok["sgbm_d1_pct"] < 3.0 and ok["sgbm_density_pct"] > 70.0
    assert bad["sgbm_epe"] > 4 * ok["sgbm_epe"] and bad["sgbm_epe"] > 2.0
    assert bad["sgbm_bad3_pct"] > 20.0 > ok["sgbm_bad3_pct"]
    for k in ("sgbm_bad1_pct", "sgbm_bad2_pct", "sgbm_bad3_pct"):
        assert 0.0 <= ok[k] <= 100.0
    assert ok["sgbm_bad1_pct"] >= ok["sgbm_bad2_pct"] >= ok["sgbm_bad3_pct"] >= ok["sgbm_d1_pct"] - 1e-9


def test_invalid_pixels_are_not_evaluated(scene) -> None:
    left, right, disparity = scene
    valid = torch.zeros_like(disparity)
    metric = StereoMatchError()
    metric.update(left, right, disparity, valid)
    out = metric.compute()
    assert torch.isnan(out["sgbm_epe"]) and torch.isnan(out["sgbm_density_pct"])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        StereoMatchError(num_disparities=20)
    with pytest.raises(ValueError, match="disparity_left_px"):
        StereoMatchError().update(torch.rand(1, 3, 1, 8, 8), torch.rand(1, 3, 1, 8, 8), torch.rand(1, 1, 2, 8, 8))
