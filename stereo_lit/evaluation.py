"""Evaluation of several right-view methods side by side: metrics per method and the table.

:class:`EvaluationSuite` holds one set of :mod:`stereo_lit.metrics` per method, feeds them
from a TartanAir batch and a :class:`~stereo_lit.generators.base.StereoOutput`, and turns
the results into one table (markdown, CSV, JSON) with a row per method.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stereo_lit.generators.base import StereoOutput
from stereo_lit.geometry import cycle_warp_right_to_left, occlusion_mask, right_disparity_from_left


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


class MethodMetrics(nn.Module):
    """All metrics of one method."""

    def __init__(self) -> None:
        super().__init__()
        from stereo_lit.metrics import (
            CycleConsistencyError,
            RightViewMetrics,
            SIoU,
            StereoMatchError,
            WarpingError,
        )

        self.right_view = RightViewMetrics()
        self.stereo = StereoMatchError()
        self.temporal = WarpingError()
        self.siou = SIoU()
        self.cycle = CycleConsistencyError()

    @torch.no_grad()
    def update(self, batch: dict[str, Any], out: StereoOutput) -> None:
        left, right_true, pred = batch["left"], batch["right"], out.right.to(batch["right"])
        valid, visible = region_masks(batch)
        self.right_view.update(pred, right_true, valid=valid, visible=visible)
        disparity_left = batch["disparity_left_px"].to(left)
        valid_left = batch.get("valid_left")
        valid_left = torch.ones_like(disparity_left) if valid_left is None else valid_left.to(left)
        self.stereo.update(left, pred, disparity_left, valid_left)
        self.temporal.update(pred, right_true)
        self.siou.update(pred, right_true, left)
        disp_right, _ = right_disparity_from_left(disparity_left)
        left_hat, cycle_valid = cycle_warp_right_to_left(pred, disp_right)
        self.cycle.update(left_hat, left, cycle_valid)

    def compute(self) -> dict[str, float]:
        row: dict[str, float] = {}
        for name in ("right_view", "stereo", "temporal", "siou", "cycle"):
            value = getattr(self, name).compute()
            if isinstance(value, dict):
                row.update({k: float(v) for k, v in value.items()})
            else:
                row[name] = float(value)
        return row


class EvaluationSuite(nn.Module):
    """One :class:`MethodMetrics` per method name."""

    def __init__(self, method_names: list[str]) -> None:
        super().__init__()
        self.method_names = list(method_names)
        self.per_method = nn.ModuleDict({name: MethodMetrics() for name in self.method_names})

    def update(self, method: str, batch: dict[str, Any], out: StereoOutput) -> None:
        self.per_method[method].update(batch, out)

    def compute(self) -> dict[str, dict[str, float]]:
        return {name: self.per_method[name].compute() for name in self.method_names}

    @staticmethod
    def format_table(table: dict[str, dict[str, float]], depth_source: str = "") -> str:
        """Markdown table, one row per method."""
        columns = sorted({c for row in table.values() for c in row})
        lines = []
        if depth_source:
            lines.append(f"depth: {depth_source}\n")
        lines.append("| method | " + " | ".join(columns) + " |")
        lines.append("| --- " * (len(columns) + 1) + "|")
        for method, row in table.items():
            cells = [_fmt(row.get(c, float("nan"))) for c in columns]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def write_table(
        self, table: dict[str, dict[str, float]], out_dir: Path, stage: str, depth_source: str = ""
    ) -> list[Path]:
        """Write ``{stage}_metrics.md/.csv/.json`` into ``out_dir`` (atomic renames)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        columns = sorted({c for row in table.values() for c in row})
        paths = []
        md = out_dir / f"{stage}_metrics.md"
        _atomic_write(md, self.format_table(table, depth_source) + "\n")
        paths.append(md)
        csv_path = out_dir / f"{stage}_metrics.csv"
        tmp = csv_path.with_suffix(".csv.partial")
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["method", *columns])
            for method, row in table.items():
                writer.writerow([method, *[row.get(c, float("nan")) for c in columns]])
        tmp.replace(csv_path)
        paths.append(csv_path)
        js = out_dir / f"{stage}_metrics.json"
        _atomic_write(js, json.dumps({"depth": depth_source, "methods": table}, indent=2, allow_nan=True) + "\n")
        paths.append(js)
        return paths


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)
