"""`start_time` / `end_time` and `max_fps` on the wild-video datamodule, through the real CLI:
frame counts, which source frames, the output frame rate, and the audio cut to the same range."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stereo_lit.cli import build_cli
from stereo_lit.data.wild import WildVideoDataModule, effective_fps, time_range_frames
from stereo_lit.depth.estimator import DepthResult
from stereo_lit.io.video_reader import read_frames
from test_predict_outputs import _args, _frames

H, W, FPS, N, RATE = 32, 48, 24, 24, 16000


def _amplitude(t: np.ndarray | float, duration: float = N / FPS) -> np.ndarray | float:
    """The test clip's audio: a 440 Hz tone whose amplitude grows linearly with time."""
    return 0.05 + 0.5 * np.asarray(t) / duration


def _clip(path: Path) -> Path:
    """24 frames at 24 fps, frame k a flat grey 10*k, an aac track whose loudness tells the time,
    and a ramp inverse-depth file ``<stem>.npy``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(path), mode="w")
    video = container.add_stream("mpeg4", rate=FPS)
    video.width, video.height, video.pix_fmt = W, H, "yuv420p"
    video.options = {"qscale": "2"}
    video.codec_context.gop_size = 4
    audio = container.add_stream("aac", rate=RATE)
    audio.layout = "mono"
    for k in range(N):
        frame = np.full((H, W, 3), 10 * k, np.uint8)
        for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    t = np.arange(int(RATE * N / FPS)) / RATE
    wave = (_amplitude(t) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for offset in range(0, len(wave) - 1024 + 1, 1024):
        frame = av.AudioFrame.from_ndarray(wave[None, offset : offset + 1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, offset, Fraction(1, RATE)
        for packet in audio.encode(frame):
            container.mux(packet)
    for packet in audio.encode():
        container.mux(packet)
    container.close()
    ramp = np.broadcast_to(np.linspace(0.2, 1.0, W, dtype=np.float32), (N, H, W))
    np.save(path.with_suffix(".npy"), np.ascontiguousarray(ramp))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _clip(tmp_path_factory.mktemp("time_range") / "clip.mp4")


def _left_frames(datamodule: WildVideoDataModule) -> np.ndarray:
    """Every output frame's left view (uint8 [T, H, W, 3]) the datamodule hands to predict."""
    out = []
    for batch in datamodule.predict_dataloader():
        keep, start, stop = int(batch["keep_start"][0]), int(batch["window_start"][0]), int(batch["window_stop"][0])
        left = batch["left"][0, :, keep - start : stop - start, :H, :W]
        if left.dtype == torch.uint8:  # predict windows stay uint8 until the module (issue 21)
            out.append(left.permute(1, 2, 3, 0).numpy())
            continue
        out.append((left.permute(1, 2, 3, 0).numpy() * 255 + 0.5).astype(np.uint8))
    return np.concatenate(out)


def _audio(path: Path) -> tuple[np.ndarray, float]:
    """Decoded mono samples of ``path``'s audio and the first packet's time (s)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]), float(frames[0].pts * stream.time_base)


def test_time_range_rule() -> None:
    assert time_range_frames(24, 24.0, None, None, "v") is None
    assert time_range_frames(24, 24.0, 0.5, 0.875, "v") == (12, 21)  # frame on screen at 0.5 s .. before 0.875 s
    assert time_range_frames(24, 24.0, 0.51, None, "v") == (12, 24)
    assert time_range_frames(24, 24.0, None, 5.0, "v") == (0, 24)  # past the end: to the end
    with pytest.raises(ValueError, match="start_time 2.0 s is at or after"):
        time_range_frames(24, 24.0, 2.0, None, "v")
    with pytest.raises(ValueError, match="data.end_time must be > data.start_time"):
        WildVideoDataModule("x.mp4", start_time=1.0, end_time=0.5)
    assert effective_fps(24.0, None, 12.0) == 12.0 and effective_fps(10.0, None, 12.0) == 10.0
    assert effective_fps(30.0, 25.0, None) == 25.0


def test_start_and_end_time_pick_those_frames(clip: Path) -> None:
    datamodule = WildVideoDataModule(str(clip), window=5, overlap=1, start_time=0.5, end_time=0.875)
    datamodule.setup("predict")
    video = datamodule.videos[0]
    assert video.num_frames == 9 and video.source_range == (12, 21) and video.fps == 24.0
    np.testing.assert_array_equal(_left_frames(datamodule), read_frames(clip, 12, 21))
    sample = datamodule._dataset(datamodule.predict_items())[0]
    assert float(sample["depth"][0, 0, 0, -1]) == pytest.approx(1.0)  # the depth file read at the same frames


def test_max_fps_drops_every_other_frame_of_a_24_fps_clip(clip: Path) -> None:
    datamodule = WildVideoDataModule(str(clip), window=5, overlap=1, max_fps=12)
    datamodule.setup("predict")
    assert datamodule.videos[0].num_frames == 12 and datamodule.videos[0].fps == 12.0
    np.testing.assert_array_equal(_left_frames(datamodule), read_frames(clip)[::2])


def test_cli_start_end_time_trims_video_and_audio(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_cli(_args(clip, out, "--model.output.layouts", "[right, sbs]", "--model.disparity.convergence", "0.0",
                    "--data.init_args.start_time", "0.5", "--data.init_args.end_time", "0.875"))
    sbs = _frames(out / "clip" / "sbs.mp4")
    assert sbs.shape == (9, H, 2 * W, 3)
    greys = sbs[:, :, :W].reshape(9, -1).mean(1)
    source = read_frames(clip, 12, 21).reshape(9, -1).mean(1)  # grey 10*k, as decoded
    np.testing.assert_allclose(greys, source, atol=3)  # first frame = source frame 12 (0.5 s); neighbours are ~10 apart
    samples, first = _audio(out / "clip" / "sbs.mp4")
    assert abs(len(samples) / RATE - 9 / FPS) <= 2 * 1024 / RATE  # the cut's length, to a packet or two
    assert first < 0.07  # starts at the cut
    # loudness right after the start is the source's at 0.5 s (not at 0 s: 0.035 RMS)
    rms = float(np.sqrt(np.mean(samples[1024:2048] ** 2)))
    assert rms == pytest.approx(_amplitude(0.5 + 1536 / RATE) / np.sqrt(2), abs=0.04)


def test_cli_max_fps_writes_12_fps(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_cli(_args(clip, out, "--model.output.layouts", "[sbs]", "--model.disparity.convergence", "0.0", "--data.init_args.max_fps", "12"))
    with av.open(str(out / "clip" / "sbs.mp4")) as container:
        assert float(container.streams.video[0].average_rate) == pytest.approx(12.0)
    sbs = _frames(out / "clip" / "sbs.mp4")
    assert sbs.shape[0] == 12
    np.testing.assert_allclose(sbs[:, :, :W].reshape(12, -1).mean(1), read_frames(clip)[::2].reshape(12, -1).mean(1), atol=3)


class GreyDepth:
    """A whole-file depth estimator whose depth is each frame's grey level / 255 (records its calls)."""

    kind = "inverse_relative"

    def __init__(self) -> None:
        self.keys: list = []

    def video_depth(self, frames_factory, key=None, total_frames=None, cuts=None):
        self.keys.append(key)
        return np.stack([f.mean(-1) / 255.0 for f in frames_factory()]).astype(np.float32)

    def estimate(self, video: torch.Tensor) -> DepthResult:  # in-memory clips (not used for files)
        raise AssertionError("a file source must go through video_depth")


def test_the_estimator_sees_the_same_cut_frames(clip: Path) -> None:
    from stereo_lit.data.collate import collate_samples
    from stereo_lit.depth.source import WindowDepth

    datamodule = WildVideoDataModule(str(clip), window=5, overlap=1, start_time=0.5, end_time=0.875, use_depth=False)
    datamodule.setup("predict")
    dataset = datamodule._dataset(datamodule.predict_items())
    estimator = GreyDepth()
    window_depth = WindowDepth(estimator)
    for index in range(len(dataset)):
        batch = collate_samples([dataset[index]])
        depth, _, _ = window_depth.for_batch(batch)
        expected = batch["left"].mean(1, keepdim=True)  # grey frames: depth = grey / 255 = the left view
        torch.testing.assert_close(depth[:, :, :, :H, :W], expected[:, :, :, :H, :W], atol=1e-5, rtol=0)
    assert len(estimator.keys) == 1 and estimator.keys[0].endswith("-src12-21")  # one whole-cut pass, its own cache key
