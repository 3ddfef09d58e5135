"""Right-view PSNR/SSIM per region, against torchmetrics and on hand-built regions."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.stereo.geometry import occlusion_mask
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


def _strip_case() -> tuple[torch.Tensor, torch.Tensor]:
    """A textured true right view ``[1,3,1,48,64]`` and its visible mask: a 4-px disoccluded strip at x = 30..33."""
    gen = torch.Generator().manual_seed(3)
    target = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 48, 64, generator=gen), 3, 1, 1)[:, :, None]
    visible = torch.ones(1, 1, 1, 48, 64)
    visible[..., 30:34] = 0
    return target, visible


def test_region_ssim_judges_each_region_on_its_own_pixels() -> None:
    """Perfect on visible pixels, constant grey in the strip: ssim_visible is exactly 1 (the
    11x11 window must not mix the grey strip in) and ssim_disoccluded is low; and the reverse."""
    target, visible = _strip_case()
    grey_strip = target * visible + 0.5 * (1 - visible)
    metric = RightViewMetrics(lpips=False)
    metric.update(grey_strip, target, visible=visible)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["psnr_visible"] == math.inf and out["ssim_visible"] == pytest.approx(1.0, abs=1e-6)
    assert out["ssim_disoccluded"] < 0.3

    grey_rest = target * (1 - visible) + 0.5 * visible
    metric = RightViewMetrics(lpips=False)
    metric.update(grey_rest, target, visible=visible)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["psnr_disoccluded"] == math.inf and out["ssim_disoccluded"] == pytest.approx(1.0, abs=1e-6)
    assert out["ssim_visible"] < 0.3


def test_masked_ssim_uses_only_region_pixels() -> None:
    """Changing pixels outside the region leaves the region's SSIM map unchanged."""
    from stereo_lit.metrics import masked_ssim_map

    target, visible = _strip_case()
    frames = target[:, :, 0]
    mask = visible[:, :, 0]
    outside_a = frames * mask + 0.0 * (1 - mask)
    outside_b = frames * mask + torch.rand(frames.shape, generator=torch.Generator().manual_seed(4)) * (1 - mask)
    map_a = masked_ssim_map(outside_a, frames, mask)
    map_b = masked_ssim_map(outside_b, frames, mask)
    torch.testing.assert_close(map_a * mask, map_b * mask)


def test_ssim_is_float32_under_bf16_autocast() -> None:
    """bf16-mixed must not change the numbers: the true right view scores SSIM 1 under autocast too."""
    target, visible = _strip_case()
    preds = (target + 0.02 * torch.randn(target.shape, generator=torch.Generator().manual_seed(5))).clamp(0, 1)
    reference = RightViewMetrics(lpips=False)
    reference.update(preds, target, visible=visible)
    expected = {k: float(v) for k, v in reference.compute().items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        metric, truth = RightViewMetrics(lpips=False), RightViewMetrics(lpips=False)
        metric.update(preds, target, visible=visible)
        truth.update(target, target, visible=visible)
        out = {k: float(v) for k, v in metric.compute().items()}
        true_out = {k: float(v) for k, v in truth.compute().items()}
    assert out == expected
    assert true_out["ssim_all"] == pytest.approx(1.0, abs=1e-6)


def test_per_frame_values_of_the_last_update() -> None:
    """``last_per_frame`` (the report's curves): torchmetrics' PSNR / SSIM of each frame, invalid pixels left out."""
    gen = torch.Generator().manual_seed(3)
    target = torch.rand(2, 3, 3, 32, 40, generator=gen)
    preds = (target + 0.03 * (1 + torch.arange(3.0)).view(1, 1, 3, 1, 1) * torch.randn(target.shape, generator=gen))
    valid = torch.ones(2, 1, 3, 32, 40)
    valid[1, :, 2] = 0  # last frame of clip 1 has no valid pixel: nan
    metric = RightViewMetrics(lpips=False)
    metric.update(preds, target, valid=valid)
    per_frame = metric.last_per_frame
    assert per_frame["psnr_all"].shape == per_frame["ssim_all"].shape == (6,)  # frame b*T + t
    for b in range(2):
        for t in range(3):
            i = b * 3 + t
            if b == 1 and t == 2:
                assert math.isnan(float(per_frame["psnr_all"][i])) and math.isnan(float(per_frame["ssim_all"][i]))
                continue
            p, y = preds[b:b + 1, :, t], target[b:b + 1, :, t]
            assert float(per_frame["psnr_all"][i]) == pytest.approx(float(peak_signal_noise_ratio(p, y, data_range=1.0)), abs=1e-4)
            assert float(per_frame["ssim_all"][i]) == pytest.approx(
                float(structural_similarity_index_measure(p, y, data_range=1.0)), abs=1e-5)
    assert float(per_frame["psnr_all"][0]) > float(per_frame["psnr_all"][2])  # the noise grows with t
