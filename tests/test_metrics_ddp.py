"""Metric states reduce correctly under DDP: two gloo processes with half the data each
must report exactly what one process reports with all of it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD_SIZE = 2


def _batch(seed: int) -> dict:
    from stereo_lit.data.synthetic import render_sequence

    seq = render_sequence(3, 48, 64, seed=seed)

    def video(frames_u8: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(frames_u8).permute(3, 0, 1, 2)[None].float() / 255.0

    disparity_left = torch.from_numpy(seq.disparity_left_px)[None, None]
    return {
        "left": video(seq.left),
        "right": video(seq.right),
        "disparity_left_px": disparity_left,
        "disparity_right_px": torch.from_numpy(seq.fx * seq.baseline_m / seq.depth_right_m).float()[None, None],
        "valid_left": torch.ones_like(disparity_left),
        # rank 1's clip has a window seam; rank 0's has none: keys must still agree after the reduction
        "seam_frames": [1] if seed == 1 else None,
    }


def _evaluate(seeds: list[int]) -> dict:
    from stereo_lit.evaluation.suite import EvaluationSuite
    from stereo_lit.generators.geometric import CopyLeft, WarpFill
    from stereo_lit.metrics import CallCost

    methods = [CopyLeft(), WarpFill()]
    suite = EvaluationSuite([m.name for m in methods])
    for seed in seeds:
        batch = _batch(seed)
        for method in methods:  # known costs: rank 1's clip took 3x as long with 2x the NFE
            cost = CallCost(seconds=1.0 + 2.0 * seed, nfe=10 * (1 + seed))
            suite.update(method.name, batch, method.generate(batch["left"], batch["disparity_left_px"]), cost=cost)
    return suite.compute()


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        table = _evaluate([rank])  # each rank sees half the data
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(table))
    finally:
        dist.destroy_process_group()


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def test_two_gloo_processes_match_one_process(tmp_path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "pg_init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    expected = _evaluate([0, 1])
    assert "seam_jump_ratio" in expected["warp_fill"]
    for rank in range(WORLD_SIZE):
        reduced = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert list(reduced) == list(expected)
        for method, row in expected.items():
            assert set(reduced[method]) == set(row), (rank, method)
            mismatched = {k: (reduced[method][k], v) for k, v in row.items() if not _same(reduced[method][k], v)}
            assert not mismatched, f"rank {rank}, {method}: {mismatched}"
    # and the halves differ from the whole, so the test would catch a missing reduction
    alone = _evaluate([0])
    assert not _same(alone["copy_left"]["sgbm_epe"], expected["copy_left"]["sgbm_epe"])
    # time and NFE pool sums: (1 + 3) s and (10 + 20) NFE over 2 x 3 frames
    assert expected["warp_fill"]["sec_per_81f"] == pytest.approx(4.0 / 6 * 81)
    assert alone["warp_fill"]["sec_per_81f"] == pytest.approx(1.0 / 3 * 81)
    assert expected["warp_fill"]["nfe_per_81f"] == pytest.approx(30.0 / 6 * 81)
