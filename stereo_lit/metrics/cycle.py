"""Right -> left cycle consistency: warp the produced right view back to the left and compare.

The produced right view is forward-splatted to the left with the right view's disparity
(:func:`stereo_lit.stereo.geometry.cycle_warp_right_to_left`, z-buffered), and compared with
the true left view on co-visible pixels: left pixels that received right content, and,
when given, inside ``mask`` (e.g. left pixels visible in the right view and valid).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from stereo_lit.stereo.geometry import cycle_warp_right_to_left
from stereo_lit.metrics._video import add_sum_states, check_stereo_inputs, full_precision, mask_or_ones


class CycleConsistencyError(Metric):
    """Mean absolute error (channel mean, [0, 1] units) of the right->left cycle on co-visible pixels.

    ``update(right, left, disparity_right_px, mask=None)``: videos ``[B,3,T,H,W]`` in
    [0, 1], right-view disparity ``[B,1,T,H,W]`` px, optional left-frame mask
    ``[B,1,T,H,W]``. ``compute()`` returns ``cycle_error`` and ``cycle_coverage_pct``
    (co-visible / masked left pixels).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        add_sum_states(self, ("abs_err_sum", "covisible", "considered"))

    @full_precision
    def update(
        self,
        right: torch.Tensor,
        left: torch.Tensor,
        disparity_right_px: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> None:
        check_stereo_inputs(right, left, disparity_right_px, ("right", "left", "disparity_right_px"))
        right, left = right.float(), left.float().to(right.device)
        left_hat, received = cycle_warp_right_to_left(right, disparity_right_px.to(right))
        considered = mask_or_ones(mask, right, "mask")
        covisible = considered * received
        err = (left_hat - left).abs().mean(dim=1, keepdim=True)
        self.abs_err_sum += (err.double() * covisible).sum()
        self.covisible += covisible.double().sum()
        self.considered += considered.double().sum()

    @full_precision
    def compute(self) -> dict[str, torch.Tensor]:
        covisible, considered = float(self.covisible), float(self.considered)
        return {
            "cycle_error": torch.tensor(float(self.abs_err_sum) / covisible if covisible > 0 else float("nan")),
            "cycle_coverage_pct": torch.tensor(100.0 * covisible / considered if considered > 0 else float("nan")),
        }


__all__ = ["CycleConsistencyError"]
