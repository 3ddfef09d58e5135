"""Windowed streaming inference: equals the whole-video algorithm, bounded memory, metric, sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stereo_lit.depth import KEYFRAMES, VideoDepthAnything, WindowAligner, infer_video_depth, stream_video_depth
from stereo_lit.depth.align import scale_and_shift, seam_blend
from stereo_lit.depth.inference import num_windows
from stereo_lit.depth.preprocess import network_size, preprocess_frame
from stereo_lit.depth.tiny import tiny_vda_state_dict

INPUT_SIZE = 28


def _tiny(metric: bool = False) -> VideoDepthAnything:
    model = VideoDepthAnything("tiny", metric=metric)
    model.load_state_dict(tiny_vda_state_dict(0))
    return model.eval()


@pytest.fixture(scope="module")
def tiny_model():
    return _tiny()


def _video(num_frames: int, h: int = 30, w: int = 40, seed: int = 0) -> np.ndarray:
    """Smooth moving pattern + noise, uint8 [T,H,W,3]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(num_frames):
        base = 127 + 80 * np.sin((xx + 2 * t) / 6.0)[..., None] * np.cos(yy[..., None] / 5.0 + np.arange(3))
        frames.append(np.clip(base + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8))
    return np.stack(frames)


def reference_whole_video(model, frames, input_size, metric=False):
    """The official algorithm written out over the whole video in memory (non-streaming)."""
    t_len, h, w = frames.shape[:3]
    size = network_size(h, w, input_size)
    padded = list(frames) + [frames[-1]] * ((22 - t_len % 22) % 22 + 10)
    depth_list, previous = [], None
    for start in range(0, t_len, 22):
        cur = torch.stack([preprocess_frame(padded[start + i], size) for i in range(32)])[None]
        if previous is not None:
            cur[:, :10] = previous[:, list(KEYFRAMES)]
        with torch.no_grad():
            d = model(cur)
        d = F.interpolate(d.flatten(0, 1).unsqueeze(1), size=(h, w), mode="bilinear", align_corners=True)
        depth_list += [d[i, 0].numpy() for i in range(32)]
        previous = cur
    aligned, ref = [], []
    for start in range(0, len(depth_list), 32):
        if not aligned:
            aligned += depth_list[:32]
            ref = [depth_list[0], depth_list[12]]
            continue
        s, b = (1.0, 0.0) if metric else scale_and_shift(np.concatenate(depth_list[start : start + 2]), np.concatenate(ref))
        post = [np.maximum(d * s + b, 0) for d in depth_list[start + 2 : start + 10]]
        aligned[-8:] = seam_blend(aligned[-8:], post)
        aligned += [np.maximum(d * s + b, 0) for d in depth_list[start + 10 : start + 32]]
        ref = ref[:1] + [np.maximum(depth_list[start + 12] * s + b, 0)]
    return np.stack(aligned[:t_len])


@pytest.mark.parametrize("num_frames", [1, 23, 32, 33, 55, 77])
def test_stream_equals_whole_video(tiny_model, num_frames):
    frames = _video(num_frames)
    ref = reference_whole_video(tiny_model, frames, INPUT_SIZE)
    streamed = list(stream_video_depth(tiny_model, iter(frames), input_size=INPUT_SIZE))  # a plain iterator
    assert len(streamed) == num_frames
    assert all(d.shape == (30, 40) and d.dtype == np.float32 for d in streamed)
    np.testing.assert_allclose(np.stack(streamed), ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_several_windows_per_batch_match(tiny_model):
    frames = _video(70, 16, 20)
    one = infer_video_depth(tiny_model, frames, input_size=14, windows_per_batch=1)
    three = infer_video_depth(tiny_model, frames, input_size=14, windows_per_batch=3)
    np.testing.assert_allclose(three, one, rtol=1e-4, atol=1e-5 * np.abs(one).max())


def test_float_frames_in_unit_range_match_uint8(tiny_model):
    frames = _video(10)
    as_uint8 = infer_video_depth(tiny_model, frames, input_size=INPUT_SIZE)
    as_float = infer_video_depth(tiny_model, frames.astype(np.float32) / 255.0, input_size=INPUT_SIZE)
    np.testing.assert_array_equal(as_float, as_uint8)


def _lag_profile(model, num_frames, windows_per_batch):
    """Max (frames read - depth frames yielded) while streaming, and frames read at the first yield."""
    frames = _video(num_frames, 16, 20)
    state = {"read": 0}

    def reader():
        for frame in frames:
            state["read"] += 1
            yield frame

    lags, first_read, yielded = [], None, 0
    for _ in stream_video_depth(model, reader(), input_size=14, windows_per_batch=windows_per_batch):
        yielded += 1
        first_read = state["read"] if first_read is None else first_read
        lags.append(state["read"] - yielded)
    assert yielded == num_frames
    return max(lags), first_read


@pytest.mark.parametrize("windows_per_batch", [1, 2])
def test_stream_holds_a_bounded_number_of_frames(tiny_model, windows_per_batch):
    short = _lag_profile(tiny_model, 70, windows_per_batch)
    long = _lag_profile(tiny_model, 160, windows_per_batch)
    assert long[0] == short[0]  # the look-ahead does not grow with the video
    assert long[0] <= 32 * windows_per_batch + 10
    assert long[1] == 32 + 22 * (windows_per_batch - 1)  # depth flows out after the first batch of windows


def test_aligner_holds_at_most_ten_frames():
    rng = np.random.default_rng(0)
    aligner = WindowAligner()
    out = []
    for _ in range(5):
        out += aligner.push(list(rng.random((32, 4, 5), dtype=np.float32) + 1))
        assert aligner.held_frames <= 10
    out += aligner.flush()
    assert len(out) == 32 + 4 * 22


def test_scale_and_shift_recovers_affine_map():
    rng = np.random.default_rng(1)
    pred = rng.random((2 * 30, 40), dtype=np.float32) + 0.5
    target = 2.5 * pred - 0.75
    s, t = scale_and_shift(pred, target)
    assert s.dtype == np.float32
    assert abs(s - 2.5) < 1e-3 and abs(t + 0.75) < 1e-3


def _windows_with_known_scale():
    """Window 2 predicts 2x+1 of the truth, so relative alignment must undo it (scale 0.5, shift -0.5)."""
    rng = np.random.default_rng(2)
    truth = rng.random((54, 6, 7), dtype=np.float32) + 1
    first = truth[:32]
    keys = [truth[k] for k in KEYFRAMES]  # the second window re-sees the keyframes first
    second = np.stack(keys + list(truth[32:54])) * 2 + 1
    return truth, first, second


def test_relative_alignment_undoes_a_window_scale():
    truth, first, second = _windows_with_known_scale()
    aligner = WindowAligner(metric=False)
    out = np.stack(aligner.push(first) + aligner.push(second) + aligner.flush())
    np.testing.assert_allclose(out[32:], truth[32:], rtol=1e-4)


def test_metric_skips_alignment():
    truth, first, second = _windows_with_known_scale()
    aligner = WindowAligner(metric=True)
    out = np.stack(aligner.push(first) + aligner.push(second) + aligner.flush())
    np.testing.assert_array_equal(out[32:], second[10:])  # taken as predicted, not rescaled
    np.testing.assert_array_equal(out[:24], first[:24])


def test_metric_model_streams_without_alignment():
    frames = _video(40)
    metric_model = _tiny(metric=True)
    metric = infer_video_depth(metric_model, frames, input_size=INPUT_SIZE)
    np.testing.assert_allclose(metric, reference_whole_video(metric_model, frames, INPUT_SIZE, metric=True), rtol=1e-5)
    relative = infer_video_depth(_tiny(metric=False), frames, input_size=INPUT_SIZE)
    np.testing.assert_array_equal(metric[:24], relative[:24])  # first window: nothing to align
    assert not np.allclose(metric[32:], relative[32:])  # later windows: relative ones were rescaled


def test_cpu_bfloat16_autocast_runs_close_to_fp32(tiny_model):
    frames = _video(8)
    fp32 = infer_video_depth(tiny_model, frames, input_size=56)
    bf16 = infer_video_depth(tiny_model, frames, input_size=56, autocast_dtype="bfloat16")
    assert bf16.dtype == np.float32
    assert not np.array_equal(bf16, fp32)  # autocast really ran in reduced precision
    assert np.abs(bf16 - fp32).mean() < 0.05 * np.abs(fp32).mean()


@pytest.mark.parametrize(
    "hw, input_size, expected",
    [((60, 80), 56, (56, 70)), ((540, 960), 518, (518, 924)), ((1080, 1920), 518, (518, 924)),
     ((800, 1912), 518, (392, 938)), ((960, 540), 518, (924, 518))],
)
def test_network_size_official_rule(hw, input_size, expected):
    assert network_size(*hw, input_size) == expected


def test_num_windows():
    assert [num_windows(n) for n in (1, 22, 23, 44, 45, 50)] == [1, 1, 2, 2, 3, 3]


def test_empty_video_yields_nothing(tiny_model):
    assert list(stream_video_depth(tiny_model, iter([]))) == []
    with pytest.raises(ValueError, match="no frames"):
        infer_video_depth(tiny_model, np.zeros((0, 8, 8, 3), np.uint8))


def test_frames_of_changing_size_are_refused(tiny_model):
    frames = [np.zeros((16, 20, 3), np.uint8), np.zeros((16, 22, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame 1 has shape"):
        list(stream_video_depth(tiny_model, frames, input_size=14))
