"""Exact geometry on hand-made scenes (DESIGN.md conventions: x_right = x_left - d)."""

from __future__ import annotations

import math

import pytest
import torch

from stereo_lit.stereo.geometry import (
    backward_warp,
    cycle_warp_right_to_left,
    disparity_to_latent_grid,
    forward_warp,
    inverse_depth_to_disparity,
    mask_to_latent_grid,
    metric_depth_to_disparity,
    occlusion_mask,
    right_disparity_from_left,
    valid_depth_mask,
)


def test_fronto_parallel_plane_integer_disparity_is_exact() -> None:
    torch.manual_seed(0)
    left = torch.rand(2, 3, 12, 40)
    warped, covered = forward_warp(left, torch.full((2, 1, 12, 40), 5.0))
    assert torch.equal(warped[..., :35], left[..., 5:])  # bit-exact
    assert covered[..., :35].min() == 1 and covered[..., 35:].max() == 0
    assert warped[..., 35:].abs().max() == 0


def test_fractional_disparity_interpolates_linearly() -> None:
    left = torch.arange(20, dtype=torch.float32).view(1, 1, 1, 20).repeat(1, 1, 3, 1)
    warped, covered = forward_warp(left, torch.full((1, 1, 3, 20), 2.5))
    # a linear ramp is reproduced exactly by linear splatting: right(x) = left(x + 2.5)
    xs = torch.arange(20, dtype=torch.float32)
    inner = xs + 2.5 <= 19  # both neighbours of the source position are in the frame
    assert covered[0, 0, 0][inner].min() == 1
    assert torch.allclose(warped[0, 0, 0][inner], xs[inner] + 2.5, atol=1e-5)


def test_nearer_plane_wins() -> None:
    width = 32
    left = torch.zeros(1, 1, 4, width)
    left[..., 10:16] = 1.0  # near box, d = 8
    disp = torch.full((1, 1, 4, width), 2.0)  # far wall, d = 2
    disp[..., 10:16] = 8.0
    warped, covered = forward_warp(left, disp)
    # the box lands at 2..7, covering wall pixels that also land there
    assert torch.equal(warped[0, 0, 0, 2:8], torch.ones(6))
    # the disocclusion right of the box: wall from x = 16.. lands at 14.., so 8..13 is a hole
    assert covered[0, 0, 0, 8:14].max() == 0
    assert covered[0, 0, 0, 14:30].min() == 1 and warped[0, 0, 0, 14:30].max() == 0


def test_invalid_disparities_are_never_splatted() -> None:
    left = torch.ones(1, 1, 2, 8)
    disp = torch.tensor([[0.0, float("nan"), float("inf"), -1.0, 0.0, 0.0, 0.0, 0.0]]).repeat(2, 1).view(1, 1, 2, 8)
    warped, covered = forward_warp(left, disp)
    assert covered[0, 0, 0].tolist() == [1, 0, 0, 0, 1, 1, 1, 1]
    assert torch.isfinite(warped).all()
    assert occlusion_mask(disp)[0, 0, 0].tolist() == [1, 0, 0, 0, 1, 1, 1, 1]


def test_video_layout_equals_per_frame_images() -> None:
    torch.manual_seed(1)
    video = torch.rand(2, 3, 5, 8, 16)
    disp = torch.rand(2, 1, 5, 8, 16) * 4
    warped, covered = forward_warp(video, disp)
    w_img, c_img = forward_warp(video[:, :, 3], disp[:, :, 3])
    assert torch.equal(warped[:, :, 3], w_img) and torch.equal(covered[:, :, 3], c_img)


def test_backward_and_cycle_round_trip_on_visible_pixels() -> None:
    torch.manual_seed(2)
    width = 48
    left = torch.rand(1, 3, 6, width)
    disp_left = torch.full((1, 1, 6, width), 3.0)
    disp_left[..., 20:30] = 7.0
    right, covered = forward_warp(left, disp_left)
    # backward: rebuild the left from the right with the left disparity on visible pixels
    left_hat, valid = backward_warp(right, disp_left)
    visible = occlusion_mask(disp_left) * valid
    assert visible.sum() > 0.7 * visible.numel()
    assert torch.allclose(left_hat * visible, left * visible, atol=1e-5)
    # cycle with the right disparity: left_hat equals the left on covered pixels
    disp_right, cov_r = right_disparity_from_left(disp_left)
    assert torch.equal(cov_r, covered)
    cycled, cyc_valid = cycle_warp_right_to_left(right * covered, torch.where(covered > 0, disp_right, torch.nan))
    both = cyc_valid * visible
    assert both.sum() > 0.6 * both.numel()
    assert torch.allclose(cycled * both, left * both, atol=1e-5)


def test_occlusion_mask_marks_the_hidden_wall() -> None:
    disp = torch.full((1, 1, 1, 32), 2.0)
    disp[..., 10:16] = 8.0
    vis = occlusion_mask(disp)[0, 0, 0]
    # wall pixels 4..9 land on 2..7, under the box: occluded
    assert vis[4:10].max() == 0 and vis[10:16].min() == 1 and vis[16:30].min() == 1
    assert vis[:2].max() == 0  # off the frame edge


def test_metric_depth_to_disparity_tartanair() -> None:
    depth = torch.tensor([1.0, 2.0, 80.0, 1e5, float("nan"), float("inf"), 0.0, -3.0])
    disp = metric_depth_to_disparity(depth, 320.0, 0.25)
    assert torch.allclose(disp[:4], torch.tensor([80.0, 40.0, 1.0, 80.0 / 1e5]))
    assert disp[4:].abs().max() == 0
    assert valid_depth_mask(depth).tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert metric_depth_to_disparity(torch.tensor([1e5]), 320.0, 0.25, max_depth_m=100.0).item() == pytest.approx(0.8)


def test_inverse_depth_to_disparity_is_robust_to_outliers() -> None:
    torch.manual_seed(3)
    inv = torch.rand(1, 1, 5, 16, 16)
    d = inverse_depth_to_disparity(inv, 10.0)
    inv_outlier = inv.clone()
    inv_outlier[0, 0, 0, 0, 0] = 1e6  # one particle
    d_out = inverse_depth_to_disparity(inv_outlier, 10.0)
    assert d.min() >= 0 and d.max() <= 10.0
    assert (d - d_out).abs().flatten()[1:].max() < 0.1  # strength barely moves
    fixed = inverse_depth_to_disparity(inv, 10.0, value_range=(0.0, 1.0))
    assert torch.allclose(fixed, inv * 10.0)
    with pytest.raises(ValueError, match="no finite"):
        inverse_depth_to_disparity(torch.full((1, 1, 2, 2), math.nan), 5.0)


def test_latent_grid_follows_the_causal_rule() -> None:
    t, h, w = 9, 16, 24
    disp = torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1).expand(1, 1, t, h, w) * 8
    grid = disparity_to_latent_grid(disp)
    assert grid.shape == (1, 1, 3, 2, 3)
    # latent 0 = frame 0; latent 1 = frames 1..4 (mean 2.5); latent 2 = frames 5..8 (6.5); values / 8
    assert grid[0, 0, :, 0, 0].tolist() == [0.0, 2.5, 6.5]
    mask = torch.ones(1, 1, t, h, w)
    mask[0, 0, 6, 3, 10] = 0  # one pixel unknown in frame 6 -> latent frame 2, cell (0, 1)
    m = mask_to_latent_grid(mask)
    assert m.sum() == m.numel() - 1 and m[0, 0, 2, 0, 1] == 0
    with pytest.raises(ValueError, match="4k\\+1"):
        disparity_to_latent_grid(torch.zeros(1, 1, 8, 16, 16))
    with pytest.raises(ValueError, match="multiples of 8"):
        mask_to_latent_grid(torch.zeros(1, 1, 5, 12, 16))


def test_shape_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="disparity_px"):
        forward_warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="direction"):
        forward_warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4), direction=2)
