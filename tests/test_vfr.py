"""Variable frame rate: every window frame and every depth frame is the right source frame.

The file is remuxed from a constant-rate H.264 encode (keyframe every 12 frames, B-frames) with
irregular timestamps, so ``timestamp x average rate`` is not the frame index (the bug this pins:
35 of 60 output frames showed the wrong source frame).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stereo_lit.data.wild import WildVideoDataModule
from stereo_lit.depth.source import WindowDepth
from stereo_lit.io.video_reader import probe_video, read_frames, source_index

H, W, N, GOP = 48, 64, 60, 12
_DURATIONS = (1, 3, 2, 5, 1, 4)  # frame durations in 1/60 s: 6 to 60 fps


def pattern(k: int) -> np.ndarray:
    """Frame ``k`` as 8 bright/dark 24x16 blocks (its index in binary): uint8 ``[H, W, 3]``."""
    frame = np.full((H, W, 3), 20, np.uint8)
    for bit in range(8):
        if (k >> bit) & 1:
            r, c = divmod(bit, 4)
            frame[r * 24 : (r + 1) * 24, c * 16 : (c + 1) * 16] = 235
    return frame


def frame_index(frame: np.ndarray) -> int:
    """Inverse of :func:`pattern` (block centres, robust to compression); ``frame`` uint8 or [0, 1]."""
    frame = np.asarray(frame, np.float32) * (255.0 if frame.dtype != np.uint8 and frame.max() <= 1.0 else 1.0)
    k = 0
    for bit in range(8):
        r, c = divmod(bit, 4)
        if frame[r * 24 + 4 : (r + 1) * 24 - 4, c * 16 + 4 : (c + 1) * 16 - 4].mean() > 128:
            k |= 1 << bit
    return k


def _vfr_time(k: int) -> int:
    """Timestamp (1/90000 s) of constant-rate frame slot ``k`` on the irregular timeline."""
    if k < 0:  # B-frame decode timestamps start below zero
        return k * 1500
    return sum(_DURATIONS[i % len(_DURATIONS)] for i in range(k)) * 1500


def write_vfr_clip(path: Path) -> None:
    """60 frames (frame k shows :func:`pattern` ``(k)``), GOP 12, remuxed onto irregular timestamps."""
    cfr = path.with_name(path.stem + ".cfr.mp4")
    with av.open(str(cfr), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.options = {"crf": "10", "keyint_min": str(GOP), "sc_threshold": "0", "bf": "2"}
        for k in range(N):
            frame = av.VideoFrame.from_ndarray(pattern(k), format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(cfr)) as src, av.open(str(path), "w") as dst:
        ist = src.streams.video[0]
        ost = dst.add_stream_from_template(ist)
        ost.time_base = Fraction(1, 90000)
        for packet in src.demux(ist):
            if packet.size == 0:
                continue
            slot_pts, slot_dts = (round(t * ist.time_base * 30) for t in (packet.pts, packet.dts))
            packet.pts, packet.dts = _vfr_time(slot_pts), _vfr_time(slot_dts)
            packet.time_base = Fraction(1, 90000)
            packet.stream = ost
            dst.mux(packet)
    cfr.unlink()


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    write_vfr_clip(path)
    with av.open(str(path)) as container:  # the file really is variable-rate, keyframes every 12
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size > 0]
        gaps = np.diff(sorted(int(p.pts) for p in packets))
        assert len(set(gaps.tolist())) > 3
        assert sorted(i for i, p in enumerate(packets) if p.is_keyframe) == list(range(0, N, GOP))
    return path


def test_every_range_decodes_its_own_frames(vfr_clip: Path) -> None:
    assert probe_video(vfr_clip).num_frames == N
    assert [frame_index(f) for f in read_frames(vfr_clip)] == list(range(N))
    for start in range(N):
        stop = min(N, start + 7)
        assert [frame_index(f) for f in read_frames(vfr_clip, start, stop)] == list(range(start, stop)), start


class IndexDepth:
    """A depth 'estimator' whose depth of each frame is the index the frame shows (whole-video pass)."""

    kind = "inverse_relative"

    def __init__(self) -> None:
        self.passes = 0

    def video_depth(self, frames_factory, key=None, total_frames=None) -> np.ndarray:
        self.passes += 1
        return np.stack([np.full(f.shape[:2], frame_index(f), np.float32) for f in frames_factory()])

    def estimate(self, video: torch.Tensor):  # pragma: no cover - the whole-video path must be taken
        raise AssertionError("window-by-window depth used for a video file")


@pytest.mark.parametrize("fps", [None, 12.0])
def test_windows_and_depth_pass_show_the_same_source_frames(vfr_clip: Path, fps: float | None) -> None:
    info = probe_video(vfr_clip)
    data = WildVideoDataModule(str(vfr_clip), window=13, overlap=5, fps=fps, use_depth=False)
    depth = WindowDepth(IndexDepth())
    covered: set[int] = set()
    for batch in data.predict_dataloader():
        start, stop = int(batch["window_start"][0]), int(batch["window_stop"][0])
        expected = [source_index(j, info.num_frames, info.fps, fps) for j in range(start, stop)]
        left = batch["left"][0].permute(1, 2, 3, 0).numpy()  # [T, H, W, 3] in [0, 1]
        assert [frame_index(f) for f in left[: stop - start]] == expected, (start, stop)
        window_depth, _, _ = depth.for_batch(batch)
        assert window_depth[0, 0, : stop - start, :H, :W].amin(dim=(-2, -1)).tolist() == expected
        assert window_depth[0, 0, : stop - start, :H, :W].amax(dim=(-2, -1)).tolist() == expected
        covered.update(range(start, stop))
    assert covered == set(range(data.videos[0].num_frames))
    assert depth.estimator.passes == 1
