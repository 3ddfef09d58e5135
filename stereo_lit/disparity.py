"""From whatever depth a batch carries to the disparity the generators take.

Two cases (DESIGN.md section 2):

- **metric** depth in metres (TartanAir, a metric depth model): ``d = f * B / Z`` with
  the camera's focal length and baseline, scaled to the tensor's width;
- **relative inverse depth** (Video-Depth-Anything relative output, larger = nearer):
  mapped to ``[0, max_disparity_px]`` where ``max_disparity_px`` is a percentage of the
  frame width. The mapping uses robust percentiles of the *whole video*, fixed the
  first time a video is seen, so consecutive windows of one video share one depth
  scale and the 3D strength does not jump at window seams.

The convergence (zero-parallax) plane is not part of the disparity (which stays
>= 0 so that larger always means nearer); it is returned as a shift in pixels that
the output stage applies as a horizontal image translation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from stereo_lit.geometry import metric_depth_to_disparity


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
    """

    max_disparity_pct: float = 2.0
    convergence: float = 0.5
    low_percentile: float = 2.0
    high_percentile: float = 98.0
    focal_px: float | None = None
    baseline_m: float | None = None
    _ranges: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.max_disparity_pct <= 20.0:
            raise ValueError(f"max_disparity_pct must be in (0, 20] % of the width, got {self.max_disparity_pct}")
        if not 0.0 <= self.convergence <= 1.0:
            raise ValueError(f"convergence must be in [0, 1], got {self.convergence}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ValueError(
                f"need 0 <= low_percentile < high_percentile <= 100, got {self.low_percentile}, {self.high_percentile}"
            )

    def max_disparity_px(self, width_px: int) -> float:
        return self.max_disparity_pct / 100.0 * width_px

    def convergence_px(self, width_px: int) -> float:
        """Horizontal image translation (px) that puts the convergence plane on the screen."""
        return self.convergence * self.max_disparity_px(width_px)

    def relative_range(self, key: str, inv_depth: torch.Tensor) -> tuple[float, float]:
        """Robust ``(low, high)`` of inverse depth for video ``key``, fixed on first sight."""
        if key not in self._ranges:
            values = inv_depth[torch.isfinite(inv_depth)].float().flatten()
            if values.numel() == 0:
                raise ValueError(f"depth of {key!r} has no finite value")
            if values.numel() > 1_000_000:  # torch.quantile has an input size limit
                step = values.numel() // 1_000_000 + 1
                values = values[::step]
            q = torch.tensor([self.low_percentile, self.high_percentile], dtype=values.dtype) / 100.0
            low, high = torch.quantile(values, q.to(values.device)).tolist()
            if not high > low:
                high = low + 1e-6
            self._ranges[key] = (low, high)
        return self._ranges[key]

    def fix_video_range(self, key: str, whole_depth: torch.Tensor, kind: str) -> None:
        """Fix video ``key``'s range from (a sample of) its whole-video depth ``[T, H, W]`` of ``kind``.

        Call before the video's first window so that every window, and every video of a
        batch, maps depth with its own whole-video range; a no-op for metric depth with a
        known camera (no range is involved) and for a key already fixed.
        """
        if kind == "inverse_relative":
            self.relative_range(key, whole_depth)
        elif kind == "metric_m":
            if self.focal_px is None or self.baseline_m is None:
                self.relative_range(key, _metric_to_inverse(whole_depth))
        else:
            raise ValueError(f"depth kind must be 'metric_m' or 'inverse_relative', got {kind!r}")

    def from_inverse_depth(self, inv_depth: torch.Tensor, key: str, width_px: int | None = None) -> torch.Tensor:
        """Relative inverse depth ``[B, 1, T, H, W]`` (larger = nearer) -> disparity_px.

        ``width_px``: the frame width the strength is a percentage of (the source width
        when the tensor is padded); default the tensor's width.
        """
        low, high = self.relative_range(key, inv_depth)
        scaled = (torch.nan_to_num(inv_depth.float(), nan=low) - low) / (high - low)
        return scaled.clamp(0.0, 1.0) * self.max_disparity_px(width_px or inv_depth.shape[-1])

    def from_depth(self, depth: torch.Tensor, kind: str, key: str, width_px: int | None = None) -> torch.Tensor:
        """Depth of ``kind`` ``'metric_m'`` or ``'inverse_relative'`` -> disparity_px ``[B,1,T,H,W]``."""
        if kind == "inverse_relative":
            return self.from_inverse_depth(depth, key, width_px)
        if kind != "metric_m":
            raise ValueError(f"depth kind must be 'metric_m' or 'inverse_relative', got {kind!r}")
        if self.focal_px is not None and self.baseline_m is not None:
            return metric_depth_to_disparity(depth, self.focal_px, self.baseline_m)
        return self.from_inverse_depth(_metric_to_inverse(depth), key, width_px)


def _metric_to_inverse(depth_m: torch.Tensor) -> torch.Tensor:
    """Metric depth (m) -> inverse depth (1/m), 0 where the depth is not positive."""
    return torch.where(depth_m > 0, 1.0 / depth_m.clamp_min(1e-6), torch.zeros_like(depth_m))
