"""WildVideoDataModule: sources, windows covering every frame once, padding, depth, audio, bad files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_lit.data.wild import WildVideoDataModule
from stereo_lit.data.wild_sources import resolve_videos
from stereo_lit.io.video_reader import read_frames
from stereo_lit.stereo.padding import Padding, unpad_video
from test_video_reader import write_test_clip


@pytest.fixture()
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    write_test_clip(folder / "a.mp4", num_frames=12, height=40, width=56)
    write_test_clip(folder / "b.mp4", num_frames=7, height=48, width=64, audio=True)
    return folder


def frames_produced(datamodule: WildVideoDataModule) -> dict[str, list[int]]:
    produced: dict[str, list[int]] = {}
    for batch in datamodule.predict_dataloader():
        for name, _reason in batch.get("skipped", []):  # dropped videos travel as markers, never as other items
            produced.setdefault("skipped", []).append(name)
        if "left" not in batch:
            continue
        path = batch["video_path"][0]
        keep, stop = int(batch["keep_start"][0]), int(batch["window_stop"][0])
        assert batch["left"].shape[2] >= stop - int(batch["window_start"][0])
        produced.setdefault(path, []).extend(range(keep, stop))
    return produced


def test_davis_is_padded_to_16_and_restored(shared_dir: Path) -> None:
    video = shared_dir / "samples" / "davis_rollercoaster.mp4"
    datamodule = WildVideoDataModule(str(video), window=5, overlap=1)
    datamodule.setup("predict")
    dataset = datamodule._dataset(datamodule.predict_items())
    sample = dataset[0]
    assert sample["left"].shape == (3, 5, 544, 960)
    assert sample["padding"] == {"bottom": 4, "right": 0, "frames": 0}
    assert sample["num_frames"] == 70 and sample["fps"] == pytest.approx(24.0) and sample["has_audio"] is False
    restored = unpad_video(sample["left"][None], Padding(**sample["padding"]))[0]
    source = torch.from_numpy(read_frames(video, 0, 5)).permute(3, 0, 1, 2).float() / 255.0
    torch.testing.assert_close(restored, source)
    # replicate padding: the added rows repeat the last source row
    torch.testing.assert_close(sample["left"][:, :, 540:], sample["left"][:, :, 539:540].expand(-1, -1, 4, -1))


def test_davis_windows_cover_all_70_frames_once(shared_dir: Path) -> None:
    video = shared_dir / "samples" / "davis_rollercoaster.mp4"
    datamodule = WildVideoDataModule(str(video), window=33, overlap=9, max_side=160)
    datamodule.setup("predict")
    produced = frames_produced(datamodule)
    assert produced == {str(video): list(range(70))}
    batch = next(iter(datamodule.predict_dataloader()))
    assert batch["left"].shape == (1, 3, 33, 96, 160)  # 90x160 padded to 96x160
    assert int(batch["padding"]["bottom"][0]) == 6


def test_folder_source_short_videos_audio_and_temporal_padding(videos: Path) -> None:
    datamodule = WildVideoDataModule(str(videos), window=9, overlap=5)
    datamodule.setup("predict")
    produced = frames_produced(datamodule)
    assert produced == {str(videos / "a.mp4"): list(range(12)), str(videos / "b.mp4"): list(range(7))}
    samples = list(datamodule.predict_dataloader())
    short = samples[-1]
    assert short["left"].shape == (1, 3, 9, 48, 64)  # 7 frames padded in time to 9 (4k+1)
    assert int(short["padding"]["frames"][0]) == 2 and bool(short["has_audio"][0])
    torch.testing.assert_close(short["left"][:, :, 7], short["left"][:, :, 6])
    first = samples[0]
    assert first["left"].shape[-2:] == (48, 64) and int(first["padding"]["bottom"][0]) == 8
    assert not bool(first["has_audio"][0])


def test_reflect_padding_and_fps_resampling(videos: Path) -> None:
    datamodule = WildVideoDataModule(str(videos / "a.mp4"), window=5, overlap=1, pad_mode="reflect", fps=5.0)
    datamodule.setup("predict")
    produced = frames_produced(datamodule)
    assert produced[str(videos / "a.mp4")] == list(range(6))  # 12 frames at 10 fps -> 6 at 5 fps
    sample = next(iter(datamodule.predict_dataloader()))
    assert float(sample["fps"][0]) == 5.0 and int(sample["num_frames"][0]) == 6
    left = sample["left"][0]
    torch.testing.assert_close(left[:, :, 40], left[:, :, 38])  # reflect: row 40 mirrors row 38


def test_depth_next_to_video_is_resized_and_checked(videos: Path) -> None:
    depth = np.linspace(1, 2, 12 * 20 * 28, dtype=np.float32).reshape(12, 20, 28)
    np.savez(videos / "a_depths.npz", depths=depth)
    datamodule = WildVideoDataModule(str(videos / "a.mp4"), window=5, overlap=1)
    datamodule.setup("predict")
    sample = next(iter(datamodule.predict_dataloader()))
    assert sample["depth"].shape == (1, 1, 5, 48, 64) and sample["depth_kind"] == ["inverse_relative"]
    assert torch.allclose(sample["depth"][0, 0, 0, :40, :56].mean(), torch.tensor(float(depth[0].mean())), atol=1e-3)
    (videos / "a_depths.npz").unlink()
    np.save(videos / "a.npy", np.ones((11, 40, 56), np.float32))  # one frame short
    datamodule = WildVideoDataModule(str(videos / "a.mp4"), window=5, overlap=1)
    datamodule.setup("predict")
    with pytest.raises(ValueError, match=r"a\.npy: depth has 11 frames"):
        next(iter(datamodule.predict_dataloader()))
    bad = np.ones((12, 40, 56), np.float32)
    bad[3, 1, 1] = np.nan
    np.save(videos / "a.npy", bad)
    datamodule = WildVideoDataModule(str(videos / "a.mp4"), window=5, overlap=1)
    datamodule.setup("predict")
    with pytest.raises(ValueError, match=r"a\.npy: depth holds NaN"):
        list(datamodule.predict_dataloader())


def test_corrupt_videos_skip_with_warning_or_raise(videos: Path, caplog: pytest.LogCaptureFixture) -> None:
    (videos / "broken.mp4").write_bytes(b"\x00garbage" * 100)
    (videos / "empty.mov").write_bytes(b"")
    with pytest.raises(Exception, match="broken.mp4"):
        WildVideoDataModule(str(videos), window=5, overlap=1).setup("predict")
    datamodule = WildVideoDataModule(str(videos), window=5, overlap=1, on_error="skip")
    with caplog.at_level(logging.WARNING):
        datamodule.setup("predict")
    assert [Path(v.info.path).name for v in datamodule.videos] == ["a.mp4", "b.mp4"]
    assert "broken.mp4" in caplog.text and "empty.mov" in caplog.text


def test_truncated_video_mid_epoch_is_skipped_by_name(videos: Path, caplog: pytest.LogCaptureFixture) -> None:
    datamodule = WildVideoDataModule(str(videos), window=5, overlap=1, on_error="skip")
    datamodule.setup("predict")
    data = (videos / "a.mp4").read_bytes()
    (videos / "a.mp4").write_bytes(data[: len(data) // 3])  # corrupted after probing
    with caplog.at_level(logging.WARNING):
        produced = frames_produced(datamodule)
    assert produced[str(videos / "b.mp4")] == list(range(7))
    assert "a.mp4" in caplog.text
    assert produced["skipped"] == [str(videos / "a.mp4")]  # for the run summary


def test_text_list_csv_and_saved_dataset_sources(videos: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# my videos\nvideos/a.mp4\tgrey ramp\n\nvideos/b.mp4\n")
    entries = resolve_videos(str(listing))
    assert [(Path(e.path).name, e.caption) for e in entries] == [("a.mp4", "grey ramp"), ("b.mp4", "")]
    table = tmp_path / "table.csv"
    table.write_text("video,caption\nvideos/b.mp4,a clip with sound\n")
    entries = resolve_videos(str(table))
    assert entries[0].path == str(tmp_path / "videos" / "b.mp4") and entries[0].caption == "a clip with sound"

    from datasets import Dataset

    saved = tmp_path / "saved"
    Dataset.from_dict({"path": [str(videos / "a.mp4")], "text": ["from datasets"]}).save_to_disk(str(saved))
    datamodule = WildVideoDataModule(str(saved), window=5, overlap=1)
    datamodule.setup("predict")
    batch = next(iter(datamodule.predict_dataloader()))
    assert batch["caption"] == ["from datasets"]
    with pytest.raises(ValueError, match="no path column"):
        resolve_videos(str(table), path_column="nope")


def test_exclude_videos_and_training_clips(videos: Path) -> None:
    datamodule = WildVideoDataModule(str(videos), window=5, overlap=1)
    datamodule.setup("predict")
    datamodule.exclude_videos(lambda path: path.endswith("a.mp4"))
    assert set(frames_produced(datamodule)) == {str(videos / "b.mp4")}
    train = WildVideoDataModule(str(videos / "a.mp4"), window=5, overlap=1, train_stride=3)
    train.setup("fit")
    batches = list(train.train_dataloader())
    assert len(batches) == 3 and all(b["left"].shape == (1, 3, 5, 48, 64) for b in batches)  # starts 0, 3, 6
    with pytest.raises(ValueError, match="4k\\+1"):
        WildVideoDataModule(str(videos), window=8)
