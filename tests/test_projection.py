"""Equirect 180 <-> pinhole projection against direct ray-cast renderings of one scene."""

from __future__ import annotations

import math

import pytest
import torch

from stereo_lit.stereo.projection import (
    default_pinhole_size,
    equirect_rays,
    equirect_to_pinhole,
    pinhole_intrinsics,
    pinhole_rays,
    pinhole_to_equirect,
    rotation_yaw_pitch,
)

_WAVES = torch.tensor(
    [[2.0, -1.0, 0.5, 0.3], [-1.5, 2.5, 1.0, 1.1], [0.7, 1.2, -2.0, 2.0]], dtype=torch.float64
)  # per channel: direction frequencies (rad^-1) and a phase


def smooth_colour(rays: torch.Tensor) -> torch.Tensor:
    """A smooth direction -> RGB function ``[..., 3] -> [3, ...]`` in [0.1, 0.9]."""
    arg = rays @ _WAVES[:, :3].T + _WAVES[:, 3]
    return (0.5 + 0.4 * torch.sin(arg)).movedim(-1, 0)


def checker_colour(rays: torch.Tensor, cells: int = 8) -> torch.Tensor:
    """A checkerboard on the unit sphere (in longitude/latitude cells), ``[1, ...]``."""
    lon = torch.atan2(rays[..., 0], rays[..., 2])
    lat = torch.asin(rays[..., 1].clamp(-1, 1))
    k = torch.floor(lon / math.pi * cells) + torch.floor(lat / math.pi * cells)
    return (k.remainder(2))[None]


def test_pinhole_centre_and_corners_look_where_the_conventions_say() -> None:
    rays = pinhole_rays(5, 7, 90.0)
    assert torch.allclose(rays[2, 3], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    # the centre of the right-most column is at 45 degrees (hfov spans the pixel centres)
    right = rays[2, 6]
    assert math.isclose(math.degrees(math.atan2(right[0], right[2])), 45.0, abs_tol=1e-9)
    fx, fy, cx, cy = pinhole_intrinsics(5, 7, 90.0)
    assert torch.allclose(torch.tensor([fx, fy, cx, cy]), torch.tensor([3.0, 3.0, 3.0, 2.0]))
    eq = equirect_rays(4, 4)
    # column 0 centre at lon = -(90 - 22.5) degrees; row 0 looks up (negative y)
    assert math.isclose(math.degrees(math.atan2(eq[1, 0, 0], eq[1, 0, 2])), -67.5, abs_tol=1e-9)
    assert eq[0, 1, 1] < 0


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (20.0, -10.0)])
def test_equirect_rendering_projects_to_the_pinhole_rendering(yaw: float, pitch: float) -> None:
    rotation = rotation_yaw_pitch(yaw, pitch)
    equirect = smooth_colour(equirect_rays(512, 512)).float()  # [3, He, We]
    size = (48, 64)
    expected = smooth_colour(pinhole_rays(*size, 80.0) @ rotation.T).float()
    got = equirect_to_pinhole(equirect, size, 80.0, rotation)
    assert got.shape == (3, 48, 64)
    # bilinear error of a smooth texture sampled at pi/512 rad per pixel
    assert float((got - expected).abs().max()) < 1e-3


def test_projection_of_a_checkerboard_sphere_agrees_away_from_cell_edges() -> None:
    equirect = checker_colour(equirect_rays(720, 720)).float()
    size = (60, 80)
    rays = pinhole_rays(*size, 90.0)
    expected = checker_colour(rays).float()
    got = equirect_to_pinhole(equirect, size, 90.0)
    # pixels more than one equirect pixel from a cell edge are exact
    lon = torch.atan2(rays[..., 0], rays[..., 2]) / math.pi * 8
    lat = torch.asin(rays[..., 1]) / math.pi * 8
    step = 8 / 720 * 1.5
    interior = ((lon - lon.round()).abs() > step) & ((lat - lat.round()).abs() > step)
    assert interior.float().mean() > 0.5
    assert float((got[0][interior] - expected[0][interior]).abs().max()) < 1e-5


def test_pinhole_to_equirect_inverts_the_projection_inside_the_view() -> None:
    size = (96, 128)
    rotation = rotation_yaw_pitch(-15.0, 5.0)
    pinhole = smooth_colour(pinhole_rays(*size, 100.0) @ rotation.T).float()
    eq_size = (256, 256)
    equirect, valid = pinhole_to_equirect(pinhole, eq_size, 100.0, rotation)
    expected = smooth_colour(equirect_rays(*eq_size)).float()
    assert valid.shape == eq_size and 0.2 < float(valid.mean()) < 0.8
    inside = valid > 0
    assert float((equirect - expected)[:, inside].abs().max()) < 5e-3
    # the direction straight behind the view's edge (lon = +-90 deg) is outside
    assert valid[128, 0] == 0 and valid[128, 255] == 0


def test_video_shaped_input_and_default_size() -> None:
    video = torch.rand(2, 5, 3, 64, 64)  # [B, T, C, He, We]
    out = equirect_to_pinhole(video, (16, 20), 90.0)
    assert out.shape == (2, 5, 3, 16, 20)
    assert torch.allclose(out[1, 3], equirect_to_pinhole(video[1, 3], (16, 20), 90.0))
    h, w = default_pinhole_size(1000, 1000, 90.0)
    assert h == w and abs(w - (2 * 1000 / math.pi + 1)) <= 2


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="hfov_deg"):
        equirect_to_pinhole(torch.zeros(3, 8, 8), (4, 4), 180.0)
    with pytest.raises(ValueError, match="3x3"):
        equirect_to_pinhole(torch.zeros(3, 8, 8), (4, 4), 90.0, torch.eye(2))
