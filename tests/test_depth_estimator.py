"""Depth estimators: VDA (tiny checkpoint) round trip, on-disk cache, precomputed files, YAML construction."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pytest
import torch

from stereo_lit.depth import (
    DepthEstimator,
    DepthResult,
    PrecomputedDepth,
    VDAEstimator,
    infer_video_depth,
    load_vda,
    write_tiny_vda,
)
from stereo_lit.depth import inference as inference_module

INPUT_SIZE = 28


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return write_tiny_vda(tmp_path_factory.mktemp("ckpt"), seed=0)


def _video(b=1, t=26, h=30, w=40, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.linspace(0, 1, w).expand(h, w)
    frames = [(base.roll(2 * k, dims=1) * 0.7 + 0.3 * torch.rand(3, h, w, generator=g)) for k in range(t)]
    return torch.stack(frames, dim=1).unsqueeze(0).repeat(b, 1, 1, 1, 1).clamp(0, 1)


def _forbid_inference(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("depth was recomputed although it is cached")

    monkeypatch.setattr("stereo_lit.depth.estimator.stream_video_depth", fail)


def test_tiny_checkpoint_round_trip(tiny_ckpt):
    estimator = VDAEstimator(str(tiny_ckpt), input_size=INPUT_SIZE, progress=False)
    assert isinstance(estimator, DepthEstimator)
    video = _video(b=2, t=26)
    video[1] = video[1].flip(-1)
    result = estimator.estimate(video)
    assert isinstance(result, DepthResult) and result.kind == "inverse_relative"
    assert result.values.shape == (2, 1, 26, 30, 40) and result.values.dtype == torch.float32
    assert torch.isfinite(result.values).all() and result.values.min() >= 0 and result.values.std() > 0
    assert not torch.allclose(result.values[0], result.values[1])
    # same numbers as the model loaded directly and run on the frames
    model = load_vda(tiny_ckpt)
    frames = video[0].permute(1, 2, 3, 0).numpy()
    expected = infer_video_depth(model, frames, input_size=INPUT_SIZE)
    np.testing.assert_allclose(result.values[0, 0].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_metric_variant_from_file_name(tiny_ckpt, tmp_path):
    metric_ckpt = tmp_path / "metric_video_depth_anything_tiny.pth"
    metric_ckpt.write_bytes(tiny_ckpt.read_bytes())
    estimator = VDAEstimator(str(metric_ckpt), input_size=INPUT_SIZE, progress=False)
    assert estimator.metric and estimator.kind == "metric_m"
    assert estimator.estimate(_video(t=3)).kind == "metric_m"
    assert VDAEstimator(str(metric_ckpt), metric=False).kind == "inverse_relative"


def test_estimate_stream_is_lazy_and_matches_estimate(tiny_ckpt):
    estimator = VDAEstimator(str(tiny_ckpt), input_size=INPUT_SIZE, progress=False)
    video = _video(t=40)
    frames = (video[0].permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)
    stream = estimator.estimate_stream(iter(frames))
    first = next(stream)
    assert first.shape == (30, 40) and first.dtype == np.float32
    rest = list(stream)
    assert len(rest) == 39
    np.testing.assert_allclose(np.stack([first] + rest), infer_video_depth(estimator.model, frames, INPUT_SIZE), rtol=1e-6)


def test_cache_hit_on_rerun(tiny_ckpt, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    frames = (_video(t=30)[0].permute(1, 2, 3, 0).numpy() * 255).astype(np.uint8)
    estimator = VDAEstimator(str(tiny_ckpt), input_size=INPUT_SIZE, cache_dir=str(cache), progress=False)
    first = estimator.video_depth(lambda: iter(frames))
    assert first.shape == (30, 30, 40)
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 2 and entries[0].endswith(".json") and entries[1].endswith(".npy")  # nothing temporary
    first = np.array(first)

    _forbid_inference(monkeypatch)
    again = VDAEstimator(str(tiny_ckpt), input_size=INPUT_SIZE, cache_dir=str(cache), progress=False)
    cached = again.video_depth(lambda: iter(frames))
    assert isinstance(cached.stored, np.memmap)  # read from disk; resized to the video size when indexed
    np.testing.assert_array_equal(cached, first)
    # other settings or other content are other entries
    with pytest.raises(AssertionError, match="recomputed"):
        VDAEstimator(str(tiny_ckpt), input_size=42, cache_dir=str(cache)).video_depth(lambda: iter(frames))
    changed = frames.copy()
    changed[5, 0, 0, 0] ^= 1
    with pytest.raises(AssertionError, match="recomputed"):
        again.video_depth(lambda: iter(changed))


def test_cache_keyed_by_given_key_and_estimate_uses_cache(tiny_ckpt, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    estimator = VDAEstimator(str(tiny_ckpt), input_size=INPUT_SIZE, cache_dir=str(cache), progress=False)
    video = _video(t=5)
    result = estimator.estimate(video)
    frames = video[0].permute(1, 2, 3, 0).numpy()
    by_key = estimator.video_depth(lambda: iter(frames), key="my-video-sha")
    _forbid_inference(monkeypatch)
    np.testing.assert_array_equal(estimator.estimate(video).values.numpy(), result.values.numpy())
    np.testing.assert_array_equal(estimator.video_depth(lambda: iter(frames), key="my-video-sha"), by_key)


def test_cache_hit_when_encoder_comes_from_the_weights(tiny_ckpt, tmp_path, monkeypatch):
    silent = tmp_path / "depth_weights.pth"  # the name does not say the encoder
    silent.write_bytes(tiny_ckpt.read_bytes())
    estimator = VDAEstimator(str(silent), input_size=14, cache_dir=str(tmp_path / "cache"), progress=False)
    frames = np.zeros((3, 16, 20, 3), np.uint8)
    first = estimator.video_depth(lambda: iter(frames), key="v")
    assert estimator.encoder == "tiny"
    _forbid_inference(monkeypatch)
    np.testing.assert_array_equal(estimator.video_depth(lambda: iter(frames), key="v"), first)


def test_failed_run_leaves_no_cache_entry(tiny_ckpt, tmp_path):
    cache = tmp_path / "cache"
    estimator = VDAEstimator(str(tiny_ckpt), input_size=INPUT_SIZE, cache_dir=str(cache), progress=False)

    def broken_frames():
        yield np.zeros((30, 40, 3), np.uint8)
        raise RuntimeError("decoder failed")

    with pytest.raises(RuntimeError, match="decoder failed"):
        estimator.video_depth(broken_frames, key="k")
    assert not cache.exists() or not list(cache.iterdir())


def test_windows_per_batch_option_reaches_inference(tiny_ckpt, monkeypatch):
    seen = {}
    original = inference_module.run_windows

    def spy(model, windows, *args, **kwargs):
        seen.setdefault("batch", []).append(windows.shape[0])
        return original(model, windows, *args, **kwargs)

    monkeypatch.setattr(inference_module, "run_windows", spy)
    estimator = VDAEstimator(str(tiny_ckpt), input_size=14, windows_per_batch=2, progress=False)
    estimator.estimate(_video(t=60, h=16, w=20))  # 3 windows -> batches of 2 and 1
    assert seen["batch"] == [2, 1]


def test_bad_options_are_rejected(tiny_ckpt):
    with pytest.raises(ValueError, match="autocast"):
        VDAEstimator(str(tiny_ckpt), autocast="int8")
    with pytest.raises(ValueError, match="dtype"):
        VDAEstimator(str(tiny_ckpt), dtype="float64")
    with pytest.raises(ValueError, match="video"):
        VDAEstimator(str(tiny_ckpt), progress=False).estimate(torch.rand(3, 4, 28, 28))


def test_built_from_yaml_config(tiny_ckpt):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--depth", type=Optional[DepthEstimator], default=None)
    config = parser.parse_string(
        "depth:\n  class_path: stereo_lit.depth.VDAEstimator\n"
        f"  init_args:\n    checkpoint: {tiny_ckpt}\n    input_size: 28\n    windows_per_batch: 2\n"
    )
    depth = parser.instantiate(config).depth
    assert isinstance(depth, VDAEstimator) and depth.input_size == 28 and depth.windows_per_batch == 2


# ---------------------------------------------------------------- precomputed depth
def test_precomputed_npz_like_vda_output(tmp_path):
    depths = np.random.default_rng(0).random((12, 15, 20), dtype=np.float32)
    path = tmp_path / "clip_depths.npz"
    np.savez_compressed(path, depths=depths)
    result = PrecomputedDepth(str(path)).estimate(torch.zeros(1, 3, 12, 15, 20))
    assert result.kind == "inverse_relative" and result.values.shape == (1, 1, 12, 15, 20)
    np.testing.assert_array_equal(result.values[0, 0].numpy(), depths)


def test_precomputed_npy_metric_with_offset_and_resize(tmp_path):
    depths = np.full((10, 8, 10), 3.0, dtype=np.float32)
    depths[4] = 7.0
    path = tmp_path / "clip.npy"
    np.save(path, depths)
    result = PrecomputedDepth(str(path), kind="metric_m", start_frame=4).estimate(torch.zeros(1, 3, 3, 16, 20))
    assert result.kind == "metric_m" and result.values.shape == (1, 1, 3, 16, 20)
    assert torch.allclose(result.values[0, 0, 0], torch.tensor(7.0))  # depth values are not scaled by resizing
    assert torch.allclose(result.values[0, 0, 1:], torch.tensor(3.0))


def test_precomputed_errors(tmp_path):
    path = tmp_path / "d.npy"
    np.save(path, np.zeros((4, 8, 8), np.float32))
    with pytest.raises(ValueError, match="4 depth frames"):
        PrecomputedDepth(str(path)).estimate(torch.zeros(1, 3, 6, 8, 8))
    with pytest.raises(ValueError, match="one video"):
        PrecomputedDepth(str(path)).estimate(torch.zeros(2, 3, 2, 8, 8))
    with pytest.raises(ValueError, match="kind"):
        PrecomputedDepth(str(path), kind="disparity")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        PrecomputedDepth(str(tmp_path / "missing.npz")).estimate(torch.zeros(1, 3, 2, 8, 8))
