"""Faults (issue 20, item 5): a full disk names the path it could not write (lock, depth cache,
manifest); a failed depth-cache write keeps the video's depth (warn and go on); no empty
``.lock...tmp`` is left behind."""

from __future__ import annotations

import builtins
import logging
from pathlib import Path

import numpy as np
import pytest

from stereo_lit.depth.cache import DepthCache
from stereo_lit.io.output_manifest import OutputLock, write_manifest


def _frames(count: int = 6) -> list[np.ndarray]:
    return [np.full((4, 5), float(k), np.float32) for k in range(count)]


class _FullAfter:
    """An unbuffered file whose writes fail (ENOSPC) after ``limit`` bytes."""

    def __init__(self, raw, limit: int) -> None:
        self.raw, self.limit, self.written = raw, limit, 0

    def write(self, data) -> int:
        if self.written + len(data) > self.limit:
            raise OSError(28, "No space left on device (injected)")
        self.written += len(data)
        return self.raw.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.raw.close()


@pytest.mark.parametrize("fail_after_frames", [0, 3])
def test_a_failed_depth_cache_write_keeps_the_depth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture, fail_after_frames: int) -> None:
    cache = DepthCache(tmp_path / "cache")
    real_open = builtins.open

    def full_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return _FullAfter(handle, fail_after_frames * 4 * 5 * 4) if ".raw.tmp-" in str(path) and "w" in mode else handle

    monkeypatch.setattr(builtins, "open", full_open)
    with caplog.at_level(logging.WARNING):
        depth = cache.write("k1", iter(_frames()), {"what": "test"})
    monkeypatch.undo()
    np.testing.assert_array_equal(np.asarray(depth), np.stack(_frames()))  # every frame, in order
    assert "could not write" in caplog.text and "k1.npy" in caplog.text and "not cached" in caplog.text
    assert cache.load("k1") is None and not list((tmp_path / "cache").iterdir())  # nothing half-written


def test_an_unwritable_cache_folder_keeps_the_depth(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("")
    cache = DepthCache(tmp_path / "file" / "cache")  # mkdir fails: a file is in the way
    with caplog.at_level(logging.WARNING):
        depth = cache.write("k2", iter(_frames(3)))
    assert np.asarray(depth).shape == (3, 4, 5) and "not cached" in caplog.text


def test_a_full_disk_names_the_lock_and_leaves_no_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "out" / "clip"
    real_write_text = Path.write_text

    def full_write_text(path: Path, *args, **kwargs):  # as on a full disk: the file is created, empty, then ENOSPC
        if ".tmp" in path.name:
            path.touch()
            raise OSError(28, "No space left on device (injected)")
        return real_write_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_write_text)
    with pytest.raises(OSError, match=r"could not write the lock file .*clip/\.stereo-lit\.lock"):
        OutputLock(folder, "token").acquire()
    with pytest.raises(OSError, match=r"could not write the output manifest .*clip/stereo-lit\.json"):
        write_manifest(folder, {"frames": 1})
    monkeypatch.undo()
    assert list(folder.iterdir()) == []  # no empty .lock...tmp, no manifest .tmp


def test_the_summary_is_printed_once_when_the_only_video_fails(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from stereo_lit.cli import main
    from test_video_reader import write_test_clip

    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=5, height=32, width=48)  # no depth file beside it: this video fails
    with pytest.raises(SystemExit) as exit_info:
        main([
            "predict", "-c", str(Path(__file__).resolve().parents[1] / "stereo_lit/configs/predict_wild.yaml"),
            "--model.generator", "stereo_lit.generators.geometric.WarpFill", "--model.depth", "null",
            "--model.output.dir", str(tmp_path / "out"), "--data.init_args.source", str(video),
            "--data.init_args.window", "5", "--data.init_args.overlap", "1", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false",
        ])
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert exit_info.value.code == 1
    assert text.count("1 video(s): 0 finished, 1 skipped") == 1 and text.count("every video failed") == 1, text
