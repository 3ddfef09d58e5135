"""The compiled disparity kernels (stereo_lit.stereo.fast_disparity) give the torch code's numbers bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereo_lit.stereo import disparity as disparity_module
from stereo_lit.stereo import edges, fast_disparity
from stereo_lit.stereo.disparity import DisparityPolicy
from stereo_lit.stereo.edges import dilate_foreground

pytestmark = pytest.mark.skipif(not fast_disparity.available(), reason="numba is not installed")


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def _inverse_depth(seed: int = 0) -> torch.Tensor:
    """``[2, 1, 3, 17, 29]`` relative inverse depth spilling over its range on both sides, with NaNs."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(2, 1, 3, 17, 29, generator=generator) * 1.2 - 0.1
    values[0, 0, 1, 3, 4:9] = float("nan")
    values[1, 0, 2, 0, 0] = float("nan")
    return values


def _with_torch(monkeypatch: pytest.MonkeyPatch, call):  # noqa: ANN001, ANN202
    """``call()`` through the torch code (the kernel switched off)."""
    with monkeypatch.context() as patch:
        patch.setattr(disparity_module, "_uses_kernel", lambda tensor: False)
        patch.setattr(fast_disparity, "available", lambda: False)
        return call()


def test_whole_video_range_maps_as_the_torch_code_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.7 - 0.1 in double, then float32, differs from float32(0.7) - float32(0.1): the kernel must
    # take the torch code's (a Python scalar's) divisor to give the same bits
    assert np.float32(0.7 - 0.1) != np.float32(0.7) - np.float32(0.1)
    policy = DisparityPolicy(max_disparity_pct=2.3)
    policy._ranges["clip"] = (0.1, 0.7)
    values = _inverse_depth()
    assert disparity_module._uses_kernel(values)
    fast = policy.from_inverse_depth(values, "clip", width_px=1919)
    slow = _with_torch(monkeypatch, lambda: policy.from_inverse_depth(values, "clip", width_px=1919))
    _same(fast, slow)
    assert fast[0, 0, 1, 3, 5] == 0.0 and fast.max() == pytest.approx(policy.max_disparity_px(1919))  # NaN -> far, clamped


def test_per_frame_range_maps_as_the_torch_code_does(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = DisparityPolicy()
    ranges = torch.tensor([[0.05, 0.9], [0.1, 0.7], [0.2, 0.95], [0.0, 0.31], [0.3, 0.3001]], dtype=torch.float32)
    policy._frame_ranges["clip"] = ranges  # one (low, high) per frame, as a shot-aware video has
    values = _inverse_depth(1)
    for start in (0, 2, 4):  # the last window runs past the video's end: its last range repeats
        fast = policy.from_inverse_depth(values, "clip", width_px=640, start=start)
        slow = _with_torch(monkeypatch, lambda: policy.from_inverse_depth(values, "clip", width_px=640, start=start))
        _same(fast, slow)


@pytest.mark.parametrize("dilate_px", [(1, 0), (2, 0), (0, 1), (3, 2), (40, 0)])
def test_dilation_is_the_torch_max_filter(monkeypatch: pytest.MonkeyPatch, dilate_px: tuple[int, int]) -> None:
    values = _inverse_depth(2) * 9.0
    values[0, 0, 0, 8, :] = float("nan")  # a NaN row and column spread as torch.maximum spreads them
    values[1, 0, 1, :, 13] = float("nan")
    values = values[..., 1:]  # not contiguous
    fast = dilate_foreground(values, dilate_px)
    slow = _with_torch(monkeypatch, lambda: dilate_foreground(values, dilate_px))
    _same(fast, slow)
    assert not torch.equal(torch.nan_to_num(fast), torch.nan_to_num(values))


def test_kernels_are_used_on_cpu_float32_only() -> None:
    values = _inverse_depth()
    calls: list[str] = []
    original = fast_disparity.max_filter

    def counting(x: np.ndarray, radius: int, axis: int) -> np.ndarray:
        calls.append(str(x.dtype))
        return original(x, radius, axis)

    fast_disparity.max_filter, saved = counting, fast_disparity.max_filter
    try:
        dilate_foreground(values, (1, 0))
        dilate_foreground(values.double(), (1, 0))  # float64: the torch code
    finally:
        fast_disparity.max_filter = saved
    assert calls == ["float32"]
    assert edges.fast_disparity is fast_disparity
    assert not disparity_module._uses_kernel(values.clone().requires_grad_(True))
