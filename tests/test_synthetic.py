"""The synthetic renderer: TartanAir layout, exact depth, eyes consistent with the geometry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stereo_lit.data.synthetic import BASELINE_M, SKY_DEPTH_M, render_sequence, write_tartanair_sequence
from stereo_lit.stereo.geometry import forward_warp

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seq():
    return render_sequence(num_frames=5, height=96, width=128, seed=0)


def test_intrinsics_scale_with_size(seq) -> None:
    assert (seq.fx, seq.fy, seq.cx, seq.cy) == (64.0, 64.0, 64.0, 48.0)
    assert seq.baseline_m == BASELINE_M
    assert seq.left.shape == (5, 96, 128, 3) and seq.left.dtype == np.uint8
    assert seq.depth_left_m.dtype == np.float32 and seq.depth_left_m.shape == (5, 96, 128)


def test_depth_is_exact_on_the_back_wall(seq) -> None:
    # top-centre rows look at the back wall z = 14 m, camera moves +0.03 m/frame in z
    for k in (0, 4):
        wall = seq.depth_left_m[k, 36, 64]
        assert wall == pytest.approx(14.0 - 0.03 * k, abs=1e-4)
    assert np.isclose(seq.depth_left_m, SKY_DEPTH_M).any()  # sky: large finite depth
    assert np.isfinite(seq.depth_left_m).all()


def test_right_eye_matches_the_warped_left_eye(seq) -> None:
    left = torch.from_numpy(seq.left).permute(3, 0, 1, 2)[None].float() / 255
    right = torch.from_numpy(seq.right).permute(3, 0, 1, 2)[None].float() / 255
    disparity = torch.from_numpy(seq.disparity_left_px)[None, None]
    warped, covered = forward_warp(left, disparity)
    # away (more than 2 px) from depth discontinuities, found in the right (target) frame
    disparity_right = torch.from_numpy(seq.fx * seq.baseline_m / seq.depth_right_m)[None, None]
    jump = (disparity_right[..., 1:] - disparity_right[..., :-1]).abs() > 0.5
    edge = torch.zeros_like(disparity_right, dtype=torch.bool)
    edge[..., 1:] |= jump
    edge[..., :-1] |= jump
    near_edge = torch.nn.functional.max_pool3d(edge.float(), (1, 5, 5), 1, (0, 2, 2)) > 0
    keep = (covered > 0) & ~near_edge
    mse = ((warped - right) ** 2).mean(1, keepdim=True)[keep].mean()
    print(f"PSNR away from edges: {10 * torch.log10(1 / mse):.2f} dB")
    assert 10 * torch.log10(1 / mse) >= 35.0
    # real disocclusions exist (left pixels the right camera does not see)
    assert (covered == 0).float().mean() > 0.01


def test_moving_object_moves(seq) -> None:
    assert np.abs(seq.left[0].astype(int) - seq.left[4].astype(int)).mean() > 1.0
    changed = np.abs(seq.depth_left_m[0] - seq.depth_left_m[4]) > 0.5
    assert changed.any()


def test_writer_layout_and_cli_skip(tmp_path: Path, seq) -> None:
    out = write_tartanair_sequence(seq, tmp_path / "P000")
    assert sorted(p.name for p in out.iterdir()) == [
        "depth_left", "depth_right", "image_left", "image_right", "meta.json", "pose_left.txt",
    ]
    assert Image.open(out / "image_right" / "000004_right.png").size == (128, 96)
    depth = np.load(out / "depth_left" / "000000_left_depth.npy")
    assert depth.dtype == np.float32 and np.array_equal(depth, seq.depth_left_m[0])
    assert len((out / "pose_left.txt").read_text().splitlines()) == 5

    spec = importlib.util.spec_from_file_location("make_synthetic", REPO / "data_prep" / "make_synthetic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = tmp_path / "cli_seq"
    module.main(["--out", str(target), "--frames", "2", "--height", "32", "--width", "48"])
    stamp = (target / "meta.json").stat().st_mtime_ns
    module.main(["--out", str(target), "--frames", "2", "--height", "32", "--width", "48"])
    assert (target / "meta.json").stat().st_mtime_ns == stamp  # complete: skipped


def test_bad_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="8x8"):
        render_sequence(1, 4, 4)
