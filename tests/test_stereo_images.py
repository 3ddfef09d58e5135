"""Middlebury / KITTI folders written from a synthetic scene, and the PFM reader/writer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from stereo_lit.data.pfm import decode_pfm, encode_pfm, read_pfm, write_pfm
from stereo_lit.data.stereo_images import StereoImagesDataModule, parse_middlebury_calib, read_kitti_disparity, write_kitti_disparity
from stereo_lit.data.stereo_video import to_video
from stereo_lit.data.synthetic import render_sequence

H, W = 44, 60


@pytest.fixture(scope="module")
def scene():
    return render_sequence(num_frames=1, height=H, width=W, seed=2)


def test_pfm_round_trip_is_exact(tmp_path) -> None:
    rng = np.random.default_rng(0)
    gray = rng.normal(size=(7, 5)).astype(np.float32)
    gray[0, 0], gray[3, 2] = np.inf, -np.inf
    colour = rng.normal(size=(4, 6, 3)).astype(np.float32)
    for array in (gray, colour):
        back = read_pfm(write_pfm(tmp_path / "x.pfm", array))
        assert back.dtype == np.float32 and back.shape == array.shape
        assert np.array_equal(back, array)
    # rows are stored bottom to top, little-endian with a negative scale
    data = encode_pfm(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    assert data.startswith(b"Pf\n2 2\n-1.0\n")
    assert np.frombuffer(data[-16:], "<f4").tolist() == [3.0, 4.0, 1.0, 2.0]
    big_endian = b"Pf\n2 1\n1.0\n" + np.array([1.5, -2.0], ">f4").tobytes()
    assert decode_pfm(big_endian).tolist() == [[1.5, -2.0]]


def test_bad_pfm_names_the_file(tmp_path) -> None:
    bad = tmp_path / "disp0.pfm"
    bad.write_bytes(b"P6\n2 2\n255\n" + bytes(12))
    with pytest.raises(ValueError, match="disp0.pfm.*not a PFM"):
        read_pfm(bad)
    bad.write_bytes(b"Pf\n4 4\n-1.0\n" + bytes(8))
    with pytest.raises(ValueError, match="disp0.pfm.*truncated"):
        read_pfm(bad)


def write_middlebury(folder, seq, with_disparity: bool = True) -> np.ndarray:
    folder.mkdir(parents=True)
    Image.fromarray(seq.left[0]).save(folder / "im0.png")
    Image.fromarray(seq.right[0]).save(folder / "im1.png")
    disparity = seq.disparity_left_px[0].copy()
    disparity[:3, :5] = np.inf  # unknown
    if with_disparity:
        write_pfm(folder / "disp0.pfm", disparity)
    (folder / "calib.txt").write_text(
        f"cam0=[{seq.fx} 0 {seq.cx}; 0 {seq.fy} {seq.cy}; 0 0 1]\ncam1=[{seq.fx} 0 {seq.cx}; 0 {seq.fy} {seq.cy}; 0 0 1]\n"
        f"doffs=0\nbaseline={seq.baseline_m * 1000}\nwidth={W}\nheight={H}\nndisp=16\n"
    )
    return disparity


def test_middlebury_folder_gives_the_pair_and_its_true_disparity(tmp_path, scene) -> None:
    truth = write_middlebury(tmp_path / "scenes" / "Synth-perfect", scene)
    (batch,) = list(StereoImagesDataModule(tmp_path / "scenes").test_dataloader())
    assert batch["left"].shape == (1, 3, 1, 48, 64) and batch["padding"]["frames"] == 0
    assert torch.equal(batch["left"][0, :, :, :H, :W], to_video(scene.left))
    assert torch.equal(batch["right"][0, :, :, :H, :W], to_video(scene.right))
    d, valid = batch["disparity_left_px"][0, 0, 0], batch["valid_left"][0, 0, 0]
    known = np.isfinite(truth)
    assert torch.equal(valid[:H, :W].bool(), torch.from_numpy(known))
    assert torch.equal(d[:H, :W][valid[:H, :W] > 0], torch.from_numpy(truth[known]))
    assert valid[H:].eq(0).all() and valid[:, W:].eq(0).all()
    assert batch["disparity_source"] == ["ground_truth"] and batch["dataset"] == ["middlebury"]
    fx, fy, cx, cy, baseline = batch["intrinsics"][0].tolist()
    assert math.isclose(fx, scene.fx, rel_tol=1e-6) and math.isclose(baseline, 0.25, rel_tol=1e-6)
    # depth from the calibration, as Middlebury defines it: baseline * f / (d + doffs)
    depth = baseline * fx / (d[20, 30] + batch["doffs_px"][0])
    assert math.isclose(float(depth), float(scene.depth_left_m[0, 20, 30]), rel_tol=1e-4)


def test_calib_parser_reads_the_middlebury_2014_format(tmp_path) -> None:
    calib = tmp_path / "calib.txt"
    calib.write_text(
        "cam0=[3997.684 0 1176.728; 0 3997.684 1011.728; 0 0 1]\ncam1=[3997.684 0 1307.839; 0 3997.684 1011.728; 0 0 1]\n"
        "doffs=131.111\nbaseline=193.001\nwidth=2964\nheight=1988\nndisp=280\nisint=0\nvmin=31\nvmax=257\n"
    )
    c = parse_middlebury_calib(calib)
    assert (c["fx"], c["cx"], c["cy"], c["doffs"]) == (3997.684, 1176.728, 1011.728, 131.111)
    assert math.isclose(c["baseline_m"], 0.193001) and c["ndisp"] == 280.0


def test_kitti_folder_and_16_bit_disparity(tmp_path, scene) -> None:
    root = tmp_path / "kitti" / "training"
    for sub in ("image_2", "image_3", "disp_occ_0"):
        (root / sub).mkdir(parents=True)
    Image.fromarray(scene.left[0]).save(root / "image_2" / "000000_10.png")
    Image.fromarray(scene.right[0]).save(root / "image_3" / "000000_10.png")
    truth = scene.disparity_left_px[0].copy()
    truth[-4:] = 0.0  # unknown (KITTI's 0)
    write_kitti_disparity(root / "disp_occ_0" / "000000_10.png", truth)
    stored = read_kitti_disparity(root / "disp_occ_0" / "000000_10.png")
    assert np.array_equal(np.isnan(stored), truth <= 0)
    coded = truth >= 1 / 256  # smaller positive disparities are stored as 1/256 (0 means unknown)
    assert np.abs(stored[coded] - truth[coded]).max() <= 0.5 / 256 + 1e-6
    assert np.all(stored[(truth > 0) & ~coded] == 1 / 256)
    (batch,) = list(StereoImagesDataModule(tmp_path / "kitti").test_dataloader())
    assert batch["dataset"] == ["kitti"] and batch["sample_id"] == ["kitti:training/000000_10"]
    assert torch.equal(batch["left"][0, :, :, :H, :W], to_video(scene.left))
    assert torch.equal(batch["right"][0, :, :, :H, :W], to_video(scene.right))
    d, valid = batch["disparity_left_px"][0, 0, 0, :H, :W], batch["valid_left"][0, 0, 0, :H, :W]
    assert torch.equal(valid.bool(), torch.from_numpy(truth > 0))
    assert torch.equal(d[valid > 0], torch.from_numpy(stored[truth > 0]))


def test_downscaling_scales_the_disparity(tmp_path, scene) -> None:
    truth = write_middlebury(tmp_path / "s" / "a", scene)
    (batch,) = list(StereoImagesDataModule(tmp_path / "s", max_side=30).test_dataloader())
    p = batch["padding"]
    h, w = batch["left"].shape[-2] - int(p["bottom"]), batch["left"].shape[-1] - int(p["right"])
    assert (h, w) == (22, 30)
    d = batch["disparity_left_px"][0, 0, 0, :h, :w]
    # nearest sample of the true disparity, times the width factor 30/60
    rows, cols = np.floor((np.arange(h) + 0.5) * H / h).astype(int), np.floor((np.arange(w) + 0.5) * W / w).astype(int)
    expected = truth[rows][:, cols] * 0.5
    ok = np.isfinite(expected)
    assert np.allclose(d.numpy()[ok], expected[ok], atol=1e-5)
    assert math.isclose(float(batch["intrinsics"][0, 0]), scene.fx * 0.5, rel_tol=1e-6)


def test_pairs_without_disparity_and_errors(tmp_path, scene) -> None:
    write_middlebury(tmp_path / "m" / "nodisp", scene, with_disparity=False)
    (batch,) = list(StereoImagesDataModule(tmp_path / "m").test_dataloader())
    assert "disparity_left_px" not in batch and batch["disparity_source"] == ["none"]
    (batch,) = list(StereoImagesDataModule(tmp_path / "m", reference_disparity=True).test_dataloader())
    assert batch["disparity_source"] == ["matched"] and batch["disparity_left_px"].shape == (1, 1, 1, 48, 64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no Middlebury"):
        StereoImagesDataModule(tmp_path / "empty").setup()
    bad = tmp_path / "bad" / "scene"
    write_middlebury(bad, scene)
    Image.fromarray(scene.right[0][:, :-2]).save(bad / "im1.png")
    with pytest.raises(ValueError, match=r"different sizes.*im0.png.*im1.png"):
        list(StereoImagesDataModule(tmp_path / "bad").test_dataloader())
    (bad / "im1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="im1.png"):
        list(StereoImagesDataModule(tmp_path / "bad").test_dataloader())
