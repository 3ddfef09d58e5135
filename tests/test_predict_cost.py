"""``predict`` reports what it cost: the summary's cost line per method and each video's totals,
with known answers (a generator that reports its NFE / VAE passes, and the tiny Wan model)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from stereo_lit.cli import build_cli
from stereo_lit.generators.geometric import WarpFill
from stereo_lit.io.output_manifest import MANIFEST_NAME
from stereo_lit.metrics.cost import GIB, CallCost
from stereo_lit.evaluation.predict_cost import CostTotals, PredictCost
from test_predict_outputs import _args, _clip


def test_totals_per_81_produced_frames_and_the_summary_line() -> None:
    cost = PredictCost()
    # two windows of one video: 5 then 4 new frames (1 carried), 1 s each, 4 NFE, 1 encode + 1 decode
    cost.add("wan", ["a.mp4"], [5], CallCost(1.0, 4, vae_encodes=1, vae_decodes=1, nfe_full=4, peak_bytes=GIB, memory="rss"))
    cost.add("wan", ["a.mp4"], [4], CallCost(1.0, 4, vae_encodes=1, vae_decodes=1, nfe_full=4, peak_bytes=2 * GIB, memory="rss"))
    record = cost.video_record("a.mp4")
    assert (record["frames"], record["calls"], record["nfe"], record["vae_passes"]) == (9, 2, 8, 4)
    assert record["sec_per_81f"] == pytest.approx(18.0) and record["nfe_per_81f"] == pytest.approx(72.0)
    assert record["vae_passes_per_81f"] == pytest.approx(36.0) and record["peak_gib"] == pytest.approx(2.0)
    assert record["memory_measured"] == "process peak RSS (VmHWM), reset per call"
    assert cost.summary_lines() == [
        "cost of wan: 9 frames in 2 windows: 18 s per 81 frames, NFE 72 per 81 frames (4 per window), "
        "VAE passes 36 per 81 frames (2 encodes + 2 decodes), peak 2 GiB (process peak RSS (VmHWM), reset per call)"
    ]
    assert cost.video_record("other.mp4") is None


def test_a_batch_of_two_videos_shares_the_seconds_by_frames_and_unknown_stays_unknown() -> None:
    cost = PredictCost()
    cost.add("m", ["a", "b"], [3, 1], CallCost(2.0, None))
    assert cost.video_record("a")["seconds"] == pytest.approx(1.5) and cost.video_record("b")["seconds"] == pytest.approx(0.5)
    assert cost.video_record("a")["nfe"] is None and cost.video_record("a")["nfe_per_81f"] is None
    line = cost.summary_lines()[0]
    assert "NFE n/a per 81 frames" in line and "VAE passes n/a" in line and "peak n/a" in line
    merged = CostTotals(calls=1, frames=2, seconds=1.0, nfe=3, peak_bytes=5, memory="cuda").merge(
        CostTotals(calls=2, frames=4, seconds=2.0, nfe=1, peak_bytes=7, memory="cuda"))
    assert (merged.calls, merged.frames, merged.seconds, merged.nfe, merged.peak_bytes) == (3, 6, 3.0, 4, 7)
    with pytest.raises(ValueError, match="must pair up"):
        cost.add("m", ["a"], [1, 2], CallCost(1.0, 1))


class ReportingWarpFill(WarpFill):
    """WarpFill that says it made 10 transformer calls, 1 VAE encode and 2 decodes per call."""

    frame_independent = False  # windowed like a Wan generator (predict would otherwise stream it in chunks)

    def generate(self, left: torch.Tensor, disparity_px: torch.Tensor, **kwargs: Any):
        out = super().generate(left, disparity_px, **kwargs)
        out.extras.update(nfe=10, vae_encodes=1, vae_decodes=2)
        return out


def test_predict_summary_prints_the_reported_cost_per_81_frames(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """9 frames in windows of 5 with overlap 1: 5 + 4 produced frames, 2 calls -> NFE 20 and
    6 VAE passes for 9 frames = 180 and 54 per 81 frames."""
    video = _clip(tmp_path / "in" / "clip.mp4", num_frames=9)
    cli = build_cli(_args(video, tmp_path / "out", "--model.generator", f"{__name__}.ReportingWarpFill"))
    printed = capsys.readouterr().out
    line = next(l for l in printed.splitlines() if "cost of " in l)
    assert "9 frames in 2 windows" in line and "NFE 180 per 81 frames (10 per window)" in line, printed
    assert "VAE passes 54 per 81 frames (2 encodes + 4 decodes)" in line, printed
    assert re.search(r"predict summary: 1 video\(s\): 1 finished, 0 skipped", printed), printed
    record = cli.model.predict_cost.video_record(str(video))
    assert (record["frames"], record["nfe"], record["vae_passes"]) == (9, 20, 6)
    assert record["sec_per_81f"] > 0
    manifest = json.loads((tmp_path / "out" / "clip" / MANIFEST_NAME).read_text())
    assert manifest["cost"] == json.loads(json.dumps(record))  # the video's totals, in its manifest


# the tiny Wan through the CLI: about 3 s on a quiet CPU, so in the default suite (NFE/VAE accounting)
def test_predict_with_the_tiny_wan_prints_nfe_and_vae_passes(tiny_checkpoints: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    """One 5-frame window, 2 steps with CFG: 4 transformer calls, 1 VAE encode (the warped
    estimate) and 1 decode: NFE 64.8 and 32.4 VAE passes per 81 frames."""
    video = _clip(tmp_path / "in" / "clip.mp4", num_frames=5, height=32, width=48)
    cli = build_cli(_args(
        video, tmp_path / "out", "--model.generator", "stereo_lit.diffusion.WanStereoGenerator",
        "--model.generator.init_args.checkpoint", str(tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers"),
        "--model.generator.init_args.sampling.num_inference_steps", "2",
        "--model.generator.init_args.sampling.guidance_scale", "5.0",
        "--model.generator.init_args.memory.device", "cpu", "--model.generator.init_args.memory.dtype", "float32",
        "--model.generator.init_args.window", "5", "--model.generator.init_args.overlap", "1",
        "--model.generator.init_args.progress", "false",
    ))
    printed = capsys.readouterr().out
    line = next(l for l in printed.splitlines() if "cost of " in l)
    assert "5 frames in 1 window:" in line and "NFE 64.8 per 81 frames (4 per window)" in line, printed
    assert "VAE passes 32.4 per 81 frames (1 encodes + 1 decodes)" in line, printed
    assert "process peak RSS (VmHWM), reset per call" in line, printed
    record = cli.model.predict_cost.video_record(str(video))
    assert (record["nfe"], record["nfe_full"], record["vae_encodes"], record["vae_decodes"]) == (4, 4, 1, 1)


def _gather_worker(rank: int, init_file: str, out_dir: str) -> None:
    import json

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        cost = PredictCost()  # rank 0: 5 frames in 1 s, 4 NFE, peak 1 GiB; rank 1: 4 frames in 3 s, 8 NFE, peak 2 GiB
        cost.add("wan", [f"v{rank}"], [5 - rank], CallCost(1.0 + 2 * rank, 4 * (1 + rank), vae_encodes=1, vae_decodes=1,
                                                             peak_bytes=(1 + rank) * GIB, memory="cuda"))
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(cost.gathered(2)["wan"].record()))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two gloo processes: ~100 s on the loaded 2-core machine (mostly imports)
def test_ddp_summary_pools_every_ranks_calls(tmp_path: Path) -> None:
    import json

    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(str(tmp_path / "pg_init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert (record["frames"], record["calls"], record["nfe"], record["vae_passes"]) == (9, 2, 12, 4)
        assert record["sec_per_81f"] == pytest.approx(4.0 / 9 * 81) and record["peak_gib"] == pytest.approx(2.0)
