"""Evaluation of several right-view methods side by side: metrics per method and the table.

:class:`EvaluationSuite` holds one set of :mod:`stereo_lit.metrics` per method, feeds them
from a TartanAir batch and a :class:`~stereo_lit.generators.base.StereoOutput`, and turns
the results into one table (markdown, CSV, JSON) with a row per method.

Besides the methods, the suite adds a reference row, :data:`REFERENCE_ROW`: the *true*
right view put through the same metrics. Its PSNR/SSIM/SIoU are trivially perfect; its
``sgbm_*`` columns are the stereo matcher's own floor (SGBM on the true pair), its
``warp_error`` the flow's floor and its ``cycle_error`` the warp's floor. A method's
geometry and temporal numbers should be read against that row.

What is computed once per batch and shared by all methods (cached while the same
``batch["left"]`` tensor is passed): the region masks, the optical flow of the source
video and the cycle masks.

Seams: window seam frames (first frame of each new window inside the clip) are read
from ``out.extras["seam_frames"]`` or ``batch["seam_frames"]`` (list or tensor of
frame indices); without them the seam columns are absent.

Cost: ``update(..., cost=CallCost)`` (from :func:`stereo_lit.metrics.timed_generate`) adds
the columns ``sec_per_81f``, ``nfe_per_81f``, ``vae_passes_per_81f`` and the peak memory
(``peak_cuda_gib``, or ``peak_rss_gib`` on CPU) (:mod:`stereo_lit.metrics.cost`); the
reference row has none. Notes the metrics leave (MS-SSIM on frames too small, LPIPS not
available, what the cost columns measure) are the table's footer (:attr:`EvaluationSuite.notes`).
:attr:`EvaluationSuite.report_data` collects per-frame metrics and sample frames for
:meth:`EvaluationSuite.write_report` (``{stage}_report.html``, :mod:`stereo_lit.evaluation.report`).

Padding never counts: the batch and every method's output are unpadded
(:func:`unpad_batch`, from ``batch["padding"]``, see
:func:`stereo_lit.depth.source.batch_padding`) before anything is scored, so masks,
flows, SGBM matches and the disoccluded region are those of the source frames.
Precision: every metric runs in float32 with autocast off, so the table under a
``bf16-mixed`` trainer is the one of ``32-true``.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stereo_lit.depth.source import batch_padding
from stereo_lit.generators.base import StereoOutput
from stereo_lit.stereo.geometry import occlusion_mask, right_disparity_from_left
from stereo_lit.metrics._video import autocast_off
from stereo_lit.metrics.cost import COST_FOOTNOTE, CallCost
from stereo_lit.stereo.padding import Padding, unpad_video
from stereo_lit.evaluation.report import ReportData, render_report, write_report

#: name of the row holding the true right view's metrics (matcher / flow / warp floors)
REFERENCE_ROW = "true_right"

#: footer line of every table: what the SGBM columns are computed over
SGBM_FOOTNOTE = (
    "sgbm_epe, sgbm_d1_pct and sgbm_bad*_pct are over the pixels SGBM matched (valid, finite true "
    "disparity, an SGBM value after its left-right and speckle checks); sgbm_density_pct is the share "
    "of valid pixels matched. Read them together."
)


def _unpad_tensor(x: torch.Tensor, padding: Padding, grid: tuple[int, int, int]) -> torch.Tensor:
    if x.ndim == 5 and tuple(x.shape[-3:]) == grid:
        return unpad_video(x, padding)
    return x


def _trim_seams(seams: Any, num_frames: int) -> Any:
    """Seam indices of the unpadded clip (those at or beyond its last frame are padding)."""
    flat = _seam_list(seams)
    return None if flat is None else [s for s in flat if s < num_frames]


def unpad_batch(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch without its ``padding`` (bottom / right / trailing frames), float tensors in float32.

    Every 5-D tensor on the left view's ``(T, H, W)`` grid is cropped; ``seam_frames``
    inside the padded frames are dropped. A batch without padding is returned with
    its tensors cast only.
    """
    padding = batch_padding(batch)
    grid = tuple(batch["left"].shape[-3:])
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = _unpad_tensor(value, padding, grid)
            if value.is_floating_point():
                value = value.float()
        out[key] = value
    if padding.frames and batch.get("seam_frames") is not None:
        out["seam_frames"] = _trim_seams(batch["seam_frames"], grid[0] - padding.frames)
    return out


def unpad_output(out: StereoOutput, batch: dict[str, Any]) -> StereoOutput:
    """A method's output on the unpadded grid of ``batch`` (see :func:`unpad_batch`), right view in float32."""
    padding = batch_padding(batch)
    grid = tuple(batch["left"].shape[-3:])
    extras = {k: (_unpad_tensor(v, padding, grid) if isinstance(v, torch.Tensor) else v) for k, v in out.extras.items()}
    if padding.frames and extras.get("seam_frames") is not None:
        extras["seam_frames"] = _trim_seams(extras["seam_frames"], grid[0] - padding.frames)
    return StereoOutput(
        right=_unpad_tensor(out.right, padding, grid).float(),
        known_mask=_unpad_tensor(out.known_mask, padding, grid),
        extras=extras,
        carry=out.carry,
    )


def region_masks(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(valid, visible)`` masks ``[B,1,T,H,W]`` of the true right view.

    ``visible``: right pixels also seen by the left camera (from the true right disparity,
    z-buffer test); disoccluded = valid and not visible.
    """
    right = batch["right"]
    valid = batch.get("valid_right")
    valid = torch.ones_like(right[:, :1]) if valid is None else valid.to(right)
    if "disparity_right_px" in batch:
        visible = occlusion_mask(batch["disparity_right_px"].to(right), direction=1).to(right) * valid
    else:  # no right depth: visible = covered by the forward warp of the left view
        _, covered = right_disparity_from_left(batch["disparity_left_px"].to(right))
        visible = covered * valid
    return valid, visible


class BatchContext:
    """Per-batch quantities shared by every method: masks, disparities and source flows."""

    def __init__(self, batch: dict[str, Any]) -> None:
        left, right = batch["left"], batch["right"]
        self.valid_right, self.visible_right = region_masks(batch)
        self.disparity_left = batch["disparity_left_px"].to(left)
        valid_left = batch.get("valid_left")
        self.valid_left = torch.ones_like(self.disparity_left) if valid_left is None else valid_left.to(left)
        if "disparity_right_px" in batch:
            self.disparity_right = batch["disparity_right_px"].to(left)
        else:
            self.disparity_right, _ = right_disparity_from_left(self.disparity_left)
        # co-visible left pixels: seen by the right camera and valid
        self.cycle_mask = occlusion_mask(self.disparity_left, direction=-1).to(left) * self.valid_left
        self.source = right  # true right view: the flow source for the warping error
        self._flows = None
        self.batch = batch  # the (unpadded) batch these quantities belong to
        self.batch_seams = _seam_list(batch.get("seam_frames"))

    @property
    def flows(self):
        if self._flows is None:
            from stereo_lit.metrics import source_flows

            self._flows = source_flows(self.source)
        return self._flows


def _seam_list(seams: Any) -> list[int] | None:
    """Seam frame indices as a sorted list; nested per-clip lists (collated batches) are merged."""
    if seams is None:
        return None
    if isinstance(seams, torch.Tensor):
        return sorted({int(s) for s in seams.flatten().tolist()})
    flat: set[int] = set()
    for item in seams:
        if item is None:
            continue
        if isinstance(item, (list, tuple, torch.Tensor)):
            flat.update(_seam_list(item) or [])
        else:
            flat.add(int(item))
    return sorted(flat)


class MethodMetrics(nn.Module):
    """All metrics of one method (``cost``: with the time / NFE / VAE-pass / peak-memory columns)."""

    def __init__(self, cost: bool = True) -> None:
        super().__init__()
        from stereo_lit.metrics import (
            CycleConsistencyError,
            GenerationCost,
            MultiScaleSSIM,
            RightViewMetrics,
            SIoU,
            StereoMatchError,
            WarpingError,
        )

        self.right_view = RightViewMetrics()
        self.ms_ssim = MultiScaleSSIM()
        self.stereo = StereoMatchError()
        self.temporal = WarpingError()
        self.siou = SIoU(variant="rgb")  # column siou_rgb
        self.siou_m2s = SIoU(variant="m2s_release")  # column siou_m2s_release (Mono2Stereo's released code)
        self.cycle = CycleConsistencyError()
        self.cost = GenerationCost() if cost else None
        self.notes: list[str] = []

    @torch.no_grad()
    def update(
        self, batch: dict[str, Any], out: StereoOutput, context: BatchContext | None = None, cost: CallCost | None = None
    ) -> dict[str, torch.Tensor]:
        """Score ``out`` on the (unpadded) ``batch``; returns per-frame ``psnr_all``, ``ssim_all``, ``ms_ssim`` ``[B*T]``."""
        ctx = context if context is not None else BatchContext(batch)
        left, right_true = batch["left"], batch["right"]
        pred = out.right.to(right_true)
        self.right_view.update(pred, right_true, valid=ctx.valid_right, visible=ctx.visible_right)
        self.ms_ssim.update(pred, right_true)
        self.stereo.update(left, pred, ctx.disparity_left, ctx.valid_left)
        seams = _seam_list(out.extras.get("seam_frames")) if out.extras else None
        seams = seams if seams is not None else ctx.batch_seams
        self.temporal.update(pred, ctx.source, seam_frames=seams, flows=ctx.flows)
        self.siou.update(pred, right_true, left)
        self.siou_m2s.update(pred, right_true, left)
        self.cycle.update(pred, left, ctx.disparity_right, ctx.cycle_mask)
        if self.cost is not None and cost is not None:
            self.cost.update_call(cost, left.shape[0] * left.shape[2])
        return {**self.right_view.last_per_frame, "ms_ssim": self.ms_ssim.last_per_frame}

    def compute(self) -> dict[str, float]:
        """The row; :attr:`notes` then holds the metrics' one-line footer notes (MS-SSIM, LPIPS)."""
        row: dict[str, float] = {}
        names = ["right_view", "ms_ssim", "stereo", "temporal", "siou", "siou_m2s", "cycle"]
        for name in names + (["cost"] if self.cost is not None else []):
            with warnings.catch_warnings():  # an untimed method's cost is nan, not a mistake
                warnings.filterwarnings("ignore", message=".*GenerationCost was called before the ``update``")
                value = getattr(self, name).compute()
            if isinstance(value, dict):
                row.update({k: float(v) for k, v in value.items()})
            else:
                row[name] = float(value)
        self.notes = [n for n in (self.ms_ssim.note, self.right_view.lpips_reason) if n]
        if self.right_view.lpips_reason:
            self.notes[-1] = f"lpips: not computed: {self.right_view.lpips_reason}."
        return row


class EvaluationSuite(nn.Module):
    """One :class:`MethodMetrics` per method name, plus the :data:`REFERENCE_ROW` (true right view).

    Args:
        method_names: rows of the table, in order.
        reference: add the true-right-view reference row (matcher / flow / warp floors).
    """

    def __init__(self, method_names: list[str], *, reference: bool = True) -> None:
        super().__init__()
        self.method_names = list(method_names)
        if REFERENCE_ROW in self.method_names:
            raise ValueError(f"method name {REFERENCE_ROW!r} is reserved for the reference row")
        self.reference = bool(reference)
        rows = self.method_names + ([REFERENCE_ROW] if self.reference else [])
        self.per_method = nn.ModuleDict({name: MethodMetrics(cost=name != REFERENCE_ROW) for name in rows})
        #: footer notes of the last :meth:`compute` (MS-SSIM frame size, LPIPS availability, cost columns)
        self.notes: list[str] = []
        #: per-frame metrics and sample frames for the HTML report (first clips only)
        self.report_data = ReportData()
        self._context_key: torch.Tensor | None = None  # held so its id cannot be reused
        self._context: BatchContext | None = None

    def _context_for(self, batch: dict[str, Any]) -> tuple[dict[str, Any], BatchContext]:
        """``(unpadded float32 batch, its BatchContext)``, cached while the same ``batch["left"]`` is passed."""
        if self._context is None or self._context_key is not batch["left"]:
            unpadded = unpad_batch(batch)
            self._context = BatchContext(unpadded)
            self._context_key = batch["left"]
            self.report_data.new_batch(unpadded)
            if self.reference:  # a new batch: the true right view goes through the same metrics once
                true_out = StereoOutput(right=unpadded["right"], known_mask=self._context.visible_right)
                self.per_method[REFERENCE_ROW].update(unpadded, true_out, self._context)
        return self._context.batch, self._context

    def update(self, method: str, batch: dict[str, Any], out: StereoOutput, cost: CallCost | None = None) -> None:
        """Score ``out`` (on ``batch``'s padded grid or not) on the unpadded batch, in float32;
        ``cost``: the call's wall time and NFE (frames counted without padding)."""
        if method not in self.method_names:
            raise KeyError(f"unknown method {method!r}; the suite was built for {self.method_names}")
        with autocast_off():
            unpadded, context = self._context_for(batch)
            out = unpad_output(out, batch)
            per_frame = self.per_method[method].update(unpadded, out, context, cost)
            self.report_data.add(method, out.right, per_frame)

    def compute(self) -> dict[str, dict[str, float]]:
        self._context, self._context_key = None, None
        rows = self.method_names + ([REFERENCE_ROW] if self.reference else [])
        with autocast_off():
            table = {name: self.per_method[name].compute() for name in rows}
        notes: list[str] = []
        for name in rows:
            notes += [n for n in self.per_method[name].notes if n not in notes]
        if any("sec_per_81f" in row for row in table.values()):
            notes.append(COST_FOOTNOTE)
        self.notes = notes
        return table

    def format_table(
        self, table: dict[str, dict[str, float]], depth_source: str = "", skipped: list[tuple[str, str]] | None = None,
        notes: list[str] | None = None,
    ) -> str:
        """Markdown table, one row per method (columns in the order metrics report them);
        ``skipped`` = ``[(clip, reason)]`` dropped under ``on_error: skip`` (a footer names them);
        ``notes``: footer lines (default: :attr:`notes` of the last :meth:`compute`)."""
        columns = _columns(table)
        lines = []
        if depth_source:
            lines.append(f"depth: {depth_source}\n")
        lines.append("| method | " + " | ".join(columns) + " |")
        lines.append("| --- " * (len(columns) + 1) + "|")
        for method, row in table.items():
            cells = [_fmt(row.get(c, float("nan"))) for c in columns]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        if REFERENCE_ROW in table:
            lines.append(
                f"\nRow `{REFERENCE_ROW}`: the true right view through the same metrics; its sgbm_*, "
                "warp_error and cycle_error are the floors of the matcher, the flow and the warp."
            )
        if any(c.startswith("sgbm_") for c in columns):
            lines.append(f"\n{SGBM_FOOTNOTE}")
        for note in self.notes if notes is None else notes:
            lines.append(f"\n{note}")
        if skipped:
            lines.append(f"\nskipped: {len(skipped)} clip(s) not scored (unreadable):")
            lines += [f"- {name}: {reason}" for name, reason in skipped]
        return "\n".join(lines)

    def write_table(
        self, table: dict[str, dict[str, float]], out_dir: Path, stage: str, depth_source: str = "",
        skipped: list[tuple[str, str]] | None = None,
    ) -> list[Path]:
        """Write ``{stage}_metrics.md/.csv/.json`` into ``out_dir`` (atomic renames).

        JSON is strict (no NaN/Infinity literals): nan is ``null``, infinities are the
        strings ``"inf"`` / ``"-inf"``. CSV cells are Python float spellings (``nan``, ``inf``).
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        columns = _columns(table)
        paths = []
        md = out_dir / f"{stage}_metrics.md"
        _atomic_write(md, self.format_table(table, depth_source, skipped) + "\n")
        paths.append(md)
        csv_path = out_dir / f"{stage}_metrics.csv"
        tmp = csv_path.with_name(csv_path.name + ".partial")
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["method", *columns])
            for method, row in table.items():
                writer.writerow([method, *[repr(float(row.get(c, float("nan")))) for c in columns]])
        tmp.replace(csv_path)
        paths.append(csv_path)
        js = out_dir / f"{stage}_metrics.json"
        payload = {
            "depth": depth_source,
            "reference_row": REFERENCE_ROW if REFERENCE_ROW in table else None,
            "columns": columns,
            "methods": {m: {k: _json_number(v) for k, v in row.items()} for m, row in table.items()},
            "notes": ([SGBM_FOOTNOTE] if any(c.startswith("sgbm_") for c in columns) else []) + self.notes,
            "skipped": [{"clip": name, "reason": reason} for name, reason in skipped or []],
        }
        _atomic_write(js, json.dumps(payload, indent=2, allow_nan=False) + "\n")
        paths.append(js)
        return paths

    def write_report(
        self, table: dict[str, dict[str, float]], out_dir: Path, stage: str, depth_source: str = "",
        skipped: list[tuple[str, str]] | None = None,
    ) -> Path:
        """Write the self-contained ``{stage}_report.html`` into ``out_dir`` (:mod:`stereo_lit.evaluation.report`)."""
        notes = ([SGBM_FOOTNOTE] if any(c.startswith("sgbm_") for c in _columns(table)) else []) + self.notes
        page = render_report(
            table, _columns(table), title=f"stereo-lit {stage}", notes=notes, depth_source=depth_source,
            skipped=skipped, data=self.report_data,
        )
        return write_report(Path(out_dir) / f"{stage}_report.html", page)


def _columns(table: dict[str, dict[str, float]]) -> list[str]:
    columns: list[str] = []
    for row in table.values():
        columns.extend(c for c in row if c not in columns)
    return columns


def _json_number(value: float) -> float | str | None:
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)
