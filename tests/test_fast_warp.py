"""The compiled CPU warp (stereo_lit.stereo.fast_warp) against the torch reference, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereo_lit.generators import geometric
from stereo_lit.generators.geometric import WarpFill, WarpOnly, fill_from_background
from stereo_lit.io.frames import to_uint8_frames
from stereo_lit.stereo import fast_warp
from stereo_lit.stereo.geometry import forward_warp

pytestmark = pytest.mark.skipif(not fast_warp.available(), reason="numba is not installed")


def _scene(seed: int, frames: int = 3, height: int = 23, width: int = 67) -> tuple[np.ndarray, np.ndarray]:
    """A random picture and a disparity with occluding steps, sub-pixel values, invalid pixels and
    pixels that leave the frame on both sides."""
    rng = np.random.default_rng(seed)
    image = rng.random((3, frames, height, width), dtype=np.float32)
    disparity = (rng.random((frames, height, width), dtype=np.float32) * 9).astype(np.float32)
    disparity[:, :, width // 3 : width // 2] += 14.5  # a near block: occlusions and a disocclusion
    disparity[0, 2, 4], disparity[1, 5, 9], disparity[2, 7, 11] = np.nan, -1.0, np.inf
    disparity[:, 0, :] = 3.0  # a row with whole-pixel disparity: exact shifts
    return image, disparity


def _reference(image: np.ndarray, disparity: np.ndarray, direction: int, fill: bool) -> tuple[np.ndarray, ...]:
    """forward_warp (picture and disparity) and fill_from_background, as WarpFill computed them before."""
    left, d = torch.from_numpy(image)[None], torch.from_numpy(disparity)[None, None]
    warped, covered = forward_warp(left, d, direction=direction)
    clean = torch.where(torch.isfinite(d) & (d >= 0), d, torch.full_like(d, float("nan")))
    disp_right, _ = forward_warp(torch.nan_to_num(clean), clean, direction=direction)
    right = warped * covered
    if fill:
        def frames(x: torch.Tensor) -> torch.Tensor:
            return x[0].permute(1, 0, 2, 3)

        right = fill_from_background(frames(right), frames(covered), frames(disp_right)).permute(1, 0, 2, 3)[None]
    return right[0].numpy(), covered[0, 0].numpy(), disp_right[0, 0].numpy()


@pytest.mark.parametrize("direction", [-1, 1])
@pytest.mark.parametrize("fill", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_kernel_equals_the_torch_reference_bit_for_bit(direction: int, fill: bool, seed: int) -> None:
    image, disparity = _scene(seed)
    right, covered, disp_right = fast_warp.warp_fill(image, disparity, direction=direction, fill=fill)
    ref_right, ref_covered, ref_disp = _reference(image, disparity, direction, fill)
    assert 0.3 < covered.mean() < 1.0  # the scene has holes to fill
    np.testing.assert_array_equal(covered, ref_covered.astype(np.uint8))
    np.testing.assert_array_equal(right, ref_right)
    np.testing.assert_array_equal(disp_right, ref_disp)


@pytest.mark.parametrize("direction", [-1, 1])
def test_taps_of_weight_exactly_a_quarter_claim_and_cover_as_in_the_reference(direction: int) -> None:
    """Quarter-pixel disparities put taps of weight exactly 0.25, the z-buffer's and the cover's
    threshold (``>=``): random values never land there. Near surfaces (d about 7) whose
    0.25-weight taps fall among far ones (d about 1), single taps alone on a target."""
    rng = np.random.default_rng(7)
    frames, height, width = 2, 9, 61
    image = rng.random((3, frames, height, width), dtype=np.float32)
    far = rng.choice(np.float32([0.25, 0.75, 1.25]), size=(frames, height, width))
    near = rng.choice(np.float32([6.25, 6.75, 7.25, 7.75]), size=(frames, height, width))
    disparity = np.where(rng.random((frames, height, width)) < 0.35, near, far).astype(np.float32)
    positions = np.arange(width, dtype=np.float32) + np.float32(direction) * disparity
    assert np.isin(positions - np.floor(positions), [0.25, 0.75]).all()  # every tap pair is 0.75 / 0.25
    right, covered, disp_right = fast_warp.warp_fill(image, disparity, direction=direction, fill=True)
    ref_right, ref_covered, ref_disp = _reference(image, disparity, direction, True)
    np.testing.assert_array_equal(covered, ref_covered.astype(np.uint8))
    np.testing.assert_array_equal(right, ref_right)
    np.testing.assert_array_equal(disp_right, ref_disp)


def test_uint8_frames_give_the_float_result_rounded_as_the_writers_round() -> None:
    image, disparity = _scene(2)
    image_u8 = (image * 255.0 + 0.5).astype(np.uint8)
    right_u8, covered, _ = fast_warp.warp_fill(image_u8, disparity)
    ref_right, ref_covered, _ = _reference(image_u8.astype(np.float32) / np.float32(255.0), disparity, -1, True)
    np.testing.assert_array_equal(covered, ref_covered.astype(np.uint8))
    np.testing.assert_array_equal(right_u8, to_uint8_frames(torch.from_numpy(ref_right)).transpose(3, 0, 1, 2))


def test_strided_views_are_read_where_they_lie() -> None:
    image, disparity = _scene(3)
    frames_last = np.ascontiguousarray(image.transpose(1, 2, 3, 0))  # [T, H, W, 3] as decoded
    view = frames_last.transpose(3, 0, 1, 2)  # [3, T, H, W], not contiguous
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(fast_warp.warp_fill(view, disparity)[0], fast_warp.warp_fill(image, disparity)[0])


def test_bad_shapes_and_dtypes_are_refused() -> None:
    image, disparity = _scene(4)
    with pytest.raises(ValueError, match=r"\[C,T,H,W\]"):
        fast_warp.warp_fill(image[0], disparity)
    with pytest.raises(ValueError, match="uint8 or float32"):
        fast_warp.warp_fill(image.astype(np.float64), disparity)
    with pytest.raises(ValueError, match="direction"):
        fast_warp.warp_fill(image, disparity, direction=0)


@pytest.mark.parametrize("generator", [WarpFill(), WarpOnly(), WarpFill(fill="telea")])
def test_generators_give_the_same_views_with_and_without_the_kernel(generator, monkeypatch) -> None:
    image, disparity = _scene(5)
    left = torch.from_numpy(image).unsqueeze(0).repeat(2, 1, 1, 1, 1)  # a batch of two
    left[1] = left[1].flip(-1)
    d = torch.from_numpy(disparity)[None, None].repeat(2, 1, 1, 1, 1)
    fast = generator.generate(left, d)
    monkeypatch.setattr(geometric.fast_warp, "available", lambda: False)
    slow = generator.generate(left, d)
    torch.testing.assert_close(fast.right, slow.right, rtol=0, atol=0)
    torch.testing.assert_close(fast.known_mask, slow.known_mask, rtol=0, atol=0)
    torch.testing.assert_close(geometric.warp_only(fast), geometric.warp_only(slow), rtol=0, atol=0)
    if getattr(generator, "fill", None) == "background":  # the holes of the warp alone are 0; the covered pixels are the view's
        warped = geometric.warp_only(fast)
        assert not warped[fast.known_mask.expand_as(warped) < 0.5].any()
        torch.testing.assert_close(warped[fast.known_mask.expand_as(warped) > 0.5], fast.right[fast.known_mask.expand_as(warped) > 0.5])


@pytest.mark.parametrize("use_kernel", [True, False])
def test_warp_fill_takes_uint8_and_returns_uint8(use_kernel: bool, monkeypatch) -> None:
    image, disparity = _scene(6)
    left_u8 = torch.from_numpy((image * 255.0 + 0.5).astype(np.uint8))[None]
    d = torch.from_numpy(disparity)[None, None]
    if not use_kernel:
        monkeypatch.setattr(geometric.fast_warp, "available", lambda: False)
    out = WarpFill().generate(left_u8, d)
    assert out.right.dtype == torch.uint8 and out.known_mask.dtype == torch.float32
    from_float = WarpFill().generate(left_u8.float() / 255.0, d).right
    np.testing.assert_array_equal(to_uint8_frames(out.right[0]), to_uint8_frames(from_float[0]))


def test_a_hole_between_equally_far_sides_takes_the_left_side_as_the_reference_does() -> None:
    """A far slit (d = 0 at columns 20-22) in a near plane (d = 5): the right view's columns 15-17
    are a hole between near pixels on both sides (columns 14 and 18, equal disparity)."""
    width = 40
    image = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (3, 1, 1, 1))
    disparity = np.full((1, 1, width), 5.0, dtype=np.float32)
    disparity[..., 20:23] = 0.0
    right, covered, _ = fast_warp.warp_fill(image, disparity)
    np.testing.assert_array_equal(covered[0, 0, 14:19], [1, 0, 0, 0, 1])
    np.testing.assert_array_equal(right[:, 0, 0, 15:18], np.repeat(image[:, 0, 0, 19:20], 3, axis=1))  # source 19 lands on 14
    np.testing.assert_array_equal(right, _reference(image, disparity, -1, True)[0])


def test_a_subclass_with_its_own_generate_gets_floats_unless_it_says_otherwise() -> None:
    class Wrapped(WarpFill):
        def generate(self, left, disparity_px, **kwargs):  # noqa: ANN001, ANN003, ANN201
            return super().generate(left, disparity_px, **kwargs)

    class Declared(WarpFill):
        takes_uint8 = True

        def generate(self, left, disparity_px, **kwargs):  # noqa: ANN001, ANN003, ANN201
            return super().generate(left, disparity_px, **kwargs)

    class Inherited(WarpFill):
        pass

    assert WarpFill.takes_uint8 and WarpOnly.takes_uint8 and Inherited.takes_uint8 and Declared.takes_uint8
    assert not Wrapped.takes_uint8
