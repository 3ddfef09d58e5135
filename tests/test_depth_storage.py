"""Issue 21 item 2: VDA depth is stitched and kept at network size (float16) and resized per frame.

Known answers: the per-frame resize is the old whole-window resize bit for bit; the fit computed
through the Gram matrices is the fit on upsampled frames; float16 keeps every value within
2**-11 of itself (round to nearest: half float16's 2**-10 spacing), hence the disparity within the bound of
``stereo_lit.depth.resize``; the cache re-keys on the storage format and never reads an entry of
another shape.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stereo_lit.depth import VDAEstimator, network_size, stream_video_depth, write_tiny_vda
from stereo_lit.depth.align import scale_and_shift, scale_and_shift_from_sums
from stereo_lit.depth.cache import DepthCache
from stereo_lit.depth.resize import STORAGE_VERSION, ResizedDepth, resize_depth, upsampled_sums
from stereo_lit.stereo.disparity import DisparityPolicy

from test_depth_inference import INPUT_SIZE, _tiny, _video, reference_whole_video


def _smooth(n: int, h: int, w: int, seed: int = 0, low: float = 0.0, high: float = 8.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    frames = [np.sin(6 * xx + rng.random() * 3) * np.cos(5 * yy + t / 4) for t in range(n)]
    out = np.stack(frames) * 0.5 + 0.5 + 0.02 * rng.standard_normal((n, h, w))
    return (low + (high - low) * out).astype(np.float32)


def test_per_frame_resize_is_the_old_whole_window_resize_bit_for_bit():
    window = torch.from_numpy(_smooth(32, 37, 66))  # network-size depth of one window
    old = np.empty((32, 90, 160), np.float32)  # the old run_windows: 8 frames at a time, float32 out
    for i in range(0, 32, 8):
        up = F.interpolate(window[i : i + 8, None], size=(90, 160), mode="bilinear", align_corners=True)
        old[i : i + 8] = up[:, 0].numpy()
    np.testing.assert_array_equal(resize_depth(window.numpy(), (90, 160)), old)
    np.testing.assert_array_equal(resize_depth(window, (90, 160)), old)


def test_gram_sums_are_the_sums_of_upsampled_frames():
    net = _smooth(4, 11, 17, seed=1)
    out_hw = (40, 71)
    p, t = [net[0], net[1]], [net[2], net[3]]
    up = lambda a: resize_depth(np.stack(a), out_hw).astype(np.float64)  # noqa: E731
    up_p, up_t = up(p), up(t)
    expected = (np.sum(up_p**2), np.sum(up_p), up_p.size, np.sum(up_p * up_t), np.sum(up_t))
    np.testing.assert_allclose(upsampled_sums(p, t, out_hw), expected, rtol=1e-6)
    scale, shift = scale_and_shift_from_sums(upsampled_sums(p, t, out_hw))
    ref_scale, ref_shift = scale_and_shift(up_p.reshape(-1, out_hw[1]), up_t.reshape(-1, out_hw[1]))
    assert abs(scale - ref_scale) < 1e-5 * abs(ref_scale) and abs(shift - ref_shift) < 1e-5 * (1 + abs(ref_shift))


def test_network_size_stream_resized_per_frame_is_the_full_size_stream():
    model, frames = _tiny(), _video(55)  # 3 windows: two fits, two seams
    full = np.stack(list(stream_video_depth(model, iter(frames), input_size=INPUT_SIZE)))
    net = np.stack(list(stream_video_depth(model, iter(frames), input_size=INPUT_SIZE, resize=False)))
    assert net.shape[1:] != full.shape[1:]
    np.testing.assert_array_equal(resize_depth(net, full.shape[1:]), full)
    ref = reference_whole_video(model, frames, INPUT_SIZE)  # the official order: upsample, then stitch
    np.testing.assert_allclose(full, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_resized_depth_indexes_like_the_full_size_array():
    stored = _smooth(6, 9, 13).astype(np.float16)
    full = resize_depth(stored, (20, 30))
    view = ResizedDepth(stored, (20, 30))
    assert view.shape == (6, 20, 30) and len(view) == 6 and view.dtype == np.float32
    np.testing.assert_array_equal(view[2:5], full[2:5])
    np.testing.assert_array_equal(view[::2], full[::2])
    np.testing.assert_array_equal(view[3], full[3])
    np.testing.assert_array_equal(view[4, ::3, ::2], full[4, ::3, ::2])
    np.testing.assert_array_equal(np.array(view, dtype=np.float32), full)
    with pytest.raises(TypeError, match="int or a slice"):
        view[[0, 1]]


@pytest.mark.parametrize("low, high", [(0.0, 8.0), (5.0, 6.0), (200.0, 900.0)])
def test_float16_round_trip_and_its_disparity_stay_within_the_documented_bound(low, high):
    depth = _smooth(8, 52, 92, seed=3, low=low, high=high)  # network size of a 1080p video, scaled down 10x
    exact = resize_depth(depth, (108, 192))
    kept = ResizedDepth(depth.astype(np.float16), (108, 192))[:]
    # float16 rounds to nearest: within 2**-11 of each value; bilinear weights are >= 0 and sum to 1
    assert np.all(np.abs(kept - exact) <= 2.0**-11 * np.abs(depth).max() * (1 + 1e-5))
    width = 1920  # disparity in px of a 1080p frame: 2% strength = 38.4 px
    disparities = []
    for values, sample in ((exact, depth), (kept, depth.astype(np.float16))):
        policy = DisparityPolicy()
        policy.fix_video_range("v", torch.from_numpy(np.array(sample, np.float32)), "inverse_relative")
        disparities.append(policy.from_depth(torch.from_numpy(values)[None, None], "inverse_relative", "v", width))
    policy = DisparityPolicy()
    lo, hi = policy.relative_range("v", torch.from_numpy(depth))
    bound = 2.0**-11 * float(np.abs(depth).max()) / (hi - lo) * policy.max_disparity_px(width)  # resize.py's bound
    error = (disparities[1] - disparities[0]).abs().max().item()
    assert error <= 2 * bound, (error, bound)  # 2x: the range itself moves by the same rounding
    if low == 0.0:
        assert error < 0.03  # typical relative depth (far = ~0): a few hundredths of a px at 1080p


def test_float16_storage_widens_to_float32_instead_of_overflowing(tmp_path):
    frames = [np.full((3, 4), 1.5, np.float32), np.full((3, 4), 7.0e4, np.float32), np.full((3, 4), 0.1, np.float32)]
    stored = DepthCache(tmp_path).write("k", iter(frames), {"what": "test"}, dtype=np.float16)
    assert stored.dtype == np.float32  # 7e4 is beyond float16's 65504
    np.testing.assert_array_equal(stored, np.stack(frames))  # the first frame, written as float16, is exact
    assert json.loads((tmp_path / "k.json").read_text())["dtype"] == "float32"
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    small = DepthCache(tmp_path).write("s", iter(frames[::2]), dtype=np.float16)
    assert small.dtype == np.float16 and np.allclose(small, np.stack(frames[::2]), rtol=2.0**-11)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return write_tiny_vda(tmp_path_factory.mktemp("ckpt"), seed=0)


def _forbid_inference(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("depth was recomputed")

    monkeypatch.setattr("stereo_lit.depth.estimator.stream_video_depth", fail)


def test_cache_keeps_network_size_float16_and_rekeys_on_the_storage_format(tiny_ckpt, tmp_path, monkeypatch):
    frames = _video(26, 60, 80)
    estimator = VDAEstimator(str(tiny_ckpt), input_size=INPUT_SIZE, cache_dir=str(tmp_path), progress=False)
    assert estimator.settings()["storage"] == STORAGE_VERSION
    first = estimator.video_depth(lambda: iter(frames), key="clip")
    assert first.shape == (26, 60, 80)
    assert first.stored.dtype == np.float16 and first.stored.shape == (26, *network_size(60, 80, INPUT_SIZE))
    np.testing.assert_allclose(
        first[:], np.stack(list(estimator.estimate_stream(iter(frames)))), rtol=2.0**-11, atol=1e-6
    )
    (npy,) = tmp_path.glob("*.npy")
    _forbid_inference(monkeypatch)
    np.testing.assert_array_equal(estimator.video_depth(lambda: iter(frames), key="clip")[:], first[:])  # a hit
    monkeypatch.setattr("stereo_lit.depth.estimator.STORAGE_VERSION", "another-format")
    with pytest.raises(AssertionError, match="recomputed"):  # another format: another key, not a misread
        estimator.video_depth(lambda: iter(frames), key="clip")
    monkeypatch.undo()
    # an entry of the old kind under this key (full size, float32) is recomputed, never resized as if it were new
    np.save(npy, np.zeros((26, 60, 80), np.float32))
    _forbid_inference(monkeypatch)
    with pytest.raises(AssertionError, match="recomputed"):
        estimator.video_depth(lambda: iter(frames), key="clip")


def test_without_a_cache_the_video_is_kept_in_memory_at_network_size(tiny_ckpt, monkeypatch):
    frames = _video(26, 60, 80)
    estimator = VDAEstimator(str(tiny_ckpt), input_size=INPUT_SIZE, cache=False, progress=False)
    exact = np.stack(list(estimator.estimate_stream(iter(frames), resize=False)))
    kept = estimator.video_depth(lambda: iter(frames))  # size from the first frame
    assert kept.shape == (26, 60, 80) and kept.stored.dtype == np.float16 and kept.stored.shape == exact.shape
    np.testing.assert_allclose(kept.stored, exact, rtol=2.0**-11, atol=1e-7)
    monkeypatch.setattr("stereo_lit.depth.cache.FLOAT16_LIMIT", float(exact.max()) / 2)  # as if values overflowed
    wide = estimator.video_depth(lambda: iter(frames), size=(60, 80))
    assert wide.stored.dtype == np.float32
    np.testing.assert_array_equal(wide.stored, exact)  # float32: no rounding at all


class _CountingStore:
    """A stored ``[T, h, w]`` array that counts the reads of more than one frame."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype, self.big_reads = array, array.shape, array.dtype, 0

    def __getitem__(self, index):
        out = self.array[index]
        self.big_reads += int(out.ndim == 3 and out.shape[0] > 4)
        return out


def test_window_depth_resizes_only_the_window_and_samples_the_range_once(tmp_path):
    from stereo_lit.depth.source import WindowDepth

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not decoded: the estimator below never reads frames")
    store = _CountingStore(_smooth(130, 9, 16, seed=4).astype(np.float16))

    class Estimator:
        kind = "inverse_relative"

        def estimate(self, video):  # pragma: no cover - files go through video_depth
            raise AssertionError("a video file must use video_depth")

        def video_depth(self, frames_factory, key=None, total_frames=None, size=None):
            return ResizedDepth(store, size)

    source = WindowDepth(Estimator())
    for start in (0, 4, 8):
        batch = {"left": torch.zeros(1, 3, 4, 36, 64), "video_path": [str(video)], "fps": torch.tensor([24.0]),
                 "window_start": torch.tensor([start]), "window_stop": torch.tensor([start + 4]),
                 "num_frames": torch.tensor([130])}
        depth, kind, wholes = source.for_batch(batch)
        assert depth.shape == (1, 1, 4, 36, 64) and kind == "inverse_relative"
        expected = resize_depth(store.array[start : start + 4], (36, 64))
        np.testing.assert_array_equal(depth[0, 0].numpy(), expected)
        assert wholes[0].sample.shape == (65, 9, 16)  # every 2nd frame of 130, at the size it is stored at
        assert wholes[0].depth is store
    assert store.big_reads == 1  # the range sample, once for the video, not once per window


@pytest.mark.parametrize("stored_as", ["array", "made on request"])
def test_a_window_never_aliases_the_whole_videos_depth_and_made_frames_are_not_copied(tmp_path, stored_as):
    """A window of a whole-video ndarray is a copy (changing it leaves the video's depth alone); the
    frames of an array-like that makes them on request (ResizedDepth) are taken as they are."""
    from stereo_lit.depth.source import WindowDepth

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not decoded")
    whole = _smooth(12, 36, 64, seed=2).astype(np.float32)
    before = whole.copy()
    made = []

    class Made(ResizedDepth):
        def __getitem__(self, index):
            made.append(super().__getitem__(index))
            return made[-1]

    class Estimator:
        kind = "inverse_relative"

        def video_depth(self, frames_factory, key=None, total_frames=None, size=None):
            return whole if stored_as == "array" else Made(whole, size)

    batch = {"left": torch.zeros(1, 3, 4, 36, 64), "video_path": [str(video)], "fps": torch.tensor([24.0]),
             "window_start": torch.tensor([4]), "window_stop": torch.tensor([8]), "num_frames": torch.tensor([12])}
    depth, _, _ = WindowDepth(Estimator()).for_batch(batch)
    np.testing.assert_array_equal(depth[0, 0].numpy(), whole[4:8])
    depth.fill_(-1.0)
    if stored_as == "array":
        np.testing.assert_array_equal(whole, before)  # the video's depth is untouched
    else:
        assert made and np.shares_memory(made[-1], depth.numpy())  # no copy of frames made for this window


def test_a_full_disk_while_widening_keeps_every_frame_once(tmp_path, monkeypatch):
    import builtins

    frames = [np.full((3, 4), v, np.float32) for v in (1.5, 2.5, 7.0e4, 0.25)]
    real_open = builtins.open

    def full_open(path, mode="r", *args, **kwargs):
        if ".raw32.tmp-" in str(path) and "w" in mode:
            raise OSError(28, "No space left on device (injected)")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_open)
    depth = DepthCache(tmp_path / "cache").write("k", iter(frames), dtype=np.float16)
    monkeypatch.undo()
    np.testing.assert_array_equal(np.asarray(depth), np.stack(frames))  # in memory, in order, none twice
    assert DepthCache(tmp_path / "cache").load("k") is None
