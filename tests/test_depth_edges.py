"""Depth-edge options (issue 14 item 4): exact geometry of dilation, anti-aliasing and foreground scale."""

from __future__ import annotations

import pytest
import torch

from stereo_lit.stereo.edges import EdgeOptions, antialias, dilate_foreground, scale_foreground

NEAR, FAR = 8.0, 2.0


def _step(width: int = 20, height: int = 9, edge: int = 10) -> torch.Tensor:
    """``[1,1,2,H,W]`` disparity: near (8 px) left of column ``edge``, far (2 px) from it on."""
    disparity = torch.full((1, 1, 2, height, width), FAR)
    disparity[..., :edge] = NEAR
    return disparity


@pytest.mark.parametrize("n", [1, 2, 3])
def test_step_edge_dilates_by_exactly_n_px_on_the_near_side(n: int) -> None:
    out = dilate_foreground(_step(), (n, 0))
    assert out.shape == _step().shape
    row = out[0, 0, 0, 4]
    assert row[: 10 + n].eq(NEAR).all() and row[10 + n :].eq(FAR).all()  # near side grew by n columns
    torch.testing.assert_close(out, out[:, :, :, :1].expand_as(out))  # x only: rows unchanged in y


def test_dilation_per_axis() -> None:
    disparity = torch.full((1, 1, 1, 12, 12), FAR)
    disparity[..., 4:6, 4:6] = NEAR  # a 2x2 near box
    out = dilate_foreground(disparity, (1, 3))[0, 0, 0]
    expected = torch.full((12, 12), FAR)
    expected[1:9, 3:7] = NEAR  # grows 3 px up/down, 1 px left/right
    torch.testing.assert_close(out, expected)


def test_antialias_leaves_planes_and_shrinks_steps() -> None:
    ramp = torch.linspace(0, 10, 40).view(1, 1, 1, 1, 40).expand(1, 1, 2, 30, 40).contiguous()
    out = antialias(ramp, 1.5)
    torch.testing.assert_close(out[..., 5:-5], ramp[..., 5:-5], atol=1e-5, rtol=0)  # a plane is unchanged inside
    step = antialias(_step(), 1.0)[0, 0, 0, 4]
    assert step[:6].sub(NEAR).abs().max() < 1e-5 and step[14:].sub(FAR).abs().max() < 1e-5  # far from the edge
    assert FAR < step[9] < NEAR and FAR < step[10] < NEAR  # the step is softened at the edge
    torch.testing.assert_close(step[9] + step[10], torch.tensor(NEAR + FAR))  # symmetric about the edge


def test_foreground_scale_moves_only_what_is_in_front_of_the_screen() -> None:
    disparity = torch.tensor([0.0, 2.0, 4.0, 6.0]).view(1, 1, 1, 1, 4)
    out = scale_foreground(disparity, 2.0, convergence_px=2.0)
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 2.0, 6.0, 10.0]))


def test_defaults_are_the_identity() -> None:
    disparity = torch.rand(2, 1, 3, 8, 10) * 5
    off = EdgeOptions(dilate_px=(0, 0))
    assert off.identity and not EdgeOptions().identity  # the shipped default dilates 1 px in x
    assert off.apply(disparity, 1.0) is disparity
    torch.testing.assert_close(EdgeOptions().apply(disparity), dilate_foreground(disparity, (1, 0)))
    for out in (dilate_foreground(disparity, (0, 0)), antialias(disparity, 0.0), scale_foreground(disparity, 1.0, 2.0)):
        torch.testing.assert_close(out, disparity, rtol=0, atol=0)


def test_options_apply_in_order_with_a_plane_per_video() -> None:
    disparity = torch.cat([_step(), _step()])  # two videos
    out = EdgeOptions(dilate_px=[2, 0], foreground_scale=0.5).apply(disparity, [0.0, FAR])
    row0, row1 = out[0, 0, 0, 4], out[1, 0, 0, 4]
    assert row0[:12].eq(NEAR / 2).all() and row0[12:].eq(FAR / 2).all()  # dilated, then scaled about 0
    assert row1[:12].eq(FAR + (NEAR - FAR) / 2).all() and row1[12:].eq(FAR).all()  # about the plane at 2 px


def test_bad_options_name_the_setting() -> None:
    with pytest.raises(ValueError, match="edges.dilate_px"):
        EdgeOptions(dilate_px=(-1, 0))
    with pytest.raises(ValueError, match="edges.antialias"):
        EdgeOptions(antialias=-1.0)
    with pytest.raises(ValueError, match="edges.foreground_scale"):
        EdgeOptions(foreground_scale=-0.5)


def test_module_applies_edges_to_disparity_from_depth_but_not_to_true_disparity() -> None:
    from stereo_lit.module import StereoLitModule

    inv_depth = _step(width=40, edge=20)  # inverse depth, its 2..98% range maps to [0, max]
    batch = {"left": torch.zeros(1, 3, 2, 9, 40), "depth": inv_depth, "depth_kind": ["inverse_relative"],
             "video_path": ["v.mp4"]}
    plain, _ = StereoLitModule(disparity={"max_disparity_pct": 10.0, "edges": {"dilate_px": [0, 0]}}).disparity_for(dict(batch))
    module = StereoLitModule(disparity={"max_disparity_pct": 10.0, "edges": {"dilate_px": [3, 0]}})
    dilated, _ = module.disparity_for(dict(batch))
    torch.testing.assert_close(dilated, dilate_foreground(plain, (3, 0)))
    assert dilated[0, 0, 0, 4, 22] == 4.0 and plain[0, 0, 0, 4, 22] == 0.0  # 10% of 40 px at the near side
    truth = {"left": batch["left"], "disparity_left_px": plain.clone()}
    torch.testing.assert_close(module.disparity_for(truth)[0], plain)  # ground truth is left alone
    estimated = StereoLitModule(depth=_Estimator(inv_depth), disparity={"max_disparity_pct": 10.0, "edges": {"dilate_px": [3, 0]}})
    torch.testing.assert_close(estimated.disparity_for({"left": batch["left"]})[0], dilated)  # estimator path too


class _Estimator:
    kind = "inverse_relative"

    def __init__(self, inv_depth: torch.Tensor) -> None:
        self.inv_depth = inv_depth

    def estimate(self, video: torch.Tensor):
        from stereo_lit.depth.estimator import DepthResult

        return DepthResult(values=self.inv_depth.clone(), kind=self.kind)


def test_edges_parse_as_grouped_cli_options() -> None:
    from jsonargparse import ArgumentParser

    from stereo_lit.module import StereoLitModule

    parser = ArgumentParser()
    parser.add_class_arguments(StereoLitModule, "model")
    config = parser.parse_args(["--model.disparity.edges.dilate_px=[2, 1]", "--model.disparity.edges.antialias=0.5"])
    edges = parser.instantiate_classes(config).model.edges
    assert edges == EdgeOptions(dilate_px=(2, 1), antialias=0.5, foreground_scale=1.0)
