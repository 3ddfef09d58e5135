"""Evaluation on real stereo footage (3D films, VR180 clips, stereo rigs, Middlebury / KITTI pairs).

Real footage has no depth. The reference geometry is the disparity that came with the
batch: matched on the true pair (:mod:`stereo_lit.metrics.reference_disparity`, SGBM plus a
left-right check; ``disparity_source = "matched"``) or a dataset's own ground truth
(Middlebury ``disp0.pfm``, KITTI ``disp_occ_0``). Pixels without a reference value
(``valid_left == 0`` on content) are excluded from the region split and the geometry
metrics, and counted (:class:`FootageTally`).

Parallel and converged footage are scored in separate tables (suites
``{stage}_parallel`` and ``{stage}_converged``). A converged clip (3D film) has
disparities of both signs; our geometry keeps them >= 0 and applies convergence as a
horizontal translation. Per clip (fixed on its first window) the zero-parallax shift
``s`` is estimated from the true pair (:func:`stereo_lit.metrics.reference_disparity.zero_parallax_shift`,
2nd percentile of the matched disparity) and the clip is scored in the frame where its
disparity is ``d + k >= 0``, ``k = round(-s)`` px: the convergence of the produced pair
is ``k``. Rather than translating every produced right view by ``-k``, the *true* right
view is translated by ``+k`` (``right'(y) = right(y + k)``); for an integer ``k`` both are
the same comparison up to the border (the ``k`` vacated columns are excluded), no image
is resampled, and the geometry metrics (which search ``d >= 0``) work unchanged.
``rig: unknown`` clips are converged when ``s < -CONVERGED_BELOW_PX``.

Protocols (rows of the table, named in its footer; depth from ``model.depth``):

- ``aligned``: estimated inverse depth fitted by least squares (scale and shift) to the
  reference disparity of each window (:func:`~stereo_lit.depth.source.align_inverse_depth`);
- ``blind``: the user-facing settings (``max_disparity_pct``, ``convergence``) as
  ``predict`` uses them; on converged clips the produced right view is translated by
  ``c - k`` (``c`` the policy's convergence in px) into the scoring frame; parallel
  footage has its zero at infinity, so no convergence is applied there;
- without ``model.depth``: ``matched``, the reference disparity itself (oracle geometry).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchmetrics import Metric

from stereo_lit.depth.source import align_inverse_depth, batch_padding
from stereo_lit.generators.base import StereoOutput
from stereo_lit.options import PROTOCOLS

log = logging.getLogger(__name__)

RIG_KINDS = ("parallel", "converged")
#: ``rig: unknown`` clips whose zero-parallax shift is below ``-CONVERGED_BELOW_PX`` are converged
CONVERGED_BELOW_PX = 1.0


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"model.evaluation.protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return protocol


def is_real_footage(batch: dict[str, Any]) -> bool:
    """Stereo-video / stereo-image batches carry ``rig`` (TartanAir batches do not)."""
    return "rig" in batch


def is_real_footage_data(datamodule: Any) -> bool:
    """The stereo-video and stereo-image datamodules (their batches are scored here)."""
    return type(datamodule).__name__ in ("StereoVideoDataModule", "StereoImagesDataModule")


def _as_list(value: Any) -> list:
    if isinstance(value, torch.Tensor):
        return value.flatten().tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def translate_right(video: torch.Tensor, shift_px: float, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Move content ``shift_px`` columns to the right: ``out[..., y] = video[..., y - shift]``.

    Args:
        video: ``[B, C, T, H, W]`` (``W`` may include right padding).
        shift_px: px, any sign; fractional shifts interpolate linearly between columns.
        width: content width; columns ``>= width`` (padding) are returned unchanged.

    Returns:
        ``(translated, inside [1, 1, 1, 1, W])``: ``inside`` is 1 where the source column lies
        inside ``[0, width - 1]``; elsewhere (vacated columns) the output is 0.
    """
    if shift_px == 0:
        return video, torch.ones(1, 1, 1, 1, video.shape[-1], device=video.device, dtype=video.dtype)
    cols = torch.arange(video.shape[-1], device=video.device, dtype=torch.float64)
    src = cols - float(shift_px)
    i0 = torch.floor(src)
    frac = (src - i0).to(video.dtype)
    inside = (src >= 0) & (src <= width - 1) & (cols < width)
    i0c, i1c = i0.clamp(0, width - 1).long(), (i0 + 1).clamp(0, width - 1).long()
    out = video.index_select(-1, i0c) * (1 - frac) + video.index_select(-1, i1c) * frac
    out = torch.where(inside, out, torch.zeros_like(out))
    out = torch.where(cols < width, out, video)  # padding columns as they were
    mask = (inside | (cols >= width)).to(video.dtype).view(1, 1, 1, 1, -1)
    return out, mask


def fill_invalid_disparity(disparity: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Reference disparity ``[B,1,T,H,W]`` with its invalid pixels filled along rows from the
    farther (smaller-disparity) side, as disocclusions are; 0 where a row has no valid pixel."""
    from stereo_lit.generators.geometric import fill_from_background

    b, c, t, h, w = disparity.shape
    frames = lambda x: x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # noqa: E731
    d = torch.nan_to_num(frames(disparity.float()), nan=0.0)
    ok = frames(valid.float()) * torch.isfinite(frames(disparity.float())).float()
    filled = fill_from_background(d * ok, ok, d)
    return filled.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4).to(disparity.dtype)


class FootageTally(Metric):
    """Scored content pixels, those without a reference value (excluded), windows; summed over ranks."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in ("content", "excluded", "windows"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, content: float, excluded: float, windows: float) -> None:
        self.content += content
        self.excluded += excluded
        self.windows += windows

    def compute(self) -> dict[str, float]:
        return {"content": float(self.content), "excluded": float(self.excluded), "windows": float(self.windows)}


@dataclass(frozen=True)
class ClipShift:
    """A clip's rig and zero-parallax shift (fixed on its first window)."""

    rig: str  # "parallel" or "converged"
    estimated_px: float  # s (NaN when not estimated)
    applied_px: int  # k = round(-s) (0 for parallel)


@dataclass
class EvalRun:
    """One row set of a batch: its suffix, the methods' disparity and the output translation."""

    suffix: str
    disparity: torch.Tensor
    translate_px: float


class RealFootageEval:
    """Per-run state of real-footage evaluation: clip shifts, tallies, notes.

    Args:
        protocol: ``aligned``, ``blind`` or ``both`` (rows ``NAME:aligned`` and ``NAME:blind``).
    """

    def __init__(self, protocol: str = "aligned") -> None:
        self.protocol = check_protocol(protocol)
        self.shifts: dict[str, ClipShift] = {}
        self.tallies: dict[str, FootageTally] = {}
        self.sources: dict[str, set[str]] = {}
        self._final: dict[str, dict[str, float]] = {}

    # ------------------------------------------------------------ per batch
    def prepare(self, key: str, device: torch.device | str) -> None:
        """Create table ``key``'s tally (on every rank, so that the end-of-epoch sums line up)."""
        if key not in self.tallies:
            self.tallies[key] = FootageTally().to(device)

    def protocols(self, has_depth: bool) -> list[str]:
        if not has_depth:
            return ["matched"]
        return ["aligned", "blind"] if self.protocol == "both" else [self.protocol]

    def row_names(self, method_names: list[str], has_depth: bool) -> list[str]:
        protocols = self.protocols(has_depth)
        if len(protocols) == 1:
            return list(method_names)
        return [f"{m}:{p}" for m in method_names for p in protocols]

    def clip_shift(self, batch: dict[str, Any], disparity: torch.Tensor, valid: torch.Tensor) -> ClipShift:
        """The batch's clip shift (one clip per batch), estimated on the clip's first window."""
        from stereo_lit.metrics.reference_disparity import zero_parallax_shift

        keys = sorted({str(k) for k in _as_list(batch.get("video_path", ["clip"]))})
        rigs = sorted({str(r) for r in _as_list(batch["rig"])})
        key = "|".join(keys)
        if key in self.shifts:
            return self.shifts[key]
        if len(rigs) != 1:
            raise ValueError(f"{key}: a batch mixes rigs {rigs}; use data.init_args.batch_size: 1")
        rig = rigs[0]
        if rig == "parallel":
            shift = ClipShift("parallel", float("nan"), 0)
        else:
            s = zero_parallax_shift(disparity, valid)
            if not math.isfinite(s):
                raise ValueError(f"{key}: no valid reference disparity to estimate the zero-parallax shift from")
            if rig == "unknown":
                rig = "converged" if s < -CONVERGED_BELOW_PX else "parallel"
                log.info("%s: rig unknown, zero-parallax shift %.2f px -> scored as %s", key, s, rig)
            shift = ClipShift(rig, s, int(round(-s)) if rig == "converged" else 0)
        self.shifts[key] = shift
        return shift

    def plan(self, module: Any, batch: dict[str, Any], stage: str) -> tuple[str, dict[str, Any], list[EvalRun]]:
        """``(suite key, batch to score against, runs)`` for one real-footage batch."""
        names = ", ".join(str(p) for p in _as_list(batch.get("video_path", ["?"])))
        if "disparity_left_px" not in batch:
            raise ValueError(
                f"{names}: no reference disparity to score against: set data.init_args.reference_disparity: true "
                "(real footage has no depth; a stereo matcher on the true pair gives the pseudo ground truth)"
            )
        left = batch["left"]
        padding = batch_padding(batch)
        height, width = left.shape[-2] - padding.bottom, left.shape[-1] - padding.right
        frames = left.shape[2] - padding.frames
        content = torch.zeros_like(left[:, :1])
        content[:, :, :frames, :height, :width] = 1.0
        valid = batch.get("valid_left")
        valid = content if valid is None else valid.to(left) * content
        truth = batch["disparity_left_px"].to(left)
        shift = self.clip_shift(batch, truth, valid)
        key = f"{stage}_{shift.rig}"
        reference = torch.where(valid > 0.5, truth + shift.applied_px, torch.full_like(truth, float("nan")))
        right, inside = translate_right(batch["right"].to(left), -shift.applied_px, width)
        valid_right = batch.get("valid_right")
        valid_right = content if valid_right is None else valid_right.to(left)
        scored = dict(batch)
        scored.update(right=right, valid_right=valid_right * inside, disparity_left_px=reference, valid_left=valid)
        scored.pop("disparity_right_px", None)

        self.prepare(key, left.device)
        self.tallies[key].update(float(content.sum()), float((content - valid).clamp_min(0).sum()), float(left.shape[0]))
        for source in _as_list(batch.get("disparity_source", ["matched"])):
            self.sources.setdefault(key, set()).add(str(source))

        filled = fill_invalid_disparity(reference, valid)
        runs = []
        protocols = self.protocols(module.depth is not None)
        inv = kind = None
        if module.depth is not None:
            result = module.depth.estimate(left)
            inv, kind = result.values.to(left), result.kind
            if kind == "metric_m":  # fit and map inverse depth either way
                inv, kind = torch.where(inv > 0, 1.0 / inv.clamp_min(1e-6), torch.zeros_like(inv)), "inverse_relative"
        for protocol in protocols:
            suffix = "" if len(protocols) == 1 else f":{protocol}"
            if protocol == "matched":
                runs.append(EvalRun(suffix, filled.clamp_min(0), 0.0))
            elif protocol == "aligned":
                runs.append(EvalRun(suffix, align_inverse_depth(inv, filled, valid), 0.0))
            else:  # blind: what predict would make, in the scoring frame
                video_key = str(_as_list(batch.get("video_path", ["clip"]))[0])
                disparity = module.policy.from_depth(inv, kind, video_key, width_px=width)
                convergence = module.policy.convergence_px(width) if shift.rig == "converged" else 0.0
                runs.append(EvalRun(suffix, disparity, convergence - shift.applied_px))
        return key, scored, runs

    # ------------------------------------------------------------ per table
    def finish(self, key: str) -> dict[str, float]:
        """Counts of table ``key`` summed over ranks (call on every rank); ``windows == 0``: no table."""
        tally = self.tallies.get(key)
        if tally is None:
            counts = {"content": 0.0, "excluded": 0.0, "windows": 0.0}
        else:
            with warnings.catch_warnings():  # an empty table's tally was never updated on this rank
                warnings.filterwarnings("ignore", message=".*compute.*called before.*update")
                counts = tally.compute()
        self._final[key] = counts
        return counts

    def reset(self, key: str) -> None:
        """Forget table ``key``'s counts (the next validation epoch starts afresh)."""
        self.tallies.pop(key, None)
        self._final.pop(key, None)
        self.sources.pop(key, None)

    def notes(self, key: str, module: Any) -> list[str]:
        """Footer lines of table ``key``: reference geometry, excluded pixels, shifts, protocol."""
        counts = self._final.get(key) or {"content": 0.0, "excluded": 0.0, "windows": 0.0}
        sources = sorted(self.sources.get(key, {"matched"}))
        rig = key.rsplit("_", 1)[-1]
        share = 100.0 * counts["excluded"] / counts["content"] if counts["content"] else float("nan")
        against = {"matched": "matched (pseudo) ground truth: OpenCV SGBM on the true pair with a left-right check",
                   "ground_truth": "the dataset's ground-truth disparity"}
        lines = [
            f"{rig.capitalize()} footage ({int(counts['windows'])} window(s)). Reference geometry: "
            + "; ".join(against.get(s, s) for s in sources)
            + ". The region split (*_visible / *_disoccluded), sgbm_* and cycle_error are measured against it"
            + (" (pseudo ground truth)" if "matched" in sources else "")
            + f"; {int(counts['excluded'])} of {int(counts['content'])} content pixels ({share:.2f}%) have no "
            "reference value (failed the check / unknown) and are excluded."
        ]
        if rig == "converged":
            clips = [(k, s) for k, s in self.shifts.items() if s.rig == "converged"]
            listed = ", ".join(f"{Path(k).name}: s={s.estimated_px:.2f} px, k={s.applied_px}" for k, s in clips[:20])
            lines.append(
                "Converged clips: zero-parallax shift s (2nd percentile of the reference disparity) per clip; the "
                "produced pair's convergence is k = round(-s) px: scored where the true disparity is d + k >= 0 "
                "(true right view translated by k px, the vacated columns excluded). " + listed
            )
        protocols = self.protocols(module.depth is not None)
        described = {
            "matched": "matched: no model.depth, the methods get the reference disparity itself (oracle geometry)",
            "aligned": f"aligned: depth from {type(module.depth).__name__}, scale and shift fitted by least squares "
                       "to the reference disparity per window",
            "blind": f"blind: depth from {type(module.depth).__name__} with the user-facing settings "
                     f"(max_disparity_pct={module.policy.max_disparity_pct:g}, convergence={module.policy.convergence:g}"
                     + (", produced right view translated by the policy's convergence minus k" if rig == "converged"
                        else "; parallel footage: no convergence, its zero is at infinity") + ")",
        }
        lines.append("Protocol " + "; ".join(described[p] for p in protocols) + ".")
        return lines


def translate_output(out: StereoOutput, shift_px: float, width: int) -> StereoOutput:
    """``out`` with its right view (and known mask) moved ``shift_px`` columns right (vacated: 0)."""
    if shift_px == 0:
        return out
    right, _ = translate_right(out.right, shift_px, width)
    known, _ = translate_right(out.known_mask.to(out.right.dtype), shift_px, width)
    return StereoOutput(right=right, known_mask=known, extras=out.extras, carry=out.carry)


__all__ = [
    "CONVERGED_BELOW_PX", "PROTOCOLS", "RealFootageEval", "fill_invalid_disparity", "is_real_footage",
    "is_real_footage_data", "translate_output", "translate_right",
]
