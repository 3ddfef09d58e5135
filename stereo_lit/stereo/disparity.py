"""From whatever depth a batch carries to the disparity the generators take.

Two cases (DESIGN.md section 2):

- **metric** depth in metres (TartanAir, a metric depth model): ``d = f * B / Z`` with
  the camera's focal length and baseline, scaled to the tensor's width;
- **relative inverse depth** (Video-Depth-Anything relative output, larger = nearer):
  mapped to ``[0, max_disparity_px]`` where ``max_disparity_px`` is a percentage of the
  frame width. The mapping uses robust percentiles of the *whole video*, fixed the
  first time a video is seen, so consecutive windows of one video share one depth
  scale and the 3D strength does not jump at window seams. With ``shot_aware`` and the
  video's shot cuts, each shot gets its own range (optionally smoothed over time inside
  the shot, ``range_smoothing``): the rules are in :mod:`stereo_lit.stereo.shots`.

The convergence (zero-parallax) plane is not part of the disparity (which stays
>= 0 so that larger always means nearer); it is returned as a shift in pixels that
the output stage applies as a horizontal image translation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stereo_lit.stereo import fast_disparity
from stereo_lit.stereo.geometry import metric_depth_to_disparity
from stereo_lit.stereo.shots import frame_ranges, robust_range


@dataclass
class DisparityPolicy:
    """How depth becomes disparity for in-the-wild video.

    Attributes:
        max_disparity_pct: strongest disparity, in % of the frame width (films: ~1-3%).
        convergence: zero-parallax plane as a fraction of ``max_disparity_px``:
            0 puts the screen at infinity (everything in front of the screen), 1 at the
            nearest surface (everything behind it).
        low_percentile, high_percentile: robust range of inverse depth mapped to
            ``[0, max_disparity_px]``.
        focal_px, baseline_m: camera for metric depth (at the tensor's width); when
            None, metric depth is first turned into inverse depth and treated as relative.
        shot_aware: one range per shot (given the video's cuts) instead of one per video.
        range_smoothing: None: the range is constant inside a shot; ``tau`` (frames): it
            follows each frame's range through a look-ahead mean and an EMA of time constant
            ``tau`` (:func:`stereo_lit.stereo.shots.frame_ranges`).
    """

    max_disparity_pct: float = 2.0
    convergence: float = 0.5
    low_percentile: float = 2.0
    high_percentile: float = 98.0
    focal_px: float | None = None
    baseline_m: float | None = None
    shot_aware: bool = True
    range_smoothing: float | None = None
    _ranges: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)
    _frame_ranges: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.max_disparity_pct <= 20.0:
            raise ValueError(f"max_disparity_pct must be in (0, 20] % of the width, got {self.max_disparity_pct}")
        if not 0.0 <= self.convergence <= 1.0:
            raise ValueError(f"convergence must be in [0, 1], got {self.convergence}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ValueError(
                f"need 0 <= low_percentile < high_percentile <= 100, got {self.low_percentile}, {self.high_percentile}"
            )
        if self.range_smoothing is not None and self.range_smoothing < 0:
            raise ValueError(f"range_smoothing must be None or >= 0 frames, got {self.range_smoothing}")

    def max_disparity_px(self, width_px: int) -> float:
        return self.max_disparity_pct / 100.0 * width_px

    def convergence_px(self, width_px: int) -> float:
        """Horizontal image translation (px) that puts the convergence plane on the screen."""
        return self.convergence * self.max_disparity_px(width_px)

    def relative_range(self, key: str, inv_depth: torch.Tensor) -> tuple[float, float]:
        """Robust ``(low, high)`` of inverse depth for video ``key``, fixed on first sight."""
        if key not in self._ranges:
            try:
                self._ranges[key] = robust_range(inv_depth, self.low_percentile, self.high_percentile)
            except ValueError:
                raise ValueError(f"depth of {key!r} has no finite value") from None
        return self._ranges[key]

    def fix_video_range(
        self, key: str, whole_depth: torch.Tensor, kind: str, depth: Any = None, cuts: Sequence[int] = ()
    ) -> None:
        """Fix video ``key``'s range from (a sample of) its whole-video depth ``[T, H, W]`` of ``kind``.

        Call before the video's first window so that every window, and every video of a
        batch, maps depth with its own whole-video range; a no-op for metric depth with a
        known camera (no range is involved) and for a key already fixed. With ``shot_aware``,
        the whole depth ``depth [T, H, W]`` and its shot ``cuts``, the range is fixed per frame
        (per shot; smoothed with ``range_smoothing``); windows then pass ``start`` to
        :meth:`from_depth`. One shot and no smoothing is exactly the whole-video range.
        """
        if kind not in ("inverse_relative", "metric_m"):
            raise ValueError(f"depth kind must be 'metric_m' or 'inverse_relative', got {kind!r}")
        if kind == "metric_m" and self.focal_px is not None and self.baseline_m is not None:
            return
        per_frame = self.shot_aware and depth is not None and (len(cuts) > 0 or self.range_smoothing is not None)
        if per_frame and key not in self._frame_ranges:
            source = depth if kind == "inverse_relative" else _LazyInverse(depth)
            self._frame_ranges[key] = frame_ranges(
                source, cuts, self.low_percentile, self.high_percentile, self.range_smoothing
            )
        elif not per_frame:
            self.relative_range(key, whole_depth if kind == "inverse_relative" else _metric_to_inverse(whole_depth))

    def window_range(self, key: str, start: int, num_frames: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-frame ``(low, high)`` ``[1,1,T,1,1]`` of frames ``start..start+T`` of video ``key``.

        None when the video has no per-frame range (whole-video range). Frames past the
        video's end (temporal padding) repeat the last frame's range.
        """
        ranges = self._frame_ranges.get(key)
        if ranges is None:
            return None
        index = torch.arange(start, start + num_frames).clamp(0, ranges.shape[0] - 1)
        chosen = ranges[index].float()
        return chosen[:, 0].view(1, 1, -1, 1, 1), chosen[:, 1].view(1, 1, -1, 1, 1)

    def from_inverse_depth(
        self, inv_depth: torch.Tensor, key: str, width_px: int | None = None, start: int | None = None
    ) -> torch.Tensor:
        """Relative inverse depth ``[B, 1, T, H, W]`` (larger = nearer) -> disparity_px.

        ``width_px``: the frame width the strength is a percentage of (the source width
        when the tensor is padded); default the tensor's width. ``start``: the window's
        first frame in its video, which selects the per-frame (per-shot) range when one is fixed.
        """
        window = self.window_range(key, start, inv_depth.shape[2]) if start is not None else None
        if window is not None:
            low, high = (v.to(inv_depth.device) for v in window)
        else:
            low, high = self.relative_range(key, inv_depth)
        scale = self.max_disparity_px(width_px or inv_depth.shape[-1])
        if _uses_kernel(inv_depth):  # the same float32 steps in one compiled pass
            return _normalise_on_cpu(inv_depth, low, high, scale)
        # one new tensor, then in place: a 1080p chunk is 8 MB a frame, and each temporary costs page faults
        values = torch.where(torch.isnan(inv_depth), torch.as_tensor(low, dtype=torch.float32), inv_depth.float())
        values.sub_(low).div_(high - low).clamp_(0.0, 1.0)
        return values.mul_(scale)

    def from_depth(
        self, depth: torch.Tensor, kind: str, key: str, width_px: int | None = None, start: int | None = None
    ) -> torch.Tensor:
        """Depth of ``kind`` ``'metric_m'`` or ``'inverse_relative'`` -> disparity_px ``[B,1,T,H,W]``."""
        if kind == "inverse_relative":
            return self.from_inverse_depth(depth, key, width_px, start)
        if kind != "metric_m":
            raise ValueError(f"depth kind must be 'metric_m' or 'inverse_relative', got {kind!r}")
        if self.focal_px is not None and self.baseline_m is not None:
            return metric_depth_to_disparity(depth, self.focal_px, self.baseline_m)
        return self.from_inverse_depth(_metric_to_inverse(depth), key, width_px, start)


def _uses_kernel(tensor: torch.Tensor) -> bool:
    """The compiled CPU kernel applies: numba present, a CPU tensor, no autograd."""
    return fast_disparity.available() and tensor.device.type == "cpu" and not tensor.requires_grad


def _normalise_on_cpu(
    inv_depth: torch.Tensor, low: float | torch.Tensor, high: float | torch.Tensor, scale: float
) -> torch.Tensor:
    """:meth:`DisparityPolicy.from_inverse_depth`'s mapping by :func:`fast_disparity.normalise`, with
    the range's ends as the torch code takes them: a float range as float32 ``low`` and float32
    ``high - low`` (the difference in double, as a Python scalar is), a per-frame ``[1, 1, T, 1, 1]``
    range as float32 tensors (the difference in float32)."""
    b, c, t = inv_depth.shape[:3]
    if isinstance(low, torch.Tensor) or isinstance(high, torch.Tensor):
        low_t = torch.as_tensor(low, dtype=torch.float32).cpu()
        divisor_t = torch.as_tensor(high, dtype=torch.float32).cpu() - low_t
        low_frames = low_t.expand(b, c, t, 1, 1).reshape(-1).numpy()
        divisor_frames = divisor_t.expand(b, c, t, 1, 1).reshape(-1).numpy()
    else:
        low_frames = np.array([low], dtype=np.float32)
        divisor_frames = np.array([float(high) - float(low)], dtype=np.float32)
    values = inv_depth.detach().reshape(b * c * t, *inv_depth.shape[3:]).float().numpy()
    return torch.from_numpy(fast_disparity.normalise(values, low_frames, divisor_frames, scale)).reshape(inv_depth.shape)


class _LazyInverse:
    """Inverse of metric depth ``[T, H, W]`` computed per indexed slice (whole films stay on disk)."""

    def __init__(self, depth_m: Any) -> None:
        self.depth_m = depth_m
        self.shape = tuple(depth_m.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        depth = np.asarray(self.depth_m[index], dtype=np.float32)
        return np.where(depth > 0, 1.0 / np.maximum(depth, 1e-6), 0.0).astype(np.float32)


def _metric_to_inverse(depth_m: torch.Tensor) -> torch.Tensor:
    """Metric depth (m) -> inverse depth (1/m), 0 where the depth is not positive."""
    return torch.where(depth_m > 0, 1.0 / depth_m.clamp_min(1e-6), torch.zeros_like(depth_m))
