"""forward_warp on a real rectified stereo pair with true disparity (Middlebury Motorcycle).

scikit-image ships the pair and its left disparity (``skimage.data.stereo_motorcycle``;
unknown disparity is inf). The warp of the left view must match the real right view
better than the two reference schemes of :mod:`stereo_lit.stereo.warp_references`, at equal or
better coverage. The images differ photometrically (real cameras), so the absolute
error does not reach 0; the comparison is what matters.
"""

from __future__ import annotations

import pytest
import torch

from stereo_lit.stereo.geometry import forward_warp
from stereo_lit.stereo.warp_references import nearest_zbuffer_warp, soft_splat_warp

import skimage.data as skimage_data  # the dev extra (installed with pytest) ships the Middlebury pair


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    left, right, disparity = skimage_data.stereo_motorcycle()
    to_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255.0  # noqa: E731
    return to_tensor(left), to_tensor(right), torch.from_numpy(disparity)[None, None].float()


def _mae(warped: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> float:
    return float((warped - truth).abs().mean(1, keepdim=True)[mask > 0.5].mean())


def test_disparity_has_unknowns_that_are_never_splatted(pair) -> None:
    _, _, disparity = pair
    assert not torch.isfinite(disparity).all()  # the fixture really exercises invalid input
    warped, covered = forward_warp(torch.ones(1, 1, *disparity.shape[-2:]), disparity)
    assert torch.isfinite(warped).all() and covered.sum() > 0


def test_beats_nearest_and_soft_splatting_at_equal_or_better_coverage(pair) -> None:
    left, right, disparity = pair
    ours, ours_cov = forward_warp(left, disparity)
    nearest, nearest_cov = nearest_zbuffer_warp(left, disparity)
    soft, soft_cov = soft_splat_warp(left, disparity)

    assert ours_cov.mean() >= nearest_cov.mean()
    assert ours_cov.mean() >= soft_cov.mean()
    # each on its own covered pixels ...
    assert _mae(ours, right, ours_cov) < _mae(nearest, right, nearest_cov)
    assert _mae(ours, right, ours_cov) < _mae(soft, right, soft_cov)
    # ... and on the pixels all three cover
    common = ours_cov * nearest_cov * soft_cov
    assert common.mean() > 0.8
    assert _mae(ours, right, common) < _mae(nearest, right, common)
    assert _mae(ours, right, common) < _mae(soft, right, common)


def test_grazing_near_edge_does_not_hide_the_far_surface() -> None:
    """A near surface whose edge covers 10% of a pixel must not blank the far surface there."""
    width = 12
    image = torch.zeros(1, 1, 1, width)
    image[..., :6] = 1.0  # far surface (d = 0), value 1
    disparity = torch.zeros(1, 1, 1, width)
    disparity[..., 8:] = 2.1  # near surface, value 0, lands at x - 2.1
    warped, covered = forward_warp(image, disparity)
    # target column 5: far pixel 5 (weight 1) and the near edge pixel 8 -> 5.9 (weight 0.1 at column 5)
    assert covered[0, 0, 0, 5] == 1
    assert warped[0, 0, 0, 5] == pytest.approx(1.0 / 1.1, abs=1e-6)
