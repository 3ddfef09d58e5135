"""Shot cuts and per-shot, temporally smooth disparity ranges (pure functions, no models).

A film is many shots: a dark close-up and a landscape must not share one depth range, and
the range must not flicker inside a shot. The rules used here:

1. **Cuts** (:func:`~stereo_lit.stereo.cuts.detect_cuts`, re-exported here): PySceneDetect's ``ContentDetector`` (HSV + luma change
   between consecutive frames, threshold 27, shots at least ``min_shot_len`` frames) on the
   decoded frames; ``method="histogram"`` is a dependency-free rule: a cut where the L1
   distance between consecutive frames' normalised 3 x 16-bin RGB histograms is >= ``threshold``
   (default 0.5 of the maximum 2.0) and the last cut is at least ``min_shot_len`` frames back.
   A cut is the index of a shot's *first* frame.
2. **Range per shot** (:func:`frame_ranges`, ``smoothing=None``): the robust
   ``(low, high)`` percentiles of inverse depth pooled over up to ``max(4, 64 // shots)``
   evenly spaced frames of each shot, constant within the shot. A clip with one shot gets
   exactly the whole-video range of :class:`~stereo_lit.stereo.disparity.DisparityPolicy`.
3. **Smoothing within a shot** (``smoothing=tau`` frames): each frame's own percentiles,
   averaged over a look-ahead window ``[t, t + L]`` (``L = round(tau)``, clipped at the shot's
   end) and followed by an exponential moving average ``y_t = y_{t-1} + a (m_t - y_{t-1})``,
   ``a = 1 / (1 + tau)``, started at ``m_{shot start}`` and restarted at every cut. It is
   causal up to ``L`` frames of look-ahead (a streaming converter holds ``L`` frames), and
   the per-frame change inside a shot is at most ``a`` times the spread of the look-ahead means.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from stereo_lit.stereo.cuts import METHODS, detect_cuts  # noqa: F401 - the cut rule lives in the torch-free module

def shot_bounds(cuts: Sequence[int], num_frames: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of each shot of a ``num_frames`` video cut at ``cuts``."""
    edges = [0] + sorted(int(c) for c in cuts if 0 < int(c) < num_frames) + [num_frames]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def robust_range(values: torch.Tensor, low_percentile: float, high_percentile: float) -> tuple[float, float]:
    """``(low, high)`` percentiles of the finite values (subsampled to 1M; ``high > low`` always)."""
    values = values[torch.isfinite(values)].float().flatten()
    if values.numel() == 0:
        raise ValueError("depth has no finite value")
    if values.numel() > 1_000_000:  # torch.quantile has an input size limit
        step = values.numel() // 1_000_000 + 1
        values = values[::step]
    q = torch.tensor([low_percentile, high_percentile], dtype=values.dtype) / 100.0
    low, high = torch.quantile(values, q.to(values.device)).tolist()
    if not high > low:
        high = low + 1e-6
    return low, high


def _frames(depth, index) -> torch.Tensor:
    return torch.from_numpy(np.array(depth[index], dtype=np.float32))


def frame_ranges(
    inv_depth,
    cuts: Sequence[int],
    low_percentile: float = 2.0,
    high_percentile: float = 98.0,
    smoothing: float | None = None,
) -> torch.Tensor:
    """Per-frame ``(low, high)`` inverse-depth range ``[T, 2]`` (float64), per shot (module docstring).

    Args:
        inv_depth: ``[T, H, W]`` inverse depth (numpy, memmap or tensor; larger = nearer).
        cuts: first frame of each shot after the first.
        smoothing: None: one range per shot; ``tau >= 0`` frames: per-frame ranges with look-ahead
            mean and EMA (``0``: each frame's own range, which flickers; for comparison).
    """
    if len(inv_depth.shape) != 3:
        raise ValueError(f"frame_ranges: inverse depth must be [T, H, W], got shape {tuple(inv_depth.shape)}")
    if smoothing is not None and smoothing < 0:
        raise ValueError(f"range_smoothing must be None or >= 0 frames, got {smoothing}")
    num_frames = int(inv_depth.shape[0])
    shots = shot_bounds(cuts, num_frames)
    out = torch.empty(num_frames, 2, dtype=torch.float64)
    per_shot = max(4, 64 // len(shots))
    for start, stop in shots:
        if smoothing is None:
            sample = _frames(inv_depth, slice(start, stop, max(1, (stop - start) // per_shot)))
            out[start:stop] = torch.tensor(robust_range(sample, low_percentile, high_percentile), dtype=torch.float64)
            continue
        stride = max(1, int(np.ceil(np.sqrt(inv_depth.shape[1] * inv_depth.shape[2] / 65536))))
        own = torch.tensor(
            [
                robust_range(_frames(inv_depth, (t, slice(None, None, stride), slice(None, None, stride))),
                             low_percentile, high_percentile)
                for t in range(start, stop)
            ],
            dtype=torch.float64,
        )
        out[start:stop] = smooth_shot(own, smoothing)
    return out


def smooth_shot(ranges: torch.Tensor, tau: float) -> torch.Tensor:
    """Look-ahead mean then EMA (module docstring, rule 3) of one shot's per-frame values ``[T, K]``."""
    if tau <= 0:
        return ranges.clone()
    look = int(round(tau))
    cumulative = torch.cat([torch.zeros_like(ranges[:1]), ranges.cumsum(0)])
    stops = torch.clamp(torch.arange(ranges.shape[0]) + look + 1, max=ranges.shape[0])
    means = (cumulative[stops] - cumulative[: ranges.shape[0]]) / (stops - torch.arange(ranges.shape[0]))[:, None]
    alpha = 1.0 / (1.0 + tau)
    out = torch.empty_like(ranges)
    out[0] = means[0]
    for t in range(1, ranges.shape[0]):
        out[t] = out[t - 1] + alpha * (means[t] - out[t - 1])
    return out


def range_jumps(ranges: torch.Tensor, cuts: Sequence[int] = ()) -> torch.Tensor:
    """Frame-to-frame change ``|r_t - r_{t-1}|`` of ``[T, 2]`` ranges, max over low/high, ``[T-1]``.

    Jumps *at* a cut (into a shot's first frame) are set to 0 when ``cuts`` are given: a new
    shot may change the strength; what flickers is a change inside a shot.
    """
    jumps = (ranges[1:] - ranges[:-1]).abs().amax(dim=1)
    for c in cuts:
        if 0 < c < ranges.shape[0]:
            jumps[c - 1] = 0.0
    return jumps
