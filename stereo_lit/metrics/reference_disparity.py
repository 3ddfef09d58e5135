"""Reference disparity of a true stereo pair without ground truth: a matcher plus a left-right check.

Real footage has no depth, so the region split (visible / disoccluded) and the geometry
metrics are measured against *matched* (pseudo) ground truth: OpenCV SGBM
(:func:`stereo_lit.metrics.stereo_match.sgbm_disparity`, the matcher the geometry metric
uses) run on the true pair in both directions; a left pixel is kept when its match lands
inside the right view and the right view's own disparity there agrees within
``max_diff_px`` (left-right consistency). Everything else is excluded and counted.

Sign convention (DESIGN.md): the left pixel at column ``x`` is seen in the right view at
``x - d``; parallel rigs (VR180, stereo cameras) have ``d >= 0``. Converged footage (3D
films) has both signs: search ``[min_disparity_px, max_disparity_px]`` with a negative
minimum, and estimate the clip's zero-parallax shift with :func:`zero_parallax_shift`.

SGBM only searches ``d >= 0``; a negative minimum ``-m`` is handled on a canvas ``m``
columns wider: the left image padded by ``m`` columns on its left, the right image on its
right, so the left pixel ``x`` (canvas ``x + m``) matches the real right column ``x - d`` at
canvas disparity ``d + m >= 0`` (no right-view column is lost to a shift); with a negative
minimum, matches on the range's lower bound are excluded (the true disparity may lie below
it). Both images are also padded on the left by the search range so the left border gets
candidates too; matches that land outside the right view are excluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from stereo_lit.metrics.stereo_match import SGBMParams, num_disparities_for, sgbm_disparity


@dataclass(frozen=True)
class ReferenceDisparity:
    """Matched disparity of the left view.

    Attributes:
        disparity_px: float32 ``[H, W]``, NaN where not valid.
        valid: bool ``[H, W]``: matched and left-right consistent.
        failed: pixels excluded (no match, match outside the right view, or failed check).
        lr_failed: of those, pixels that had a match but failed the left-right check.
    """

    disparity_px: np.ndarray
    valid: np.ndarray
    failed: int
    lr_failed: int


def _match(left: np.ndarray, right: np.ndarray, num_disparities: int, params: SGBMParams) -> np.ndarray:
    """SGBM left disparity in ``[0, num_disparities)`` with left padding for the border."""
    pad = ((0, 0), (num_disparities, 0), (0, 0))
    left_p, right_p = np.pad(left, pad, mode="edge"), np.pad(right, pad, mode="edge")
    return sgbm_disparity(left_p, right_p, num_disparities, params)[:, num_disparities:]


def reference_disparity(
    left_rgb_u8: np.ndarray,
    right_rgb_u8: np.ndarray,
    min_disparity_px: int = 0,
    max_disparity_px: float | None = None,
    max_diff_px: float = 1.0,
    params: SGBMParams = SGBMParams(),
) -> ReferenceDisparity:
    """Left-view disparity of a rectified true pair, left-right checked.

    Args:
        left_rgb_u8, right_rgb_u8: uint8 ``[H, W, 3]`` of the same size.
        min_disparity_px: smallest disparity searched (negative for converged footage).
        max_disparity_px: largest disparity searched (default 10 % of the width).
        max_diff_px: tolerance of the left-right check.
    """
    if left_rgb_u8.shape != right_rgb_u8.shape or left_rgb_u8.ndim != 3:
        raise ValueError(f"left and right must be uint8 [H, W, 3] of one size, got {left_rgb_u8.shape} and {right_rgb_u8.shape}")
    height, width = left_rgb_u8.shape[:2]
    max_d = 0.1 * width if max_disparity_px is None else float(max_disparity_px)
    min_d = int(math.floor(min_disparity_px))
    if max_d <= min_d:
        raise ValueError(f"max_disparity_px ({max_d}) must be above min_disparity_px ({min_d})")
    # negative disparities: the left view sits m = -min_d columns further right on a wider canvas
    # (left padded on its left, right on its right), so d_c = d + m >= 0 and every right column is real
    m = max(0, -min_d)
    n = num_disparities_for(max_d + m, cap=max(256, 16 * math.ceil((max_d + m + 1) / 16)))
    left_c = np.pad(left_rgb_u8, ((0, 0), (m, 0), (0, 0)), mode="edge")
    right_c = np.pad(right_rgb_u8, ((0, 0), (0, m), (0, 0)), mode="edge")
    d_left = _match(left_c, right_c, n, params)[:, m:]  # canvas disparity d_c of each left pixel
    d_right = _match(right_c[:, ::-1], left_c[:, ::-1], n, params)[:, ::-1]  # right-view canvas disparity
    matched = np.isfinite(d_left)
    x = np.arange(width)[None, :].repeat(height, 0)
    target = np.rint(x + m - np.nan_to_num(d_left, nan=0.0)).astype(np.int64)  # column in the right view
    inside = matched & (target >= 0) & (target < width)
    if min_d < 0:  # a match on the search range's lower bound may be a disparity below the range
        inside &= np.nan_to_num(d_left, nan=0.0) > 0.0
    back = np.take_along_axis(d_right, np.clip(target, 0, width - 1), axis=1)
    consistent = inside & np.isfinite(back) & (np.abs(back - np.nan_to_num(d_left, nan=0.0)) <= max_diff_px)
    if min_d > 0:
        consistent &= np.nan_to_num(d_left, nan=0.0) >= min_d
    disparity = np.where(consistent, d_left - m, np.nan).astype(np.float32)
    failed = int(consistent.size - consistent.sum())
    return ReferenceDisparity(disparity, consistent, failed, int((inside & ~consistent).sum()))


def reference_disparity_video(
    left: torch.Tensor,
    right: torch.Tensor,
    min_disparity_pct: float = 0.0,
    max_disparity_pct: float = 10.0,
    max_diff_px: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """:func:`reference_disparity` per frame of ``[3, T, H, W]`` videos in [0, 1].

    Returns:
        ``(disparity_px [1, T, H, W]`` (0 where invalid), ``valid [1, T, H, W]`` float,
        failed pixel count over all frames).
    """
    if left.shape != right.shape or left.ndim != 4 or left.shape[0] != 3:
        raise ValueError(f"left and right must be [3, T, H, W] of one size, got {tuple(left.shape)} and {tuple(right.shape)}")
    width = left.shape[-1]
    to_u8 = lambda v: (v.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()  # noqa: E731
    lu8, ru8 = to_u8(left), to_u8(right)
    disparities, valids, failed = [], [], 0
    for t in range(lu8.shape[0]):
        ref = reference_disparity(
            lu8[t], ru8[t], int(math.floor(min_disparity_pct * width / 100.0)), max_disparity_pct * width / 100.0, max_diff_px
        )
        disparities.append(np.nan_to_num(ref.disparity_px, nan=0.0))
        valids.append(ref.valid)
        failed += ref.failed
    disparity = torch.from_numpy(np.stack(disparities))[None].float()
    valid = torch.from_numpy(np.stack(valids))[None].float()
    return disparity, valid, failed


def zero_parallax_shift(disparity: np.ndarray | torch.Tensor, valid: np.ndarray | torch.Tensor | None = None, percentile: float = 2.0) -> float:
    """The clip's zero-parallax shift in px: a robust low percentile of the valid matched disparity.

    For converged footage (3D films) the far end of the scene sits at a negative disparity
    ``s``; ``disparity - s`` is then >= 0 for (almost) every pixel, as our geometry expects,
    and ``s`` is the convergence to apply to a produced pair to compare it with the film.
    Parallel footage gives ``s`` close to 0. NaN when nothing is valid.
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    d = disparity.detach().cpu().numpy() if isinstance(disparity, torch.Tensor) else np.asarray(disparity)
    ok = np.isfinite(d)
    if valid is not None:
        v = valid.detach().cpu().numpy() if isinstance(valid, torch.Tensor) else np.asarray(valid)
        if v.shape != d.shape:
            raise ValueError(f"valid has shape {v.shape} but disparity has {d.shape}")
        ok &= v > 0.5
    if not ok.any():
        return float("nan")
    return float(np.percentile(d[ok].astype(np.float64), percentile))


__all__ = ["ReferenceDisparity", "reference_disparity", "reference_disparity_video", "zero_parallax_shift"]
