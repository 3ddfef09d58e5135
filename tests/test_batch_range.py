"""Batch size 2: every video of a batch maps depth with its own whole-video range.

Before the fix only ``keys[0]`` got a whole-video range; with two videos per batch each was
fixed from its first window (in the second window most pixels hit the disparity clamp).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_lit.data.collate import collate_samples
from stereo_lit.data.wild import WildVideoDataModule
from stereo_lit.depth.estimator import DepthResult
from stereo_lit.module import StereoLitModule
from test_video_reader import write_test_clip


def _depth_of(frame: np.ndarray) -> np.ndarray:
    """Inverse depth of an RGB frame ``[H, W, 3]`` in [0, 1]: its brightness plus a horizontal ramp."""
    ramp = np.linspace(0.0, 0.1, frame.shape[1], dtype=np.float32)[None, :]
    return frame.mean(axis=-1).astype(np.float32) + ramp


class BrightnessDepth:
    """Deterministic stand-in for VDA: the same per-frame depth on whole videos and on windows."""

    kind = "inverse_relative"

    def video_depth(self, frames_factory, key=None, total_frames=None) -> np.ndarray:
        return np.stack([_depth_of(np.asarray(f, np.float32) / 255.0) for f in frames_factory()])

    def estimate(self, video: torch.Tensor) -> DepthResult:
        frames = video.permute(0, 2, 3, 4, 1).numpy()  # [B, T, H, W, 3]
        depth = np.stack([np.stack([_depth_of(f) for f in clip]) for clip in frames])
        return DepthResult(torch.from_numpy(depth)[:, None], self.kind)


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("two_videos")
    write_test_clip(folder / "a.mp4", num_frames=17, height=32, width=48)
    write_test_clip(folder / "b.mp4", num_frames=25, height=32, width=48)
    return [str(folder / "a.mp4"), str(folder / "b.mp4")]


def _samples(path: str) -> list[dict]:
    data = WildVideoDataModule(path, window=9, overlap=1, use_depth=False)
    return [data._dataset([item]).load(0) for item in data.predict_items()]


def test_each_video_of_a_batch_gets_its_own_whole_video_range(two_videos: list[str]) -> None:
    windows = {path: _samples(path) for path in two_videos}
    alone = {}
    for path, samples in windows.items():
        module = StereoLitModule(depth=BrightnessDepth())
        alone[path] = [module.disparity_for(collate_samples([s]))[0][0] for s in samples]

    module = StereoLitModule(depth=BrightnessDepth())
    a, b = (windows[p] for p in two_videos)
    pairs = [(a[0], b[0]), (a[1], b[1]), (b[2], a[1])]  # the last batch repeats a window of a
    for first, second in pairs:
        batch = collate_samples([first, second])
        disparity = module.disparity_for(batch)[0]
        for i, sample in enumerate((first, second)):
            k = next(j for j, s in enumerate(windows[sample["video_path"]]) if s["window_start"] == sample["window_start"])
            torch.testing.assert_close(disparity[i], alone[sample["video_path"]][k], rtol=0, atol=1e-5)

    # the whole-video range matters here: window 2 of b alone is not clamped to the top, as a
    # range fixed from b's first (darker) window would make it
    max_px = module.policy.max_disparity_px(48)
    assert (alone[two_videos[1]][2][..., :32, :48] >= max_px - 1e-4).float().mean() < 0.5
