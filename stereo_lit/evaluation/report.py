"""A self-contained HTML report of an evaluation run: tables, sample strips, per-frame plots.

:class:`ReportData` is filled by :class:`stereo_lit.evaluation.suite.EvaluationSuite` while it
scores (bounded memory: the first ``max_clips`` clips' per-frame metrics, and
``sample_frames`` frames of the first clip for the strips). :func:`render_report` turns
it and the table into one HTML page; every image is an embedded ``data:image/png;base64``
URI, so the file can be mailed or opened anywhere. Plots use matplotlib's Agg canvas
directly (no pyplot, no global backend switch).

Strips, per method and sampled frame: left | produced right | true right | absolute
error (mean over RGB, colour map ``magma`` from 0 to :data:`ERROR_RANGE` and above).
Everything is on the unpadded frames (padding never counts).
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: absolute error (in [0, 1] units) shown as the brightest colour in the strips
ERROR_RANGE = 0.25
#: widest panel in a strip (px); larger frames are downscaled for the page
PANEL_WIDTH = 320
#: per-frame metrics plotted (those a run has)
PLOTTED = ("psnr_all", "ssim_all", "ms_ssim")


def _clip_names(batch: dict[str, Any], count: int) -> list[str]:
    names = batch.get("video_path") or batch.get("name")
    if isinstance(names, (list, tuple)) and len(names) == count:
        return [str(n) for n in names]
    return [""] * count


def _u8_frames(video: torch.Tensor, b: int, frames: list[int]) -> np.ndarray:
    """``[B,3,T,H,W]`` in [0, 1] -> uint8 ``[len(frames),H,W,3]`` of clip ``b``."""
    x = video[b, :, frames].detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


class ReportData:
    """Per-frame metrics of the first ``max_clips`` clips and sample frames of the first clip.

    Call :meth:`new_batch` with each (unpadded) batch, then :meth:`add` once per method.
    One-frame clips (stereo image pairs) share one record, a point per pair (up to
    ``max_pairs``), instead of a curve each. Under DDP each process collects its own
    clips; the report (process 0) shows those of process 0.
    """

    def __init__(self, max_clips: int = 4, sample_frames: int = 3, max_pairs: int = 500) -> None:
        self.max_clips = int(max_clips)
        self.max_pairs = int(max_pairs)
        self.sample_frames = int(sample_frames)
        #: ``[{"name", "num_frames", "axis" ("frame" / "pair"), "per_frame": {method: {metric: np.ndarray}}}]``
        self.clips: list[dict[str, Any]] = []
        #: first clip: ``{"name", "frames", "left", "right_true", "produced": {method: uint8 [k,H,W,3]}}``
        self.samples: dict[str, Any] | None = None
        self._current: list[tuple[int, dict[str, Any]]] = []  # (index in batch, clip record)
        self._sampling = False
        self._num_frames = 0

    def new_batch(self, batch: dict[str, Any]) -> None:
        left = batch["left"]
        count, self._num_frames = int(left.shape[0]), int(left.shape[2])
        names = _clip_names(batch, count)
        self._current = []
        if self._num_frames == 1:  # image pairs: one shared record, a point per pair
            pairs = next((c for c in self.clips if c["axis"] == "pair"), None)
            if pairs is None:
                pairs = {"name": "image pairs", "num_frames": 0, "axis": "pair", "per_frame": {}}
                self.clips.append(pairs)
            for b in range(min(count, self.max_pairs - pairs["num_frames"])):
                pairs["num_frames"] += 1
                self._current.append((b, pairs))
        for b in range(count if self._num_frames > 1 else 0):
            if len(self.clips) >= self.max_clips:
                break
            record = {"name": names[b] or f"clip {len(self.clips)}", "num_frames": self._num_frames, "axis": "frame",
                      "per_frame": {}}
            self.clips.append(record)
            self._current.append((b, record))
        self._sampling = self.samples is None
        if self._sampling:
            t = self._num_frames
            frames = sorted({int(round(i)) for i in np.linspace(0, t - 1, min(self.sample_frames, t))})
            self.samples = {
                "name": names[0] or (self._current[0][1]["name"] if self._current and t > 1 else "clip 0"),
                "frames": frames,
                "left": _u8_frames(left, 0, frames),
                "right_true": _u8_frames(batch["right"], 0, frames),
                "produced": {},
            }

    def add(self, method: str, pred: torch.Tensor, per_frame: dict[str, torch.Tensor]) -> None:
        """``pred`` ``[B,3,T,H,W]`` of the current batch; ``per_frame[metric]`` ``[B*T]`` (frame ``b*T + t``)."""
        t = self._num_frames
        for b, record in self._current:
            values = {k: v.detach().float().cpu().numpy()[b * t:(b + 1) * t] for k, v in per_frame.items()}
            if record["axis"] == "pair":  # append this pair's point to the method's series
                old = record["per_frame"].get(method, {})
                values = {k: np.concatenate([old.get(k, np.zeros(0, np.float32)), v]) for k, v in values.items()}
            record["per_frame"][method] = values
        if self._sampling and self.samples is not None and method not in self.samples["produced"]:
            self.samples["produced"][method] = _u8_frames(pred, 0, self.samples["frames"])


# ---------------------------------------------------------------------------- images
def png_data_uri(image: np.ndarray) -> str:
    """uint8 ``[H,W,3]`` (or ``[H,W]``) -> ``data:image/png;base64,...``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def error_map(pred: np.ndarray, true: np.ndarray, error_range: float = ERROR_RANGE) -> np.ndarray:
    """uint8 RGB ``[H,W,3]``: ``mean_rgb |pred - true|`` (uint8 frames) through ``magma``, 0 .. ``error_range``."""
    from matplotlib import colormaps

    err = np.abs(pred.astype(np.float32) - true.astype(np.float32)).mean(axis=-1) / 255.0
    rgba = colormaps["magma"](np.clip(err / error_range, 0.0, 1.0))
    return (rgba[..., :3] * 255.0).round().astype(np.uint8)


def _fit(panel: np.ndarray, width: int = PANEL_WIDTH) -> np.ndarray:
    if panel.shape[1] <= width:
        return panel
    from PIL import Image

    height = max(1, round(panel.shape[0] * width / panel.shape[1]))
    return np.asarray(Image.fromarray(panel).resize((width, height), Image.Resampling.BOX))


def sample_strip(left: np.ndarray, produced: np.ndarray, true: np.ndarray) -> np.ndarray:
    """uint8 ``[k*h, 4*w, 3]``: one row per sampled frame, left | produced | true | error (4 px gaps)."""
    rows = []
    for i in range(left.shape[0]):
        panels = [_fit(p) for p in (left[i], produced[i], true[i], error_map(produced[i], true[i]))]
        gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1))
    spacer = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([x for r in rows for x in (r, spacer)][:-1], axis=0)


def per_frame_plot(clip: dict[str, Any]) -> str | None:
    """PNG data URI: one panel per metric in :data:`PLOTTED`, one line per method, over the clip's frames."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = [m for m in PLOTTED if any(
        np.isfinite(v.get(m, np.array([np.nan]))).any() for v in clip["per_frame"].values())]
    if not metrics:
        return None
    fig = Figure(figsize=(4.2 * len(metrics), 3.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        for method, values in clip["per_frame"].items():
            y = np.asarray(values.get(metric, []), dtype=np.float64)
            if y.size:
                y = np.where(np.isfinite(y), y, np.nan)  # a perfect frame (inf dB) is not drawn
                ax.plot(np.arange(y.size), y, marker="." if y.size < 40 else None, label=method)
        ax.set_title(metric)
        ax.set_xlabel(clip.get("axis", "frame"))
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------- HTML
_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
.table-box{max-width:100%;overflow-x:auto;border:1px solid #ddd}
table{border-collapse:separate;border-spacing:0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{max-width:8em;white-space:normal;overflow-wrap:anywhere;vertical-align:bottom}
th:first-child,td:first-child{text-align:left;position:sticky;left:0;background:#fff;z-index:1;white-space:nowrap}
thead th{background:#f0f0f0}thead th:first-child{background:#f0f0f0;z-index:2}
img{max-width:100%}figure{margin:1em 0}figcaption{font-size:13px;color:#555}.notes li{font-size:13px}"""


def _cell(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def table_html(table: dict[str, dict[str, float]], columns: list[str]) -> str:
    """One ``<table>``: a row per method (``<tr id="row-METHOD">``), the given columns."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["method", *columns])
    rows = []
    for method, row in table.items():
        cells = "".join(f"<td>{_cell(row.get(c, math.nan))}</td>" for c in columns)
        rows.append(f'<tr id="row-{html.escape(method)}"><td>{html.escape(method)}</td>{cells}</tr>')
    # its own horizontal scroll box, the method column fixed (sticky) while the metrics scroll under it
    return f"<div class='table-box'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def render_report(
    table: dict[str, dict[str, float]],
    columns: list[str],
    *,
    title: str,
    notes: list[str] | None = None,
    depth_source: str = "",
    skipped: list[tuple[str, str]] | None = None,
    data: ReportData | None = None,
) -> str:
    """The whole page as a string (see the module doc)."""
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{esc(title)}</h1>"]
    if depth_source:
        parts.append(f"<p>depth: {esc(depth_source)}</p>")
    parts.append("<h2>Metrics</h2>" + table_html(table, columns))
    if notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    if skipped:
        parts.append(f"<p>skipped: {len(skipped)} clip(s) not scored (unreadable):</p><ul class='notes'>"
                     + "".join(f"<li>{esc(c)}: {esc(r)}</li>" for c, r in skipped) + "</ul>")
    samples = data.samples if data is not None else None
    if samples and samples["produced"]:
        frames = ", ".join(str(f) for f in samples["frames"])
        parts.append(f"<h2>Samples</h2><p>{esc(samples['name'])}, frames {esc(frames)}; panels: left | produced "
                     f"right | true right | |produced - true| (mean over RGB, magma: dark 0 to bright &ge; {ERROR_RANGE})</p>")
        for method, produced in samples["produced"].items():
            uri = png_data_uri(sample_strip(samples["left"], produced, samples["right_true"]))
            parts.append(f"<figure id='samples-{esc(method)}'><figcaption>{esc(method)}</figcaption>"
                         f"<img alt='{esc(method)} samples' src='{uri}'></figure>")
    if data is not None and data.clips:
        parts.append("<h2>Per-frame metrics</h2>")
        for clip in data.clips:
            uri = per_frame_plot(clip)
            if uri is not None:
                count = f"{clip['num_frames']} {clip.get('axis', 'frame')}s"
                parts.append(f"<figure><figcaption>{esc(clip['name'])} ({count})</figcaption>"
                             f"<img alt='per-frame metrics of {esc(clip['name'])}' src='{uri}'></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: Path, html_text: str) -> Path:
    """Write ``html_text`` to ``path`` atomically (``.partial`` then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(html_text, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["ReportData", "error_map", "per_frame_plot", "png_data_uri", "render_report", "sample_strip",
           "table_html", "write_report"]
