"""MS-SSIM of the produced right view against the true right view (whole frames).

The standard multi-scale SSIM (Wang, Simoncelli & Bovik 2003) as torchmetrics computes it
(:func:`torchmetrics.functional.image.multiscale_structural_similarity_index_measure`):
5 scales, weights ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``, 11x11 Gaussian window
(sigma 1.5), ``data_range`` 1, negative contrast terms clipped at 0 (torchmetrics'
default ``normalize="relu"``, which keeps the fractional powers real). Per frame, then the
mean over every frame seen (sum and count states: DDP-safe).

Small frames: the 5th scale is the frame downsampled 16x, and the window must fit in it,
so torchmetrics needs ``min(H, W) // 16 > 10``: a side of at least
:func:`ms_ssim_min_side` = 176 px. The scales are *not* changed to fit smaller frames (the
number would not be comparable with the papers'); such frames are counted and left out,
the column is nan when no frame fits, and :attr:`MultiScaleSSIM.note` says why.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from stereo_lit.metrics._video import check_video, full_precision, to_frames

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_min_side(kernel_size: int = 11, scales: int = len(MS_SSIM_BETAS)) -> int:
    """Smallest frame side (px) torchmetrics' MS-SSIM accepts: ``side // (scales-1)^2 > kernel_size - 1``
    and ``side >= 2^scales`` (176 for the standard 11 px window and 5 scales)."""
    div = max(1, scales - 1) ** 2
    return max(kernel_size * div, 2**scales)


class MultiScaleSSIM(Metric):
    """Mean per-frame MS-SSIM of videos ``[B,3,T,H,W]`` in [0, 1] (see the module doc).

    ``compute()`` returns ``{"ms_ssim": tensor}``; after it, :attr:`note` is a one-line
    reason when frames were too small (None otherwise). :attr:`last_per_frame` holds the
    values ``[B*T]`` (frame ``b*T + t``, nan when too small) of the last ``update``.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, data_range: float = 1.0, *, kernel_size: int = 11, frames_per_chunk: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_range = float(data_range)
        self.kernel_size = int(kernel_size)
        self.frames_per_chunk = int(frames_per_chunk)
        self.min_side = ms_ssim_min_side(self.kernel_size)
        self.add_state("ms_ssim_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("frames", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("frames_too_small", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("smallest_side", torch.tensor(math.inf, dtype=torch.float64), dist_reduce_fx="min")
        self.note: str | None = None
        self.last_per_frame: torch.Tensor | None = None

    @full_precision
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        check_video(preds, "preds", channels=3)
        check_video(target, "target", channels=3)
        if preds.shape != target.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} must have the same shape")
        pred_frames, target_frames = to_frames(preds), to_frames(target.to(preds.device))
        n, side = pred_frames.shape[0], min(preds.shape[-2:])
        if side < self.min_side:
            self.frames_too_small += n
            self.smallest_side = torch.minimum(self.smallest_side, torch.tensor(float(side), dtype=torch.float64,
                                                                                device=self.smallest_side.device))
            self.last_per_frame = torch.full((n,), math.nan)
            return
        values = []
        for start in range(0, n, self.frames_per_chunk):
            chunk = slice(start, start + self.frames_per_chunk)
            values.append(multiscale_structural_similarity_index_measure(
                pred_frames[chunk], target_frames[chunk], kernel_size=self.kernel_size, sigma=1.5,
                data_range=self.data_range, betas=MS_SSIM_BETAS, reduction="none",
            ).reshape(-1))
        per_frame = torch.cat(values)
        self.ms_ssim_sum += per_frame.double().sum().to(self.ms_ssim_sum.device)
        self.frames += n
        self.last_per_frame = per_frame.detach().float().cpu()

    @full_precision
    def compute(self) -> dict[str, torch.Tensor]:
        frames, small = float(self.frames), float(self.frames_too_small)
        self.note = None
        if small > 0:
            scored = f"left out of ms_ssim ({int(frames)} frame(s) scored)" if frames else "so ms_ssim is n/a"
            self.note = (
                f"ms_ssim: {int(small)} frame(s) with a side of {int(float(self.smallest_side))} px are below the "
                f"{self.min_side} px that 5-scale MS-SSIM with an {self.kernel_size}-px window needs, {scored}."
            )
        value = float(self.ms_ssim_sum) / frames if frames > 0 else math.nan
        return {"ms_ssim": torch.tensor(value)}


__all__ = ["MS_SSIM_BETAS", "MultiScaleSSIM", "ms_ssim_min_side"]
