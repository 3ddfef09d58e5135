"""Right -> left cycle consistency error."""

from __future__ import annotations

import torch

from stereo_lit.stereo.geometry import forward_warp
from stereo_lit.metrics import CycleConsistencyError


def _pair(shift: float = 4.0):
    left = torch.rand(1, 3, 2, 24, 48, generator=torch.Generator().manual_seed(0))
    disparity_left = torch.full((1, 1, 2, 24, 48), shift)
    right, _ = forward_warp(left, disparity_left, direction=-1)
    return left, right, torch.full_like(disparity_left, shift)


def test_exact_warp_has_zero_cycle_error() -> None:
    left, right, disparity_right = _pair()
    metric = CycleConsistencyError()
    metric.update(right, left, disparity_right)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["cycle_error"] < 1e-6
    assert 80.0 < out["cycle_coverage_pct"] < 100.0  # the right frame edge has no content for the left


def test_wrong_right_view_has_large_cycle_error_and_mask_restricts() -> None:
    left, right, disparity_right = _pair()
    corrupted = right.clone()
    corrupted[..., :, 20:] = 1.0 - corrupted[..., :, 20:]
    metric = CycleConsistencyError()
    metric.update(corrupted, left, disparity_right)
    assert float(metric.compute()["cycle_error"]) > 0.1
    # only the left columns whose right source is untouched (x - 4 < 20) -> ~0 again
    mask = torch.zeros_like(disparity_right)
    mask[..., :, :20] = 1.0
    masked = CycleConsistencyError()
    masked.update(corrupted, left, disparity_right, mask)
    assert float(masked.compute()["cycle_error"]) < 1e-6
