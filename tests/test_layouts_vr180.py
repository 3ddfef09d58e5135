"""VR180 layout and player file names (issue 14, item 2).

The layout is checked against an exact answer: a synthetic scene ray-cast into a
rectified pinhole left/right pair and converted with the ``vr180`` layout must equal the
same scene ray-cast directly into each 180-degree equirect half (renderers from
tests/test_projection.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_lit.io.layouts import (
    LAYOUTS, PLAYER_SUFFIXES, VR180_MAX_EYE, VR180Options, compose, output_filename, vr180,
)
from stereo_lit.io.output_manifest import MANIFEST_NAME
from stereo_lit.stereo.projection import equirect_rays, pinhole_focal_px, pinhole_rays, rotation_yaw_pitch
from test_projection import smooth_colour

_RIGHT_SCENE = rotation_yaw_pitch(35.0, -20.0)  # the right eye sees another (rotated) scene, so a swap shows


def _uint8(colour: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` in [0, 1] -> uint8 ``[H, W, 3]``."""
    return (colour.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def _pinhole_pair(size: tuple[int, int], hfov: float) -> tuple[np.ndarray, np.ndarray]:
    rays = pinhole_rays(*size, hfov)
    return _uint8(smooth_colour(rays))[None], _uint8(smooth_colour(rays @ _RIGHT_SCENE.T))[None]


def _inside(size: int, hfov: float, h: int, w: int, margin: float = 1.0) -> np.ndarray:
    """Equirect pixels whose direction lies at least ``margin`` source pixels inside the
    pinhole frustum (a negative margin: that far outside it, or further in)."""
    rays = equirect_rays(size, size)
    f = pinhole_focal_px(w, hfov)
    z = rays[..., 2].clamp_min(1e-9)
    u, v = f * rays[..., 0] / z + (w - 1) / 2, f * rays[..., 1] / z + (h - 1) / 2
    lo, hi_u, hi_v = margin - 0.5, w - 0.5 - margin, h - 0.5 - margin
    return ((rays[..., 2] > 0) & (u > lo) & (u < hi_u) & (v > lo) & (v < hi_v)).numpy()


@pytest.mark.parametrize("hfov", [90.0, 60.0])
def test_vr180_of_a_ray_cast_pinhole_pair_equals_the_direct_equirect_rendering(hfov: float) -> None:
    h, w, size = 96, 128, 240
    left, right = _pinhole_pair((h, w), hfov)
    out = vr180(left, right, VR180Options(hfov_deg=hfov, eye_size=size))
    assert out.shape == (1, size, 2 * size, 3) and out.dtype == np.uint8
    eq = equirect_rays(size, size)
    expected_left = _uint8(smooth_colour(eq))
    expected_right = _uint8(smooth_colour(eq @ _RIGHT_SCENE.T))
    inside = _inside(size, hfov, h, w)
    assert 0.05 < inside.mean() < 0.6
    got_left, got_right = out[0, :, :size].astype(int), out[0, :, size:].astype(int)
    # uint8 rounding twice + bilinear between source pixels: within 2 levels
    assert np.abs(got_left - expected_left)[inside].max() <= 2
    assert np.abs(got_right - expected_right)[inside].max() <= 2
    # outside the source's field of view (e.g. lon = +-90 deg, the poles) the frame is black
    outside = ~_inside(size, hfov, h, w, margin=-1.0)  # beyond one pixel past the frustum's edge
    assert outside.mean() > 0.3
    assert out[0, :, :size][outside].max() == 0 and out[0, :, size:][outside].max() == 0


def test_vr180_centre_column_spans_the_source_field_of_view() -> None:
    """The source's left/right edge columns land at longitude -+hfov/2 of each half."""
    h, w, size, hfov = 32, 64, 360, 80.0
    left = np.zeros((1, h, w, 3), np.uint8)
    left[:, :, 0] = 255  # left edge column marked
    out = vr180(left, left, VR180Options(hfov_deg=hfov, eye_size=size))
    row = out[0, size // 2, :size, 0].astype(int)
    lon_deg = ((np.arange(size) + 0.5) / size - 0.5) * 180.0
    lit = lon_deg[row > 0]
    assert lit.min() >= -hfov / 2 - 0.5 - 1e-6  # nothing left of the frustum (half a degree = one px here)
    assert abs(lon_deg[np.argmax(row)] - (-hfov / 2)) <= 0.5 + 1e-6  # the brightest column sits on -hfov/2


def test_default_eye_size_matches_the_source_pixel_density_and_is_capped() -> None:
    opts = VR180Options(hfov_deg=90.0)
    side = opts.size_for(640)
    assert side % 2 == 0 and abs(side - math.pi * pinhole_focal_px(640, 90.0)) <= 2
    assert opts.size_for(3840) == VR180_MAX_EYE
    assert VR180Options(eye_size=300).size_for(3840) == 300
    with pytest.raises(ValueError, match="model.output.vr180.hfov_deg"):
        VR180Options(hfov_deg=180.0)
    left = np.zeros((2, 16, 20, 3), np.uint8)
    assert compose("vr180", left, left, VR180Options(eye_size=40)).shape == (2, 40, 80, 3)


def test_player_names_carry_the_format_suffixes_and_plain_names_stay() -> None:
    assert [output_filename(layout) for layout in LAYOUTS] == [f"{layout}.mp4" for layout in LAYOUTS]
    assert output_filename("sbs", "player", "clip") == "clip_LRF_Full_SBS.mp4"
    assert output_filename("sbs_half", "player", "clip") == "clip_LR_Half_SBS.mp4"
    assert output_filename("tb", "player", "clip") == "clip_TBF_fulltb.mp4"
    assert output_filename("tb_half", "player", "clip") == "clip_TB.mp4"
    assert output_filename("vr180", "player", "clip") == "clip_180x180_3dh_LR.mp4"
    assert len(set(PLAYER_SUFFIXES.values())) == len(LAYOUTS)  # no two layouts share a name
    with pytest.raises(ValueError, match="model.output.naming"):
        output_filename("sbs", "deovr", "clip")


def test_cli_writes_vr180_with_player_names_and_a_changed_fov_redoes_the_video(tmp_path: Path) -> None:
    from test_predict_outputs import _args, _clip, _frames

    from stereo_lit.cli import build_cli

    video = _clip(tmp_path / "clip.mp4", num_frames=5)
    out = tmp_path / "out"
    extra = ["--model.output.layouts", "[sbs, vr180]", "--model.output.naming", "player", "--model.output.vr180.eye_size", "64"]
    build_cli(_args(video, out, *extra))
    folder = out / "clip"
    vr_file, sbs_file = folder / "clip_180x180_3dh_LR.mp4", folder / "clip_LRF_Full_SBS.mp4"
    assert sorted(p.name for p in folder.glob("*.mp4")) == sorted([vr_file.name, sbs_file.name])
    frames = _frames(vr_file)
    assert frames.shape == (5, 64, 128, 3)
    assert frames[:, 32, 0].max() < 16 and frames[:, 0].max() < 16  # lon -90 deg and the zenith: black
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["layouts"]["vr180"]["file"] == vr_file.name
    assert manifest["settings"]["naming"] == "player" and manifest["settings"]["vr180"]["hfov_deg"] == 90.0
    stamp = vr_file.stat().st_mtime_ns
    build_cli(_args(video, out, *extra))  # same settings: finished, not rewritten
    assert vr_file.stat().st_mtime_ns == stamp
    build_cli(_args(video, out, *extra, "--model.output.vr180.hfov_deg", "70"))
    assert vr_file.stat().st_mtime_ns != stamp
    assert json.loads((folder / MANIFEST_NAME).read_text())["settings"]["vr180"]["hfov_deg"] == 70.0
