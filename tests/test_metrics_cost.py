"""Cost per 81 frames: known sums of time, NFE and VAE passes, the peak memory of a call, and
where each number comes from (the method's report, else hooks on its transformer / VAE)."""

from __future__ import annotations

import math
import time

import pytest
import torch

from stereo_lit.generators.base import StereoOutput
from stereo_lit.generators.geometric import CopyLeft, WarpFill
from stereo_lit.metrics import CallCost, GenerationCost, method_nfe, timed_generate
from stereo_lit.metrics.cost import GIB, reset_rss_peak


def test_seconds_nfe_and_vae_passes_per_81_frames_are_pooled_sums() -> None:
    cost = GenerationCost()
    cost.update(1.0, 27, nfe=10, vae_passes=2, peak_bytes=GIB, memory="rss")
    cost.update(2.0, 54, nfe=20, vae_passes=4, peak_bytes=3 * GIB, memory="rss")
    out = {k: float(v) for k, v in cost.compute().items()}
    # 81 frames in all: 3 s, 30 NFE, 6 VAE passes; the peak is the largest call's
    assert out == {"sec_per_81f": pytest.approx(3.0), "nfe_per_81f": pytest.approx(30.0),
                   "vae_passes_per_81f": pytest.approx(6.0), "peak_rss_gib": pytest.approx(3.0), "load_s": 0.0}
    cost.update(0.5, 81, nfe=None, vae_passes=None)  # one call that does not say: unknown, time still counts
    out = {k: float(v) for k, v in cost.compute().items()}
    assert out["sec_per_81f"] == pytest.approx(3.5 / 162 * 81)
    assert math.isnan(out["nfe_per_81f"]) and math.isnan(out["vae_passes_per_81f"])
    assert out["peak_rss_gib"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        cost.update(-1.0, 3)
    with pytest.raises(ValueError, match="memory must be one of"):
        cost.update(1.0, 3, peak_bytes=10, memory=None)
    with pytest.raises(ValueError, match="one kind per metric"):
        cost.update(1.0, 3, peak_bytes=10, memory="cuda")
    empty = GenerationCost().compute()
    assert math.isnan(float(empty["sec_per_81f"])) and not any(k.startswith("peak_") for k in empty)
    gpu = GenerationCost()
    gpu.update(1.0, 81, nfe=4, vae_passes=2, peak_bytes=GIB // 2, memory="cuda")
    assert float(gpu.compute()["peak_cuda_gib"]) == pytest.approx(0.5) and "peak_rss_gib" not in gpu.compute()


class _Denoiser(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _VAE:
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _FakeDiffusion:
    """Runs its transformer ``steps`` times and its VAE once each way per call, sleeping ``delay`` s."""

    name = "fake"

    def __init__(self, steps: int, delay: float = 0.0, report: dict | None = None, allocate_mib: int = 0) -> None:
        self.transformer, self.vae, self.steps, self.delay, self.report = _Denoiser(), _VAE(), steps, delay, report
        self.allocate_mib = allocate_mib

    def generate(self, left: torch.Tensor, disparity: torch.Tensor, **_) -> StereoOutput:
        self.vae.encode(left)
        for _ in range(self.steps):
            self.transformer(left)
        self.vae.decode(left)
        if self.allocate_mib:  # touched, so resident
            block = torch.ones(self.allocate_mib * 2**20, dtype=torch.uint8)
            del block
        time.sleep(self.delay)
        return StereoOutput(right=left, known_mask=torch.ones_like(left[:, :1]), extras=dict(self.report or {}))


def test_nfe_and_vae_passes_of_methods() -> None:
    left = torch.rand(1, 3, 2, 8, 8)
    disparity = torch.zeros(1, 1, 2, 8, 8)
    for method in (CopyLeft(), WarpFill()):
        out, cost = timed_generate(method, left, disparity)
        assert (cost.nfe, cost.vae_passes) == (0, 0) and cost.seconds >= 0 and out.right.shape == left.shape
    out, cost = timed_generate(_FakeDiffusion(steps=7, delay=0.05), left, disparity)
    # counted on the transformer and the VAE; the sleep is timed
    assert (cost.nfe, cost.nfe_full, cost.vae_encodes, cost.vae_decodes, cost.vae_passes) == (7, 7, 1, 1, 2)
    assert cost.seconds >= 0.05
    report = {"nfe": torch.tensor(100), "nfe_full": 60, "vae_encodes": 2, "vae_decodes": 1}
    _, cost = timed_generate(_FakeDiffusion(steps=7, report=report), left, disparity)
    assert (cost.nfe, cost.nfe_full, cost.vae_passes) == (100, 60, 3)  # what the method reports wins over the hooks
    unknown = type("Other", (), {"generate": lambda self, left, d, **_: StereoOutput(left, left[:, :1])})()
    _, cost = timed_generate(unknown, left, disparity)
    assert cost.nfe is None and cost.vae_passes is None and method_nfe(unknown) is None
    counter = type("Counted", (), {"last_nfe": type("NFECount", (), {"count": 42})()})()
    assert method_nfe(counter) == 42
    assert isinstance(cost, CallCost)


def test_a_reported_nfe_of_10_for_40_frames_is_20_25_per_81_frames() -> None:
    left, disparity = torch.rand(1, 3, 40, 8, 8), torch.zeros(1, 1, 40, 8, 8)
    report = {"nfe": 10, "vae_encodes": 1, "vae_decodes": 1}
    _, call = timed_generate(_FakeDiffusion(steps=0, report=report), left, disparity)
    cost = GenerationCost()
    cost.update_call(call, frames=40)
    out = {k: float(v) for k, v in cost.compute().items()}
    assert out["nfe_per_81f"] == pytest.approx(20.25) and out["vae_passes_per_81f"] == pytest.approx(4.05)
    assert out["sec_per_81f"] == pytest.approx(call.seconds * 81 / 40)


@pytest.mark.skipif(not reset_rss_peak(), reason="the peak RSS cannot be reset here (no /proc/self/clear_refs)")
def test_cpu_peak_is_the_calls_own_peak_rss() -> None:
    """A call that touches 256 MiB peaks at least 256 MiB above the next call that allocates nothing
    (so the peak is reset per call, not the process's peak since start)."""
    left, disparity = torch.rand(1, 3, 2, 8, 8), torch.zeros(1, 1, 2, 8, 8)
    _, big = timed_generate(_FakeDiffusion(steps=1, allocate_mib=256), left, disparity)
    _, small = timed_generate(_FakeDiffusion(steps=1), left, disparity)
    assert big.memory == small.memory == "rss"
    assert big.peak_bytes - small.peak_bytes >= 250 * 2**20, (big.peak_bytes, small.peak_bytes)


@pytest.mark.slow
def test_wan_generator_reports_nfe_and_vae_passes(tmp_path) -> None:
    """The tiny random Wan, 2 steps with CFG, one 5-frame window: 4 transformer calls; one VAE
    encode (the warped estimate) and one decode; its load is not timed."""
    from stereo_lit.diffusion.generator import WanStereoGenerator
    from stereo_lit.diffusion.tiny import write_tiny_wan

    gen = WanStereoGenerator(write_tiny_wan(tmp_path / "ckpt", seed=0), sampling={"num_inference_steps": 2, "guidance_scale": 5.0},
                             memory={"device": "cpu", "dtype": "float32"}, window=5, overlap=1, prompt="a red ball",
                             progress=False)
    left = torch.rand(1, 3, 5, 16, 32, generator=torch.Generator().manual_seed(0))
    out, cost = timed_generate(gen, left, torch.full((1, 1, 5, 16, 32), 3.0))
    assert (cost.nfe, cost.nfe_full, cost.vae_encodes, cost.vae_decodes) == (4, 4, 1, 1) and out.right.shape == left.shape
    assert (out.extras["nfe"], out.extras["vae_encodes"], out.extras["vae_decodes"]) == (4, 1, 1)
    assert cost.memory == "rss" and cost.peak_bytes > 0


def test_the_table_has_the_cost_columns_and_says_what_they_measure() -> None:
    """A Wan-like row (reported NFE, VAE passes, CUDA peak) and a geometric row in one table."""
    from stereo_lit.evaluation.suite import REFERENCE_ROW, EvaluationSuite
    from test_evaluation import synthetic_batch

    batch = synthetic_batch(num_frames=5, height=48, width=64)
    suite = EvaluationSuite(["wan", "warp_fill"])
    out = WarpFill().generate(batch["left"], batch["disparity_left_px"])
    suite.update("wan", batch, out, cost=CallCost(2.0, 4, vae_encodes=1, vae_decodes=1, peak_bytes=GIB // 4, memory="cuda"))
    suite.update("warp_fill", batch, out, cost=CallCost(0.5, 0, vae_encodes=0, vae_decodes=0))
    table = suite.compute()
    wan = table["wan"]  # 5 frames: x 81/5
    assert (wan["sec_per_81f"], wan["nfe_per_81f"], wan["vae_passes_per_81f"], wan["peak_cuda_gib"]) == pytest.approx(
        (32.4, 64.8, 32.4, 0.25))
    assert "peak_cuda_gib" not in table["warp_fill"] and table["warp_fill"]["vae_passes_per_81f"] == 0
    md = suite.format_table(table)
    header = next(line for line in md.splitlines() if line.startswith("| method |")).strip("| ").split(" | ")
    warp_fill = next(line for line in md.splitlines() if line.startswith("| warp_fill |")).strip("| ").split(" | ")
    assert warp_fill[header.index("peak_cuda_gib")] == "n/a" and warp_fill[header.index("load_s")] == "0"
    assert "vae_passes_per_81f" not in table[REFERENCE_ROW]
    footer = suite.format_table(table)
    assert "vae_passes_per_81f: VAE encode + decode calls" in footer and "peak_cuda_gib: the largest" in footer
    assert "peak_rss_gib (CPU runs): the largest process peak resident set size" in footer


def test_bench_sampler_rounds_ratios_up_and_real_size_needs_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sampler.py"
    spec = importlib.util.spec_from_file_location("bench_sampler", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_sampler", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    assert (bench.up(1.0501), bench.up(1.05), bench.up(0.9999)) == ("1.051", "1.050", "1.000")
    assert bench.summary([1.0, 2.0, 3.0, 4.0, 5.0]) == {"median": 3.0, "min": 1.0, "max": 5.0, "q1": 2.0, "q3": 4.0}
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="--real-size needs a CUDA GPU"):
            bench.main(["--real-size"])
