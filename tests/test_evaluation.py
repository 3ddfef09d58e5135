"""Evaluation suite: per-method rows (plus the true-right reference row) and the md/csv/json table."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.evaluation.suite import REFERENCE_ROW, SGBM_FOOTNOTE, EvaluationSuite
from stereo_lit.generators.base import StereoOutput
from stereo_lit.generators.geometric import CopyLeft, WarpFill, WarpOnly
from stereo_lit.metrics import CallCost, lpips_unavailable_reason


def _video(frames_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames_u8).permute(3, 0, 1, 2)[None].float() / 255.0


def synthetic_batch(num_frames: int = 5, height: int = 96, width: int = 128) -> dict:
    seq = render_sequence(num_frames, height, width)
    disparity_left = torch.from_numpy(seq.disparity_left_px)[None, None]
    disparity_right = torch.from_numpy(seq.fx * seq.baseline_m / seq.depth_right_m).float()[None, None]
    return {
        "left": _video(seq.left),
        "right": _video(seq.right),
        "disparity_left_px": disparity_left,
        "disparity_right_px": disparity_right,
        "valid_left": torch.ones_like(disparity_left),
        "valid_right": torch.ones_like(disparity_right),
    }


@pytest.fixture(scope="module")
def scored() -> tuple:
    """(suite, table) of three geometric methods on 5 frames of 96x128, each call costing 0.5 s."""
    batch = synthetic_batch()
    methods = [CopyLeft(), WarpOnly(), WarpFill()]
    suite = EvaluationSuite([m.name for m in methods])
    for method in methods:
        out = method.generate(batch["left"], batch["disparity_left_px"])
        if method.name == "warp_fill":
            out.extras["seam_frames"] = [2]
        suite.update(method.name, batch, out, cost=CallCost(seconds=0.5, nfe=0))
    table = suite.compute()
    return suite, table


@pytest.fixture(scope="module")
def table(scored) -> dict:
    return scored[1]


def test_cost_columns_and_footer_notes(scored, tmp_path) -> None:
    suite, table = scored
    for name in ("copy_left", "warp_only", "warp_fill"):  # 0.5 s for 5 frames = 8.1 s per 81 frames
        assert table[name]["sec_per_81f"] == pytest.approx(0.5 / 5 * 81) and table[name]["nfe_per_81f"] == 0
    markdown = suite.format_table(table)
    footer = markdown.split(f"| {REFERENCE_ROW} |", 1)[1]
    # 96x128 frames are too small for 5-scale MS-SSIM: n/a, and the footer says why in one line
    assert all(math.isnan(row["ms_ssim"]) for row in table.values())
    assert "ms_ssim: 5 frame(s) with a side of 96 px are below the 176 px" in footer
    reason = lpips_unavailable_reason()
    if reason is None:
        assert "lpips_all" in table["warp_fill"]
    else:  # no torchvision / backbone weights here: no column, a one-line reason
        assert "lpips_all" not in table["warp_fill"] and f"lpips: not computed: {reason}." in footer.splitlines()
    assert "sec_per_81f: wall seconds" in footer and "padding frames not counted" in footer
    payload = json.loads(suite.write_table(table, tmp_path, stage="test")[2].read_text())
    assert payload["notes"] == [SGBM_FOOTNOTE, *suite.notes] and len(suite.notes) == 2 + (reason is not None)


def test_rows_and_columns(table) -> None:
    assert list(table) == ["copy_left", "warp_only", "warp_fill", REFERENCE_ROW]
    expected = {
        "psnr_all", "psnr_visible", "psnr_disoccluded", "ssim_all", "ssim_visible", "ssim_disoccluded",
        "sgbm_epe", "sgbm_d1_pct", "sgbm_bad1_pct", "sgbm_bad2_pct", "sgbm_bad3_pct", "sgbm_density_pct",
        "warp_error", "siou_rgb", "siou_m2s_release", "cycle_error", "cycle_coverage_pct", "ms_ssim",
    }
    for row in table.values():
        assert expected <= set(row)
    for name in ("copy_left", "warp_only", "warp_fill"):  # the methods' cost columns; the reference has none
        assert {"sec_per_81f", "nfe_per_81f"} <= set(table[name])
    assert "sec_per_81f" not in table[REFERENCE_ROW]
    assert "seam_jump_ratio" in table["warp_fill"] and "seam_jump_ratio" not in table["copy_left"]


def test_methods_rank_as_expected(table) -> None:
    reference, copy_left, warp_fill = table[REFERENCE_ROW], table["copy_left"], table["warp_fill"]
    assert reference["psnr_all"] == math.inf and reference["siou_rgb"] == pytest.approx(1.0)
    # the matcher floor is the true pair; copy-left (zero disparity) is far worse geometrically
    assert max(reference["sgbm_epe"], warp_fill["sgbm_epe"]) < 0.5 * copy_left["sgbm_epe"]
    assert warp_fill["psnr_visible"] > copy_left["psnr_visible"]
    assert warp_fill["psnr_visible"] > warp_fill["psnr_disoccluded"]
    assert warp_fill["siou_rgb"] > copy_left["siou_rgb"]
    assert reference["siou_m2s_release"] == pytest.approx(1.0)
    assert warp_fill["cycle_error"] < copy_left["cycle_error"]


def test_tables_are_written_and_readable(table, tmp_path) -> None:
    suite = EvaluationSuite(["copy_left", "warp_only", "warp_fill"])
    paths = suite.write_table(table, tmp_path / "eval", stage="test", depth_source="data (ground truth)")
    assert [p.name for p in paths] == ["test_metrics.md", "test_metrics.csv", "test_metrics.json"]
    assert not list((tmp_path / "eval").glob("*.partial"))

    markdown = paths[0].read_text()
    assert markdown.startswith("depth: data (ground truth)")
    assert "| copy_left |" in markdown and f"| {REFERENCE_ROW} |" in markdown and "inf" in markdown

    with paths[1].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == list(table)
    assert float(rows[0]["sgbm_epe"]) == pytest.approx(table["copy_left"]["sgbm_epe"])
    assert float(rows[-1]["psnr_all"]) == math.inf

    def no_constants(name: str):
        raise AssertionError(f"non-standard JSON constant {name}")

    payload = json.loads(paths[2].read_text(), parse_constant=no_constants)
    assert payload["depth"] == "data (ground truth)" and payload["reference_row"] == REFERENCE_ROW
    assert payload["methods"]["warp_fill"]["siou_rgb"] == pytest.approx(table["warp_fill"]["siou_rgb"])
    assert "matched" in markdown and "sgbm_density_pct" in markdown.split("matched", 1)[1]
    assert payload["notes"] == [SGBM_FOOTNOTE]
    assert payload["methods"][REFERENCE_ROW]["psnr_all"] == "inf"


def test_unknown_and_reserved_method_names() -> None:
    with pytest.raises(ValueError, match="reserved"):
        EvaluationSuite([REFERENCE_ROW])
    suite = EvaluationSuite(["a"], reference=False)
    batch = synthetic_batch(num_frames=2, height=32, width=48)
    with pytest.raises(KeyError, match="unknown method"):
        suite.update("b", batch, StereoOutput(right=batch["left"], known_mask=torch.ones_like(batch["left"][:, :1])))
    suite.update("a", batch, StereoOutput(right=batch["right"], known_mask=torch.ones_like(batch["left"][:, :1])))
    assert list(suite.compute()) == ["a"]


def test_seam_lists_from_collated_batches() -> None:
    from stereo_lit.evaluation.suite import _seam_list

    assert _seam_list(None) is None
    assert _seam_list([[4, 8], [4], None]) == [4, 8]
    assert _seam_list(torch.tensor([[8], [4]])) == [4, 8]


def _same_table(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for method in a:
        assert list(a[method]) == list(b[method]), method
        for key, value in a[method].items():
            other = b[method][key]
            assert (math.isnan(value) and math.isnan(other)) or value == other, (method, key, value, other)


def _score(batch: dict, outputs: dict, device: str = "cpu", cost: CallCost | None = None) -> dict:
    suite = EvaluationSuite(list(outputs)).to(device)
    for name, out in outputs.items():
        suite.update(name, batch, out, cost=cost)
    return suite.compute()


def test_padding_never_counts() -> None:
    """A clip of 7 frames of 40x56 padded to 9 frames of 48x64 (as Wan needs) gives exactly
    the table of the unpadded clip, every column; the padded area holds garbage."""
    from stereo_lit.stereo.padding import Padding, pad_video

    batch = synthetic_batch(num_frames=7, height=40, width=56)
    padding = Padding(bottom=8, right=8, frames=2)
    padded = {k: pad_video(v, padding) for k, v in batch.items()}
    padded["padding"] = {"bottom": torch.tensor([8]), "right": torch.tensor([8]), "frames": torch.tensor([2])}
    gen = torch.Generator().manual_seed(0)

    def garbage_padded(x: torch.Tensor) -> torch.Tensor:
        noise = torch.rand(pad_video(x, padding).shape, generator=gen)
        noise[..., :7, :40, :56] = x
        return noise

    plain, padded_outs = {}, {}
    for method in (CopyLeft(), WarpFill()):
        out = method.generate(batch["left"], batch["disparity_left_px"])
        out.extras["seam_frames"] = [3]
        plain[method.name] = out
        padded_outs[method.name] = StereoOutput(
            right=garbage_padded(out.right),
            known_mask=pad_video(out.known_mask, padding),
            extras={"seam_frames": [3, 8]},  # frame 8 is padding: no seam of the clip
        )
    cost = CallCost(seconds=0.7, nfe=14)  # the same call on 9 padded frames: 7 source frames count
    expected, got = _score(batch, plain, cost=cost), _score(padded, padded_outs, cost=cost)
    assert "seam_jump_ratio" in expected["warp_fill"]
    assert got["warp_fill"]["sec_per_81f"] == pytest.approx(0.7 / 7 * 81)
    assert got["warp_fill"]["nfe_per_81f"] == pytest.approx(14 / 7 * 81)
    _same_table(got, expected)


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
)
def test_table_under_bf16_autocast_equals_fp32(device: str) -> None:
    """Lightning's bf16-mixed runs validation under autocast: the metrics must not notice."""
    batch = synthetic_batch(num_frames=3, height=48, width=64)
    outputs = {m.name: m.generate(batch["left"], batch["disparity_left_px"]) for m in (CopyLeft(), WarpFill())}
    batch = {k: v.to(device) for k, v in batch.items()}
    outputs = {k: StereoOutput(right=o.right.to(device), known_mask=o.known_mask.to(device)) for k, o in outputs.items()}
    expected = _score(batch, outputs, device)
    with torch.autocast(device, dtype=torch.bfloat16):
        got = _score(batch, outputs, device)
    _same_table(got, expected)
    assert got[REFERENCE_ROW]["ssim_all"] == pytest.approx(1.0, abs=1e-6)
