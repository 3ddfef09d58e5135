"""Fast versions of promises only slow tests guarded (issue 20, item 6): a re-run after a kill
removes the dead run's hidden partial files and stale lock and finishes; the per-folder lock
holds across processes and is taken over once its holder is dead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from stereo_lit.cli import build_cli
from stereo_lit.io.output_manifest import LOCK_NAME, MANIFEST_NAME, OutputLock
from stereo_lit.io.video_reader import read_frames
from test_video_reader import write_test_clip

REPO = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    """The id of a process that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_rerun_after_a_kill_removes_the_dead_runs_partials_and_lock(tmp_path: Path) -> None:
    import socket

    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=5, height=32, width=48)
    np.save(video.with_suffix(".npy"), np.broadcast_to(np.linspace(0.2, 1.0, 48, dtype=np.float32), (5, 32, 48)).copy())
    folder = tmp_path / "out" / "clip"
    folder.mkdir(parents=True)
    dead = _dead_pid()
    stale = [folder / f".{name}.partial-{dead}-{tag}.mp4" for name, tag in (("right", "1a2b3c4d"), ("sbs", "done"))]
    for path in stale:  # what a SIGKILL leaves: hidden partial files (one already finished, not yet renamed)
        path.write_bytes(b"\0" * 1000)
    (folder / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "token": "old", "since": "-"}))
    build_cli([
        "predict", "-c", str(REPO / "stereo_lit/configs/predict_wild.yaml"),
        "--model.generator", "stereo_lit.generators.geometric.WarpFill", "--model.depth", "null",
        "--model.output.dir", str(tmp_path / "out"), "--data.init_args.source", str(video),
        "--data.init_args.window", "5", "--data.init_args.overlap", "1", "--data.init_args.on_error", "raise",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
    ])
    assert sorted(p.name for p in folder.iterdir()) == ["anaglyph.mp4", "right.mp4", "sbs.mp4", MANIFEST_NAME]
    assert len(read_frames(folder / "sbs.mp4")) == 5


def test_the_lock_holds_across_processes_and_is_taken_over_when_its_holder_dies(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from stereo_lit.io.output_manifest import OutputLock; "
         f"print(OutputLock(Path({str(folder)!r}), 'other').acquire(), flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    try:
        assert holder.stdout.readline().strip() == "True"  # the other process holds the folder
        mine = OutputLock(folder, "mine")
        assert not mine.acquire()
        assert str(holder.pid) in mine.describe_holder()
        holder.kill()
        holder.wait(timeout=30)
        assert mine.acquire()  # its holder is dead: the lock is stale and taken over
        assert json.loads((folder / LOCK_NAME).read_text())["token"] == "mine"
        mine.release()
        assert not (folder / LOCK_NAME).exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
