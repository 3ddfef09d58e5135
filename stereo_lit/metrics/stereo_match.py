"""Geometry of a produced stereo pair: OpenCV StereoSGBM disparity against the true disparity.

No learned weights: a classical semi-global matcher estimates the left view's disparity
from (left, produced right), and that is compared with the true left disparity on
valid pixels where SGBM returned a value. Run on the *true* pair, the same matcher gives
its own error floor (the evaluation suite reports it as the ``true_right (reference)``
row), so a method's numbers should be read relative to that floor.

Matcher settings (:class:`SGBMParams`): ``minDisparity=0``; ``numDisparities`` the
smallest multiple of 16 above the largest true disparity of the batch (capped at
``max_num_disparities``), or a fixed value; block 5x5 on the RGB image, ``P1 = 8*3*5^2``,
``P2 = 32*3*5^2`` (the smoothness penalties OpenCV's docs recommend), uniqueness 10 %,
left-right check ``disp12MaxDiff=1``, speckle filter window 100 px / range 2 px,
``preFilterCap=63``, mode ``STEREO_SGBM_MODE_SGBM_3WAY``. Invalid SGBM outputs (no
match, failed LR check, speckles, the left border without candidates) are excluded and
reported through ``sgbm_density_pct``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics import Metric

from stereo_lit.metrics._video import add_sum_states, check_stereo_inputs, full_precision, mask_or_ones, video_to_uint8


@dataclass(frozen=True)
class SGBMParams:
    """OpenCV StereoSGBM settings (see the module docstring)."""

    block_size: int = 5
    uniqueness_ratio: int = 10
    disp12_max_diff: int = 1
    speckle_window_size: int = 100
    speckle_range: int = 2
    pre_filter_cap: int = 63
    mode: str = "SGBM_3WAY"  # SGBM, HH, SGBM_3WAY, HH4


def num_disparities_for(max_disparity_px: float, cap: int = 256) -> int:
    """Smallest multiple of 16 strictly above ``max_disparity_px`` (at least 16, at most ``cap``)."""
    if not math.isfinite(max_disparity_px) or max_disparity_px < 0:
        max_disparity_px = 0.0
    n = 16 * (int(math.floor(max_disparity_px / 16.0)) + 1)
    return int(min(max(n, 16), max(16, cap - cap % 16)))


def sgbm_disparity(
    left_rgb_u8: np.ndarray, right_rgb_u8: np.ndarray, num_disparities: int, params: SGBMParams = SGBMParams()
) -> np.ndarray:
    """Left-view disparity (px, float32 ``[H,W]``) of a rectified pair; NaN where SGBM gives none.

    Args:
        left_rgb_u8, right_rgb_u8: uint8 ``[H,W,3]`` (channel order does not matter to SGBM).
        num_disparities: search range, a positive multiple of 16.
    """
    import cv2

    if num_disparities <= 0 or num_disparities % 16:
        raise ValueError(f"num_disparities must be a positive multiple of 16, got {num_disparities}")
    channels = 3
    matcher = cv2.StereoSGBM_create(
        minDisparity=0,
        numDisparities=num_disparities,
        blockSize=params.block_size,
        P1=8 * channels * params.block_size**2,
        P2=32 * channels * params.block_size**2,
        disp12MaxDiff=params.disp12_max_diff,
        preFilterCap=params.pre_filter_cap,
        uniquenessRatio=params.uniqueness_ratio,
        speckleWindowSize=params.speckle_window_size,
        speckleRange=params.speckle_range,
        mode=getattr(cv2, f"STEREO_SGBM_MODE_{params.mode}"),
    )
    raw = matcher.compute(np.ascontiguousarray(left_rgb_u8), np.ascontiguousarray(right_rgb_u8))
    disparity = raw.astype(np.float32) / 16.0  # fixed point, 4 fractional bits
    disparity[raw < 0] = np.nan  # invalid = (minDisparity - 1) * 16
    return disparity


class StereoMatchError(Metric):
    """SGBM disparity of (left, produced right) against the true left disparity.

    ``update(left, right, disparity_left_px, valid_left=None)``: videos ``[B,3,T,H,W]``
    in [0, 1], disparity ``[B,1,T,H,W]`` px, mask ``[B,1,T,H,W]``. Evaluated pixels are
    valid, have a finite true disparity and an SGBM value. ``compute()`` returns (percent
    values are of the evaluated pixels, density of the valid pixels):

    - ``sgbm_epe``: mean absolute disparity error (px);
    - ``sgbm_d1_pct``: KITTI D1, error > 3 px *and* > 5 % of the true disparity;
    - ``sgbm_bad1_pct``, ``sgbm_bad2_pct``, ``sgbm_bad3_pct``: error > 1, 2, 3 px;
    - ``sgbm_density_pct``: evaluated / valid pixels.

    Args:
        num_disparities: fixed SGBM search range (multiple of 16), or None for the smallest
            multiple of 16 above the batch's largest valid true disparity.
        max_num_disparities: cap of the automatic range (cost grows linearly with it).
        frame_stride: match every ``frame_stride``-th frame only (speed).
        params: :class:`SGBMParams`.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    _COUNTS = ("d1", "bad1", "bad2", "bad3")

    def __init__(
        self,
        num_disparities: int | None = None,
        *,
        max_num_disparities: int = 256,
        frame_stride: int = 1,
        params: SGBMParams | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_disparities is not None and (num_disparities <= 0 or num_disparities % 16):
            raise ValueError(f"num_disparities must be a positive multiple of 16 or None, got {num_disparities}")
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
        self.num_disparities = num_disparities
        self.max_num_disparities = int(max_num_disparities)
        self.frame_stride = int(frame_stride)
        self.params = params or SGBMParams()
        add_sum_states(self, ("abs_err_sum", "evaluated", "valid", *self._COUNTS))

    @full_precision
    def update(
        self,
        left: torch.Tensor,
        right: torch.Tensor,
        disparity_left_px: torch.Tensor,
        valid_left: torch.Tensor | None = None,
    ) -> None:
        check_stereo_inputs(left, right, disparity_left_px, ("left", "right", "disparity_left_px"))
        truth = disparity_left_px.detach().float().cpu()
        valid = (mask_or_ones(valid_left, truth, "valid_left") > 0.5) & torch.isfinite(truth) & (truth >= 0)
        truth_np, valid_np = truth[:, 0].numpy(), valid[:, 0].numpy()  # [B,T,H,W]
        n = self.num_disparities
        if n is None:
            max_true = float(truth[valid].max()) if bool(valid.any()) else 0.0
            n = num_disparities_for(max_true, self.max_num_disparities)
        left_u8, right_u8 = video_to_uint8(left), video_to_uint8(right)

        sums = dict.fromkeys(("abs_err_sum", "evaluated", "valid", *self._COUNTS), 0.0)
        for b in range(left_u8.shape[0]):
            for t in range(0, left_u8.shape[1], self.frame_stride):
                estimate = sgbm_disparity(left_u8[b, t], right_u8[b, t], n, self.params)
                gt, ok = truth_np[b, t], valid_np[b, t]
                evaluated = ok & np.isfinite(estimate)
                err = np.abs(estimate[evaluated] - gt[evaluated]).astype(np.float64)
                gt_eval = gt[evaluated]
                sums["abs_err_sum"] += float(err.sum())
                sums["evaluated"] += float(evaluated.sum())
                sums["valid"] += float(ok.sum())
                sums["d1"] += float(((err > 3.0) & (err > 0.05 * gt_eval)).sum())
                for k in (1, 2, 3):
                    sums[f"bad{k}"] += float((err > k).sum())
        for name, value in sums.items():
            setattr(self, name, getattr(self, name) + value)

    @full_precision
    def compute(self) -> dict[str, torch.Tensor]:
        evaluated, valid = float(self.evaluated), float(self.valid)

        def ratio(num: float, den: float, scale: float = 1.0) -> torch.Tensor:
            return torch.tensor(scale * num / den if den > 0 else float("nan"))

        out = {"sgbm_epe": ratio(float(self.abs_err_sum), evaluated)}
        out["sgbm_d1_pct"] = ratio(float(self.d1), evaluated, 100.0)
        for k in (1, 2, 3):
            out[f"sgbm_bad{k}_pct"] = ratio(float(getattr(self, f"bad{k}")), evaluated, 100.0)
        out["sgbm_density_pct"] = ratio(evaluated, valid, 100.0)
        return out


__all__ = ["SGBMParams", "StereoMatchError", "num_disparities_for", "sgbm_disparity"]
