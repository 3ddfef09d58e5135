"""Filling disocclusions from time (stereo_lit.stereo.temporal, WarpFill(fill="temporal")).

Known answers on an analytic layered scene: a textured background plane (disparity 4 px) and a
nearer strip (12 px), camera translating sideways so that the background moves 1 px and the
strip 3 px per frame. The right camera is then exactly where the left camera is 4 frames later:
right_t = left_{t+4}, so every background point the right view shows at t is seen by the left
view in a later frame of a long enough window. All shifts are whole pixels, so with the exact
flow the fill is exact (no interpolation error at all).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from stereo_lit.generators.geometric import WarpFill
from stereo_lit.stereo.geometry import forward_warp, right_disparity_from_left
from stereo_lit.stereo.temporal import consecutive_flows, temporal_fill

D_BG, D_FG = 4.0, 12.0
W, H = 96, 4
STRIP = (30, 62)  # the strip's world columns (its image columns in left frame 0); wider than it moves
# against the background in the window (2 px a frame), so it never passes over a revealed point


def _texture(u: torch.Tensor, layer: int) -> torch.Tensor:
    """RGB ``[3, ...]`` of world column ``u`` on a layer (0 background, 1 strip)."""
    phases = torch.tensor([0.0, 2.0, 4.0]).view(3, *([1] * u.ndim)) + 1.3 * layer
    return 0.5 + 0.4 * torch.sin(2 * math.pi * u / (9.0 + 4 * layer) + phases)


def _scene_frame(time: float, moving: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Left view ``[3, H, W]`` and disparity ``[1, H, W]`` at ``time`` (frames of camera motion)."""
    x = torch.arange(W, dtype=torch.float32)
    shift_bg, shift_fg = (time * D_BG / 4, time * D_FG / 4) if moving else (0.0, 0.0)
    strip = (x + shift_fg >= STRIP[0]) & (x + shift_fg < STRIP[1])
    rgb = torch.where(strip, _texture(x + shift_fg, 1), _texture(x + shift_bg, 0))
    disp = torch.where(strip, torch.tensor(D_FG), torch.tensor(D_BG))
    return rgb[:, None, :].expand(3, H, W).clone(), disp.view(1, 1, W).expand(1, H, W).clone()


def _sequence(num_frames: int, moving: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left ``[T,3,H,W]``, left disparity ``[T,1,H,W]`` and the true right view ``[T,3,H,W]`` (= left at t + 4)."""
    frames = [_scene_frame(t, moving) for t in range(num_frames)]
    right = torch.stack([_scene_frame(t + 4, moving)[0] for t in range(num_frames)]) if moving else None
    return torch.stack([f[0] for f in frames]), torch.stack([f[1] for f in frames]), right


def _exact_flows(disparity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The scene's true flow: each pixel moves by -d/4 px per frame (forward), +d/4 back."""
    t = disparity.shape[0]
    forward = torch.zeros(t - 1, H, W, 2)
    backward = torch.zeros(t - 1, H, W, 2)
    forward[..., 0] = -disparity[:-1, 0] / 4
    backward[..., 0] = disparity[1:, 0] / 4
    return forward, backward


def _warp_parts(left: torch.Tensor, disparity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _, covered = forward_warp(left, disparity)
    disp_right, _ = right_disparity_from_left(disparity)
    return covered, disp_right


def _seen_somewhere(t: int, x: int, num_frames: int) -> bool:
    """Whether the background point the right view shows at (t, x) is in some left frame of the window."""
    u = x + D_BG + t * D_BG / 4  # its world column
    for s in range(num_frames):
        xs = u - s * D_BG / 4
        strip = STRIP[0] <= xs + s * D_FG / 4 < STRIP[1]
        if s != t and 0 <= xs <= W - 1 and not strip:
            return True
    return False


def test_analytic_moving_scene_is_filled_exactly_where_seen_and_by_the_background_rule_elsewhere() -> None:
    num_frames = 9
    left, disparity, right_true = _sequence(num_frames)
    covered, disp_right = _warp_parts(left, disparity)
    colour, source = temporal_fill(left, disparity, covered, disp_right, _exact_flows(disparity))
    hole = covered[:, 0] < 0.5
    assert int(hole.sum()) > 0
    found = source[:, 0] >= 0
    assert not bool((found & ~hole).any()), "covered (visible) pixels are never touched"
    background = WarpFill(fill="background").generate(left.permute(1, 0, 2, 3)[None], disparity.permute(1, 0, 2, 3)[None]).right
    background = background[0].permute(1, 0, 2, 3)
    checked_seen = checked_unseen = 0
    for t, y, x in torch.nonzero(hole).tolist():
        if _seen_somewhere(t, x, num_frames):
            assert found[t, y, x], f"frame {t} column {x}: the background was seen in another frame but not found"
            assert torch.equal(colour[t, :, y, x], right_true[t, :, y, x]), f"frame {t} column {x}: wrong colour"
            checked_seen += 1
        else:
            assert not found[t, y, x], f"frame {t} column {x}: never seen, yet filled from time"
            checked_unseen += 1
    # both kinds occur: the strip's disocclusion and the right frame edge in early frames, the last frame's holes
    assert checked_seen > 100 and checked_unseen > 10
    # frames whose holes were all seen 4 frames later equal the true right view on every hole pixel
    early = slice(0, num_frames - 4)
    assert torch.equal(colour[early].permute(0, 2, 3, 1)[hole[early]], right_true[early].permute(0, 2, 3, 1)[hole[early]])


def test_generator_temporal_equals_background_where_nothing_was_seen_and_on_covered_pixels() -> None:
    left, disparity, right_true = _sequence(9)
    video, disp = left.permute(1, 0, 2, 3)[None], disparity.permute(1, 0, 2, 3)[None]
    temporal = WarpFill(fill="temporal").generate(video, disp)
    background = WarpFill(fill="background").generate(video, disp)
    assert temporal.right.shape == background.right.shape == video.shape
    covered = temporal.known_mask > 0.5
    assert torch.equal(temporal.known_mask, background.known_mask)
    assert torch.equal(temporal.right.expand_as(video)[covered.expand_as(video)], background.right[covered.expand_as(video)])
    # the last frame has no later frame: its holes fall back to the background rule exactly
    assert torch.equal(temporal.right[:, :, -1], background.right[:, :, -1])
    # with DIS flow (not exact; ~3x lower error here) the holes of the early frames come closer to the truth
    truth = right_true.permute(1, 0, 2, 3)[None]
    hole = ~covered[:, :, :5].expand(1, 3, 5, H, W)

    def mse(x: torch.Tensor) -> float:
        return float(((x[:, :, :5] - truth[:, :, :5]) ** 2)[hole].mean())

    assert mse(temporal.right) < 0.5 * mse(background.right)


@pytest.mark.parametrize("flow", ["exact", "dis"])
def test_static_camera_gives_exactly_the_background_result(flow: str) -> None:
    left, disparity, _ = _sequence(6, moving=False)
    covered, disp_right = _warp_parts(left, disparity)
    flows = _exact_flows(disparity * 0) if flow == "exact" else consecutive_flows(left)
    _, source = temporal_fill(left, disparity, covered, disp_right, flows)
    assert not bool((source >= 0).any()), "a static camera never shows what the left view hides"
    video, disp = left.permute(1, 0, 2, 3)[None], disparity.permute(1, 0, 2, 3)[None]
    assert torch.equal(WarpFill(fill="temporal").generate(video, disp).right, WarpFill().generate(video, disp).right)


def test_bad_arguments_are_named() -> None:
    left, disparity, _ = _sequence(3)
    covered, disp_right = _warp_parts(left, disparity)
    with pytest.raises(ValueError, match="flows must be"):
        temporal_fill(left, disparity, covered, disp_right, _exact_flows(disparity[:2]))
    with pytest.raises(ValueError, match="disparity_left_px must be"):
        temporal_fill(left, disparity[:, :, :2], covered, disp_right, _exact_flows(disparity))
    with pytest.raises(ValueError, match="fill must be one of"):
        WarpFill(fill="temporl")
    with pytest.raises(ValueError, match="max_offset"):
        WarpFill(fill="temporal", max_offset=0)
    assert WarpFill(fill="temporal").name == "warp_fill_temporal"


@pytest.mark.parametrize("config", ["eval_tartanair.yaml", "eval_stereo_video.yaml"])
def test_eval_configs_have_a_warp_fill_temporal_row(config: str) -> None:
    from jsonargparse import ArgumentParser

    path = Path(__file__).resolve().parents[1] / "stereo_lit" / "configs" / config
    baselines = yaml.safe_load(path.read_text())["model"]["baselines"]
    rows = [b for b in baselines if b["class_path"].endswith("WarpFill") and (b.get("init_args") or {}).get("fill") == "temporal"]
    assert len(rows) == 1
    parser = ArgumentParser()
    parser.add_subclass_arguments(WarpFill, "method")
    cfg = parser.parse_object({"method": rows[0]})
    method = parser.instantiate_classes(cfg).method
    assert isinstance(method, WarpFill) and method.name == "warp_fill_temporal"


def test_diffusion_starting_point_can_be_the_temporal_fill() -> None:
    from stereo_lit.diffusion.pipeline import WanStereoPipeline

    left, disparity, _ = _sequence(9)
    video, disp = left.permute(1, 0, 2, 3)[None], disparity.permute(1, 0, 2, 3)[None]
    estimate, known = WanStereoPipeline.right_estimate(video, disp, "temporal")
    assert torch.equal(estimate, WarpFill(fill="temporal").generate(video, disp).right)
    background, _ = WanStereoPipeline.right_estimate(video, disp, True)
    assert torch.equal(background, WarpFill().generate(video, disp).right)
    assert not torch.equal(estimate, background)


# ----------------------------------------------------------------------------- camera moving forward too
F_PX, BASE_M, Z_BG, Z_FG, CX = 100.0, 0.5, 10.0, 4.0, 48.0
STRIP_X = (-0.6, 0.7)  # the strip's world x range (m) on the plane z = Z_FG


def _zoom_texture(x_world: torch.Tensor, layer: int) -> torch.Tensor:
    phases = torch.tensor([0.0, 2.0, 4.0]).view(3, *([1] * x_world.ndim)) + 1.3 * layer
    return 0.5 + 0.4 * torch.sin(2 * math.pi * x_world / (1.4 + 0.3 * layer) + phases)


def _zoom_view(cam_x: float, cam_z: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray-cast view ``[3,H,W]`` and disparity ``[1,H,W]`` of a camera at (cam_x, cam_z) (fronto-parallel planes)."""
    x = torch.arange(W, dtype=torch.float64)
    x_fg = cam_x + (x - CX) * (Z_FG - cam_z) / F_PX
    x_bg = cam_x + (x - CX) * (Z_BG - cam_z) / F_PX
    strip = (x_fg >= STRIP_X[0]) & (x_fg < STRIP_X[1])
    rgb = torch.where(strip, _zoom_texture(x_fg, 1), _zoom_texture(x_bg, 0)).float()
    disp = torch.where(strip, F_PX * BASE_M / (Z_FG - cam_z), F_PX * BASE_M / (Z_BG - cam_z)).float()
    return rgb[:, None, :].expand(3, H, W).clone(), disp.view(1, 1, W).expand(1, H, W).clone()


def test_camera_moving_forward_scales_the_offset_and_fills_to_interpolation_accuracy() -> None:
    num_frames, step_x, step_z = 9, 0.08, 0.15
    cams = [(k * step_x, k * step_z) for k in range(num_frames)]
    frames = [_zoom_view(*c) for c in cams]
    left, disparity = torch.stack([f[0] for f in frames]), torch.stack([f[1] for f in frames])
    right_true = torch.stack([_zoom_view(cx + BASE_M, cz)[0] for cx, cz in cams])
    # exact flow: every pixel on its plane moves to where the next camera sees the same world point
    x = torch.arange(W, dtype=torch.float64)
    forward, backward = torch.zeros(num_frames - 1, H, W, 2), torch.zeros(num_frames - 1, H, W, 2)
    for k in range(num_frames - 1):
        for src, dst, out in ((k, k + 1, forward), (k + 1, k, backward)):
            depth = F_PX * BASE_M / disparity[src, 0, 0].double()  # z in the camera of frame src
            world = cams[src][0] + (x - CX) * depth / F_PX
            out[k, :, :, 0] = (CX + F_PX * (world - cams[dst][0]) / (depth + cams[src][1] - cams[dst][1]) - x).float()
    covered, disp_right = _warp_parts(left, disparity)
    colour, source = temporal_fill(left, disparity, covered, disp_right, (forward, backward))
    found = (source[:, 0] >= 0)
    hole = covered[:, 0] < 0.5
    # many holes of the first frames are seen later (the camera moves right by about the baseline; the
    # zoom pushes part of the right frame edge out of every later view)
    assert int((found & hole)[:4].sum()) >= 0.5 * int(hole[:4].sum())
    error = (colour - right_true).abs().amax(1)[found]
    assert float(error.max()) < 0.03, f"max colour error {float(error.max()):.3f}: more than bilinear interpolation explains"


@pytest.mark.parametrize("config", ["eval_tartanair.yaml", "eval_stereo_video.yaml", "demo.yaml"])
def test_the_cli_builds_the_warp_fill_temporal_method_from_the_shipped_configs(config: str) -> None:
    from stereo_lit.cli import build_cli

    cli = build_cli(["-c", str(Path(__file__).resolve().parents[1] / "stereo_lit" / "configs" / config)], run=False)
    rows = [m for m in cli.model.methods if m.name == "warp_fill_temporal"]
    assert len(rows) == 1 and isinstance(rows[0], WarpFill) and rows[0].fill == "temporal"
