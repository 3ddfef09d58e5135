"""Depth files and photos (issue 20, item 4): one size rule for ``.npy`` and ``NAME_depth/`` PNGs,
animated WebP as a video, alpha and 16-bit kept or a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stereo_lit.data.wild import WildVideoDataModule
from test_video_reader import write_test_clip

T, H, W = 5, 32, 48


def _depth_file(video: Path, fmt: str, height: int, width: int) -> None:
    ramp = np.broadcast_to(np.linspace(0.2, 1.0, width, dtype=np.float32), (T, height, width))
    if fmt == "npy":
        np.save(video.with_suffix(".npy"), np.ascontiguousarray(ramp))
    else:
        folder = video.with_name(f"{video.stem}_depth")
        folder.mkdir()
        for k in range(T):
            Image.fromarray((ramp[k] * 65535).astype(np.uint16)).save(folder / f"{k:06d}.png")


def _first_depth(video: Path) -> np.ndarray:
    data = WildVideoDataModule(str(video), window=5, overlap=1)
    data.setup()
    return data._dataset(data.predict_items())[0]["depth"].numpy()[0]


@pytest.mark.parametrize("fmt", ["npy", "png"])
def test_a_depth_of_the_same_aspect_ratio_is_resized_with_a_warning(tmp_path: Path, fmt: str, caplog: pytest.LogCaptureFixture) -> None:
    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=T, height=H, width=W)
    _depth_file(video, fmt, H // 2, W // 2)
    with caplog.at_level(logging.WARNING):
        depth = _first_depth(video)
    assert depth.shape == (T, H, W)
    assert "depth frames are 24x16 (WxH)" in caplog.text and "48x32 as displayed" in caplog.text and "resized" in caplog.text
    np.testing.assert_allclose(depth[0, 0, [0, -1]], [0.2, 1.0], atol=0.03)  # the ramp kept its ends


@pytest.mark.parametrize("fmt", ["npy", "png"])
def test_a_depth_of_another_aspect_ratio_is_an_error_naming_both_sizes(tmp_path: Path, fmt: str) -> None:
    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=T, height=H, width=W)
    _depth_file(video, fmt, W, H)  # in the stored orientation of a rotated video
    with pytest.raises(ValueError, match=r"depth frames are 32x48 \(WxH\) but .*clip.mp4 is 48x32 as displayed.*looks rotated"):
        _first_depth(video)


def test_an_animated_webp_converts_as_a_video(tmp_path: Path) -> None:
    from stereo_lit.cli import build_cli
    from stereo_lit.io.image_reader import is_image_file
    from stereo_lit.io.video_reader import probe_video, read_frames

    frames = [np.full((H, W, 3), 40 * (k + 1), np.uint8) for k in range(3)]
    source = tmp_path / "anim.webp"
    Image.fromarray(frames[0]).save(source, save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]],
                                    duration=100, loop=0, lossless=True)
    assert not is_image_file(source)
    info = probe_video(source)
    assert (info.num_frames, info.height, info.width, info.fps) == (3, H, W, 10.0)
    np.testing.assert_array_equal(read_frames(source), np.stack(frames))
    np.testing.assert_array_equal(read_frames(source, 2, 3), frames[2][None])
    np.save(source.with_suffix(".npy"), np.ones((3, H, W), np.float32))
    out = tmp_path / "out"
    build_cli([
        "predict", "-c", str(Path(__file__).resolve().parents[1] / "stereo_lit/configs/predict_wild.yaml"),
        "--model.generator", "stereo_lit.generators.geometric.WarpFill", "--model.depth", "null",
        "--model.output.dir", str(out), "--data.init_args.source", str(source), "--data.init_args.window", "5",
        "--data.init_args.overlap", "1", "--data.init_args.on_error", "raise", "--model.output.layouts", "[sbs]",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
    ])
    written = read_frames(out / "anim" / "sbs.mp4")
    assert written.shape == (3, H, 2 * W, 3)  # every frame, not frame 0 only
    assert np.abs(written[:, :, :W].mean(axis=(1, 2, 3)) - [40, 80, 120]).max() < 3


@pytest.mark.parametrize("kind", ["alpha", "16-bit", "plain"])
def test_a_photo_losing_alpha_or_16_bits_says_so(tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    import cv2

    from stereo_lit.io.image_reader import probe_image, read_image

    path = tmp_path / "photo.png"
    if kind == "alpha":
        rgba = np.zeros((H, W, 4), np.uint8)
        rgba[..., 0], rgba[..., 3] = 200, 255
        rgba[:, : W // 2, 3] = 0  # the left half transparent
        Image.fromarray(rgba, "RGBA").save(path)
    elif kind == "16-bit":
        cv2.imwrite(str(path), np.full((H, W, 3), 40000, np.uint16))
    else:
        Image.fromarray(np.full((H, W, 3), 100, np.uint8)).save(path)
    with caplog.at_level(logging.WARNING):
        probe_image(path)
    if kind == "plain":
        assert "dropped" not in caplog.text
        return
    assert "photo.png" in caplog.text and "dropped" in caplog.text
    assert ("alpha channel" if kind == "alpha" else "16-bit precision") in caplog.text
    pixels = read_image(path)
    if kind == "alpha":
        assert (pixels[:, : W // 2] == 0).all() and (pixels[:, W // 2 :, 0] == 200).all()  # composited on black, as said
    else:
        assert abs(int(pixels[0, 0, 0]) - 40000 // 257) <= 1


def test_preview_follows_the_same_depth_size_rule(tmp_path: Path) -> None:
    from stereo_lit.commands.preview import frame_and_depth

    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=T, height=H, width=W)
    _depth_file(video, "npy", W, H)
    with pytest.raises(ValueError, match=r"depth frames are 32x48 \(WxH\) but .*clip.mp4 is 48x32"):
        frame_and_depth(str(video), None, None)
