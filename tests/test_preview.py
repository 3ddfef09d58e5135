"""stereo-lit preview (a grid of strengths x convergences) and depth re-import as 16-bit PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stereo_lit.io.frames import to_uint8_frames
from stereo_lit.cli import main as cli_main
from stereo_lit.data.wild import WildVideoDataModule
from stereo_lit.data.wild_sources import resolve_videos
from stereo_lit.stereo.edges import EdgeOptions
from stereo_lit.stereo.disparity import DisparityPolicy
from stereo_lit.generators.geometric import WarpFill
from stereo_lit.io.layouts import apply_convergence, compose
from stereo_lit.io.video_reader import read_frames
from stereo_lit.io.video_writer import write_video
from stereo_lit.commands.preview import LABEL_HEIGHT, main

T, H, W = 6, 32, 48


def textured_clip(path: Path) -> None:
    y, x = np.mgrid[0:H, 0:W]
    frames = np.stack([np.stack([(x * 5 + k * 3) % 256, (y * 7) % 256, ((x // 4 + y // 4) % 2) * 200], -1) for k in range(T)])
    write_video(path, frames.astype(np.uint8), fps=10)


def box_depth() -> np.ndarray:
    """Relative inverse depth [T, H, W]: a far ramp and a near box that moves right."""
    depth = np.tile(np.linspace(0.1, 0.3, W, dtype=np.float32), (T, H, 1))
    for k in range(T):
        depth[k, 8:24, 10 + 2 * k : 26 + 2 * k] = 0.9
    return depth


def expected_cell(video: Path, index: int, depth: np.ndarray, strength: float, convergence: float, layout: str) -> np.ndarray:
    """What predict writes for frame ``index`` at one setting, from the package's own pieces."""
    left = read_frames(video, index, index + 1)
    policy = DisparityPolicy(max_disparity_pct=strength, convergence=convergence)
    policy.fix_video_range("v", torch.from_numpy(depth), "inverse_relative")
    disparity = policy.from_depth(torch.from_numpy(depth[index])[None, None, None], "inverse_relative", "v", width_px=W)
    disparity = EdgeOptions().apply(disparity, policy.convergence_px(W))
    left_t = torch.from_numpy(left).permute(3, 0, 1, 2).float().div(255.0)[None]
    right = to_uint8_frames(WarpFill().generate(left_t, disparity).right[0])
    return compose(layout, *apply_convergence(left, right, policy.convergence_px(W)))[0]


@pytest.mark.parametrize("layout", ["anaglyph", "sbs"])
def test_preview_grid_cells_equal_predict_conversion(tmp_path: Path, layout: str) -> None:
    video = tmp_path / "clip.mp4"
    textured_clip(video)
    depth = box_depth()
    np.save(tmp_path / "clip.npy", depth)
    strengths, convergences = [1.0, 3.0], [0.0, 0.5, 1.0]
    assert main([str(video), "--frame", "2", "--strengths", "1,3", "--convergences", "0,0.5,1",
                 "--layout", layout, "--out", str(tmp_path / "out")]) == 0
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == ["clip.png"]  # one PNG, no temp file left
    grid = np.asarray(Image.open(written[0]).convert("RGB"))
    cell_h, cell_w = LABEL_HEIGHT + H, W * (2 if layout == "sbs" else 1)
    assert grid.shape == (len(strengths) * cell_h, len(convergences) * cell_w, 3)
    cells = {}
    for i, s in enumerate(strengths):
        for j, c in enumerate(convergences):
            cell = grid[i * cell_h : (i + 1) * cell_h, j * cell_w : (j + 1) * cell_w]
            assert cell[:LABEL_HEIGHT].max() > 128  # a drawn label (white on black)
            np.testing.assert_array_equal(cell[LABEL_HEIGHT:], expected_cell(video, 2, depth, s, c, layout))
            cells[s, c] = cell[LABEL_HEIGHT:]
    assert not np.array_equal(cells[1.0, 0.0], cells[3.0, 0.0])  # the settings do change the picture
    assert not np.array_equal(cells[3.0, 0.0], cells[3.0, 1.0])


def test_preview_without_depth_names_the_missing_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    textured_clip(video)
    with pytest.raises(FileNotFoundError, match=r"clip\.npy.*--depth-checkpoint"):
        cli_main(["preview", str(video), "--out", str(tmp_path / "out")])  # through `stereo-lit preview`
    assert not (tmp_path / "out").exists()


def save_png_depth(folder: Path, values: np.ndarray) -> None:
    folder.mkdir()
    for k, frame in enumerate(values):
        Image.fromarray(frame).save(folder / f"{k:06d}.png")


def datamodule_depth(video: Path) -> torch.Tensor:
    datamodule = WildVideoDataModule(str(video), window=5, overlap=1)
    datamodule.setup("predict")
    sample = datamodule._dataset(datamodule.predict_items())[0]
    return sample["depth"]


@pytest.mark.parametrize("suffix", ["_depth", ".depth"])
def test_depth_png_folder_equals_npy(tmp_path: Path, suffix: str) -> None:
    video = tmp_path / "clip.mp4"
    textured_clip(video)
    values = (box_depth() * 65535).round().astype(np.uint16)
    np.save(tmp_path / "clip.npy", values.astype(np.float32) / 65535.0)
    from_npy = datamodule_depth(video)
    (tmp_path / "clip.npy").unlink()
    save_png_depth(tmp_path / f"clip{suffix}", values)
    photos = tmp_path / "photos"  # a folder scan takes the photo, not its depth PNGs (clip.mp4 is tagged as ours)
    photos.mkdir()
    Image.fromarray(read_frames(video, 0, 1)[0]).save(photos / "p.png")
    save_png_depth(photos / f"p{suffix}", values[:1])
    assert [e.path for e in resolve_videos(photos)] == [str(photos / "p.png")]
    from_png = datamodule_depth(video)
    torch.testing.assert_close(from_png, from_npy, rtol=0, atol=0)
    policy = DisparityPolicy(max_disparity_pct=2.0)
    disparity = [policy.from_depth(d[None], "inverse_relative", key, width_px=W) for key, d in (("npy", from_npy), ("png", from_png))]
    torch.testing.assert_close(disparity[0], disparity[1], rtol=0, atol=0)
    assert float(disparity[0].max()) == pytest.approx(0.02 * W)


def test_depth_png_folder_wrong_count_or_size_names_the_folder(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    textured_clip(video)
    values = (box_depth() * 65535).astype(np.uint16)
    save_png_depth(tmp_path / "clip_depth", values[:-1])
    with pytest.raises(ValueError, match=r"clip_depth: depth has 5 frames but .*clip\.mp4 has 6"):
        datamodule_depth(video)
    Image.fromarray(values[0, :, :-2]).save(tmp_path / "clip_depth" / f"{T - 1:06d}.png")
    with pytest.raises(ValueError, match=r"clip_depth: 000005\.png is 46x32 but 000000\.png is 48x32"):
        datamodule_depth(video)
    (tmp_path / "clip_depth" / "000005.png").unlink()
    (tmp_path / "clip_depth" / "000002.png").unlink()
    with pytest.raises(ValueError, match=r"clip_depth: depth PNGs must be numbered"):
        datamodule_depth(video)


def test_preview_of_a_photo_with_its_depth(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    textured_clip(video)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(read_frames(video, 3, 4)[0]).save(photos / "p.png")
    depth = box_depth()[3]
    np.save(photos / "p.npy", depth)  # a photo's depth [H, W]
    assert main([str(photos), "--strengths", "2", "--convergences", "0.5", "--out", str(tmp_path / "out")]) == 0
    grid = np.asarray(Image.open(tmp_path / "out" / "p.png").convert("RGB"))
    assert grid.shape == (LABEL_HEIGHT + H, W, 3)
    np.testing.assert_array_equal(grid[LABEL_HEIGHT:], expected_cell(photos / "p.png", 0, depth[None], 2.0, 0.5, "anaglyph"))


@pytest.mark.slow  # tiny random VDA on CPU: ~30 s on a shared machine
def test_preview_estimates_depth_with_a_checkpoint(tmp_path: Path, tiny_checkpoints: Path) -> None:
    photo = tmp_path / "p.png"
    y, x = np.mgrid[0:H, 0:W]
    Image.fromarray(np.stack([x * 5, y * 7, (x + y) * 2], -1).astype(np.uint8)).save(photo)
    checkpoint = tiny_checkpoints / "video_depth_anything_tiny.pth"
    assert main([str(photo), "--strengths", "1,2", "--convergences", "0", "--layout", "sbs",
                 "--depth-checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]) == 0
    grid = np.asarray(Image.open(tmp_path / "out" / "p.png").convert("RGB"))
    assert grid.shape == (2 * (LABEL_HEIGHT + H), 2 * W, 3)
    np.testing.assert_array_equal(grid[LABEL_HEIGHT : LABEL_HEIGHT + H, :W], np.asarray(Image.open(photo)))  # left eye, no shift
