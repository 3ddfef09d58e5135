"""Shifting Gaussian noise to the right view keeps it i.i.d. N(0, 1) (geometry.shift_noise)."""

from __future__ import annotations

import pytest
import torch

from stereo_lit.diffusion.guidance import LatentShift
from stereo_lit.stereo.geometry import forward_warp, shift_noise

SHAPE = (1, 16, 5, 30, 52)  # Wan latents of 17 frames at 240x416


def _lag1_correlation(x: torch.Tensor) -> float:
    """Correlation of horizontally neighbouring cells."""
    a, b = x[..., :-1].flatten(), x[..., 1:].flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).mean() / (a.std() * b.std()))


def _noises(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(SHAPE, generator=g), torch.randn(SHAPE, generator=g)


@pytest.mark.parametrize("shift", [0.25, 0.5, 1.5])
def test_shifted_noise_is_unit_variance_and_uncorrelated(shift):
    noise, fresh = _noises()
    disparity = torch.full((1, 1, *SHAPE[2:]), shift)
    shifted, covered = shift_noise(noise, disparity, fresh)
    assert abs(float(shifted.std()) - 1.0) < 0.02
    assert abs(_lag1_correlation(shifted)) < 0.05
    known = covered.expand_as(shifted) > 0.5
    assert known.float().mean() > 0.95
    assert abs(float(shifted[known].std()) - 1.0) < 0.02  # the known cells themselves, not only the fill


def test_linear_splat_of_noise_is_what_the_noise_shift_avoids():
    """The documented failure of forward_warp on noise (std 0.71, lag-1 correlation 0.5 at 1.5 px)."""
    noise, _ = _noises()
    splat, _ = forward_warp(noise, torch.full((1, 1, *SHAPE[2:]), 1.5))
    inner = splat[..., :-2]  # the right edge is uncovered
    assert abs(float(inner.std()) - 0.71) < 0.02 and _lag1_correlation(inner) > 0.45


def test_shift_moves_whole_cells_and_the_nearest_surface_wins():
    row = torch.arange(6.0).view(1, 1, 1, 1, 6)
    shifted, covered = shift_noise(row, torch.full((1, 1, 1, 1, 6), 1.0))
    assert shifted.flatten().tolist() == [1, 2, 3, 4, 5, 0] and covered.flatten().tolist() == [1, 1, 1, 1, 1, 0]
    # a near box (d = 3) over a far plane (d = 0): source 3 hides source 0 at column 0,
    # source 2 leaves the frame, columns 2-3 are disoccluded and take the fill
    disparity = torch.tensor([0.0, 0, 3, 3, 0, 0]).view(1, 1, 1, 1, 6)
    fill = torch.full_like(row, -7.0)
    shifted, covered = shift_noise(row, disparity, fill)
    assert shifted.flatten().tolist() == [3, 1, -7, -7, 4, 5] and covered.flatten().tolist() == [1, 1, 0, 0, 1, 1]
    # right -> left (x + d): the near source 2 lands on column 5 over the far source 5 and must win
    shifted, covered = shift_noise(row, disparity, fill, direction=1)
    assert shifted.flatten().tolist() == [0, 1, -7, -7, 4, 2] and covered.flatten().tolist() == [1, 1, 0, 0, 1, 1]
    # sub-cell shifts round to the nearest cell (0.4 -> 0, 0.6 -> 1: both land on column 0,
    # the nearer wins); invalid disparities (NaN, negative) are never shifted
    disparity = torch.tensor([0.4, 0.6, float("nan"), -1.0, 1.49, 0.0]).view(1, 1, 1, 1, 6)
    shifted, covered = shift_noise(row, disparity)
    assert shifted.flatten().tolist() == [1, 0, 0, 4, 0, 5] and covered.flatten().tolist() == [1, 0, 0, 1, 0, 1]


def test_latent_shift_noises_the_known_cells_to_unit_variance():
    """LatentShift's x_t on known cells is (1 - s) z + s n with n ~ N(0, 1): its noise is the noise shift."""
    noise, _ = _noises(1)
    latent = torch.zeros(SHAPE)
    guide = LatentShift(latent, noise, torch.full((1, 1, *SHAPE[2:]), 1.5))
    known = guide.mask.expand(SHAPE) > 0.5
    x = guide.prepare(torch.zeros(SHAPE), 1.0)  # sigma = 1: pure (shifted) noise
    assert abs(float(x[known].std()) - 1.0) < 0.02
    assert abs(_lag1_correlation(torch.where(known, x, torch.randn(SHAPE)))) < 0.05
