"""TartanAirDataModule on synthetic TartanAir-layout sequences (exact ground truth)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence
from stereo_lit.data.tartanair import TartanAirDataModule, resolve_splits
from stereo_lit.data.tartanair_layout import find_trajectories, open_trajectory

TRAJECTORIES = ("envA/Easy/P000", "envA/Hard/P001", "envB/Easy/P000")


@pytest.fixture(scope="module")
def seq():
    return render_sequence(num_frames=9, height=96, width=128, seed=1)


@pytest.fixture()
def tree(tmp_path: Path, seq) -> Path:
    for traj in TRAJECTORIES:
        write_tartanair_sequence(seq, tmp_path / "tartanair" / traj)
    return tmp_path / "tartanair"


def test_sample_contents_match_ground_truth(tree: Path, seq) -> None:
    datamodule = TartanAirDataModule(str(tree), test=["envB"], clip_frames=5, stride=4)
    datamodule.setup("test")
    samples = list(datamodule.dataset("test"))
    assert [s["sample_id"] for s in samples] == ["envB/Easy/P000:000000", "envB/Easy/P000:000004"]
    s = samples[1]
    assert s["left"].shape == s["right"].shape == (3, 5, 96, 128)
    for key in ("depth_left_m", "depth_right_m", "disparity_left_px", "disparity_right_px", "valid_left", "valid_right"):
        assert s[key].shape == (1, 5, 96, 128), key
    expected_left = torch.from_numpy(seq.left[4:9]).permute(3, 0, 1, 2).float() / 255
    torch.testing.assert_close(s["left"], expected_left)
    torch.testing.assert_close(s["disparity_left_px"][0], torch.from_numpy(seq.disparity_left_px[4:9]))
    torch.testing.assert_close(s["depth_right_m"][0], torch.from_numpy(seq.depth_right_m[4:9]))
    assert s["valid_left"].min() == 1
    torch.testing.assert_close(s["intrinsics"], torch.tensor([seq.fx, seq.fy, seq.cx, seq.cy, 0.25]))
    assert (s["env"], s["difficulty"], s["trajectory"], s["first_frame"]) == ("envB", "Easy", "P000", 4)
    assert (s["window_start"], s["window_stop"], s["keep_start"], s["num_frames"]) == (4, 9, 4, 9)
    assert s["video_path"] == str(tree / "envB/Easy/P000") and s["fps"] == 10.0 and s["caption"] == ""


def test_resize_scales_disparity_with_width(tree: Path, seq) -> None:
    datamodule = TartanAirDataModule(str(tree), test=["envA/Easy/P000"], clip_frames=5, size=(48, 64))
    datamodule.setup("test")
    s = next(iter(datamodule.dataset("test")))
    assert s["left"].shape == (3, 5, 48, 64)
    native = torch.from_numpy(seq.disparity_left_px[:5, 1::2, 1::2])  # nearest pixel of each 2x2 block
    torch.testing.assert_close(s["disparity_left_px"][0], native * 0.5)
    torch.testing.assert_close(s["depth_left_m"][0], torch.from_numpy(seq.depth_left_m[:5, 1::2, 1::2]))  # depth not scaled
    torch.testing.assert_close(s["intrinsics"], torch.tensor([seq.fx / 2, seq.fy / 2, seq.cx / 2, seq.cy / 2, 0.25]))
    with pytest.raises(ValueError, match="multiples of 16"):
        TartanAirDataModule(str(tree), size=(50, 64))


def test_frame_step_and_batches(tree: Path) -> None:
    datamodule = TartanAirDataModule(str(tree), train=["envA"], clip_frames=5, stride=2, frame_step=2, batch_size=2)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["left"].shape == (2, 3, 5, 96, 128)
    assert all(stop - start == 9 for start, stop in zip(batch["window_start"].tolist(), batch["window_stop"].tolist()))
    assert batch["fps"].tolist() == [5.0, 5.0] and batch["padding"]["frames"].tolist() == [0, 0]


def test_splits_are_disjoint(tree: Path) -> None:
    datamodule = TartanAirDataModule(str(tree), train=["envA/*/P00*"], val=["envB/Easy"], clip_frames=5)
    datamodule.setup("fit")
    assert datamodule.splits["train"] == ["envA/Easy/P000", "envA/Hard/P001"]
    assert datamodule.splits["val"] == datamodule.splits["test"] == ["envB/Easy/P000"]
    train_ids = {s["sample_id"] for s in datamodule.dataset("train")}
    val_ids = {s["sample_id"] for s in datamodule.dataset("val")}
    assert train_ids and val_ids and not train_ids & val_ids
    with pytest.raises(ValueError, match="shares trajectories"):
        TartanAirDataModule(str(tree), train=["envA"], test=["envA/Hard/P001"]).setup("fit")
    with pytest.raises(ValueError, match="matches no trajectory"):
        TartanAirDataModule(str(tree), test=["envC"]).setup("test")
    everything = resolve_splits(["a", "b"], {"train": None, "val": None, "test": None, "predict": None}, "x")
    assert all(v == ["a", "b"] for v in everything.values())


def test_single_trajectory_root_padding_and_default_intrinsics(tmp_path: Path) -> None:
    small = render_sequence(num_frames=7, height=40, width=56, seed=2)
    root = write_tartanair_sequence(small, tmp_path / "synthetic")
    datamodule = TartanAirDataModule(str(root), clip_frames=9, window=5, overlap=1)
    datamodule.setup("test")
    assert all(ids == ["synthetic"] for ids in datamodule.splits.values())
    s = next(iter(datamodule.dataset("test")))
    assert s["left"].shape == (3, 9, 48, 64) and s["padding"] == {"bottom": 8, "right": 8, "frames": 2}
    assert s["valid_left"][:, :7, :40, :56].min() == 1
    assert s["valid_left"][:, 7:].max() == 0 and s["valid_left"][:, :, 40:].max() == 0 and s["valid_right"][..., 56:].max() == 0
    covered = [k for s in datamodule.dataset("predict") for k in range(s["keep_start"], s["window_stop"])]
    assert covered == list(range(7))
    (root / "meta.json").unlink()  # TartanAir defaults (320, 320, 320, 240, 0.25 at 640x480), scaled
    datamodule = TartanAirDataModule(str(root), clip_frames=5)
    datamodule.setup("test")
    s = next(iter(datamodule.dataset("test")))
    torch.testing.assert_close(s["intrinsics"], torch.tensor([320 * 56 / 640, 320 * 40 / 480, 28.0, 20.0, 0.25]))


def test_predict_windows_in_order_and_exclude(tree: Path) -> None:
    datamodule = TartanAirDataModule(str(tree), train=["envA"], window=5, overlap=1)
    datamodule.setup("predict")
    datamodule.exclude_videos(lambda path: path.endswith("P999"))
    batches = list(datamodule.predict_dataloader())
    assert [(b["video_path"][0], int(b["keep_start"][0]), int(b["window_stop"][0])) for b in batches] == [
        (str(tree / "envB/Easy/P000"), 0, 5), (str(tree / "envB/Easy/P000"), 5, 9)
    ]
    datamodule.exclude_videos(lambda path: path.endswith("envB/Easy/P000"))
    assert list(datamodule.predict_dataloader()) == []


def test_missing_frames_and_mismatched_counts_name_the_folder(tree: Path) -> None:
    (tree / "envA/Easy/P000/image_right/000003_right.png").unlink()
    with pytest.raises(ValueError, match=r"envA/Easy/P000/image_right: 8 frames but image_left has 9 \(missing \[3\]"):
        open_trajectory(tree / "envA/Easy/P000")
    (tree / "envA/Hard/P001/image_left/000004_left.png").unlink()
    with pytest.raises(ValueError, match=r"P001/image_left: missing frames, e.g. indices \[4\]"):
        open_trajectory(tree / "envA/Hard/P001")


def test_bad_depth_errors_masks_and_skips(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad_dtype = tree / "envA/Easy/P000/depth_left/000001_left_depth.npy"
    np.save(bad_dtype, np.load(bad_dtype).astype(np.float64))
    nan_file = tree / "envB/Easy/P000/depth_right/000002_right_depth.npy"
    depth = np.load(nan_file)
    depth[5, 7] = np.nan
    np.save(nan_file, depth)
    datamodule = TartanAirDataModule(str(tree), test=["envA/Easy/P000"], clip_frames=5)
    datamodule.setup("test")
    with pytest.raises(ValueError, match=r"000001_left_depth.npy: depth must be float16 or float32, got float64"):
        next(iter(datamodule.dataset("test")))
    datamodule = TartanAirDataModule(str(tree), test=["envB"], clip_frames=5)
    datamodule.setup("test")
    with pytest.raises(ValueError, match=r"envB/Easy/P000 \(depth_right, frames 0..4\): depth has 1 NaN"):
        next(iter(datamodule.dataset("test")))
    masked = TartanAirDataModule(str(tree), test=["envB"], clip_frames=5, invalid_depth="mask")
    masked.setup("test")
    s = next(iter(masked.dataset("test")))
    assert s["valid_right"][0, 2, 5, 7] == 0 and s["disparity_right_px"][0, 2, 5, 7] == 0 and s["valid_right"].sum() == 5 * 96 * 128 - 1
    skipping = TartanAirDataModule(str(tree), train=["envA/Easy/P000"], test=["envB"], clip_frames=5, stride=1, on_error="skip")
    skipping.setup("fit")
    with caplog.at_level(logging.WARNING):
        samples = [skipping.dataset("train")[0]]
    assert "000001_left_depth.npy" in caplog.text and samples[0]["first_frame"] == 2  # the next good clip replaces it


def test_broken_trajectory_is_skipped_at_setup(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.rmtree(tree / "envA/Hard/P001/depth_left")
    (tree / "envA/Hard/P001/depth_left").mkdir()
    (tree / "envA/Hard/P001/depth_left/000000_left_depth.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="P001/depth_left: 1 frames"):
        TartanAirDataModule(str(tree)).setup("test")
    datamodule = TartanAirDataModule(str(tree), on_error="skip")
    with caplog.at_level(logging.WARNING):
        datamodule.setup("test")
    assert "envA/Hard/P001" not in datamodule.splits["test"] and "P001" in caplog.text


def _write_v2(seq, folder: Path) -> None:
    for sub in ("image_lcam_front", "image_rcam_front", "depth_lcam_front", "depth_rcam_front"):
        (folder / sub).mkdir(parents=True)
    for k in range(seq.left.shape[0]):
        Image.fromarray(seq.left[k]).save(folder / "image_lcam_front" / f"{k:06d}_lcam_front.png")
        Image.fromarray(seq.right[k]).save(folder / "image_rcam_front" / f"{k:06d}_rcam_front.png")
        for eye, depth in (("lcam", seq.depth_left_m[k]), ("rcam", seq.depth_right_m[k])):
            packed = np.ascontiguousarray(depth.astype("<f4")).view(np.uint8).reshape(*depth.shape, 4)
            Image.fromarray(packed, mode="RGBA").save(folder / f"depth_{eye}_front" / f"{k:06d}_{eye}_front_depth.png")


def test_tartanair_v2_layout_reads_packed_depth(tmp_path: Path, seq) -> None:
    _write_v2(seq, tmp_path / "v2" / "envC" / "Data_hard" / "P002")
    assert find_trajectories(tmp_path / "v2") == [tmp_path / "v2/envC/Data_hard/P002"]
    datamodule = TartanAirDataModule(str(tmp_path / "v2"), clip_frames=5)
    datamodule.setup("test")
    s = next(iter(datamodule.dataset("test")))
    assert (s["env"], s["difficulty"], s["trajectory"]) == ("envC", "Hard", "P002")
    torch.testing.assert_close(s["depth_left_m"][0], torch.from_numpy(seq.depth_left_m[:5]))
    torch.testing.assert_close(s["right"], torch.from_numpy(seq.right[:5]).permute(3, 0, 1, 2).float() / 255)
    # v2 defaults: fx = fy = 320, cx = cy = 320 at 640x640, scaled to 96x128
    torch.testing.assert_close(s["intrinsics"], torch.tensor([64.0, 48.0, 64.0, 48.0, 0.25]))
    torch.testing.assert_close(s["disparity_left_px"][0], 64.0 * 0.25 / torch.from_numpy(seq.depth_left_m[:5]))
    assert json.dumps(s["padding"])  # plain ints
