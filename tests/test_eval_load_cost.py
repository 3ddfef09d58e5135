"""The evaluation table keeps loading out of its cost columns (issue 21, item 4).

``stereo-lit test`` with the shipped ``eval_tartanair.yaml`` (tiny Wan folders, lengths shortened)
on a clock and a peak-RSS reader driven by the test: each Wan load advances the clock 7 s and
peaks at 5 GiB, each Wan ``generate`` call 2 s and 2 GiB, each prompt encoding 3 s and 1.5 GiB
(shared by every row, in none), so every number of the table is known.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from stereo_lit.diffusion.generator import WanStereoGenerator
from stereo_lit.diffusion.pipeline import WanStereoPipeline
from stereo_lit.metrics.cost import GIB, CallCost, measure_call, timed_generate
from stereo_lit.metrics.generation_cost import GenerationCost
from test_cli_wan import _count_text_encoder_work

REPO = Path(__file__).resolve().parents[1]
LOAD_S, LOAD_GIB, CALL_S, CALL_GIB, ENCODE_S, ENCODE_GIB, IDLE_GIB = 7.0, 5.0, 2.0, 2.0, 3.0, 1.5, 1.0


class FakeMachine:
    """A clock and a process peak RSS that move only when the test says so."""

    def __init__(self) -> None:
        self.now, self.hwm = 100.0, IDLE_GIB * GIB

    def perf_counter(self) -> float:
        return self.now

    def reset_peak(self) -> bool:
        self.hwm = IDLE_GIB * GIB
        return True

    def work(self, seconds: float, peak_gib: float) -> None:
        self.now += seconds
        self.hwm = max(self.hwm, peak_gib * GIB)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> FakeMachine:
    """Loads (``load_wan``) cost 7 s / 5 GiB, Wan ``generate`` calls 2 s / 2 GiB, prompt encodings
    3 s / 1.5 GiB, anything else nothing."""
    from stereo_lit.diffusion import wan_models

    fake = FakeMachine()
    monkeypatch.setattr("stereo_lit.metrics.cost.time", SimpleNamespace(perf_counter=fake.perf_counter))
    monkeypatch.setattr("stereo_lit.metrics.cost.reset_rss_peak", fake.reset_peak)
    monkeypatch.setattr("stereo_lit.metrics.cost._read_rss_peak", lambda: fake.hwm)
    load_wan, generate = wan_models.load_wan, WanStereoGenerator.generate

    def slow_load(*args, **kwargs):
        fake.work(LOAD_S, LOAD_GIB)
        return load_wan(*args, **kwargs)

    def slow_generate(self, *args, **kwargs):
        fake.work(CALL_S, CALL_GIB)
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(wan_models, "load_wan", slow_load)
    monkeypatch.setattr(WanStereoGenerator, "generate", slow_generate)
    encode = WanStereoPipeline.encode_prompt

    def slow_encode(self, *args, **kwargs):  # in no row's time: every row shares the embeddings
        fake.work(ENCODE_S, ENCODE_GIB)
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(WanStereoPipeline, "encode_prompt", slow_encode)
    return fake


def _wan_row(row: dict) -> dict:
    """A Wan row of the shipped config, shortened: 5-frame windows, 1-frame overlap, 1 step."""
    row["init_args"].update(window=5, overlap=1)
    row["init_args"]["sampling"]["num_inference_steps"] = 1
    return row


def _eval_config(tiny: Path, tmp_path: Path) -> Path:
    """eval_tartanair.yaml with its first T2V rows (x0_blend, latent_shift), its VACE row and WarpOnly."""
    from stereo_lit.diffusion.tiny import TINY_WAN_VACE_DIRNAME

    config = yaml.safe_load((REPO / "stereo_lit" / "configs" / "eval_tartanair.yaml").read_text())
    baselines = config["model"]["baselines"]
    latent_shift = next(b for b in baselines if b.get("init_args", {}).get("strategy") == "latent_shift")
    vace = next(b for b in baselines if b.get("init_args", {}).get("backbone") == "vace")
    warp_only = next(b for b in baselines if b["class_path"].endswith("WarpOnly"))
    config["model"].update(
        generator=_wan_row(config["model"]["generator"]), baselines=[warp_only, _wan_row(latent_shift), _wan_row(vace)],
        wan_checkpoint=str(tiny / "Wan2.1-T2V-tiny-Diffusers"), vace_checkpoint=str(tiny / TINY_WAN_VACE_DIRNAME),
    )
    config["data"]["init_args"].update(clip_frames=9, stride=9, size=None)
    path = tmp_path / "eval_load.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_stereo_lit_test_reports_each_load_apart_from_the_generate_columns(
    tiny_checkpoints: Path, tmp_path: Path, machine: FakeMachine, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from stereo_lit.cli import build_cli
    from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence

    root, out = tmp_path / "tartanair", tmp_path / "out"
    write_tartanair_sequence(render_sequence(9, 32, 48, seed=1), root / "EnvA" / "Easy" / "P000")
    umt5_loads, encodes = _count_text_encoder_work(monkeypatch)
    build_cli(["test", "-c", str(_eval_config(tiny_checkpoints, tmp_path)), "--data.init_args.root", str(root),
               "--model.output.dir", str(out), "--trainer.logger", "false"])
    printed = capsys.readouterr().out

    payload = json.loads((out / "eval" / "test_metrics.json").read_text())
    table = payload["methods"]
    assert list(table)[:4] == ["wan_x0_blend", "warp_only", "wan_latent_shift", "wan_vace"]
    per_81f = CALL_S * 81 / 9  # one 9-frame clip per row, 2 s per call
    # the first T2V row loaded the T2V folder, the VACE row its own; neither load is in the call's time or peak
    for name, load_s in (("wan_x0_blend", LOAD_S), ("wan_latent_shift", 0.0), ("wan_vace", LOAD_S), ("warp_only", 0.0)):
        row = table[name]
        wan = name.startswith("wan")
        assert row["sec_per_81f"] == pytest.approx(per_81f if wan else 0.0), name
        assert row["peak_rss_gib"] == pytest.approx(CALL_GIB if wan else IDLE_GIB), name
        assert row["load_s"] == pytest.approx(load_s), name
        assert row.get("load_peak_rss_gib") == (pytest.approx(LOAD_GIB) if load_s else None), name
    # the same columns in the CSV, the printed and written markdown (n/a without a load) and the HTML report
    with (out / "eval" / "test_metrics.csv").open() as handle:
        rows = {r["method"]: r for r in csv.DictReader(handle)}
    assert float(rows["wan_x0_blend"]["load_s"]) == LOAD_S and rows["wan_latent_shift"]["load_peak_rss_gib"] == "nan"
    markdown = (out / "eval" / "test_metrics.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| method |"))
    cells = header.strip("| ").split(" | ")
    assert {"load_s", "load_peak_rss_gib"} <= set(cells) and header in printed
    load_col = cells.index("load_s")
    first = next(line for line in markdown.splitlines() if line.startswith("| wan_x0_blend |")).strip("| ").split(" | ")
    assert float(first[load_col]) == LOAD_S and float(first[cells.index("sec_per_81f")]) == pytest.approx(per_81f)
    assert any("load_s is the wall seconds spent loading" in note for note in payload["notes"])
    report = (out / "eval" / "test_report.html").read_text()
    assert "<th>load_s</th>" in report and "load_s is the wall seconds spent loading" in report
    # one prompt, one text encoder (T2V and VACE folders hold identical UMT5 weights): loaded once, encoded once
    assert len(umt5_loads) == 1 and encodes == [""]  # (tests/test_cli_wan.py: the same for all four Wan rows)


def test_the_first_call_loads_before_its_clock_and_a_sharing_row_loads_nothing(
    tiny_checkpoints: Path, machine: FakeMachine
) -> None:
    """Known answer without the CLI: the suite's two T2V rows on one shared load."""
    from stereo_lit.diffusion.loading import SharedComponents
    from stereo_lit.evaluation.suite import EvaluationSuite
    from test_evaluation import synthetic_batch
    from test_memory_plan import _generator

    shared = SharedComponents()
    rows = [_generator(tiny_checkpoints, strategy=s, window=5).share_loads(shared) for s in ("x0_blend", "repaint")]
    batch = synthetic_batch(num_frames=5, height=32, width=48)
    suite = EvaluationSuite([row.name for row in rows])
    costs = []
    for row in rows:
        out, cost = timed_generate(row, batch["left"], batch["disparity_left_px"])
        suite.update(row.name, batch, out, cost=cost)
        costs.append(cost)
    assert shared.loads == 1
    assert (costs[0].seconds, costs[0].load_seconds, costs[0].peak_bytes, costs[0].load_peak_bytes) == (
        CALL_S, LOAD_S, CALL_GIB * GIB, LOAD_GIB * GIB)
    assert (costs[1].seconds, costs[1].load_seconds, costs[1].load_peak_bytes) == (CALL_S, 0.0, None)
    table = suite.compute()
    first, second = table["wan_x0_blend"], table["wan_repaint"]
    assert (first["sec_per_81f"], first["load_s"], first["load_peak_rss_gib"]) == pytest.approx((CALL_S * 81 / 5, LOAD_S, LOAD_GIB))
    assert (second["sec_per_81f"], second["load_s"]) == pytest.approx((CALL_S * 81 / 5, 0.0))
    assert "load_peak_rss_gib" not in second


def test_the_memory_plan_is_settled_before_the_load(tiny_checkpoints: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan chooses offload, which the load needs: measuring a call must not load first."""
    from stereo_lit.diffusion import wan_models
    from test_memory_plan import _generator

    order: list[str] = []
    plan, load = wan_models.WanModels.plan_memory, wan_models.load_wan
    monkeypatch.setattr(wan_models.WanModels, "plan_memory", lambda self, *a: order.append("plan" if self.memory_plan is None else "planned") or plan(self, *a))
    monkeypatch.setattr(wan_models, "load_wan", lambda *a, **k: order.append("load") or load(*a, **k))
    generator = _generator(tiny_checkpoints, window=5)
    left = torch.rand(1, 3, 5, 16, 32)
    with measure_call(generator, left) as counters:
        generator.generate(left, torch.full((1, 1, 5, 16, 32), 2.0))
    assert order == ["plan", "load", "planned"] and counters.load_seconds > 0  # generate() finds it planned


def test_load_columns_of_the_metric() -> None:
    cost = GenerationCost()
    cost.update_call(CallCost(2.0, 4, peak_bytes=GIB, memory="cuda", load_seconds=3.0, load_peak_bytes=4 * GIB,
                              load_memory="cuda"), frames=81)
    cost.update_call(CallCost(1.0, 4, peak_bytes=2 * GIB, memory="cuda"), frames=81)
    out = {k: float(v) for k, v in cost.compute().items()}
    assert out["sec_per_81f"] == 1.5 and out["peak_cuda_gib"] == 2.0
    assert out["load_s"] == 3.0 and out["load_peak_cuda_gib"] == 4.0 and "load_peak_rss_gib" not in out
    nothing = GenerationCost()
    nothing.update_call(CallCost(1.0, 0), frames=81)
    assert {k: float(v) for k, v in nothing.compute().items()}["load_s"] == 0.0
    assert not any(k.startswith("load_peak") for k in nothing.compute())
    with pytest.raises(ValueError, match="load_memory must be one of"):
        nothing.update(1.0, 3, load_peak_bytes=10)
    with pytest.raises(ValueError, match="load_seconds"):
        nothing.update(1.0, 3, load_seconds=-1.0)


def test_a_frame_too_large_is_refused_before_the_load(tiny_checkpoints: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Measuring the first call loads first: the frame-size check must still come before any load."""
    from stereo_lit.diffusion import wan_models
    from stereo_lit.diffusion.loading import positional_range
    from test_memory_plan import _generator

    loads: list = []
    monkeypatch.setattr(wan_models, "load_wan", lambda *a, **k: loads.append(a))
    generator = _generator(tiny_checkpoints, window=5)
    too_wide = positional_range(generator.checkpoint).max_side_px + 16
    left = torch.zeros(1, 3, 5, 16, too_wide)
    with pytest.raises(ValueError, match="the frame size"):
        timed_generate(generator, left, torch.zeros(1, 1, 5, 16, too_wide))
    assert loads == [] and not generator.models_loaded
