"""MS-SSIM: torchmetrics' 5-scale definition per frame, pooled; frames under its minimum size are noted, not scored."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from stereo_lit.metrics import MultiScaleSSIM, ms_ssim_min_side


def _frames(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=gen)
    target = torch.nn.functional.avg_pool3d(target, (1, 5, 5), stride=1, padding=(0, 2, 2))  # some structure
    preds = (target + 0.05 * torch.randn(shape, generator=gen)).clamp(0, 1)
    return preds, target


def test_equals_torchmetrics_mean_over_frames() -> None:
    preds, target = _pair((2, 3, 2, 180, 192))
    metric = MultiScaleSSIM()
    metric.update(preds[:1], target[:1])  # two updates pool to the mean over all 4 frames
    metric.update(preds[1:], target[1:])
    expected = multiscale_structural_similarity_index_measure(_frames(preds), _frames(target), data_range=1.0)
    assert float(metric.compute()["ms_ssim"]) == pytest.approx(float(expected), abs=1e-5)
    assert metric.note is None
    per_frame = multiscale_structural_similarity_index_measure(
        _frames(preds[1:]), _frames(target[1:]), data_range=1.0, reduction="none")
    assert torch.allclose(metric.last_per_frame, per_frame, atol=1e-6)
    perfect = MultiScaleSSIM()
    perfect.update(target, target)
    assert float(perfect.compute()["ms_ssim"]) == pytest.approx(1.0, abs=1e-6)


def test_minimum_side_is_the_one_torchmetrics_accepts() -> None:
    side = ms_ssim_min_side()
    assert side == 176  # 11-px window at the 5th scale (1/16): side // 16 > 10
    ok = torch.rand(1, 3, side, side + 8)
    multiscale_structural_similarity_index_measure(ok, ok, data_range=1.0)
    with pytest.raises(ValueError):
        multiscale_structural_similarity_index_measure(ok[..., :side - 1, :], ok[..., :side - 1, :], data_range=1.0)


def test_small_frames_are_nan_with_a_reason() -> None:
    preds, target = _pair((1, 3, 3, 96, 128))
    metric = MultiScaleSSIM()
    metric.update(preds, target)
    assert math.isnan(float(metric.compute()["ms_ssim"]))
    assert metric.note is not None and "3 frame(s)" in metric.note and "96 px" in metric.note
    assert "176 px" in metric.note and "n/a" in metric.note
    assert torch.isnan(metric.last_per_frame).all() and metric.last_per_frame.shape == (3,)

    big_p, big_t = _pair((1, 3, 1, 176, 176), seed=1)  # a set mixing sizes: the large frames are scored
    metric.update(big_p, big_t)
    expected = multiscale_structural_similarity_index_measure(_frames(big_p), _frames(big_t), data_range=1.0)
    assert float(metric.compute()["ms_ssim"]) == pytest.approx(float(expected), abs=1e-5)
    assert "1 frame(s) scored" in metric.note


def test_bf16_autocast_does_not_change_it() -> None:
    preds, target = _pair((1, 3, 1, 176, 176))
    plain, under = MultiScaleSSIM(), MultiScaleSSIM()
    plain.update(preds, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under.update(preds.bfloat16(), target.bfloat16())
        got = float(under.compute()["ms_ssim"])
    ref = MultiScaleSSIM()
    ref.update(preds.bfloat16().float(), target.bfloat16().float())  # the inputs' own rounding only
    assert got == pytest.approx(float(ref.compute()["ms_ssim"]), abs=1e-6)
