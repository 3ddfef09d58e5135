"""Lightning DDP on two CPU processes (gloo) through the real CLI: disjoint work per rank,
metrics reduced to exactly the one-process table, every video produced once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("stereo-lit")
# three clips on two ranks: an uneven split must still count every clip exactly once
TRAJECTORIES = ["EnvA/Easy/P000", "EnvA/Easy/P001", "EnvA/Hard/P000"]


@pytest.fixture(scope="module")
def tartanair_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tartanair")
    for seed, trajectory in enumerate(TRAJECTORIES):
        write_tartanair_sequence(render_sequence(9, 48, 64, seed=seed), root / trajectory)
    return root


def _cli(stage: str, root: Path, out: Path, devices: int) -> subprocess.CompletedProcess:
    args = [
        str(EXE), stage, "-c", str(REPO / "stereo_lit/configs/demo.yaml"),
        "--data.init_args.root", str(root), f"--data.init_args.{stage}", json.dumps(TRAJECTORIES),
        "--data.init_args.clip_frames", "9", "--data.init_args.window", "5", "--data.init_args.overlap", "1",
        "--trainer.accelerator", "cpu", "--trainer.devices", str(devices), "--model.output.dir", str(out),
    ]
    if devices > 1:
        args += ["--trainer.strategy", "ddp"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(args, capture_output=True, text=True, timeout=900, env=env, cwd=out.parent)


def test_test_under_ddp_reduces_to_the_single_process_table(tartanair_root: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for out, devices in ((one, 1), (two, 2)):
        out.mkdir()
        result = _cli("test", tartanair_root, out, devices)
        assert result.returncode == 0, result.stderr[-4000:]
    table_one = json.loads((one / "eval" / "test_metrics.json").read_text())["methods"]
    table_two = json.loads((two / "eval" / "test_metrics.json").read_text())["methods"]
    assert table_one.keys() == table_two.keys()
    for method, row in table_one.items():
        for metric, value in row.items():
            other = table_two[method][metric]
            if metric in ("sec_per_81f", "peak_rss_gib", "peak_cuda_gib"):  # time, memory: differ between runs
                assert (value is None) == (other is None) and (value is None or min(value, other) > 0), method
                continue
            if isinstance(value, float):
                assert other == pytest.approx(value, rel=1e-5, abs=1e-7), (method, metric)
            else:
                assert other == value, (method, metric)


def test_predict_under_ddp_writes_every_video_once(tartanair_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = _cli("predict", tartanair_root, out, 2)
    assert result.returncode == 0, result.stderr[-4000:]
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 3 and len(set(folders)) == 3
    for folder in folders:
        with av.open(str(out / folder / "sbs.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == 9
    # the end summary (printed by rank 0) lists every rank's outputs, not only rank 0's
    listed = result.stdout.split("stereo outputs:", 1)[-1]
    for folder in folders:
        assert str(out / folder / "sbs.mp4") in listed, (folder, result.stdout[-2000:])


def test_a_job_tears_its_process_group_down_before_python_exits(tmp_path: Path, monkeypatch) -> None:
    """Gloo's worker thread must not outlive a finished job into the interpreter's exit (it aborted
    1 run in 16 of the DDP predict above): run_job destroys the group once the job is done."""
    from types import SimpleNamespace

    import torch.distributed as dist

    from stereo_lit.commands import jobs

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    monkeypatch.setattr(jobs, "build_cli", lambda *args, **kwargs: SimpleNamespace(model=SimpleNamespace(failures=None)))
    jobs.run_job(["predict"])
    assert not dist.is_initialized()
    jobs.release_process_group()  # nothing to release: no error
