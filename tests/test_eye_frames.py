"""Each eye converted once and shared by ``right`` and ``sbs`` (:mod:`stereo_lit.io.eye_frames`).

The joined SBS frame must be the frame the RGB path makes (``left | right`` copied together in RGB,
then converted), byte for byte, or the files would change; the right eye must be converted once
when both layouts ask for it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest

from stereo_lit.io.eye_frames import EyeFrames, EyeJob, SideBySideJob, side_by_side_frame
from stereo_lit.io.layouts import side_by_side
from stereo_lit.io.video_writer import StreamingVideoWriter

BT709_LIMITED = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}
BT709_FULL = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 2}


def _planes(frame: av.VideoFrame) -> list[bytes]:
    return [bytes(plane) for plane in frame.planes]  # row padding included: it is zeroed on both paths


def _eyes(height: int, width: int, count: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)  # noise: any filter tap reaching across the seam shows
    return tuple(rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8) for _ in range(2))


def _writer(tmp_path: Path, name: str, color: dict | None, bit_depth: int = 8) -> StreamingVideoWriter:
    return StreamingVideoWriter(tmp_path / f"{name}.mp4", 24, color=color, encoder={"bit_depth": bit_depth})


@pytest.mark.parametrize("color", [None, BT709_LIMITED, BT709_FULL])
@pytest.mark.parametrize("bit_depth", [8, 10])
@pytest.mark.parametrize("size", [(30, 48), (31, 50), (64, 96)])
def test_joined_eyes_are_the_converted_rgb_side_by_side_frame(tmp_path, color, bit_depth, size) -> None:
    left, right = _eyes(*size)
    sbs = _writer(tmp_path, "sbs", color, bit_depth)
    sbs.prepare(size[0], 2 * size[1])
    eyes = EyeFrames(left, right)
    for i in range(left.shape[0]):
        joined = side_by_side_frame(eyes.converted("left", i, sbs), eyes.converted("right", i, sbs))
        reference = sbs.convert(side_by_side(left[i : i + 1], right[i : i + 1])[0])
        assert (joined.width, joined.height, joined.format.name) == (reference.width, reference.height, reference.format.name)
        assert _planes(joined) == _planes(reference)
        assert [getattr(joined, k) for k in BT709_FULL] == [getattr(reference, k) for k in BT709_FULL]
    sbs.abort()


def test_an_eye_is_converted_once_for_every_writer_that_shows_it(tmp_path, monkeypatch) -> None:
    left, right = _eyes(30, 48, count=3)
    writers = [_writer(tmp_path, "right", BT709_LIMITED), _writer(tmp_path, "sbs", BT709_LIMITED)]
    writers[0].prepare(30, 48)
    writers[1].prepare(30, 96)
    calls: list[int] = []
    original = StreamingVideoWriter.convert
    gate = threading.Barrier(2)

    def counted(self, rgb):
        calls.append(id(rgb))
        return original(self, rgb)

    monkeypatch.setattr(StreamingVideoWriter, "convert", counted)
    eyes = EyeFrames(left, right)
    got: dict[int, list] = {}

    def ask(k: int) -> None:
        gate.wait()  # both threads at once
        got[k] = [eyes.converted("right", i, writers[k]) for i in range(3)]

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(calls) == 3
    assert all(a is b for a, b in zip(got[0], got[1]))
    other = _writer(tmp_path, "other", None)  # another set-up converts for itself
    other.prepare(30, 48)
    assert eyes.converted("right", 0, other) is not got[0][0] and len(calls) == 4
    for writer in (*writers, other):
        writer.abort()


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]


@pytest.mark.parametrize("width", [48, 47])  # an odd eye width takes the RGB path
def test_the_jobs_write_the_files_the_rgb_path_writes(tmp_path, width) -> None:
    left, right = _eyes(32, width, count=4, seed=3)
    eyes = EyeFrames(left, right)
    jobs = {"right": EyeJob(eyes, "right"), "sbs": SideBySideJob(eyes)}
    rgb = {"right": right, "sbs": side_by_side(left, right)}
    for name in jobs:
        with _writer(tmp_path, f"{name}_job", BT709_LIMITED) as writer:
            jobs[name].encode_into(writer)
        with _writer(tmp_path, f"{name}_rgb", BT709_LIMITED) as writer:
            writer.write(rgb[name])
        job, reference = _decoded(tmp_path / f"{name}_job.mp4"), _decoded(tmp_path / f"{name}_rgb.mp4")
        assert len(job) == len(reference) == 4
        assert all(np.array_equal(a, b) for a, b in zip(job, reference)), name


def test_eyes_of_two_shapes_or_not_uint8_rgb_are_refused() -> None:
    with pytest.raises(ValueError, match="one shape"):
        EyeFrames(np.zeros((1, 4, 6, 3), np.uint8), np.zeros((1, 4, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"right eye must be uint8 \[T, H, W, 3\], got float32"):
        EyeFrames(np.zeros((1, 4, 6, 3), np.uint8), np.zeros((1, 4, 6, 3), np.float32))
    with pytest.raises(ValueError, match="left eye must be uint8"):
        EyeFrames(np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6, 3), np.uint8))


def test_predict_writes_right_and_sbs_from_eyes_converted_once(tmp_path, monkeypatch) -> None:
    """The predict writer hands ``right`` and ``sbs`` the shared eyes: every conversion is of one
    eye-sized frame, two per frame of the chunk (left and right), none of an SBS-sized frame."""
    from stereo_lit.predict.writer import _VideoOutputs

    left, right = _eyes(32, 48, count=3, seed=5)
    sizes: list[tuple[int, int]] = []
    original = StreamingVideoWriter.convert

    def counted(self, rgb):
        sizes.append(rgb.shape[:2])
        return original(self, rgb)

    monkeypatch.setattr(StreamingVideoWriter, "convert", counted)
    outputs = _VideoOutputs("clip.mp4", tmp_path, ["right", "sbs"], 24.0, 3)
    outputs.write(0, left, right, None, 0.0)
    outputs.close()
    assert sizes == [(32, 48)] * 6
    sbs = _decoded(next(tmp_path.glob("sbs*.mp4")))
    with StreamingVideoWriter(tmp_path / "reference.mp4", 24) as writer:
        writer.write(side_by_side(left, right))
    assert all(np.array_equal(a, b) for a, b in zip(sbs, _decoded(tmp_path / "reference.mp4")))
