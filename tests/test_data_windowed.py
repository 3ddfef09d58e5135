"""The shared datamodule base: argument checks, probing with the error policy, resume exclusion,
the ordered predict loader and the evaluation loaders."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch.utils.data import DataLoader, Dataset

from stereo_lit.data.stereo_images import StereoImagesDataModule
from stereo_lit.data.stereo_video import StereoVideoDataModule
from stereo_lit.data.wild import WildVideoDataModule
from stereo_lit.data.windowed import EvalDataloaders, WindowedData, check_pad_mode, check_window


@dataclass(frozen=True)
class Entry:
    path: str


@dataclass(frozen=True)
class Probed:
    path: str
    num_frames: int


class Toy(EvalDataloaders, WindowedData, LightningDataModule):
    """Entries ``a.mp4`` (5 frames), ``broken.mp4`` (probe fails), ``c.mp4`` (9 frames); two
    windows per video, the first window of ``a.mp4`` fails to load with ``fail_a0``."""

    def __init__(
        self, on_error: str = "raise", names: tuple[str, ...] = ("a.mp4", "broken.mp4", "c.mp4"), fail_a0: bool = False,
    ) -> None:
        super().__init__(batch_size=1, num_workers=0, on_error=on_error)
        self.source, self.names, self.fail_a0 = "toy_source", names, fail_a0
        self.videos: list[Probed] | None = None

    def _probe(self, entry: Entry) -> Probed:
        if "broken" in entry.path:
            raise ValueError(f"{entry.path}: moov atom not found")
        return Probed(entry.path, 5 if entry.path.startswith("a") else 9)

    def setup(self, stage: str | None = None) -> None:
        if self.videos is None:
            self.videos = self._probe_sources([Entry(n) for n in self.names], self._probe, "toy video")

    def _active(self) -> list[Probed]:
        self.setup()
        return self._kept(self.videos, lambda v: v.path)

    def _loader(self) -> DataLoader:
        data = Windows([(v.path, k) for v in self._active() for k in (0, 1)], self.fail_a0)
        return self._ordered_loader(data, [path for path, _ in data.items])


class Windows(Dataset):
    """Item ``i`` is window ``items[i] = (video path, window index)``."""

    def __init__(self, items: list[tuple[str, int]], fail_a0: bool) -> None:
        self.items, self.fail_a0 = items, fail_a0

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> dict[str, Any]:
        path, k = self.items[index]
        if self.fail_a0 and (path, k) == ("a.mp4", 0):
            raise OSError("decode error")
        return {"left": torch.full((3, 1, 16, 16), float(k)), "video_path": path, "window": k}

    __getitem__ = load


def names(loader: DataLoader) -> list[Any]:
    """``(video, window)`` per batch, or ``("skipped", video)`` for a skip marker."""
    return [
        ("skipped", b["skipped"][0][0]) if "left" not in b else (b["video_path"][0], int(b["window"][0])) for b in loader
    ]


def test_check_window_and_pad_mode_name_the_argument() -> None:
    check_window(33, 9), check_window(33, 0), check_pad_mode("reflect")
    with pytest.raises(ValueError, match=r"window must be 4k\+1 frames .* got 32"):
        check_window(32, 9)
    with pytest.raises(ValueError, match="overlap"):
        check_window(33, 8)
    with pytest.raises(ValueError, match="pad_mode must be 'replicate' or 'reflect', got 'zeros'"):
        check_pad_mode("zeros")


def test_probe_raise_skip_and_nothing_readable(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="moov atom"):
        Toy("raise").setup()
    skipping = Toy("skip")
    with caplog.at_level(logging.WARNING):
        skipping.setup()
    assert [v.path for v in skipping.videos] == ["a.mp4", "c.mp4"]
    assert skipping.skipped == [("broken.mp4", "ValueError: broken.mp4: moov atom not found")]
    assert "skipping broken.mp4" in caplog.text
    with pytest.raises(ValueError, match="no readable toy video in 'toy_source'"):
        Toy("skip", names=("broken.mp4",)).setup()


def test_excluded_videos_leave_frames_and_loader(caplog: pytest.LogCaptureFixture) -> None:
    data = Toy("skip")
    assert data.total_frames() == 5 + 9
    data.exclude_videos(lambda path: path == "a.mp4")
    with caplog.at_level(logging.INFO):
        assert data.total_frames() == 9
    assert "skipping 1 finished video(s)" in caplog.text
    assert names(data.predict_dataloader()) == [("c.mp4", 0), ("c.mp4", 1)]


def test_eval_loaders_are_one_loader_in_video_order() -> None:
    data = Toy("skip")
    for loader in (data.val_dataloader(), data.test_dataloader(), data.predict_dataloader()):
        assert names(loader) == [("a.mp4", 0), ("a.mp4", 1), ("c.mp4", 0), ("c.mp4", 1)]
        assert list(next(iter(loader))["left"].shape) == [1, 3, 1, 16, 16]


def test_ordered_loader_drops_the_rest_of_a_failing_video_only() -> None:
    """Under ``skip`` a failing window ends its own video (a skip marker naming it), not the next."""
    assert names(Toy("skip", fail_a0=True).predict_dataloader()) == [("skipped", "a.mp4"), ("c.mp4", 0), ("c.mp4", 1)]
    with pytest.raises(OSError, match="decode error"):
        list(Toy("raise", names=("a.mp4",), fail_a0=True).predict_dataloader())


def test_datamodules_keep_their_lightning_hooks() -> None:
    """Wild trains and predicts (no validation loop); the stereo sets evaluate and predict;
    only the video datamodules take the resume exclusion."""
    hooks = ("train_dataloader", "val_dataloader", "test_dataloader", "predict_dataloader")

    def overridden(cls: type) -> list[str]:
        return [h for h in hooks if is_overridden(h, cls, LightningDataModule)]

    assert overridden(WildVideoDataModule) == ["train_dataloader", "predict_dataloader"]
    assert overridden(StereoVideoDataModule) == list(hooks[1:])
    assert overridden(StereoImagesDataModule) == list(hooks[1:])
    assert hasattr(WildVideoDataModule, "exclude_videos") and hasattr(StereoVideoDataModule, "exclude_videos")
    assert not hasattr(StereoImagesDataModule, "exclude_videos")
