"""Fail before heavy work, with messages that name the file (issue 10, items 7, 13, 14).

Checkpoints, output paths and the data window against the generator window are checked
at setup, before any depth estimation or sampling: the tests plug in a depth estimator
and a generator that fail loudly if they are ever called.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from stereo_lit.cli import main
from stereo_lit.data.collate import collate_samples
from stereo_lit.data.wild import WildVideoDataModule
from stereo_lit.depth.estimator import DepthResult
from stereo_lit.generators.base import StereoOutput
from stereo_lit.generators.geometric import WarpFill
from test_video_reader import write_test_clip

REPO = Path(__file__).resolve().parents[1]


class MustNotRunDepth:
    """A depth estimator that must never be reached."""

    kind = "inverse_relative"

    def estimate(self, video: torch.Tensor) -> DepthResult:
        raise AssertionError("depth ran before the set-up checks")

    def video_depth(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("depth ran before the set-up checks")


class MustNotRunGenerator(WarpFill):
    """A generator that must never be reached."""

    name = "must_not_run"

    def generate(self, left: torch.Tensor, disparity_px: torch.Tensor, **kwargs: Any) -> StereoOutput:
        raise AssertionError("the main generator ran before the set-up checks")


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=9, height=32, width=48)
    return video


def _predict(video: Path, out: Path, *extra: str) -> list[str]:
    return [
        "predict", "-c", str(REPO / "stereo_lit/configs/predict_wild.yaml"), "--model.depth", "test_errors_early.MustNotRunDepth",
        "--model.output.dir", str(out), "--data.init_args.source", str(video),
        "--data.init_args.window", "5", "--data.init_args.overlap", "1", *extra,
    ]


def test_a_missing_wan_checkpoint_fails_before_depth(clip: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no_wan_here"
    with pytest.raises(FileNotFoundError, match="no_wan_here"):
        main(_predict(clip, tmp_path / "out", "--model.wan_checkpoint", str(missing),
                      "--model.generator.init_args.checkpoint", str(missing)))


def test_a_missing_baseline_checkpoint_fails_before_the_main_generator(tmp_path: Path) -> None:
    from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence

    root = tmp_path / "seq"
    write_tartanair_sequence(render_sequence(5, 48, 64, seed=1), root)
    missing = tmp_path / "no_baseline_wan"
    with pytest.raises(FileNotFoundError, match="no_baseline_wan"):
        main([
            "test", "-c", str(REPO / "stereo_lit/configs/demo.yaml"), "--data.init_args.root", str(root),
            "--data.init_args.clip_frames", "5", "--model.output.dir", str(tmp_path / "out"),
            "--model.generator", "test_errors_early.MustNotRunGenerator",
            "--model.baselines", f'[{{"class_path": "stereo_lit.diffusion.WanStereoGenerator", '
            f'"init_args": {{"checkpoint": "{missing}"}}}}]',
        ])


def test_an_output_dir_that_is_a_file_fails_before_depth(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out_is_a_file"
    out.write_text("")
    with pytest.raises(ValueError, match="out_is_a_file exists and is not a directory"):
        main(_predict(clip, out, "--model.generator", "stereo_lit.generators.geometric.WarpFill"))


def test_an_output_dir_below_a_file_fails_before_depth(clip: Path, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match="a_file/out is not writable"):
        main(_predict(clip, tmp_path / "a_file" / "out", "--model.generator", "stereo_lit.generators.geometric.WarpFill"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_dir_fails_before_depth(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "read_only"
    out.mkdir()
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(ValueError, match="read_only is not writable"):
            main(_predict(clip, out, "--model.generator", "stereo_lit.generators.geometric.WarpFill"))
    finally:
        out.chmod(stat.S_IRWXU)


def test_a_generator_window_smaller_than_a_data_window_overlap_fails_at_setup(
    tmp_path: Path, tiny_checkpoints: Path
) -> None:
    """30 frames in data windows of 17 (overlap 9): [0,17) [8,25) [13,30); the last window is
    aligned to the end and overlaps by 12 > the generator's 9 carried frames. Before, this
    crashed after the first windows with ``num_overlap=12 must be in [0, ...9]``."""
    video = tmp_path / "long.mp4"
    write_test_clip(video, num_frames=30, height=32, width=48)
    wan = tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers"
    with pytest.raises(ValueError, match=r"overlaps the previous one by 12 frames \(.*long\.mp4 window \[13, 30\)\).*window=9"):
        main(_predict(video, tmp_path / "out", "--model.wan_checkpoint", str(wan),
                      "--model.generator.init_args.window", "9", "--model.generator.init_args.overlap", "1",
                      "--data.init_args.window", "17", "--data.init_args.overlap", "9"))


# ----------------------------------------------------------------------------- clear messages
def test_mixed_sizes_in_one_batch_say_batch_size_1() -> None:
    a = {"left": torch.zeros(3, 5, 32, 48), "video_path": "a.mp4"}
    b = {"left": torch.zeros(3, 5, 48, 64), "video_path": "b.mp4"}
    with pytest.raises(ValueError, match=r"different sizes .*a\.mp4.*b\.mp4.*batch_size: 1"):
        collate_samples([a, b])
    assert collate_samples([a, dict(a, video_path="c.mp4")])["left"].shape == (2, 3, 5, 32, 48)


def test_a_corrupt_depth_file_is_named(clip: Path) -> None:
    clip.with_suffix(".npy").write_bytes(b"\x93NUMPY\x01\x00garbage header that numpy cannot parse")
    datamodule = WildVideoDataModule(str(clip), window=5, overlap=1)
    datamodule.setup("predict")
    dataset = datamodule._dataset(datamodule.predict_items())
    with pytest.raises(ValueError, match=r"clip\.npy: unreadable depth file"):
        dataset.load(0)


@pytest.mark.parametrize("max_side", [1, 8])
def test_a_tiny_max_side_is_refused(clip: Path, max_side: int) -> None:
    with pytest.raises(ValueError, match=f"max_side must be >= 16 px.*got {max_side}"):
        WildVideoDataModule(str(clip), window=5, overlap=1, max_side=max_side)


def test_constant_relative_depth_is_accepted_with_a_loud_warning(clip: Path, caplog: pytest.LogCaptureFixture) -> None:
    np.save(clip.with_suffix(".npy"), np.full((9, 32, 48), 0.5, np.float32))
    datamodule = WildVideoDataModule(str(clip), window=5, overlap=1)
    datamodule.setup("predict")
    sample = datamodule._dataset(datamodule.predict_items()).load(0)
    assert float(sample["depth"].min()) == float(sample["depth"].max()) == 0.5
    assert "clip.npy (frames 0..4): depth is constant" in caplog.text
