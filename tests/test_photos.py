"""Photos through the real `stereo-lit predict`: PNG/JPEG/WebP in, stereo images out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stereo_lit.io.frames import to_uint8_frames
from stereo_lit.cli import build_cli
from stereo_lit.data.collate import collate_samples
from stereo_lit.io.image_reader import probe_image, read_image
from stereo_lit.stereo.windows import Window
from test_predict_outputs import _args, _clip, _frames

H, W = 32, 48
LAYOUTS = "[right, sbs, sbs_half, tb, tb_half, anaglyph]"
SIZES = {"right": (H, W), "sbs": (H, 2 * W), "sbs_half": (H, W), "tb": (2 * H, W), "tb_half": (H, W), "anaglyph": (H, W)}


def _scene(height: int = H, width: int = W) -> np.ndarray:
    """A textured uint8 [H, W, 3] picture (so the warp moves visible detail)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 5) % 256, (y * 7) % 256, ((x + y) * 3) % 256], -1).astype(np.uint8)


def _photo(path: Path, pixels: np.ndarray, depth_shape: str = "hw", **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **save)
    h, w = pixels.shape[:2]
    ramp = np.broadcast_to(np.linspace(0.2, 1.0, w, dtype=np.float32), (h, w))
    np.save(path.with_suffix(".npy"), np.ascontiguousarray(ramp if depth_shape == "hw" else ramp[None]))
    return path


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _expected_right(cli, source: Path) -> np.ndarray:
    """The right eye of WarpFill on the photo as a one-frame clip, through the module's predict_step."""
    datamodule = cli.datamodule
    video = next(v for v in datamodule.videos if v.info.path == str(source))
    batch = collate_samples([datamodule._dataset([(video, Window(0, 1, 0))])[0]])
    assert batch["left"].shape[2] == 1  # one frame: a valid 4k+1 length, no frame padding
    with torch.no_grad():
        out = cli.model._predict_window(batch)
    return to_uint8_frames(out["right"][0])[0]


@pytest.mark.parametrize(("name", "save", "exact"), [
    ("photo.png", {}, True), ("photo.jpg", {"quality": 98}, False), ("photo.webp", {"lossless": True}, True),
])
def test_photo_writes_every_layout_in_its_format_at_its_size(tmp_path: Path, name: str, save: dict, exact: bool) -> None:
    source = _photo(tmp_path / "in" / name, _scene(), depth_shape="hw" if exact else "1hw", **save)
    out = tmp_path / "out"
    cli = build_cli(_args(source, out, "--model.output.layouts", LAYOUTS, "--model.disparity.convergence", "0.0", "--model.disparity.max_disparity_pct", "10"))
    folder = out / "photo"
    ext = Path(name).suffix
    fmt = {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP"}[ext]
    for layout, size in SIZES.items():
        path = folder / f"{layout}{ext}"
        with Image.open(path) as image:
            assert image.format == fmt
            assert (image.height, image.width) == size
    assert (folder / "stereo-lit.json").is_file() and not list(folder.glob(".*partial*"))
    right = _read(folder / f"right{ext}")
    expected = _expected_right(cli, source)
    left = read_image(source)
    assert np.abs(expected.astype(int) - left.astype(int)).mean() > 5  # the warp really moved pixels
    if exact:
        np.testing.assert_array_equal(right, expected)
        sbs = _read(folder / f"sbs{ext}")  # convergence 0: sbs = left | right exactly
        np.testing.assert_array_equal(sbs[:, :W], left)
        np.testing.assert_array_equal(sbs[:, W:], expected)
    else:  # JPEG q95: close, not equal
        assert np.abs(right.astype(int) - expected.astype(int)).mean() < 3


def test_exif_rotated_jpeg_comes_out_upright(tmp_path: Path) -> None:
    upright = _scene(W, H)  # displayed portrait: 48 high, 32 wide
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # stored landscape, EXIF 6 = rotate 90 CW to display
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    source = tmp_path / "in" / "portrait.jpg"
    source.parent.mkdir()
    image.save(source, quality=100, subsampling=0, exif=exif)
    np.save(source.with_suffix(".npy"), np.ascontiguousarray(np.broadcast_to(np.linspace(0.2, 1.0, H, dtype=np.float32), (W, H))))
    info = probe_image(source)
    assert (info.height, info.width) == (W, H)
    shown = read_image(source).astype(int)
    assert np.abs(shown - upright).mean() < 3  # EXIF rotation applied, the right way round
    assert np.abs(shown - np.rot90(upright, 2)).mean() > 20
    out = tmp_path / "out"
    build_cli(_args(source, out, "--model.output.layouts", "[right, sbs]"))
    with Image.open(out / "portrait" / "sbs.jpg") as sbs:
        assert (sbs.height, sbs.width) == (W, 2 * H)


def test_a_folder_mixing_a_video_and_a_photo_converts_both(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _clip(folder / "clip.mp4", num_frames=9, height=H, width=W)
    _photo(folder / "photo.png", _scene())
    out = tmp_path / "out"
    build_cli(_args(folder, out, "--model.output.layouts", "[right, sbs]"))
    assert _frames(out / "clip" / "sbs.mp4").shape == (9, H, 2 * W, 3)
    assert _read(out / "photo" / "sbs.png").shape == (H, 2 * W, 3)
    assert (out / "clip" / "stereo-lit.json").is_file() and (out / "photo" / "stereo-lit.json").is_file()
    # resume: both finished, a second run redoes nothing
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    build_cli(_args(folder, out, "--model.output.layouts", "[right, sbs]"))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before


def test_without_a_depth_file_the_estimator_runs_on_the_photo(tmp_path: Path) -> None:
    source = tmp_path / "in" / "photo.png"
    source.parent.mkdir()
    pixels = _scene()
    Image.fromarray(pixels).save(source)
    out = tmp_path / "out"
    cli = build_cli(_args(source, out, "--model.output.layouts", "[right]", "--model.depth", "test_time_range.GreyDepth"))
    assert len(cli.model.depth.keys) == 1  # one pass over the one frame
    assert _read(out / "photo" / "right.png").shape == (H, W, 3)
    batch = collate_samples([cli.datamodule._dataset([(cli.datamodule.videos[0], Window(0, 1, 0))])[0]])
    depth, _, _ = cli.model._window_depth.for_batch(batch)
    expected = torch.from_numpy(pixels.mean(-1) / 255.0).float()
    torch.testing.assert_close(depth[0, 0, 0, :H, :W], expected, atol=1e-5, rtol=0)  # the photo's own frame


@pytest.mark.slow  # the tiny random Wan2.1 + VDA checkpoints through predict_wild.yaml
def test_a_photo_through_wan_and_vda(tiny_checkpoints: Path, tmp_path: Path) -> None:
    from test_cli_wan import _tiny_config

    source = tmp_path / "in" / "photo.jpg"
    source.parent.mkdir()
    Image.fromarray(_scene()).save(source, quality=95)  # no depth file: VDA runs on the single frame
    config = _tiny_config("predict_wild.yaml", tiny_checkpoints, tmp_path, **{"window: 81": "window: 5"})
    out = tmp_path / "out"
    build_cli(
        ["predict", "-c", str(config), "--data.init_args.source", str(source), "--model.output.dir", str(out),
         "--model.depth.input_size", "28", "--model.depth.cache_dir", str(tmp_path / "cache"),
         "--data.init_args.overlap", "1", "--model.generator.init_args.overlap", "1", "--trainer.accelerator", "cpu"]
    )
    for layout, size in (("right", (H, W)), ("sbs", (H, 2 * W)), ("anaglyph", (H, W))):
        with Image.open(out / "photo" / f"{layout}.jpg") as image:
            assert image.format == "JPEG" and (image.height, image.width) == size
