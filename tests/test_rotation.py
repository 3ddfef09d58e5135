"""Rotated phone footage and EXIF-rotated photos come out upright (issue 20, item 1).

A portrait clip is stored sideways (landscape frames) with a display rotation of 90, 180 or
270 degrees, as phones write it; the readers apply the rotation, so ``probe_video`` reports
the displayed size and the left eye of every output equals the upright source.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from stereo_lit.cli import build_cli
from stereo_lit.io.image_reader import probe_image, read_image
from stereo_lit.io.video_reader import display_rotation, probe_video, read_frames

REPO = Path(__file__).resolve().parents[1]
H, W, T = 64, 48, 5  # the upright (displayed) portrait size


def upright_frames(num_frames: int = T) -> np.ndarray:
    """A portrait clip with a distinct mark in the top-left corner and a vertical gradient."""
    frames = np.zeros((num_frames, H, W, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 200, H, dtype=np.uint8)[None, :, None]
    frames[..., 1] = np.linspace(0, 150, W, dtype=np.uint8)[None, None, :]
    frames[:, :16, :8, 2] = 255  # top-left mark: tells every rotation apart
    for k in range(num_frames):
        frames[k, -8:, -8:] = 20 * k
    return frames


def write_rotated(path: Path, upright: np.ndarray, degrees: int) -> None:
    """Store ``upright`` rotated back by ``degrees`` (lossless RGB H.264) with a display matrix
    of ``degrees`` counter-clockwise, as a phone does."""
    turns = degrees // 90
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=10)
        stored = np.rot90(upright[0], -turns)
        stream.width, stream.height, stream.pix_fmt = stored.shape[1], stored.shape[0], "rgb24"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        stream.set_display_rotation(degrees)
        for frame in upright:
            data = np.ascontiguousarray(np.rot90(frame, -turns))
            for packet in stream.encode(av.VideoFrame.from_ndarray(data, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_the_reader_applies_the_display_rotation(tmp_path: Path, degrees: int) -> None:
    upright = upright_frames()
    path = tmp_path / f"r{degrees}.mp4"
    write_rotated(path, upright, degrees)
    assert display_rotation(path) == degrees
    info = probe_video(path)
    assert (info.height, info.width, info.rotation) == (H, W, degrees)
    np.testing.assert_array_equal(read_frames(path), upright)
    half = read_frames(path, 1, 3, size=(H // 2, W // 2))  # resizing works on the displayed size
    assert half.shape == (2, H // 2, W // 2, 3)
    assert abs(half[:, :6, :2, 2].astype(int) - 255).max() <= 2  # the mark stays top-left


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_rotated_video_converts_upright(tmp_path: Path, degrees: int) -> None:
    upright = upright_frames()
    video = tmp_path / "phone.mp4"
    write_rotated(video, upright, degrees)
    ramp = np.broadcast_to(np.linspace(0.2, 1.0, W, dtype=np.float32), (T, H, W))
    np.save(video.with_suffix(".npy"), np.ascontiguousarray(ramp))  # depth in displayed orientation
    out = tmp_path / "out"
    build_cli([
        "predict", "-c", str(REPO / "stereo_lit/configs/predict_wild.yaml"),
        "--model.generator", "stereo_lit.generators.geometric.WarpFill", "--model.depth", "null",
        "--model.output.dir", str(out), "--data.init_args.source", str(video),
        "--data.init_args.window", "5", "--data.init_args.overlap", "1", "--model.output.layouts", "[sbs, right]",
        "--model.output.encoder.crf", "0", "--model.output.encoder.preset", "ultrafast",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
    ])
    sbs = read_frames(out / "phone" / "sbs.mp4")
    assert sbs.shape == (T, H, 2 * W, 3)  # upright side by side, not a sideways 2H x W
    left = sbs[:, :, :W].astype(int)
    error = np.abs(left - upright)
    assert error.mean() < 2.0 and (error > 40).mean() < 0.01  # 4:2:0 chroma at crf 0 blurs colour edges only
    assert (left[:, :14, :6, 2] > 200).all() and (left[:, 20:50, 12:36, 2] < 60).all()  # the mark is still top-left
    right = read_frames(out / "phone" / "right.mp4").astype(int)
    assert right.shape == (T, H, W, 3)
    # eyes offset along x: each row of the right eye is the left row shifted, rows keep their colour
    assert np.abs(right[..., 0].mean(axis=2) - upright[..., 0].mean(axis=2)).max() < 6


@pytest.mark.parametrize("orientation,turns", [(3, 2), (6, 1), (8, 3)])
def test_an_exif_rotated_photo_reads_upright(tmp_path: Path, orientation: int, turns: int) -> None:
    """EXIF 6 = "rotate 90 degrees clockwise to display", 8 = counter-clockwise, 3 = 180."""
    upright = upright_frames(1)[0]
    stored = np.ascontiguousarray(np.rot90(upright, turns))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.png"
    Image.fromarray(stored).save(path, exif=exif.tobytes())
    info = probe_image(path)
    assert (info.height, info.width) == (H, W)
    np.testing.assert_array_equal(read_image(path), upright)


def test_a_depth_for_an_exif_rotated_photo_is_read_in_displayed_orientation(tmp_path: Path) -> None:
    """Depth beside an EXIF-rotated photo is in the displayed orientation; one in the stored
    orientation is an error naming both sizes (it was stretched onto the photo silently)."""
    from stereo_lit.data.wild import WildVideoDataModule

    upright = upright_frames(1)[0]
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(path, exif=exif.tobytes(), quality=95)

    def first_depth() -> np.ndarray:
        data = WildVideoDataModule(str(path), window=5, overlap=1)
        data.setup()
        return data._dataset(data.predict_items())[0]["depth"].numpy()[0]

    np.save(path.with_suffix(".npy"), np.ones((W, H), np.float32))  # stored orientation: 48 high, 64 wide
    with pytest.raises(ValueError, match=r"depth frames are 64x48 \(WxH\) but .*photo.jpg is 48x64 as displayed.*looks rotated"):
        first_depth()
    np.save(path.with_suffix(".npy"), np.ones((H, W), np.float32))  # displayed orientation
    assert first_depth().shape[-2:] == (H, W)
