"""Streamed predict (issue 21): chunks equal windows, one decoder per video, encoding threads, stage times.

Equality is checked on the frames handed to the encoders (libx264's own output depends on
thread timing, so encoded bytes are not a stable reference).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

import stereo_lit.io.video_reader as video_reader
from stereo_lit.cli import build_cli
from stereo_lit.data import streaming
from stereo_lit.data import wild, wild_videos
from stereo_lit.data.wild_sources import DepthFile
from stereo_lit.io.video_reader import SequentialFrames, read_frames
from stereo_lit.io.video_writer import BackgroundWriter, StreamingVideoWriter
from stereo_lit.metrics.cost import STAGES, StageTimes
from stereo_lit.stereo.padding import Padding, pad_video
from stereo_lit.stereo.shots import robust_range
from stereo_lit.stereo.windows import plan_windows
from test_predict_outputs import _args, _frames
from test_video_reader import write_test_clip


def test_sequential_frames_equal_read_frames_and_decode_each_frame_once(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "v.mp4"
    write_test_clip(path, num_frames=20, height=32, width=48)
    ranges = [(0, 8), (5, 13), (10, 20)]  # windows overlapping by 3: no reopen
    expected = [read_frames(path, start, stop) for start, stop in ranges]
    opened = []
    original = video_reader.iter_frames
    monkeypatch.setattr(video_reader, "iter_frames", lambda *a, **k: opened.append(a[1]) or original(*a, **k))
    reader = SequentialFrames(path, keep=3)
    for (start, stop), frames in zip(ranges, expected):
        assert np.array_equal(reader.read(start, stop), frames)
    assert opened == [0]
    reader.read(2, 6)  # before the kept frames: reopens at 2
    assert opened == [0, 2]
    reader.close()


def test_depth_range_sample_gives_the_whole_windows_range(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    depth = rng.random((7, 6, 10), dtype=np.float32) + 0.1
    np.save(tmp_path / "d.npy", depth)
    monkeypatch.setattr(wild_videos, "RANGE_SAMPLE_MAX", 1000)  # force a stride (7+2 frames x 16 x 32 values)
    padding = Padding(bottom=3, right=7, frames=2)
    full = pad_video(wild_videos.resize_depth(depth, 13, 25)[None], padding, "replicate")
    sample = wild_videos.depth_range_sample(DepthFile(tmp_path / "d.npy"), list(range(7)), 13, 25, padding)
    flat = full.flatten()
    assert torch.equal(sample, flat[:: flat.numel() // 1000 + 1])
    monkeypatch.setattr(wild_videos, "RANGE_SAMPLE_MAX", 10**9)
    assert robust_range(wild_videos.depth_range_sample(DepthFile(tmp_path / "d.npy"), list(range(7)), 13, 25, padding), 2, 98) == robust_range(full, 2, 98)


def test_chunk_plan_and_uint8_padding() -> None:
    assert [(w.start, w.stop, w.keep_start) for w in streaming.chunk_plan(10, 4)] == [(0, 4, 0), (4, 8, 4), (8, 10, 8)]
    assert streaming.frames_per_chunk(1080, 1920, 6_000_000) == 2 and streaming.frames_per_chunk(2160, 3840, 6_000_000) == 1
    frames = np.random.default_rng(1).integers(0, 255, (3, 5, 6, 3), dtype=np.uint8)
    for mode in ("replicate", "reflect"):
        padding = Padding(bottom=3, right=2, frames=2)
        expected = pad_video(torch.from_numpy(frames).permute(3, 0, 1, 2).float()[None], padding, mode)[0]
        got = torch.from_numpy(streaming.pad_uint8(frames, padding, mode).transpose(3, 0, 1, 2).copy()).float()
        assert torch.equal(got, expected)


def test_reader_thread_keeps_order_and_raises_the_error_in_the_consumer() -> None:
    def items():
        yield from range(5)
        raise OSError("disk gone")

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for item in streaming.ReaderThread(list(range(5)) and _Iter(items), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


class _Iter:
    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return self.make()


def test_background_writer_writes_a_decodable_file_and_raises_errors(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    writer = BackgroundWriter(StreamingVideoWriter(tmp_path / "a.mp4", 24))
    writer.write(frames[:3])
    writer.write(lambda: frames[3:])
    assert writer.close() == tmp_path / "a.mp4" and len(_frames(tmp_path / "a.mp4")) == 6
    bad = BackgroundWriter(StreamingVideoWriter(tmp_path / "b.mp4", 24))
    bad.write(frames.astype(np.float32))  # wrong dtype: fails in the thread
    with pytest.raises(ValueError, match="uint8"):
        bad.close()
    bad.abort()
    assert not list(tmp_path.glob("b*"))


def test_the_layouts_encoders_flush_at_the_same_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the end of a video every layout's encoder flushes (x264 holds ~20 frames) in its own
    thread, all at once: a barrier that every flush must reach breaks if they run one by one."""
    import threading

    from stereo_lit.predict.writer import _VideoOutputs

    source = tmp_path / "clip.mp4"
    write_test_clip(source, num_frames=4)
    layouts = ["right", "sbs", "anaglyph"]
    barrier = threading.Barrier(len(layouts), timeout=10)
    flushed: list[str] = []
    real_flush = StreamingVideoWriter.flush

    def flush(self: StreamingVideoWriter) -> None:
        if not self._flushed:
            flushed.append(threading.current_thread().name)
            barrier.wait()  # BrokenBarrierError (raised by close) unless all three are flushing now
        real_flush(self)

    monkeypatch.setattr(StreamingVideoWriter, "flush", flush)
    outputs = _VideoOutputs(str(source), tmp_path / "out", layouts, 24.0, 4)
    frames = np.random.default_rng(1).integers(0, 255, (4, 48, 64, 3), dtype=np.uint8)
    outputs.write(0, frames, frames[:, :, ::-1], None, 0.0)
    files = outputs.close()
    assert sorted(flushed) == sorted(f"stereo-lit-encode-{name}.mp4" for name in layouts)  # each in its thread
    assert {layout: entry["frames"] for layout, entry in files.items()} == {layout: 4 for layout in layouts}
    for layout in layouts:
        assert len(_frames(tmp_path / "out" / f"{layout}.mp4")) == 4


def test_stage_shares_sum_to_100() -> None:
    times = StageTimes()
    times.start()
    times.add("decode", 1.0)
    times.add("encode", 3.0)
    shares = times.shares()
    assert sum(shares.values()) == pytest.approx(100.0) and shares["encode"] == pytest.approx(75.0)
    with pytest.raises(ValueError, match="unknown predict stage"):
        times.add("upload", 1.0)


def _textured_clip(path: Path, num_frames: int, height: int, width: int) -> Path:
    """A moving random texture (so a warp moves visible detail) and a depth ramp that changes over time."""
    texture = np.random.default_rng(0).integers(0, 255, (height, width + num_frames, 3), dtype=np.uint8)
    with StreamingVideoWriter(path, 24) as writer:
        writer.write(np.stack([texture[:, t : t + width] for t in range(num_frames)]))
    ramp = np.linspace(0.2, 1.0, width, dtype=np.float32)[None, None] * np.linspace(0.5, 2.0, num_frames, dtype=np.float32)[:, None, None]
    np.save(path.with_suffix(".npy"), np.ascontiguousarray(np.broadcast_to(ramp, (num_frames, height, width))))
    return path


def _run_hashing_encoder_inputs(args: list[str]) -> tuple[dict[str, str], object]:
    """The frames each encoder is handed (in its pixel format: right and sbs are converted per eye)."""
    hashes: dict[str, hashlib._Hash] = {}
    original = StreamingVideoWriter.encode_frames

    def encode_frames(self, frames):
        frames = list(frames)
        for frame in frames:
            hashes.setdefault(self.path.name, hashlib.md5()).update(frame.to_ndarray().tobytes())
        return original(self, frames)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StreamingVideoWriter, "encode_frames", encode_frames)
        cli = build_cli(args)
    return {k: v.hexdigest() for k, v in hashes.items()}, cli


@pytest.mark.parametrize("chunk_frames", [3, 1])
def test_chunked_predict_hands_the_encoders_the_same_frames_as_windows(tmp_path: Path, monkeypatch, capsys, chunk_frames) -> None:
    """WarpFill streamed in short chunks = WarpFill in 9-frame windows (overlap 5), also the
    disparity range (fixed from the first data window in both), for a video longer than a window.
    The windows are padded to 32 rows and the chunks not at all: rows are warped on their own.
    (At a width that is not a multiple of 16 the windows' replicated right columns would warp
    into the right view's edge, which the chunks fill by the background rule instead.)"""
    video = _textured_clip(tmp_path / "clip.mp4", num_frames=23, height=30, width=48)
    extra = ("--data.init_args.window", "9", "--data.init_args.overlap", "5", "--model.disparity.max_disparity_pct", "10")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wild.WildVideoDataModule, "predict_chunked", lambda self: False)
        windows, cli = _run_hashing_encoder_inputs(_args(video, tmp_path / "windows", *extra))
    assert f"in {len(plan_windows(23, 9, 5))} windows" in cli.model.predict_cost.summary_lines(1)[0]
    monkeypatch.setattr(wild_videos, "CHUNK_PIXELS", chunk_frames * 30 * 48)
    chunks, cli = _run_hashing_encoder_inputs(_args(video, tmp_path / "chunks", *extra))
    assert f"in {-(-23 // chunk_frames)} windows" in cli.model.predict_cost.summary_lines(1)[0]
    assert chunks == windows and set(chunks) >= {"right.mp4", "sbs.mp4", "anaglyph.mp4"}
    assert len(_frames(tmp_path / "chunks" / "clip" / "sbs.mp4")) == 23
    out = capsys.readouterr().out
    assert "23 frames in" in out and "frames/s" in out
    times = cli.model.stage_times
    assert sum(times.shares().values()) == pytest.approx(100.0)
    assert all(times.seconds[s] > 0 for s in STAGES), times.seconds


def test_limit_heap_growth_sets_glibc_options_here() -> None:
    import sys

    assert streaming.limit_heap_growth() is sys.platform.startswith("linux")


def test_one_sample_batches_keep_the_decoded_memory_and_layout() -> None:
    """A streamed chunk ``[3, T, H, W]`` over decoded ``[T, H, W, 3]`` frames reaches the module as a
    view (no transposing copy); the writers then take ``[T, H, W, 3]`` back without one either."""
    import numpy as np

    from stereo_lit.data.collate import collate_samples
    from stereo_lit.io.frames import to_uint8_frames

    decoded = np.random.default_rng(0).integers(0, 255, (2, 4, 6, 3), dtype=np.uint8)
    left = torch.from_numpy(decoded).permute(3, 0, 1, 2)
    batch = collate_samples([{"left": left, "fps": 24.0, "video_path": "a.mp4"}])
    assert batch["left"].shape == (1, 3, 2, 4, 6) and batch["left"].data_ptr() == left.data_ptr()
    assert batch["fps"].tolist() == [24.0] and batch["video_path"] == ["a.mp4"]
    frames = to_uint8_frames(batch["left"][0])
    assert np.shares_memory(frames, decoded) and np.array_equal(frames, decoded)
    two = collate_samples([{"left": left}, {"left": left}])["left"]
    assert two.shape == (2, 3, 2, 4, 6) and torch.equal(two[1], left)


def test_streamed_chunks_are_not_padded_and_stay_views(tmp_path: Path, monkeypatch) -> None:
    """Chunks (model-free methods) keep the source size, 30x44 here (Wan windows: 32x48), so the
    left view is a view over the decoded frames and the depth is not padded either."""
    video = _textured_clip(tmp_path / "clip.mp4", num_frames=7, height=30, width=44)
    monkeypatch.setattr(wild.WildVideoDataModule, "predict_chunked", lambda self: True)
    data = wild.WildVideoDataModule(str(video), window=5, overlap=1)
    batches = list(data.predict_dataloader())
    assert sum(b["left"].shape[2] for b in batches) == 7
    for batch in batches:
        assert batch["left"].dtype == torch.uint8 and batch["left"].shape[-2:] == (30, 44)
        assert batch["depth"].shape[-2:] == (30, 44)
        assert all(int(torch.as_tensor(batch["padding"][k]).flatten()[0]) == 0 for k in ("bottom", "right", "frames"))
        assert not batch["left"][0].is_contiguous()  # [3, T, H, W] over [T, H, W, 3] memory
    monkeypatch.setattr(wild.WildVideoDataModule, "predict_chunked", lambda self: False)
    window = next(iter(wild.WildVideoDataModule(str(video), window=5, overlap=1).predict_dataloader()))
    assert window["left"].shape[-2:] == (32, 48) and window["depth"].shape[-2:] == (32, 48)
