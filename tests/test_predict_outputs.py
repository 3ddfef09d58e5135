"""Predict outputs are never lost or silently stale (issue 10, items 1, 2, 3, 6, 8, 9).

Runs go through the real CLI (``build_cli`` in-process, or the console script in a
subprocess where two runs must overlap), with depth files next to the videos so no
estimator is needed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch

from stereo_lit.cli import build_cli
from stereo_lit.data.wild_sources import check_output_names, resolve_videos
from stereo_lit.generators.geometric import WarpFill
from stereo_lit.io.output_manifest import LOCK_NAME, MANIFEST_NAME, OutputLock
from stereo_lit.io.video_writer import StreamingVideoWriter, partial_path
from test_video_reader import write_test_clip

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("stereo-lit")


class GatedWarpFill(WarpFill):
    """WarpFill that, on its first call, touches ``gate/started`` and waits for ``gate/go``."""

    def __init__(self, gate: str = "") -> None:
        super().__init__()
        self.gate = gate
        self._calls = 0

    def generate(self, left: torch.Tensor, disparity_px: torch.Tensor, **kwargs: Any):
        self._calls += 1
        if self._calls == 1:
            (Path(self.gate) / "started").touch()
            deadline = time.time() + 300
            while not (Path(self.gate) / "go").exists() and time.time() < deadline:
                time.sleep(0.1)
        return super().generate(left, disparity_px, **kwargs)


def _clip(path: Path, num_frames: int = 9, height: int = 32, width: int = 48) -> Path:
    """A test clip with an inverse-depth file ``<stem>.npy`` beside it (a left-right ramp)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_test_clip(path, num_frames=num_frames, height=height, width=width)
    ramp = np.broadcast_to(np.linspace(0.2, 1.0, width, dtype=np.float32), (num_frames, height, width))
    np.save(path.with_suffix(".npy"), np.ascontiguousarray(ramp))
    return path


def _args(source: Path, out: Path, *extra: str) -> list[str]:
    return [
        "predict", "-c", str(REPO / "stereo_lit/configs/predict_wild.yaml"),
        "--model.generator", "stereo_lit.generators.geometric.WarpFill", "--model.depth", "null",
        "--model.output.dir", str(out), "--data.init_args.source", str(source),
        "--data.init_args.window", "5", "--data.init_args.overlap", "1",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", *extra,
    ]


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# ----------------------------------------------------------------------------- item 1
@pytest.mark.slow  # two CLI runs that overlap (one in a subprocess): about a minute on a busy CPU
def test_a_second_run_skips_a_video_the_first_is_writing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    video = _clip(tmp_path / "clip.mp4")
    out, gate = tmp_path / "out", tmp_path / "gate"
    gate.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]), HF_HUB_OFFLINE="1")
    first = subprocess.Popen(
        [str(EXE), *_args(video, out, "--model.generator", "test_predict_outputs.GatedWarpFill",
                          "--model.generator.gate", str(gate))],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 300
        while not (gate / "started").exists():  # the first run holds the folder and is mid-video
            assert first.poll() is None and time.time() < deadline, first.communicate()[0][-3000:]
            time.sleep(0.2)
        with caplog.at_level(logging.WARNING):
            cli = build_cli(_args(video, out))
        assert "another stereo-lit run" in caplog.text and "clip.mp4" in caplog.text
        assert cli.trainer.predict_loop.return_predictions is False  # item 9: nothing kept per window
        assert not list((out / "clip").glob("*.mp4"))  # the second run wrote nothing
        assert not (out / "clip" / MANIFEST_NAME).exists()
    finally:
        (gate / "go").touch()
        log_text = first.communicate(timeout=600)[0]
    assert first.returncode == 0, log_text[-3000:]
    for layout in ("right", "sbs", "anaglyph"):
        assert len(_frames(out / "clip" / f"{layout}.mp4")) == 9, layout
    manifest = json.loads((out / "clip" / MANIFEST_NAME).read_text())
    assert manifest["frames"] == 9 and set(manifest["layouts"]) == {"right", "sbs", "anaglyph"}
    assert not (out / "clip" / LOCK_NAME).exists()  # released when the video finished
    assert not list((out / "clip").glob(".*partial*"))


def test_a_run_skips_a_video_whose_folder_a_live_process_holds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import socket

    _clip(tmp_path / "videos" / "held.mp4")
    _clip(tmp_path / "videos" / "free.mp4", num_frames=5)
    out = tmp_path / "out"
    (out / "held").mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # stands for another run
    try:
        (out / "held" / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "token": "x"}))
        with caplog.at_level(logging.WARNING):
            build_cli(_args(tmp_path / "videos", out))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert f"another stereo-lit run (pid {sleeper.pid}" in caplog.text and "held.mp4" in caplog.text
    assert not list((out / "held").glob("*.mp4")) and (out / "held" / LOCK_NAME).is_file()  # untouched
    assert len(_frames(out / "free" / "sbs.mp4")) == 5 and not (out / "free" / LOCK_NAME).exists()


def test_temporary_names_are_unique_per_writer(tmp_path: Path) -> None:
    target = tmp_path / "sbs.mp4"
    a, b = StreamingVideoWriter(target, 10), StreamingVideoWriter(target, 10)
    assert a.tmp != b.tmp and a.tmp.name.startswith(".sbs.partial-") and str(os.getpid()) in a.tmp.name
    assert partial_path(target, "x") == tmp_path / f".sbs.partial-{os.getpid()}-x.mp4"


def test_lock_of_a_live_process_holds_and_of_a_dead_one_is_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        folder.mkdir()
        (folder / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "token": "other"}))
        assert not OutputLock(folder, "mine").acquire()  # a live run holds it
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = OutputLock(folder, "mine")
    assert lock.acquire()  # its process is gone: stale, taken over
    assert OutputLock(folder, "mine").acquire()  # the same run (DDP ranks share a token) joins it
    lock.release()
    assert not (folder / LOCK_NAME).exists()


# ----------------------------------------------------------------------------- items 2, 3, 6, 9
def test_subfolders_keep_their_paths_outputs_inside_the_source_are_not_read_and_new_settings_redo(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    videos = tmp_path / "videos"
    _clip(videos / "a" / "clip.mp4")
    _clip(videos / "b" / "clip.mp4", num_frames=5)
    out = videos / "stereo"  # the output folder is inside the source folder

    cli = build_cli(_args(videos, out))
    assert cli.trainer.predict_loop.predictions == []  # item 9: predict holds no window
    for sub, frames in (("a", 9), ("b", 5)):  # item 2: both kept, by their relative path
        assert len(_frames(out / sub / "clip" / "sbs.mp4")) == frames
        assert json.loads((out / sub / "clip" / MANIFEST_NAME).read_text())["frames"] == frames
    # item 3: the outputs inside the source folder are not sources of the next run
    assert sorted(Path(e.path).relative_to(videos).as_posix() for e in resolve_videos(videos)) == ["a/clip.mp4", "b/clip.mp4"]

    sbs = out / "a" / "clip" / "sbs.mp4"
    stamp = sbs.stat().st_mtime_ns
    build_cli(_args(videos, out))
    assert sbs.stat().st_mtime_ns == stamp  # same settings: finished, skipped

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_cli(_args(videos, out, "--model.disparity.max_disparity_pct", "4.0"))  # item 6
    assert "redoing" in caplog.text and "max_disparity_pct=2.0 (now 4.0)" in caplog.text
    assert sbs.stat().st_mtime_ns != stamp
    assert json.loads((out / "a" / "clip" / MANIFEST_NAME).read_text())["settings"]["max_disparity_pct"] == 4.0

    stamp = sbs.stat().st_mtime_ns
    sbs.write_bytes(sbs.read_bytes()[: sbs.stat().st_size // 2])  # a truncated file is not finished
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_cli(_args(videos, out, "--model.disparity.max_disparity_pct", "4.0"))
    assert "differs from the manifest" in caplog.text
    assert len(_frames(sbs)) == 9


def test_two_videos_with_one_output_name_are_an_error_before_any_work(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    _clip(videos / "clip.mp4")
    write_test_clip(videos / "clip.mov", num_frames=5, height=32, width=48)
    entries = resolve_videos(videos)
    with pytest.raises(ValueError, match=r"same output folder: .*clip\.mov.*clip\.mp4 -> clip/"):
        check_output_names({e.path: e.name for e in entries})
    with pytest.raises(ValueError, match="same output folder"):
        build_cli(_args(videos, tmp_path / "out"))
    assert not (tmp_path / "out" / "clip").exists()  # nothing was written


# ----------------------------------------------------------------------------- item 8
def test_odd_sizes_repeat_the_edge_never_black(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = np.full((3, 61, 97, 3), 200, np.uint8)
    frames[..., 0] = rng.integers(150, 250, (3, 61, 97), dtype=np.uint8)  # textured, bright
    with StreamingVideoWriter(tmp_path / "odd.mp4", 10) as writer:
        writer.write(frames)
    decoded = _frames(tmp_path / "odd.mp4").astype(np.int16)
    assert decoded.shape[1:3] in ((61, 97), (62, 98))
    if decoded.shape[1:3] == (62, 98):  # yuv420p padding: the extra row/column repeats its neighbour
        assert np.abs(decoded[:, 61, :97] - decoded[:, 60, :97]).mean() < 6
        assert np.abs(decoded[:, :61, 97] - decoded[:, :61, 96]).mean() < 6
        assert decoded[:, 61].min() > 100 and decoded[:, :, 97].min() > 100  # no black line


def test_reader_leaves_out_files_this_package_wrote(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    _clip(videos / "clip.mp4")
    with StreamingVideoWriter(videos / "moved_sbs.mp4", 10) as writer:  # an output moved next to its source
        writer.write(np.zeros((2, 32, 96, 3), np.uint8))
    (videos / "old_outputs").mkdir()
    write_test_clip(videos / "old_outputs" / "x.mp4", num_frames=3, height=32, width=48)
    (videos / "old_outputs" / MANIFEST_NAME).write_text("{}")  # a folder holding a manifest is an output folder
    assert [Path(e.path).name for e in resolve_videos(videos)] == ["clip.mp4"]
    assert [Path(e.path).name for e in resolve_videos(videos / "moved_sbs.mp4")] == ["moved_sbs.mp4"]  # named: taken
