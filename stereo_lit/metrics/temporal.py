"""Temporal consistency of a produced video: flow-based warping error and window-seam jumps.

Optical flow comes from the *source* video (the true right view when there is one,
otherwise the left view, whose flow only approximates the right view's): OpenCV DIS
(``DISOPTICAL_FLOW_PRESET_MEDIUM``) on BT.601 grey frames, forward ``f: t -> t+1`` and
backward ``b: t+1 -> t``. The occlusion mask of frame ``t`` follows Lai et al. 2018
("Learning Blind Video Temporal Consistency"; ``detect_occlusion`` as their
``compute_flow_occlusion.py`` calls it), a pixel ``x`` is occluded when either

- forward-backward check (Sundaram et al. 2010): ``|f + b(x + f)|^2 > 0.01 (|f|^2 + |b(x + f)|^2) + 0.5``;
- motion boundary: ``|grad f|^2 > 0.01 |f|^2 + 0.002``, with forward differences
  ``f(x) - f(x + 1)`` along x and y (0 on the last column / row).

``b(x + f)`` and the warped frame are sampled bilinearly with the border replicated (as
their ``Resample2d``); there is no separate in-frame test. The produced frame ``t+1``
is warped to ``t`` and compared with produced frame ``t``:

- ``warp_error`` (Lai et al.'s ``evaluate_WarpError.py``): per frame pair, the squared
  error summed over non-occluded pixels and channels divided by their number (images
  in [0, 1]; a pair with no non-occluded pixel contributes 0, as there); the mean over
  the pairs of a clip; the mean over clips (each batch element of each update is one
  clip, i.e. one "video" of theirs);
- ``seam_jump`` / ``nonseam_jump``: mean *absolute* motion-compensated difference over
  the non-occluded pixels of the transitions into seam frames vs all other transitions,
  and ``seam_jump_ratio`` = seam / non-seam (about 1 when seams are invisible). A seam
  frame ``s`` is the first frame of a new window: the transition ``s-1 -> s``. These
  keys appear only once some seam was seen. Seams between *batches* (consecutive
  windows fed as separate batches) cannot be measured here.

Inputs are scored as given: remove padding before (:class:`stereo_lit.evaluation.suite.EvaluationSuite` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics import Metric

from stereo_lit.metrics._video import check_same_grid, check_video, full_precision, rgb_to_gray_u8, video_to_uint8

FB_ALPHA1 = 0.01
FB_ALPHA2 = 0.5
MB_ALPHA1 = 0.01
MB_ALPHA2 = 0.002


@dataclass
class SourceFlows:
    """Per (batch element, frame pair) forward flow ``[H,W,2]`` (float32) and kept (non-occluded) mask ``[H,W]`` (bool)."""

    forward: list[list[np.ndarray]]
    keep: list[list[np.ndarray]]


def dis_flow(prev_gray: np.ndarray, next_gray: np.ndarray) -> np.ndarray:
    """DIS flow ``[H,W,2]`` (px, (dx, dy)) with ``prev(y, x) ~ next(y + dy, x + dx)``."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(prev_gray, next_gray, None)


def _sample(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)`` (bilinear, border replicated, as Lai et al.'s ``Resample2d``)."""
    import cv2

    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = (grid_x + flow[..., 0]).astype(np.float32)
    map_y = (grid_y + flow[..., 1]).astype(np.float32)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def flow_occlusion(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Bool ``[H,W]``: occluded pixels of frame ``t`` (Lai et al. 2018; see the module docstring).

    Args:
        forward: flow ``t -> t+1`` ``[H,W,2]`` (px).
        backward: flow ``t+1 -> t`` ``[H,W,2]`` (px).
    """
    forward = np.ascontiguousarray(forward, dtype=np.float32)
    backward = np.ascontiguousarray(backward, dtype=np.float32)
    if forward.ndim != 3 or forward.shape[-1] != 2 or backward.shape != forward.shape:
        raise ValueError(f"forward {forward.shape} and backward {backward.shape} flows must both be [H,W,2]")
    backward_at_target = _sample(backward, forward)
    mismatch = ((forward + backward_at_target) ** 2).sum(-1)
    scale = (forward**2).sum(-1) + (backward_at_target**2).sum(-1)
    fb_occluded = mismatch > FB_ALPHA1 * scale + FB_ALPHA2
    grad_sq = np.zeros(forward.shape[:2], dtype=np.float64)
    du = forward[:, :-1] - forward[:, 1:]  # f(x) - f(x + 1), both components
    dv = forward[:-1] - forward[1:]
    grad_sq[:, :-1] += (du.astype(np.float64) ** 2).sum(-1)
    grad_sq[:-1] += (dv.astype(np.float64) ** 2).sum(-1)
    boundary = grad_sq > MB_ALPHA1 * (forward.astype(np.float64) ** 2).sum(-1) + MB_ALPHA2
    return fb_occluded | boundary


def forward_backward_keep(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Bool ``[H,W]``: the pixels of frame ``t`` the warping error scores (not :func:`flow_occlusion`)."""
    return ~flow_occlusion(forward, backward)


def source_flows(source: torch.Tensor) -> SourceFlows:
    """Forward flows and occlusion-checked masks of every consecutive frame pair of ``source`` ``[B,3,T,H,W]``."""
    check_video(source, "source", channels=3)
    frames = video_to_uint8(source)
    forward, keep = [], []
    for b in range(frames.shape[0]):
        grey = [rgb_to_gray_u8(f) for f in frames[b]]
        fw_b, keep_b = [], []
        for t in range(len(grey) - 1):
            fw = dis_flow(grey[t], grey[t + 1])
            bw = dis_flow(grey[t + 1], grey[t])
            fw_b.append(fw)
            keep_b.append(forward_backward_keep(fw, bw))
        forward.append(fw_b)
        keep.append(keep_b)
    return SourceFlows(forward, keep)


class WarpingError(Metric):
    """Flow-based warping error and seam jump of a produced video (see the module docstring).

    ``update(preds, source, seam_frames=None, flows=None)``: ``preds`` and ``source``
    ``[B,3,T,H,W]`` in [0, 1] on the same pixel grid; ``seam_frames``: frame indices
    (``1..T-1``) that start a new window, the same for every batch element; ``flows``:
    :func:`source_flows` of ``source`` when already computed (reused across methods).

    Args:
        motion_compensated_seams: measure seam jumps after flow compensation (default,
            robust to camera motion) or as the plain mean absolute frame difference.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    _SUMS = ("clip_error_sum", "clips", "seam_abs_sum", "seam_pixels", "other_abs_sum", "other_pixels")

    def __init__(self, *, motion_compensated_seams: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.motion_compensated_seams = bool(motion_compensated_seams)
        for name in self._SUMS:
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @full_precision
    def update(
        self,
        preds: torch.Tensor,
        source: torch.Tensor,
        seam_frames: Sequence[int] | torch.Tensor | None = None,
        flows: SourceFlows | None = None,
    ) -> None:
        check_video(preds, "preds", channels=3)
        check_video(source, "source", channels=3)
        check_same_grid(preds, source, "preds", "source")
        num_frames = preds.shape[2]
        seams = {int(s) for s in (seam_frames.flatten().tolist() if isinstance(seam_frames, torch.Tensor) else seam_frames or [])}
        bad = [s for s in seams if not 1 <= s < num_frames]
        if bad:
            raise ValueError(f"seam_frames must lie in 1..{num_frames - 1} (first frame of a new window), got {bad}")
        if num_frames < 2:
            return
        if flows is None:
            flows = source_flows(source)
        produced = preds.detach().float().clamp(0, 1).permute(0, 2, 3, 4, 1).cpu().numpy()  # [B,T,H,W,3]
        sums = dict.fromkeys(self._SUMS, 0.0)
        for b in range(produced.shape[0]):
            clip_error = 0.0
            for t in range(num_frames - 1):
                keep = flows.keep[b][t]
                warped = _sample(np.ascontiguousarray(produced[b, t + 1]), flows.forward[b][t])
                diff = produced[b, t].astype(np.float64) - warped
                kept = float(keep.sum())
                # Lai et al.: sum over non-occluded pixels and channels / their count (0 when none)
                clip_error += float((diff**2)[keep].sum()) / (kept * diff.shape[-1]) if kept > 0 else 0.0
                if self.motion_compensated_seams:
                    abs_sum, pixels = float(np.abs(diff).mean(-1)[keep].sum()), kept
                else:
                    plain = np.abs(produced[b, t] - produced[b, t + 1]).mean(-1)
                    abs_sum, pixels = float(plain.sum(dtype=np.float64)), float(plain.size)
                key = "seam" if (t + 1) in seams else "other"
                sums[f"{key}_abs_sum"] += abs_sum
                sums[f"{key}_pixels"] += pixels
            sums["clip_error_sum"] += clip_error / (num_frames - 1)
            sums["clips"] += 1.0
        for name, value in sums.items():
            setattr(self, name, getattr(self, name) + value)

    @full_precision
    def compute(self) -> dict[str, torch.Tensor]:
        clips = float(self.clips)
        out = {"warp_error": torch.tensor(float(self.clip_error_sum) / clips if clips > 0 else float("nan"))}
        seam_pixels, other_pixels = float(self.seam_pixels), float(self.other_pixels)
        if seam_pixels > 0:
            seam = float(self.seam_abs_sum) / seam_pixels
            other = float(self.other_abs_sum) / other_pixels if other_pixels > 0 else float("nan")
            out["seam_jump"] = torch.tensor(seam)
            out["nonseam_jump"] = torch.tensor(other)
            if not other > 0:  # no non-seam transition (nan) or a perfectly still video elsewhere
                ratio = float("nan") if other != other else (float("inf") if seam > 0 else 1.0)
            else:
                ratio = seam / other
            out["seam_jump_ratio"] = torch.tensor(ratio)
        return out


__all__ = ["SourceFlows", "WarpingError", "dis_flow", "flow_occlusion", "forward_backward_keep", "source_flows"]
