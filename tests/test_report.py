"""report.html: a tiny run renders a page that parses, has every method's row, and only valid images."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stereo_lit.evaluation.suite import REFERENCE_ROW, EvaluationSuite
from stereo_lit.generators.base import StereoOutput
from stereo_lit.generators.geometric import CopyLeft, WarpFill, WarpOnly
from stereo_lit.metrics import timed_generate
from stereo_lit.evaluation.report import ERROR_RANGE, PANEL_WIDTH, error_map, sample_strip

REPO = Path(__file__).resolve().parents[1]
T, H, W = 4, 48, 64


class _Page(HTMLParser):
    """Collects table rows (first cell), image sources and figure ids; checks tags are balanced."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.images: list[str] = []
        self.figures: list[str] = []
        self.stack: list[str] = []
        self._cell: list[str] | None = None
        self._first_cell = False

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "figure" and "id" in attrs:
            self.figures.append(attrs["id"])
        if tag == "tr":
            self._first_cell = True
        if tag == "td" and self._first_cell:
            self._cell, self._first_cell = [], False

    def handle_endtag(self, tag) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack[-3:]}"
        self.stack.pop()
        if tag == "td" and self._cell is not None:
            self.rows.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_report(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.stack == [], f"unclosed tags {page.stack}"
    return page


def decode_image(src: str, base: Path) -> Image.Image:
    """A ``data:image/png;base64`` URI decoded as PNG, or a file next to the page that exists."""
    if src.startswith("data:"):
        header, payload = src.split(",", 1)
        assert header == "data:image/png;base64", header
        image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
        assert image.format == "PNG"
    else:
        assert (base / src).is_file(), f"linked image {src} is missing"
        image = Image.open(base / src)
    image.load()
    return image


def _video(frames_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames_u8).permute(3, 0, 1, 2)[None].float() / 255.0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, dict]:
    from stereo_lit.data.synthetic import render_sequence

    seq = render_sequence(T, H, W, seed=2)
    disparity = torch.from_numpy(seq.disparity_left_px)[None, None]
    batch = {"left": _video(seq.left), "right": _video(seq.right), "disparity_left_px": disparity,
             "video_path": ["synthetic/seq0"]}
    methods = [CopyLeft(), WarpOnly(), WarpFill()]
    suite = EvaluationSuite([m.name for m in methods] + ["oracle"])
    for method in methods:
        out, cost = timed_generate(method, batch["left"], disparity)
        suite.update(method.name, batch, out, cost=cost)
    suite.update("oracle", batch, StereoOutput(right=batch["right"], known_mask=torch.ones_like(disparity)))
    table = suite.compute()
    out_dir = tmp_path_factory.mktemp("eval")
    suite.write_table(table, out_dir, stage="test")
    return suite.write_report(table, out_dir, stage="test"), table


def test_report_parses_with_every_row_and_valid_images(tiny_run) -> None:
    path, table = tiny_run
    assert path.name == "test_report.html"
    page = parse_report(path)
    assert page.rows == ["copy_left", "warp_only", "warp_fill", "oracle", REFERENCE_ROW] == list(table)
    assert page.figures == ["samples-copy_left", "samples-warp_only", "samples-warp_fill", "samples-oracle"]
    images = [decode_image(src, path.parent) for src in page.images]
    assert len(images) == 4 + 1  # one strip per method, one per-frame plot (one clip)
    # strips: 3 sampled frames (first, middle, last) of left | produced | true | error, 4-px gaps
    for strip in images[:4]:
        assert strip.size == (4 * W + 3 * 4, 3 * H + 2 * 4)
    text = path.read_text()
    assert "synthetic/seq0, frames 0, 2, 3" in text and "ms_ssim:" in text and "sec_per_81f:" in text


def test_strip_panels_are_the_frames(tiny_run) -> None:
    """The oracle's strip holds the true right view twice and a zero error panel; copy-left's produced panel is the left."""
    path, _ = tiny_run
    page = parse_report(path)
    strips = [np.asarray(decode_image(src, path.parent).convert("RGB")) for src in page.images[:4]]
    copy_left, oracle = strips[0], strips[3]

    def panel(strip: np.ndarray, row: int, col: int) -> np.ndarray:
        return strip[row * (H + 4):row * (H + 4) + H, col * (W + 4):col * (W + 4) + W]

    from stereo_lit.data.synthetic import render_sequence

    seq = render_sequence(T, H, W, seed=2)
    for row, frame in enumerate((0, 2, 3)):
        np.testing.assert_array_equal(panel(oracle, row, 0), seq.left[frame])
        np.testing.assert_array_equal(panel(oracle, row, 1), seq.right[frame])
        np.testing.assert_array_equal(panel(oracle, row, 2), seq.right[frame])
        np.testing.assert_array_equal(panel(copy_left, row, 1), seq.left[frame])
    zero = error_map(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1, 3), np.uint8))[0, 0]
    assert (panel(oracle, 1, 3) == zero).all()
    assert not (panel(copy_left, 1, 3) == zero).all()


def test_error_map_scale_and_large_frames_are_downscaled() -> None:
    true = np.zeros((2, 3, 3), np.uint8)
    pred = true.copy()
    pred[0, 0] = round(255 * ERROR_RANGE)  # error at the top of the scale: the brightest colour
    pred[1, 1] = 255  # beyond it: saturates
    errors = error_map(pred, true)
    assert (errors[0, 0] == errors[1, 1]).all() and not (errors[0, 0] == errors[0, 1]).all()
    big = np.zeros((1, 90, 2 * PANEL_WIDTH, 3), np.uint8)
    assert sample_strip(big, big, big).shape == (45, 4 * PANEL_WIDTH + 12, 3)


@pytest.mark.slow
def test_stereo_lit_test_writes_the_report(tmp_path: Path) -> None:
    """The real CLI (stereo_lit/configs/demo.yaml): the report sits next to the tables, one row and one strip per method."""
    from stereo_lit.cli import build_cli
    from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence

    root = tmp_path / "synthetic"
    write_tartanair_sequence(render_sequence(5, H, W, seed=3), root)
    out = tmp_path / "out"
    build_cli(["test", "-c", str(REPO / "stereo_lit/configs/demo.yaml"), "--data.init_args.root", str(root),
               "--data.init_args.clip_frames", "5", "--model.output.dir", str(out)])
    rows = json.loads((out / "eval" / "test_metrics.json").read_text())["methods"]
    page = parse_report(out / "eval" / "test_report.html")
    assert page.rows == list(rows) and {"warp_fill", "copy_left"} <= set(rows)
    assert all(rows[m]["nfe_per_81f"] == 0 and rows[m]["sec_per_81f"] > 0 for m in rows if m != REFERENCE_ROW)
    for src in page.images:
        decode_image(src, out / "eval")
    assert len(page.figures) == len(rows) - 1


def test_collector_bounds_clips_and_pools_image_pairs() -> None:
    """Videos: the first ``max_clips`` clips, a curve each; one-frame clips (image pairs): one series, a point per pair."""
    from stereo_lit.evaluation.report import ReportData

    data = ReportData(max_clips=2, sample_frames=3)
    for clip in range(3):  # 3 video clips of 5 frames, batch of 1: only 2 are kept
        video = torch.full((1, 3, 5, 8, 8), clip / 4)
        data.new_batch({"left": video, "right": video, "video_path": [f"v{clip}"]})
        data.add("m", video, {"psnr_all": torch.arange(5.0) + 10 * clip})
    assert [c["name"] for c in data.clips] == ["v0", "v1"]
    np.testing.assert_array_equal(data.clips[1]["per_frame"]["m"]["psnr_all"], np.arange(5.0) + 10)
    assert data.samples["name"] == "v0" and data.samples["frames"] == [0, 2, 4]

    pairs = ReportData(max_clips=2, max_pairs=4)
    for pair in range(3):  # batches of two one-frame clips: 6 pairs, the first 4 kept, in order
        image = torch.rand(2, 3, 1, 8, 8)
        pairs.new_batch({"left": image, "right": image, "video_path": [f"p{2 * pair}", f"p{2 * pair + 1}"]})
        pairs.add("m", image, {"psnr_all": torch.tensor([2.0 * pair, 2.0 * pair + 1])})
    (record,) = pairs.clips
    assert record["axis"] == "pair" and record["num_frames"] == 4
    np.testing.assert_array_equal(record["per_frame"]["m"]["psnr_all"], [0, 1, 2, 3])
    assert pairs.samples["name"] == "p0" and pairs.samples["frames"] == [0]
