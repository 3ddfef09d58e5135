"""Shot-aware disparity strength (issue 14 item 3): cuts found, one range per shot, smooth inside a shot."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stereo_lit.depth import VideoDepthAnything, infer_video_depth
from stereo_lit.depth.tiny import tiny_vda_state_dict
from stereo_lit.depth.source import WindowDepth, video_cuts
from stereo_lit.stereo.disparity import DisparityPolicy
from stereo_lit.stereo.shots import detect_cuts, frame_ranges, range_jumps, robust_range, shot_bounds, smooth_shot

CUT = 23  # first frame of the second shot


def _two_shot_frames(num_frames: int = 40, h: int = 36, w: int = 48, seed: int = 0) -> np.ndarray:
    """Shot 1: a dark, slowly moving blue-ish texture; shot 2 (from CUT): a bright orange one."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(num_frames):
        if t < CUT:
            base = np.stack([20 + 10 * np.sin((xx + t) / 5.0), 30 + 0 * xx, 60 + 15 * np.cos(yy / 4.0)], -1)
        else:
            base = np.stack([220 + 20 * np.sin((yy + t) / 6.0), 140 + 0 * xx, 40 + 10 * np.cos(xx / 3.0)], -1)
        frames.append(np.clip(base + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8))
    return np.stack(frames)


def write_two_shot_video(path: Path) -> Path:
    """:func:`_two_shot_frames` as a 10 fps MPEG-4 file (48x36; the cut at frame ``CUT``)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 36, "yuv420p"
        stream.options = {"qscale": "2"}
        for frame in _two_shot_frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _two_shot_depth(num_frames: int = 40, h: int = 12, w: int = 16, seed: int = 0) -> torch.Tensor:
    """Inverse depth ``[T,H,W]``: shot 1 spans ~[0.1, 0.2] (far landscape), shot 2 ~[2, 6] (close-up)."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, w).expand(h, w)
    depth = torch.empty(num_frames, h, w)
    for t in range(num_frames):
        wobble = 0.01 * torch.rand((), generator=g)
        depth[t] = 0.1 + 0.1 * ramp + wobble if t < CUT else 2.0 + 4.0 * ramp + 10 * wobble
    return depth


@pytest.mark.parametrize("method", ["content", "histogram"])
def test_cut_is_found_at_the_first_frame_of_the_new_shot(method: str) -> None:
    assert detect_cuts(iter(_two_shot_frames()), method=method) == [CUT]
    assert detect_cuts(iter(_two_shot_frames()[:CUT]), method=method) == []  # one shot: no cut


def test_cuts_closer_than_min_shot_len_are_merged() -> None:
    clip = _two_shot_frames()
    frames = np.concatenate([clip[:CUT], clip[CUT : CUT + 10], clip[:10]])  # a 10-frame insert
    assert detect_cuts(iter(frames), method="histogram", min_shot_len=15) == [CUT]
    assert detect_cuts(iter(frames), method="histogram", min_shot_len=5) == [CUT, CUT + 10]
    assert detect_cuts(iter(frames), method="content", min_shot_len=5) == [CUT, CUT + 10]


def test_cut_on_a_decoded_video_file_at_the_datamodule_rate(tmp_path: Path) -> None:
    path = tmp_path / "two_shots.mp4"
    write_two_shot_video(path)
    assert video_cuts(str(path), 10.0, (36, 48), cache_dir=tmp_path / "cache") == [CUT]
    assert list((tmp_path / "cache").glob("cuts-*.json"))  # remembered for the next run


def test_each_shot_gets_its_own_robust_range() -> None:
    depth = _two_shot_depth()
    ranges = frame_ranges(depth, [CUT], 2.0, 98.0)
    first, second = robust_range(depth[:CUT], 2.0, 98.0), robust_range(depth[CUT:], 2.0, 98.0)
    torch.testing.assert_close(ranges[:CUT], torch.tensor([first] * CUT, dtype=torch.float64))
    torch.testing.assert_close(ranges[CUT:], torch.tensor([second] * (40 - CUT), dtype=torch.float64))
    assert second[0] > first[1]  # the close-up's range lies wholly above the landscape's

    policy = DisparityPolicy(max_disparity_pct=5.0, convergence=0.0)
    policy.fix_video_range("film", depth[::4], "inverse_relative", depth=depth, cuts=[CUT])
    window = slice(CUT - 5, CUT + 5)  # a window across the cut
    disparity = policy.from_depth(depth[None, None, window], "inverse_relative", "film", width_px=100, start=CUT - 5)
    for shot in (disparity[0, 0, :5], disparity[0, 0, 5:]):  # both shots use the full strength
        assert shot.amin() < 0.3 and shot.amax() > 4.7
    whole = DisparityPolicy(max_disparity_pct=5.0, convergence=0.0, shot_aware=False)
    whole.fix_video_range("film", depth[::4], "inverse_relative", depth=depth, cuts=[CUT])
    flat = whole.from_depth(depth[None, None, window], "inverse_relative", "film", width_px=100, start=CUT - 5)
    assert flat[0, 0, :5].amax() < 0.3  # one range for the film: the landscape shot is flat


def test_range_changes_smoothly_inside_a_shot_and_restarts_at_the_cut() -> None:
    g = torch.Generator().manual_seed(1)
    num_frames, cut = 60, 30
    depth = torch.empty(num_frames, 10, 10)
    for t in range(num_frames):  # per-frame range that flickers by +-30% inside each shot
        level = 1.0 if t < cut else 5.0
        depth[t] = level * (1 + 0.3 * (2 * torch.rand((), generator=g) - 1)) * torch.linspace(0.5, 1, 100).view(10, 10)
    raw = frame_ranges(depth, [cut], smoothing=0.0)
    tau = 6.0
    smooth = frame_ranges(depth, [cut], smoothing=tau)
    alpha = 1 / (1 + tau)
    for start, stop in shot_bounds([cut], num_frames):
        spread = (raw[start:stop].amax(0) - raw[start:stop].amin(0)).amax()
        jumps = range_jumps(smooth[start:stop])
        assert jumps.max() <= alpha * spread + 1e-9  # bounded per-frame change
        assert range_jumps(raw[start:stop]).max() > 3 * jumps.max()  # much less than the raw flicker
    torch.testing.assert_close(smooth[cut], raw[cut : cut + 7].mean(0))  # restarted: no carry from shot 1
    assert range_jumps(smooth, [cut])[cut - 1] == 0  # the cut itself is not counted as flicker


def test_smooth_shot_is_an_ema_of_look_ahead_means() -> None:
    values = torch.tensor([[0.0], [0.0], [3.0], [3.0], [3.0]], dtype=torch.float64)
    out = smooth_shot(values, 1.0)  # look-ahead 1 frame, alpha 1/2
    means = torch.tensor([0.0, 1.5, 3.0, 3.0, 3.0], dtype=torch.float64)
    expected = [means[0]]
    for m in means[1:]:
        expected.append(expected[-1] + 0.5 * (m - expected[-1]))
    torch.testing.assert_close(out[:, 0], torch.stack(expected))


def test_a_single_shot_clip_keeps_the_whole_video_range() -> None:
    n = 130  # > 64 frames: the whole-video sample is every 2nd frame
    ramp = torch.linspace(0, 1, 16).expand(12, 16)
    wobble = torch.rand(n, 1, 1, generator=torch.Generator().manual_seed(3))
    depth = (0.1 + 0.1 * ramp) * torch.linspace(1, 3, n).view(-1, 1, 1) + 0.2 * wobble * ramp  # range grows
    sample = depth[:: max(1, n // 64)]
    shots = DisparityPolicy(shot_aware=True)
    shots.fix_video_range("clip", sample, "inverse_relative", depth=depth, cuts=[])
    whole = DisparityPolicy(shot_aware=False)
    whole.fix_video_range("clip", sample, "inverse_relative")
    a = shots.from_depth(depth[None, None, 5:15], "inverse_relative", "clip", 64, start=5)
    b = whole.from_depth(depth[None, None, 5:15], "inverse_relative", "clip", 64, start=5)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    expected = torch.tensor([robust_range(sample, 2.0, 98.0)] * n, dtype=torch.float64)
    torch.testing.assert_close(frame_ranges(depth, []), expected)


def test_each_shot_runs_its_own_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    import stereo_lit.depth.inference as inference

    seen = []

    def fake_run(model, windows, device, dtype=None):  # depth = the frame's mean input value (network size)
        seen.append(windows.shape[0])
        mean = windows.float().mean(dim=(2, 3, 4))[:, :, None, None]
        return mean.expand(-1, -1, *windows.shape[-2:]).numpy().copy()

    monkeypatch.setattr(inference, "run_windows", fake_run)
    model = VideoDepthAnything("tiny", metric=False)
    frames = _two_shot_frames(num_frames=30, h=14, w=14)
    assert len(infer_video_depth(model, frames, input_size=14, cuts=[CUT])) == 30
    assert len(seen) == 3  # ceil(23 / 22) windows for shot 1, one for shot 2
    seen.clear()
    assert len(infer_video_depth(model, frames, input_size=14)) == 30 and len(seen) == 2


@pytest.mark.slow
def test_depth_windows_restart_at_cuts() -> None:
    model = VideoDepthAnything("tiny", metric=False)
    model.load_state_dict(tiny_vda_state_dict(0))
    model.eval()
    frames = _two_shot_frames(num_frames=30, h=14, w=14)
    cut_depth = infer_video_depth(model, frames, input_size=14, cuts=[CUT])
    alone = [infer_video_depth(model, part, input_size=14) for part in (frames[:CUT], frames[CUT:])]
    np.testing.assert_array_equal(cut_depth, np.concatenate(alone))
    assert not np.array_equal(infer_video_depth(model, frames, input_size=14)[CUT:], alone[1])  # carried otherwise


class _RecordingEstimator:
    kind = "inverse_relative"

    def __init__(self) -> None:
        self.cuts: list | None = None

    def video_depth(self, frames_factory, key=None, total_frames=None, cuts=None):
        self.cuts = cuts
        frames = np.stack(list(frames_factory()))
        return frames.mean(-1).astype(np.float32) / 255.0


def test_window_depth_detects_cuts_and_hands_them_to_the_estimator(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    write_two_shot_video(path)
    estimator = _RecordingEstimator()
    batch = {
        "left": torch.zeros(1, 3, 8, 36, 48), "video_path": [str(path)], "fps": torch.tensor([10.0]),
        "window_start": torch.tensor([20]), "window_stop": torch.tensor([28]), "num_frames": torch.tensor([40]),
    }
    depth, kind, videos = WindowDepth(estimator, shot_aware=True).for_batch(batch)
    assert estimator.cuts == [CUT] and videos[0].cuts == [CUT] and videos[0].start == 20
    assert depth.shape == (1, 1, 8, 36, 48)
    WindowDepth(estimator, shot_aware=False).for_batch(batch)
    assert estimator.cuts is None  # off: no detection, windows run through
