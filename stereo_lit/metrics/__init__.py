"""Evaluation metrics as torchmetrics ``Metric`` classes (DDP-safe: sum states, pooled at compute).

Videos ``[B,C,T,H,W]`` RGB in [0, 1]; masks ``[B,1,T,H,W]``, 1 = valid; disparity in px.
Every ``update``/``compute`` runs in float32 with autocast off (:func:`._video.full_precision`).

- :class:`RightViewMetrics`: PSNR / SSIM (/ LPIPS) against the true right view on all,
  visible and disoccluded pixels (:mod:`.image`);
- :class:`MultiScaleSSIM`: torchmetrics' 5-scale MS-SSIM on whole frames (nan with a note
  for frames under 176 px) (:mod:`.msssim`);
- :class:`GenerationCost`: wall seconds and transformer evaluations per 81 frames (:mod:`.cost`);
- :class:`StereoMatchError`: OpenCV SGBM disparity of (left, produced right) against
  the true disparity: EPE, D1, bad-1/2/3, density (:mod:`.stereo_match`);
- :class:`WarpingError`: Lai et al. 2018 warping error and window-seam jump (:mod:`.temporal`);
- :class:`SIoU`: Mono2Stereo's stereo IoU, two variants (:mod:`.siou`);
- :class:`CycleConsistencyError`: right -> left cycle error (:mod:`.cycle`).
"""

from stereo_lit.metrics.cost import COST_FOOTNOTE, CallCost, GenerationCost, method_nfe, timed_generate
from stereo_lit.metrics.cycle import CycleConsistencyError
from stereo_lit.metrics.image import (
    REGIONS,
    RightViewMetrics,
    lpips_unavailable_reason,
    masked_ssim_map,
    psnr_from_mse,
    ssim_map,
)
from stereo_lit.metrics.msssim import MultiScaleSSIM, ms_ssim_min_side
from stereo_lit.metrics.siou import SIOU_VARIANTS, SIoU, binary_iou, siou_frame
from stereo_lit.metrics.stereo_match import SGBMParams, StereoMatchError, num_disparities_for, sgbm_disparity
from stereo_lit.metrics.temporal import (
    SourceFlows,
    WarpingError,
    dis_flow,
    flow_occlusion,
    forward_backward_keep,
    source_flows,
)

__all__ = [
    "COST_FOOTNOTE",
    "CallCost",
    "GenerationCost",
    "MultiScaleSSIM",
    "method_nfe",
    "ms_ssim_min_side",
    "timed_generate",
    "REGIONS",
    "SIOU_VARIANTS",
    "CycleConsistencyError",
    "RightViewMetrics",
    "SGBMParams",
    "SIoU",
    "SourceFlows",
    "StereoMatchError",
    "WarpingError",
    "binary_iou",
    "dis_flow",
    "flow_occlusion",
    "forward_backward_keep",
    "lpips_unavailable_reason",
    "masked_ssim_map",
    "num_disparities_for",
    "psnr_from_mse",
    "sgbm_disparity",
    "siou_frame",
    "source_flows",
    "ssim_map",
]
