"""The model-free baselines: exact behaviour on hand-made scenes."""

from __future__ import annotations

import pytest
import torch

from stereo_lit.generators.geometric import CopyLeft, WarpFill, WarpOnly, fill_from_background


def test_fill_takes_the_far_side() -> None:
    # one row: near surface (d=10, colour 1) | hole | far surface (d=2, colour 0.25)
    image = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.25, 0.25]]).view(1, 1, 1, 8)
    covered = torch.tensor([[1, 1, 1, 0, 0, 0, 1, 1]], dtype=torch.float32).view(1, 1, 1, 8)
    disparity = torch.tensor([[10, 10, 10, 0, 0, 0, 2, 2]], dtype=torch.float32).view(1, 1, 1, 8)
    filled = fill_from_background(image, covered, disparity)
    assert filled.flatten().tolist() == [1.0, 1.0, 1.0, 0.25, 0.25, 0.25, 0.25, 0.25]
    # mirrored scene: the far side is now on the left
    filled = fill_from_background(image.flip(-1), covered.flip(-1), disparity.flip(-1))
    assert filled.flatten().tolist() == [0.25, 0.25, 0.25, 0.25, 0.25, 1.0, 1.0, 1.0]


def test_fill_at_frame_edge_uses_the_only_side() -> None:
    image = torch.tensor([0.0, 0.0, 0.5, 0.75]).view(1, 1, 1, 4)
    covered = torch.tensor([0, 0, 1, 1], dtype=torch.float32).view(1, 1, 1, 4)
    filled = fill_from_background(image, covered, torch.zeros_like(image))
    assert filled.flatten().tolist() == [0.5, 0.5, 0.5, 0.75]


def _plane_scene(disparity: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    left = torch.rand(1, 3, 5, 16, 32)
    return left, torch.full((1, 1, 5, 16, 32), disparity)


def test_warp_fill_shifts_a_plane_and_fills_the_edge() -> None:
    left, disparity = _plane_scene(3.0)
    out = WarpFill().generate(left, disparity)
    assert out.right.shape == left.shape and out.known_mask.shape == disparity.shape
    # right(x) = left(x + 3); the last 3 columns are the uncovered frame edge
    assert torch.allclose(out.right[..., :-3], left[..., 3:], atol=1e-6)
    assert out.known_mask[..., :-3].min() == 1 and out.known_mask[..., -3:].max() == 0
    # edge filled from the only covered neighbour on the row
    assert torch.allclose(out.right[..., -3:], left[..., -1:].expand_as(out.right[..., -3:]), atol=1e-6)


def test_warp_only_leaves_holes_black_and_copy_left_copies() -> None:
    left, disparity = _plane_scene(2.0)
    out = WarpOnly().generate(left, disparity)
    assert torch.count_nonzero(out.right[..., -2:]) == 0
    copy = CopyLeft().generate(left, disparity)
    assert torch.equal(copy.right, left)


def test_telea_fill_is_its_own_method() -> None:
    left, disparity = _plane_scene(2.0)
    gen = WarpFill(fill="telea")
    assert gen.name == "warp_fill_telea"
    out = gen.generate(left, disparity)
    assert torch.allclose(out.right[..., :-2], left[..., 2:], atol=1e-6)
    with pytest.raises(ValueError, match="fill"):
        WarpFill(fill="magic")  # type: ignore[arg-type]
