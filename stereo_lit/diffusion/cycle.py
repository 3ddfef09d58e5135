"""Right -> left cycle error of a produced stereo pair, per batch element (a pure function)."""

from __future__ import annotations

import torch

from stereo_lit.stereo.geometry import cycle_warp_right_to_left, right_disparity_from_left


def cycle_error(left: torch.Tensor, right: torch.Tensor, disparity_left_px: torch.Tensor) -> torch.Tensor:
    """Mean absolute right->left cycle error on co-visible pixels, per batch element.

    The right view's disparity is the left disparity forward-splatted to the right view;
    right pixels it does not cover (disocclusions, frame edge: generated content with no
    geometry) are left out. The right view is splatted back to the left (z-buffered) and
    compared with the left view where it lands.

    Args:
        left, right: ``[B, 3, T, H, W]`` in [0, 1].
        disparity_left_px: ``[B, 1, T, H, W]`` px in the left view's frame.

    Returns:
        ``[B]`` float32: channel-mean absolute error in [0, 1] units; NaN where no pixel
        is co-visible.
    """
    disparity_right_px, covered_right = right_disparity_from_left(disparity_left_px.float())
    disparity_right_px = torch.where(covered_right > 0.5, disparity_right_px, torch.full_like(disparity_right_px, float("nan")))
    left_hat, received = cycle_warp_right_to_left(right.float(), disparity_right_px)
    err = (left_hat - left.float()).abs().mean(dim=1, keepdim=True) * received
    count = received.flatten(1).sum(dim=1)
    total = err.flatten(1).sum(dim=1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))
