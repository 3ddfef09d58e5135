"""Right view against the true right view: PSNR, SSIM (and LPIPS) per region.

Regions (masks ``[B,1,T,H,W]``, 1 = in region):

- ``all``: valid pixels of the true right view;
- ``visible``: valid right pixels that the left camera also sees (from the true right
  disparity, :func:`stereo_lit.stereo.geometry.occlusion_mask` with ``direction=1``);
- ``disoccluded``: valid and not visible: what a method must invent.

PSNR is computed from the pooled squared error of the region over everything seen
(``10 log10(range^2 / MSE)``), exactly as torchmetrics' ``PeakSignalNoiseRatio`` does
with a fixed ``data_range``.

SSIM of a region judges the region on its own pixels (:func:`masked_ssim_map`): the
local means, variances and covariance of the Gaussian window (11x11, sigma 1.5, as
torchmetrics) are *mask-weighted* statistics over the window's pixels that lie in the
region, ``mu = G*(m x) / G*m`` etc., so a window straddling two regions never mixes
them. The region's SSIM is the mean of that map (channel-averaged) over the region's
pixels. On a full mask this is exactly torchmetrics'
``structural_similarity_index_measure`` (reflect-padded border) averaged over frames.
States are sums and counts, so the result is the same under DDP as in one process.
Everything runs in float32 with autocast off, whatever the trainer's precision.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from stereo_lit.metrics._video import check_video, full_precision, mask_or_ones, to_frames

log = logging.getLogger(__name__)

REGIONS = ("all", "visible", "disoccluded")

#: torchvision backbone checkpoints torchmetrics' LPIPS loads (file name prefixes in the torch hub cache)
LPIPS_BACKBONE_FILES = {"alex": "alexnet-", "vgg": "vgg16-", "squeeze": "squeezenet1_1-"}
_LOGGED_REASONS: set[str] = set()


def lpips_unavailable_reason(net_type: str = "alex") -> str | None:
    """Why LPIPS cannot run offline here, or None when torchvision and the backbone weights are present."""
    if net_type not in LPIPS_BACKBONE_FILES:
        return f"unknown LPIPS net_type {net_type!r}; expected one of {sorted(LPIPS_BACKBONE_FILES)}"
    if importlib.util.find_spec("torchvision") is None:
        return "torchvision is not installed (torchmetrics' LPIPS needs it for the backbone)"
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    prefix = LPIPS_BACKBONE_FILES[net_type]
    if not any(p.name.startswith(prefix) for p in checkpoints.glob("*.pth")):
        return f"LPIPS backbone weights {prefix}*.pth are not in {checkpoints} (no download is attempted)"
    return None


def _log_once(reason: str) -> None:
    if reason not in _LOGGED_REASONS:
        _LOGGED_REASONS.add(reason)
        log.warning("LPIPS skipped: %s", reason)


def psnr_from_mse(mse: float, data_range: float = 1.0) -> float:
    """``10 log10(range^2 / mse)``; inf for a perfect match, nan when nothing was measured."""
    if math.isnan(mse):
        return float("nan")
    if mse <= 0:
        return float("inf")
    return 10.0 * math.log10(data_range**2 / mse)


def _gaussian_window(kernel_size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian ``[kernel_size]`` (float32), as torchmetrics' SSIM builds it."""
    dist = torch.arange((1 - kernel_size) / 2, (1 + kernel_size) / 2, step=1, dtype=torch.float32, device=device)
    gauss = torch.exp(-((dist / sigma) ** 2) / 2)
    return gauss / gauss.sum()


def masked_ssim_map(
    preds: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    data_range: float = 1.0,
    kernel_size: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Channel-averaged SSIM map ``[N,1,H,W]`` of images ``[N,C,H,W]`` from mask-weighted local statistics.

    ``mask`` ``[N,1,H,W]`` (1 = in the region; None = everywhere): each window's means,
    variances and covariance are taken over its in-region pixels only (Gaussian weights
    renormalised by ``G*m``). Values outside the region (``G*m`` = 0 far from it) are 0
    and meant to be ignored. Borders are reflect-padded as torchmetrics does, so with
    no mask this equals torchmetrics' Gaussian SSIM map.
    """
    if preds.shape != target.shape or preds.ndim != 4:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} must both be [N,C,H,W]")
    x, y = preds.float(), target.float()
    m = torch.ones_like(x[:, :1]) if mask is None else mask.float().to(x.device)
    if m.shape != x[:, :1].shape:
        raise ValueError(f"mask must be [N,1,H,W] like preds {tuple(x.shape)}, got {tuple(m.shape)}")
    pad = (kernel_size - 1) // 2
    x, y, m = (F.pad(v, (pad, pad, pad, pad), mode="reflect") for v in (x, y, m))
    g = _gaussian_window(kernel_size, sigma, x.device)
    kernel = (g[:, None] * g[None, :])[None, None]  # [1,1,k,k]

    def blur(v: torch.Tensor) -> torch.Tensor:  # depthwise Gaussian, no padding (already reflect-padded)
        return F.conv2d(v, kernel.expand(v.shape[1], 1, kernel_size, kernel_size), groups=v.shape[1])

    weight = blur(m)  # [N,1,H,W]
    safe = weight.clamp_min(1e-12)
    mu_x, mu_y = blur(m * x) / safe, blur(m * y) / safe
    var_x = (blur(m * x * x) / safe - mu_x**2).clamp_min(0.0)
    var_y = (blur(m * y * y) / safe - mu_y**2).clamp_min(0.0)
    cov = blur(m * x * y) / safe - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return torch.where(weight > 1e-12, ssim, torch.zeros_like(ssim)).mean(dim=1, keepdim=True)


def ssim_map(
    preds: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0, kernel_size: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Channel-averaged SSIM map ``[N,1,H,W]`` of images ``[N,C,H,W]`` (torchmetrics' Gaussian SSIM, no mask)."""
    return masked_ssim_map(preds, target, None, data_range=data_range, kernel_size=kernel_size, sigma=sigma)


class RightViewMetrics(Metric):
    """PSNR and SSIM of the produced right view on all / visible / disoccluded pixels.

    ``update(preds, target, valid=None, visible=None)`` with videos ``[B,3,T,H,W]`` in
    [0, 1] and masks ``[B,1,T,H,W]``. Without ``visible`` only the ``all`` region is
    measured (the others stay nan). ``compute()`` returns ``psnr_{region}`` (dB) and
    ``ssim_{region}``, plus ``lpips_all`` when LPIPS runs (see ``lpips``).

    Args:
        data_range: value range of the images (1.0 for [0, 1]).
        lpips: ``"auto"`` (default): LPIPS on whole frames when torchvision and the
            backbone weights are present locally, otherwise skipped with one logged
            reason and no ``lpips_all`` key; ``True``: required (error if unavailable);
            ``False``: off.
        lpips_net: torchmetrics LPIPS backbone (``alex``, ``vgg``, ``squeeze``).
        frames_per_chunk: frames per SSIM/LPIPS call (bounds memory).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        data_range: float = 1.0,
        *,
        lpips: bool | str = "auto",
        lpips_net: str = "alex",
        frames_per_chunk: int = 8,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.data_range = float(data_range)
        self.frames_per_chunk = int(frames_per_chunk)
        for region in REGIONS:
            self.add_state(f"sse_{region}", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"values_{region}", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"ssim_sum_{region}", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"pixels_{region}", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.lpips_metric = None
        #: why LPIPS is not computed ("auto" and unavailable), else None
        self.lpips_reason: str | None = None
        #: ``{"psnr_all", "ssim_all"}`` -> ``[B*T]`` values of the last ``update`` (frame ``b*T + t``)
        self.last_per_frame: dict[str, torch.Tensor] = {}
        if lpips not in (True, False, "auto"):
            raise ValueError(f"lpips must be True, False or 'auto', got {lpips!r}")
        if lpips:
            reason = lpips_unavailable_reason(lpips_net)
            if reason is None:
                from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

                self.lpips_metric = LearnedPerceptualImagePatchSimilarity(net_type=lpips_net, normalize=True)
            elif lpips is True:
                raise RuntimeError(f"LPIPS was required (lpips=True) but {reason}")
            else:
                self.lpips_reason = reason
                _log_once(reason)

    @full_precision
    def update(
        self,
        preds: torch.Tensor,
        target: torch.Tensor,
        valid: torch.Tensor | None = None,
        visible: torch.Tensor | None = None,
    ) -> None:
        check_video(preds, "preds", channels=3)
        check_video(target, "target", channels=3)
        if preds.shape != target.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} must have the same shape")
        preds, target = preds.float(), target.float().to(preds.device)
        valid_m = mask_or_ones(valid, preds, "valid")
        masks = {"all": valid_m}
        if visible is not None:
            visible_m = mask_or_ones(visible, preds, "visible")
            masks["visible"] = valid_m * visible_m
            masks["disoccluded"] = valid_m * (1.0 - visible_m)
        channels = preds.shape[1]
        sq_err = (preds - target).pow(2).sum(dim=1, keepdim=True)  # [B,1,T,H,W], summed over channels

        pred_frames, target_frames = to_frames(preds), to_frames(target)
        mask_frames = {name: to_frames(m) for name, m in masks.items()}
        ssim_sums = {name: torch.zeros((), dtype=torch.float64, device=preds.device) for name in masks}
        ssim_frames = torch.full((pred_frames.shape[0],), math.nan, dtype=torch.float64, device=preds.device)
        for start in range(0, pred_frames.shape[0], self.frames_per_chunk):
            chunk = slice(start, start + self.frames_per_chunk)
            for name, m in mask_frames.items():
                if not bool(m[chunk].any()):
                    continue
                smap = masked_ssim_map(pred_frames[chunk], target_frames[chunk], m[chunk], data_range=self.data_range)
                weighted = (smap.double() * m[chunk]).flatten(1).sum(1)
                ssim_sums[name] += weighted.sum()
                if name == "all":
                    ssim_frames[chunk] = weighted / m[chunk].double().flatten(1).sum(1)
            if self.lpips_metric is not None:
                self.lpips_metric.update(pred_frames[chunk].clamp(0, 1), target_frames[chunk].clamp(0, 1))

        all_frames = to_frames(valid_m).double().flatten(1).sum(1) * channels
        frame_mse = to_frames(sq_err.double() * valid_m).flatten(1).sum(1) / all_frames
        self.last_per_frame = {
            "psnr_all": torch.tensor([psnr_from_mse(float(v), self.data_range) for v in frame_mse.cpu()]),
            "ssim_all": ssim_frames.float().cpu(),
        }
        for name, m in masks.items():
            pixels = m.double().sum()
            setattr(self, f"sse_{name}", getattr(self, f"sse_{name}") + (sq_err.double() * m).sum())
            setattr(self, f"values_{name}", getattr(self, f"values_{name}") + pixels * channels)
            setattr(self, f"ssim_sum_{name}", getattr(self, f"ssim_sum_{name}") + ssim_sums[name])
            setattr(self, f"pixels_{name}", getattr(self, f"pixels_{name}") + pixels)

    @full_precision
    def compute(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in REGIONS:
            values = float(getattr(self, f"values_{name}"))
            pixels = float(getattr(self, f"pixels_{name}"))
            mse = float(getattr(self, f"sse_{name}")) / values if values > 0 else float("nan")
            ssim = float(getattr(self, f"ssim_sum_{name}")) / pixels if pixels > 0 else float("nan")
            out[f"psnr_{name}"] = torch.tensor(psnr_from_mse(mse, self.data_range))
            out[f"ssim_{name}"] = torch.tensor(ssim)
        if self.lpips_metric is not None:
            out["lpips_all"] = self.lpips_metric.compute().detach().float().cpu()
        return out

    def reset(self) -> None:
        super().reset()
        if self.lpips_metric is not None:
            self.lpips_metric.reset()


__all__ = ["REGIONS", "RightViewMetrics", "lpips_unavailable_reason", "masked_ssim_map", "psnr_from_mse", "ssim_map"]
