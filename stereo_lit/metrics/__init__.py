"""Evaluation metrics as torchmetrics ``Metric`` classes (DDP-safe: sum states, pooled at compute).

Videos ``[B,C,T,H,W]`` RGB in [0, 1]; masks ``[B,1,T,H,W]``, 1 = valid; disparity in px.
Every ``update``/``compute`` runs in float32 with autocast off (:func:`._video.full_precision`).

- :class:`RightViewMetrics`: PSNR / SSIM (/ LPIPS) against the true right view on all,
  visible and disoccluded pixels (:mod:`.image`);
- :class:`MultiScaleSSIM`: torchmetrics' 5-scale MS-SSIM on whole frames (nan with a note
  for frames under 176 px) (:mod:`.msssim`);
- :class:`GenerationCost`: wall seconds and transformer evaluations per 81 frames (:mod:`.generation_cost`);
- :class:`StereoMatchError`: OpenCV SGBM disparity of (left, produced right) against
  the true disparity: EPE, D1, bad-1/2/3, density (:mod:`.stereo_match`);
- :class:`WarpingError`: Lai et al. 2018 warping error and window-seam jump (:mod:`.temporal`);
- :class:`SIoU`: Mono2Stereo's stereo IoU, two variants (:mod:`.siou`);
- :class:`CycleConsistencyError`: right -> left cycle error (:mod:`.cycle`).

Names load on first use (PEP 562): importing ``stereo_lit.metrics.cost`` (timing) does not
import torchmetrics.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> its submodule of stereo_lit.metrics
_LAZY = {
    "COST_FOOTNOTE": "cost",
    "CallCost": "cost",
    "CycleConsistencyError": "cycle",
    "GenerationCost": "generation_cost",
    "MultiScaleSSIM": "msssim",
    "REGIONS": "image",
    "RightViewMetrics": "image",
    "SGBMParams": "stereo_match",
    "SIOU_VARIANTS": "siou",
    "SIoU": "siou",
    "SourceFlows": "temporal",
    "StereoMatchError": "stereo_match",
    "WarpingError": "temporal",
    "binary_iou": "siou",
    "dis_flow": "temporal",
    "flow_occlusion": "temporal",
    "forward_backward_keep": "temporal",
    "lpips_unavailable_reason": "image",
    "masked_ssim_map": "image",
    "method_nfe": "cost",
    "ms_ssim_min_side": "msssim",
    "num_disparities_for": "stereo_match",
    "psnr_from_mse": "image",
    "sgbm_disparity": "stereo_match",
    "siou_frame": "siou",
    "source_flows": "temporal",
    "ssim_map": "image",
    "timed_generate": "cost",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"stereo_lit.metrics.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'stereo_lit.metrics' has no attribute {name!r}")


__all__ = sorted(_LAZY)
