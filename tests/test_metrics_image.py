"""Right-view PSNR/SSIM per region, against torchmetrics and on hand-built regions."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.geometry import occlusion_mask
from stereo_lit.metrics import RightViewMetrics, lpips_unavailable_reason
from stereo_lit.metrics import image as image_metrics


def _video(frames_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames_u8).permute(3, 0, 1, 2)[None].float() / 255.0


def _frames(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def test_full_mask_equals_torchmetrics() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 3, 32, 40, generator=gen)
    preds = (target + 0.05 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    metric = RightViewMetrics(lpips=False)
    metric.update(preds[:1], target[:1])  # two updates: pooling across batches must match one call
    metric.update(preds[1:], target[1:])
    out = metric.compute()
    expected_psnr = peak_signal_noise_ratio(_frames(preds), _frames(target), data_range=1.0)
    expected_ssim = structural_similarity_index_measure(_frames(preds), _frames(target), data_range=1.0)
    assert float(out["psnr_all"]) == pytest.approx(float(expected_psnr), abs=1e-4)
    assert float(out["ssim_all"]) == pytest.approx(float(expected_ssim), abs=1e-5)
    assert math.isnan(float(out["psnr_visible"])) and math.isnan(float(out["ssim_disoccluded"]))


def test_regions_separate_visible_from_disoccluded() -> None:
    seq = render_sequence(3, 96, 128)
    right = _video(seq.right)
    disparity_right = torch.from_numpy(seq.fx * seq.baseline_m / seq.depth_right_m).float()[None, None]
    visible = occlusion_mask(disparity_right, direction=1)
    disoccluded = 1.0 - visible
    assert disoccluded.sum() > 50, "the synthetic scene should have disocclusions"
    preds = right + 0.1 * disoccluded  # exact constant error 0.1 on disoccluded pixels only (no clamp)
    metric = RightViewMetrics(lpips=False)
    metric.update(preds, right, valid=None, visible=visible)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["psnr_visible"] == math.inf
    assert out["psnr_disoccluded"] == pytest.approx(20.0, abs=1e-3)  # 10 log10(1 / 0.1^2)
    assert 20.0 < out["psnr_all"] < math.inf
    assert out["ssim_visible"] > out["ssim_disoccluded"]
    assert out["ssim_disoccluded"] < 0.999


def test_invalid_pixels_are_ignored() -> None:
    target = torch.rand(1, 3, 2, 24, 24, generator=torch.Generator().manual_seed(1))
    preds = target.clone()
    preds[..., :8] = 0.0  # garbage in a band that is marked invalid
    valid = torch.ones(1, 1, 2, 24, 24)
    valid[..., :8] = 0
    metric = RightViewMetrics(lpips=False)
    metric.update(preds, target, valid=valid)
    assert float(metric.compute()["psnr_all"]) == math.inf


def test_lpips_skipped_with_one_logged_reason(caplog: pytest.LogCaptureFixture, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no backbone weights here
    reason = lpips_unavailable_reason("alex")
    assert reason is not None
    image_metrics._LOGGED_REASONS.clear()
    with caplog.at_level(logging.WARNING, logger=image_metrics.__name__):
        first, second = RightViewMetrics(), RightViewMetrics()
    messages = [r.getMessage() for r in caplog.records if "LPIPS skipped" in r.getMessage()]
    assert messages == [f"LPIPS skipped: {reason}"]
    x = torch.rand(1, 3, 1, 16, 16)
    first.update(x, x)
    assert "lpips_all" not in first.compute()
    with pytest.raises(RuntimeError, match="LPIPS was required"):
        RightViewMetrics(lpips=True)


def test_shape_errors_name_the_argument() -> None:
    metric = RightViewMetrics(lpips=False)
    with pytest.raises(ValueError, match="preds"):
        metric.update(torch.rand(3, 8, 8), torch.rand(1, 3, 1, 8, 8))
    with pytest.raises(ValueError, match="visible"):
        metric.update(torch.rand(1, 3, 1, 8, 8), torch.rand(1, 3, 1, 8, 8), visible=torch.ones(1, 1, 2, 8, 8))
