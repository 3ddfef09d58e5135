"""Small promises: the report's table stays inside the page, preview labels scale with the cell,
the demo lists the HTML report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_report_table_scrolls_in_its_own_box_with_the_method_column_fixed() -> None:
    from stereo_lit.evaluation.report import _STYLE, table_html

    columns = [f"a_rather_long_metric_name_{i}" for i in range(40)]  # the 2500-px table of a full eval
    page = table_html({"wan_x0_blend": {c: 1.0 for c in columns}}, columns)
    assert page.startswith("<div class='table-box'><table>") and page.endswith("</table></div>")
    style = _STYLE.replace("\n", "")
    assert ".table-box{max-width:100%;overflow-x:auto" in style
    assert "td:first-child{text-align:left;position:sticky;left:0" in style  # the method column stays put
    assert "overflow-wrap:anywhere" in style  # long headers wrap instead of widening the page


def test_preview_labels_scale_with_the_cell() -> None:
    from stereo_lit.commands.preview import LABEL_HEIGHT, label_band, label_height

    assert label_height(64) == LABEL_HEIGHT and label_height(1080) == 65
    small, large = label_band("2% c0.5", 400), label_band("2% c0.5", 1900, label_height(1080))
    assert small.shape == (LABEL_HEIGHT, 400, 3) and large.shape == (65, 1900, 3)

    def text_rows(band: np.ndarray) -> int:
        return int((band.max(axis=(1, 2)) > 128).sum())

    assert text_rows(large) >= 4 * text_rows(small) > 0  # the glyphs themselves grow, not only the band


def test_demo_lists_the_html_report() -> None:
    text = (REPO / "scripts" / "demo.sh").read_text()
    listing = next(line for line in text.splitlines() if line.startswith("find \"$OUT\""))
    assert "'*.html'" in listing


def test_progress_is_one_plain_line_per_stage_in_a_log(monkeypatch, caplog) -> None:
    import logging

    from stereo_lit.io import console

    monkeypatch.setenv("STEREO_LIT_PROGRESS", "plain")
    with caplog.at_level(logging.INFO, logger="stereo_lit.progress"):
        bar = console.stage_progress(total=3, desc="depth", unit="window")
        for _ in range(3):
            bar.update(1)
        bar.close()
        import torch

        steps = console.stage_progress(torch.tensor([999.0, 500.0]), desc="window 1", unit="step", plain_level=logging.DEBUG)
        assert [float(t) for t in steps] == [999.0, 500.0]  # a tensor of timesteps, as the sampler passes
    lines = [r.getMessage() for r in caplog.records if r.name == "stereo_lit.progress"]
    assert len(lines) == 1 and lines[0].startswith("depth: 3/3 windows in ")  # the per-window steps: DEBUG only
    monkeypatch.setenv("STEREO_LIT_PROGRESS", "bars")
    assert type(console.stage_progress(total=1, desc="depth")).__name__ == "tqdm" or "tqdm" in type(console.stage_progress(total=1)).__module__


def test_predict_in_a_log_has_no_redrawn_bar(monkeypatch) -> None:
    from stereo_lit.cli import build_cli

    monkeypatch.setenv("STEREO_LIT_PROGRESS", "plain")
    cli = build_cli(["-c", "demo", "--data.init_args.root", "nowhere"], run=False)
    cli.subcommand = "predict"
    config = {"logger": False, "enable_checkpointing": False, "accelerator": "cpu", "enable_progress_bar": None}
    assert cli._instantiate_trainer(dict(config), []).progress_bar_callback is None
    monkeypatch.setenv("STEREO_LIT_PROGRESS", "bars")  # a terminal keeps its bar
    assert cli._instantiate_trainer(dict(config), []).progress_bar_callback is not None
