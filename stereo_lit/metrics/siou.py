"""SIoU (Stereo Intersection-over-Union), the stereo-effect metric of Mono2Stereo.

Definition (Yu et al., "Mono2Stereo: A Benchmark and Empirical Study for Stereo
Conversion", CVPR 2025; as implemented in their released evaluation code,
``compute_siou``), per frame, with 8-bit images:

- edge term: Canny edges (thresholds 100, 200) of the grey produced right view and of
  the grey true right view; ``IoU_edge = |E_pred & E_true| / |E_pred | E_true|``;
- difference term: ``D_pred = grey(|pred - left|) > 5`` and ``D_true = grey(|true - left|) > 5``
  (where each view differs from the left view: the disparity-driven changes);
  ``IoU_diff = |D_pred & D_true| / |D_pred | D_true|``;
- ``SIoU = 0.75 * IoU_edge + 0.25 * IoU_diff``; higher is better, 1 for the true right
  view; copy-left scores low because ``D_pred`` is empty.

Two variants, each reported in its own column (they differ in two details):

- ``siou_rgb`` (default, ``variant="rgb"``): frames are RGB (DESIGN.md) and become grey
  with ``COLOR_RGB2GRAY`` (BT.601 luma); the change maps take the *exact* absolute
  difference ``|pred - left|`` per channel (computed in int16, 0..255) before the grey
  conversion.
- ``siou_m2s_release`` (``variant="m2s_release"``): what the Mono2Stereo reference
  release computes, for numbers comparable with the paper. It loads RGB images (PIL)
  but converts them with OpenCV's ``COLOR_BGR2GRAY`` (red and blue weights swapped),
  and subtracts the uint8 arrays directly, so the difference wraps modulo 256
  (``3 - 5 = 254``; a small negative change counts as a large one). (A later version of
  the reference takes the difference in int16.)

An empty union (no edges / no differences in either image) counts as IoU 1 (the
reference would give NaN). Float videos in [0, 1] become uint8 by ``round(255 x)``.
The metric is the mean of the per-frame SIoU over all frames seen.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from stereo_lit.metrics._video import check_video, full_precision, video_to_uint8

CANNY_LOW = 100
CANNY_HIGH = 200
DIFF_THRESHOLD = 5
EDGE_WEIGHT = 0.75


def _grey(frame_rgb_u8: np.ndarray, reference_quirks: bool) -> np.ndarray:
    import cv2

    code = cv2.COLOR_BGR2GRAY if reference_quirks else cv2.COLOR_RGB2GRAY
    return cv2.cvtColor(np.ascontiguousarray(frame_rgb_u8), code)


def _abs_diff(a: np.ndarray, b: np.ndarray, reference_quirks: bool) -> np.ndarray:
    if reference_quirks:
        return a - b  # uint8 arithmetic wraps modulo 256, as in the reference code
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.uint8)


def binary_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean maps; 1.0 when both are empty."""
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def siou_frame(
    pred_rgb_u8: np.ndarray, target_rgb_u8: np.ndarray, left_rgb_u8: np.ndarray, *, reference_quirks: bool = False
) -> float:
    """SIoU of one frame; uint8 ``[H,W,3]`` RGB images (see the module docstring)."""
    import cv2

    for name, img in (("pred", pred_rgb_u8), ("target", target_rgb_u8), ("left", left_rgb_u8)):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{name} must be uint8 [H,W,3], got {img.dtype} {img.shape}")
    edges_pred = cv2.Canny(_grey(pred_rgb_u8, reference_quirks), CANNY_LOW, CANNY_HIGH) > 0
    edges_true = cv2.Canny(_grey(target_rgb_u8, reference_quirks), CANNY_LOW, CANNY_HIGH) > 0
    diff_pred = _grey(_abs_diff(pred_rgb_u8, left_rgb_u8, reference_quirks), reference_quirks) > DIFF_THRESHOLD
    diff_true = _grey(_abs_diff(target_rgb_u8, left_rgb_u8, reference_quirks), reference_quirks) > DIFF_THRESHOLD
    return EDGE_WEIGHT * binary_iou(edges_pred, edges_true) + (1.0 - EDGE_WEIGHT) * binary_iou(diff_pred, diff_true)


#: SIoU variant -> its column name in the evaluation table
SIOU_VARIANTS = {"rgb": "siou_rgb", "m2s_release": "siou_m2s_release"}


class SIoU(Metric):
    """Mean per-frame SIoU of the produced right view (Mono2Stereo).

    ``update(preds, target, left)``: videos ``[B,3,T,H,W]`` RGB in [0, 1]. ``compute()``
    returns ``{SIOU_VARIANTS[variant]: mean}`` (``siou_rgb`` or ``siou_m2s_release``).

    Args:
        variant: ``"rgb"`` (RGB luma, exact absolute difference) or ``"m2s_release"``
            (the Mono2Stereo release: BGR2GRAY on RGB frames, uint8 wrap-around); see
            the module docstring.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, *, variant: str = "rgb", **kwargs) -> None:
        super().__init__(**kwargs)
        if variant not in SIOU_VARIANTS:
            raise ValueError(f"SIoU variant must be one of {sorted(SIOU_VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.column = SIOU_VARIANTS[variant]
        self.reference_quirks = variant == "m2s_release"
        self.add_state("siou_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("frames", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @full_precision
    def update(self, preds: torch.Tensor, target: torch.Tensor, left: torch.Tensor) -> None:
        for name, x in (("preds", preds), ("target", target), ("left", left)):
            check_video(x, name, channels=3)
        if not preds.shape == target.shape == left.shape:
            raise ValueError(
                f"preds {tuple(preds.shape)}, target {tuple(target.shape)} and left {tuple(left.shape)} must match"
            )
        p, g, l = video_to_uint8(preds), video_to_uint8(target), video_to_uint8(left)
        total = 0.0
        for b in range(p.shape[0]):
            for t in range(p.shape[1]):
                total += siou_frame(p[b, t], g[b, t], l[b, t], reference_quirks=self.reference_quirks)
        self.siou_sum += total
        self.frames += float(p.shape[0] * p.shape[1])

    @full_precision
    def compute(self) -> dict[str, torch.Tensor]:
        frames = float(self.frames)
        return {self.column: torch.tensor(float(self.siou_sum) / frames if frames > 0 else float("nan"))}


__all__ = ["SIOU_VARIANTS", "SIoU", "binary_iou", "siou_frame"]
