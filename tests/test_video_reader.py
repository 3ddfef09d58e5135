"""Streaming PyAV reader: probing, ranges with seeking, fps resampling, audio info, bad files."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stereo_lit.io.video_reader import (
    VideoReadError,
    iter_frames,
    probe_video,
    read_frames,
    resampled_num_frames,
    source_index,
)


def write_test_clip(path: Path, num_frames: int = 20, height: int = 48, width: int = 64, fps: int = 10, audio: bool = False) -> np.ndarray:
    """An mp4 whose frame k is a flat grey level 10*k (plus a sine-wave aac track); returns the frames."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    container = av.open(str(path), mode="w")
    stream = container.add_stream("mpeg4", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"qscale": "2"}
    stream.codec_context.gop_size = 4  # several keyframes, so seeking is exercised
    audio_stream = None
    if audio:
        audio_stream = container.add_stream("aac", rate=16000)
        audio_stream.layout = "mono"
    for k in range(num_frames):
        frames[k] = (10 * k) % 250
        for packet in stream.encode(av.VideoFrame.from_ndarray(frames[k], format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    if audio_stream is not None:
        samples_per_frame = 1024
        total = int(16000 * num_frames / fps)
        t = np.arange(total) / 16000.0
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i, offset in enumerate(range(0, total - samples_per_frame + 1, samples_per_frame)):
            frame = av.AudioFrame.from_ndarray(wave[None, offset : offset + samples_per_frame], format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = offset
            frame.time_base = Fraction(1, 16000)
            for packet in audio_stream.encode(frame):
                container.mux(packet)
        for packet in audio_stream.encode():
            container.mux(packet)
    container.close()
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "levels.mp4"
    write_test_clip(path)
    return path


def test_probe_reports_size_rate_and_count(clip: Path) -> None:
    info = probe_video(clip)
    assert (info.num_frames, info.height, info.width) == (20, 48, 64)
    assert info.fps == pytest.approx(10.0)
    assert not info.has_audio and info.audio_codec is None
    assert probe_video(clip, count_frames=True).num_frames == 20


def test_ranges_decode_the_right_frames(clip: Path) -> None:
    everything = read_frames(clip)
    assert everything.shape == (20, 48, 64, 3) and everything.dtype == np.uint8
    levels = everything.reshape(20, -1).mean(axis=1)
    np.testing.assert_allclose(levels, 10 * np.arange(20), atol=3)
    for start, stop in ((0, 3), (7, 12), (13, 20), (19, 20)):  # seeks into later GOPs
        part = read_frames(clip, start, stop)
        np.testing.assert_array_equal(part, everything[start:stop])


def test_iter_frames_streams_one_frame_at_a_time(clip: Path) -> None:
    iterator = iter_frames(clip, 5, 9)
    first = next(iterator)
    assert first.shape == (48, 64, 3)
    assert len(list(iterator)) == 3


def test_resize_and_fps_resampling(clip: Path) -> None:
    small = read_frames(clip, 0, 2, size=(24, 32))
    assert small.shape == (2, 24, 32, 3)
    assert resampled_num_frames(20, 10.0, 5.0) == 10
    assert resampled_num_frames(20, 10.0, None) == 20
    half = read_frames(clip, 0, 10, fps=5.0)
    levels = half.reshape(10, -1).mean(axis=1)
    np.testing.assert_allclose(levels, 20 * np.arange(10), atol=3)  # every second frame
    assert [source_index(j, 20, 10.0, 20.0) for j in range(4)] == [0, 1, 1, 2]  # upsampling repeats
    with pytest.raises(ValueError, match="outside"):
        read_frames(clip, 0, 11, fps=5.0)


def test_audio_track_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "with_audio.mp4"
    write_test_clip(path, num_frames=10, audio=True)
    info = probe_video(path)
    assert info.has_audio and info.audio_codec == "aac" and info.audio_sample_rate == 16000
    assert read_frames(path, 2, 5).shape == (3, 48, 64, 3)  # audio packets do not disturb video decoding


def test_bad_files_raise_errors_that_name_them(tmp_path: Path, clip: Path) -> None:
    missing = tmp_path / "missing.mp4"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    for path, message in ((missing, "does not exist"), (empty, "empty"), (garbage, "not a readable video")):
        with pytest.raises(VideoReadError, match=message) as err:
            probe_video(path)
        assert str(path) in str(err.value)
    with pytest.raises(VideoReadError) as err:  # either unreadable header or decode running short
        read_frames(truncated)
    assert str(truncated) in str(err.value)
    with pytest.raises(VideoReadError, match="folder"):
        probe_video(tmp_path)


def test_a_file_is_probed_once_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stereo_lit.io import video_reader

    path = tmp_path / "clip.mp4"
    write_test_clip(path, num_frames=6)
    opened: list[str] = []
    real_open = video_reader._open
    monkeypatch.setattr(video_reader, "_open", lambda p: opened.append(str(p)) or real_open(p))
    first = probe_video(path)
    assert len(opened) == 2  # the headers, then the first frame for the display rotation
    again = probe_video(str(path))
    assert again == first and len(opened) == 2  # the same answer, the file not opened again
    assert probe_video(path, count_frames=True).num_frames == 6 and len(opened) == 4  # another question
    write_test_clip(path, num_frames=9)  # rewritten: a new size and modification time
    assert probe_video(path).num_frames == 9 and len(opened) == 6
    stat = path.stat()
    replacement = tmp_path / "other.mp4"
    shutil.copyfile(path, replacement)
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)  # another file under the same name: same size and mtime, new inode
    assert probe_video(path).num_frames == 9 and len(opened) == 8
    monkeypatch.setattr(video_reader, "PROBES_KEPT", 1)
    probe_video(replacement.with_name("clip.mp4"), count_frames=True)  # the cache keeps the newest only
    assert len(video_reader._PROBES) == 1
