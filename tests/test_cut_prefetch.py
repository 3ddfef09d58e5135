"""The shot-cut pass started before torch is imported (issue 21): ``stereo-lit convert`` starts it in a
thread, and the depth source takes that result instead of decoding the video a second time."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from test_shots import CUT, write_two_shot_video

from stereo_lit.commands import convert
from stereo_lit.depth.source import video_cuts
from stereo_lit.io import cut_scan


@pytest.fixture()
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread of every decoding pass (:func:`cut_scan.scan_cuts` call)."""
    calls: list[str] = []
    scan = cut_scan.scan_cuts

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(threading.current_thread().name)
        return scan(*args, **kwargs)

    monkeypatch.setattr(cut_scan, "scan_cuts", counted)
    monkeypatch.setattr(cut_scan, "_PENDING", {})
    return calls


class GatedDecode:
    """``cut_scan.iter_frames`` made to wait at each frame until :attr:`release` is set; :attr:`decoded`
    holds the frames it decoded, :attr:`started` is set at the first."""

    def __init__(self) -> None:
        self.started, self.release, self.decoded = threading.Event(), threading.Event(), []

    def wrap(self, frames):  # noqa: ANN001, ANN201
        def gated(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            for frame in frames(*args, **kwargs):
                self.decoded.append(frame)
                self.started.set()
                self.release.wait(10)
                yield frame
        return gated


def test_the_depth_source_takes_the_prefetched_pass_of_the_same_video_timeline_and_size(
    tmp_path: Path, scans: list[str]
) -> None:
    video = str(write_two_shot_video(tmp_path / "two_shots.mp4"))
    cut_scan.prefetch(video, 10.0, (36, 48))
    cut_scan.prefetch(video, 10.0, (36, 48))  # once per key
    assert video_cuts(video, 10.0, (36, 48)) == [CUT]
    assert scans == ["stereo-lit-cuts"]  # decoded once, in the prefetch thread
    assert video_cuts(video, 10.0, (36, 48)) == [CUT] and scans[-1] == threading.current_thread().name  # taken once
    cut_scan.prefetch(video, 10.0, (36, 48))
    assert video_cuts(video, 10.0, (18, 24)) == [CUT]  # another size: its own pass, not the prefetched one
    assert scans[-1] == threading.current_thread().name
    assert len(cut_scan._PENDING) == 1


def test_cuts_cached_on_disk_call_the_prefetched_pass_off(tmp_path: Path, scans: list[str], monkeypatch) -> None:
    video = str(write_two_shot_video(tmp_path / "two_shots.mp4"))
    assert video_cuts(video, 10.0, (36, 48), cache_dir=tmp_path / "cache") == [CUT]  # the note is written
    gate = GatedDecode()
    monkeypatch.setattr(cut_scan, "iter_frames", gate.wrap(cut_scan.iter_frames))
    cut_scan.prefetch(video, 10.0, (36, 48))
    thread = next(iter(cut_scan._PENDING.values()))[0]
    assert gate.started.wait(10)
    assert video_cuts(video, 10.0, (36, 48), cache_dir=tmp_path / "cache") == [CUT]  # from the note
    assert not cut_scan._PENDING
    gate.release.set()
    thread.join(10)
    assert not thread.is_alive() and len(gate.decoded) <= 2  # stopped at its next frame, not after the 40 of the video


def test_a_failed_prefetch_leaves_the_error_to_the_normal_pass(tmp_path: Path, scans: list[str]) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    cut_scan.prefetch(str(broken), 10.0, (36, 48))
    with pytest.raises(Exception, match="broken.mp4"):
        video_cuts(str(broken), 10.0, (36, 48))
    assert len(scans) == 2  # the prefetch failed quietly; the depth source's own pass raised, naming the file


@pytest.mark.parametrize("flags, prefetched", [([], True), (["--start", "0.5"], False), (["--max-fps", "5"], False)])
def test_convert_prefetches_the_first_videos_cuts_on_the_datamodules_timeline(
    tmp_path: Path, scans: list[str], flags: list[str], prefetched: bool
) -> None:
    """A whole ``convert`` run with a depth file (shot-aware by default): with no timeline option
    the only pass is the prefetch thread's, started before the job; with one, the depth source's."""
    video = write_two_shot_video(tmp_path / "two_shots.mp4")
    depth = np.tile(np.linspace(0.2, 1.0, 48, dtype=np.float32), (40, 36, 1))
    np.save(tmp_path / "depth.npy", depth)
    code = convert.main([str(video), "--method", "fast", "--depth", str(tmp_path / "depth.npy"), "--layout", "right",
                         "-o", str(tmp_path / "out"), *flags])
    assert code in (0, None)
    assert (tmp_path / "out" / "two_shots" / "right.mp4").is_file()
    assert scans == (["stereo-lit-cuts"] if prefetched else [threading.current_thread().name])
    assert not cut_scan._PENDING


def test_a_video_the_run_skips_has_its_prefetched_pass_called_off(tmp_path: Path, scans: list[str], monkeypatch) -> None:
    """A second ``convert`` of a finished video skips it; the pass started for it stops at its next
    frame instead of decoding the whole video beside the rest of the run."""
    video = write_two_shot_video(tmp_path / "two_shots.mp4")
    np.save(tmp_path / "depth.npy", np.tile(np.linspace(0.2, 1.0, 48, dtype=np.float32), (40, 36, 1)))
    args = [str(video), "--method", "fast", "--depth", str(tmp_path / "depth.npy"), "--layout", "right", "-o", str(tmp_path / "out")]
    assert convert.main(args) in (0, None)
    gate = GatedDecode()
    monkeypatch.setattr(cut_scan, "iter_frames", gate.wrap(cut_scan.iter_frames))
    assert convert.main(args) in (0, None)  # finished: skipped
    assert not cut_scan._PENDING
    gate.release.set()
    for thread in [t for t in threading.enumerate() if t.name == "stereo-lit-cuts"]:
        thread.join(10)
    assert gate.started.is_set() and len(gate.decoded) <= 2  # called off, not run over the 40 frames


def test_the_prefetch_runs_before_torch_is_imported(tmp_path: Path) -> None:
    """In a fresh interpreter: ``start_cut_detection`` leaves torch unimported (the pass overlaps its import)."""
    import subprocess

    video = write_two_shot_video(tmp_path / "two_shots.mp4")
    code = (
        "import sys, argparse\n"
        "from stereo_lit.commands.convert import start_cut_detection\n"
        "from stereo_lit.io import cut_scan\n"
        f"start_cut_detection([{str(video)!r}], argparse.Namespace(start=None, end=None, max_fps=None))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert len(cut_scan._PENDING) == 1\n"
        f"print(cut_scan.take_prefetched({str(video)!r}, 10.0, (36, 48)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"[{CUT}]"


@pytest.mark.parametrize("user_value", [None, "3"])
def test_the_direct_run_keeps_openblas_to_one_thread_unless_told(tmp_path: Path, user_value: str | None) -> None:
    """In a fresh interpreter: the model-free convert sets ``OPENBLAS_NUM_THREADS=1`` before NumPy is
    imported (else it does nothing), and keeps a value the user set."""
    import os
    import subprocess

    video = write_two_shot_video(tmp_path / "two_shots.mp4")
    code = (
        "import os, sys\n"
        "import stereo_lit.commands.convert as convert\n"
        "def stop(sources, opts):\n"
        "    print(os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in sys.modules)\n"
        "    raise SystemExit(0)\n"
        "convert.start_cut_detection = stop\n"
        f"convert.main([{str(video)!r}, '--method', 'fast', '-o', {str(tmp_path / 'out')!r}])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if user_value is not None:
        env["OPENBLAS_NUM_THREADS"] = user_value
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [user_value or "1", "False"]
