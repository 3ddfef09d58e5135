"""Flow-based warping error and seam jumps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.metrics import WarpingError


def _video(frames_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames_u8).permute(3, 0, 1, 2)[None].float() / 255.0


@pytest.fixture(scope="module")
def moving():
    seq = render_sequence(5, 96, 128)  # moving camera and a moving box
    return _video(seq.right)


def _static(frames: int = 4) -> torch.Tensor:
    image = torch.rand(1, 3, 1, 48, 64, generator=torch.Generator().manual_seed(0))
    image = torch.nn.functional.avg_pool3d(image, (1, 3, 3), stride=1, padding=(0, 1, 1))
    return image.repeat(1, 1, frames, 1, 1)


def test_static_video_has_no_warping_error_and_flicker_has() -> None:
    static = _static()
    metric = WarpingError()
    metric.update(static, static)
    assert float(metric.compute()["warp_error"]) < 1e-8
    flicker = static.clone()
    flicker[:, :, 1::2] = (flicker[:, :, 1::2] + 0.1).clamp(0, 1)
    metric = WarpingError()
    metric.update(flicker, static)
    assert float(metric.compute()["warp_error"]) > 5e-3


def _translating(frames: int = 4, step_px: int = 3) -> torch.Tensor:
    wide = torch.rand(1, 3, 1, 48, 96 + frames * step_px, generator=torch.Generator().manual_seed(1))
    wide = torch.nn.functional.avg_pool3d(wide, (1, 5, 5), stride=1, padding=(0, 2, 2))
    return torch.cat([wide[..., t * step_px : t * step_px + 96] for t in range(frames)], dim=2)


def test_motion_is_compensated_by_the_flow(moving) -> None:
    for video, factor in ((_translating(), 0.1), (moving, 0.5)):
        metric = WarpingError()
        metric.update(video, video)
        compensated = float(metric.compute()["warp_error"])
        plain = float((video[:, :, 1:] - video[:, :, :-1]).pow(2).mean())
        assert compensated < factor * plain


def test_seam_jump_detects_an_injected_jump(moving) -> None:
    clean = WarpingError()
    clean.update(moving, moving, seam_frames=[2])
    clean_out = {k: float(v) for k, v in clean.compute().items()}
    assert 0.5 < clean_out["seam_jump_ratio"] < 2.0
    jumped = moving.clone()
    jumped[:, :, 2:] = (jumped[:, :, 2:] * 0.85 + 0.08).clamp(0, 1)  # next window: other colours
    metric = WarpingError()
    metric.update(jumped, moving, seam_frames=[2])
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["seam_jump_ratio"] > 3.0
    assert out["seam_jump"] > out["nonseam_jump"]


def test_seam_keys_absent_without_seams_and_indices_checked(moving) -> None:
    metric = WarpingError()
    metric.update(moving, moving)
    assert set(metric.compute()) == {"warp_error"}
    with pytest.raises(ValueError, match="seam_frames"):
        metric.update(moving, moving, seam_frames=[0])


# --- Lai et al. 2018 definition: occlusion mask and per-pair / per-clip means -------------------------

H, W, Y0, X0, SIZE, STEP = 64, 96, 17, 20, 30, 6  # a 30x30 occluder moving 6 px right per frame


def _occluder_flows() -> tuple[np.ndarray, np.ndarray]:
    """Exact forward (t -> t+1) and backward (t+1 -> t) flows of the occluder over a static background."""
    forward = np.zeros((H, W, 2), np.float32)
    forward[Y0 : Y0 + SIZE, X0 : X0 + SIZE, 0] = STEP
    backward = np.zeros((H, W, 2), np.float32)
    backward[Y0 : Y0 + SIZE, X0 + STEP : X0 + STEP + SIZE, 0] = -STEP
    return forward, backward


def _truly_occluded() -> np.ndarray:
    """Background pixels of frame t that the occluder covers in frame t+1: 6 columns x 30 rows = 180."""
    occluded = np.zeros((H, W), bool)
    occluded[Y0 : Y0 + SIZE, X0 + SIZE : X0 + SIZE + STEP] = True
    return occluded


def _motion_boundary() -> np.ndarray:
    """Where the forward differences f(x) - f(x+1) of the exact forward flow are non-zero."""
    boundary = np.zeros((H, W), bool)
    rows, cols = slice(Y0, Y0 + SIZE), slice(X0, X0 + SIZE)
    boundary[rows, X0 - 1] = boundary[rows, X0 + SIZE - 1] = True  # left / right edges (x differences)
    boundary[Y0 - 1, cols] = boundary[Y0 + SIZE - 1, cols] = True  # top / bottom edges (y differences)
    return boundary


def test_occlusion_is_forward_backward_check_or_motion_boundary() -> None:
    from stereo_lit.metrics import flow_occlusion

    forward, backward = _occluder_flows()
    occluded = flow_occlusion(forward, backward)
    assert _truly_occluded().sum() == 180
    assert occluded[_truly_occluded()].all(), "every truly occluded pixel is out of the mask"
    np.testing.assert_array_equal(occluded, _truly_occluded() | _motion_boundary())


def test_motion_boundary_term_alone() -> None:
    """A consistent flow field (forward and backward agree everywhere) with a jump in it:
    only the motion-boundary term of Lai et al. marks the jump."""
    from stereo_lit.metrics import flow_occlusion

    forward = np.zeros((16, 24, 2), np.float32)
    forward[:, 12:, 1] = 0.5  # right half moves 0.5 px down: |grad f|^2 = 0.25 > 0.01 * 0.25 + 0.002
    backward = -forward  # vertical sub-pixel motion: b(x + f) = -f up to the row shift, so the FB check passes
    occluded = flow_occlusion(forward, backward)
    expected = np.zeros((16, 24), bool)
    expected[:, 11] = True  # f(x=11) - f(x=12) != 0
    np.testing.assert_array_equal(occluded, expected)


def _occluder_video(frames: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    background = torch.nn.functional.avg_pool2d(torch.rand(1, 3, H, W, generator=gen), 5, 1, 2, count_include_pad=False)
    patch = torch.rand(1, 3, SIZE, SIZE, generator=gen)
    video = background[:, :, None].repeat(1, 1, frames, 1, 1)
    for t in range(frames):
        video[:, :, t, Y0 : Y0 + SIZE, X0 + STEP * t : X0 + STEP * t + SIZE] = patch
    return video


def test_warping_error_of_the_true_video_is_zero_with_exact_flows() -> None:
    """Full metric on the occluder: exact (integer) flows warp every non-occluded pixel exactly,
    so the true video scores 0; the 180 occluded pixels alone would give a large error."""
    from stereo_lit.metrics import SourceFlows, flow_occlusion

    video = _occluder_video(frames=2)
    forward, backward = _occluder_flows()
    keep = ~flow_occlusion(forward, backward)
    metric = WarpingError()
    metric.update(video, video, flows=SourceFlows([[forward]], [[keep]]))
    assert float(metric.compute()["warp_error"]) == 0.0
    everything = WarpingError()  # the same pair with the occlusion mask ignored
    everything.update(video, video, flows=SourceFlows([[forward]], [[np.ones((H, W), bool)]]))
    assert float(everything.compute()["warp_error"]) > 1e-3


def test_warping_error_is_mean_over_pairs_then_clips() -> None:
    """Lai et al.: per pair the mean over non-occluded pixels and channels, then the mean over
    the pairs of a clip, then over clips; pixels outside the mask never count."""
    from stereo_lit.metrics import SourceFlows

    h, w = 8, 12
    zero = np.zeros((h, w, 2), np.float32)
    all_kept = np.ones((h, w), bool)
    quarter = np.zeros((h, w), bool)
    quarter[:4, :6] = True
    clip_a = torch.full((1, 3, 3, h, w), 0.4)
    clip_a[:, :, 1] = 0.5  # pair 0: error 0.1^2 on all pixels
    clip_a[:, :, 2] = 0.7  # pair 1: error 0.2^2 on the kept quarter ...
    clip_a[:, :, 2][..., ~torch.from_numpy(quarter)] = 1.0  # ... garbage elsewhere, outside the mask
    clip_b = torch.full((1, 3, 2, h, w), 0.2)
    clip_b[:, :, 1] = 0.5  # one pair: error 0.3^2
    metric = WarpingError()
    metric.update(clip_a, clip_a, flows=SourceFlows([[zero, zero]], [[all_kept, quarter]]))
    metric.update(clip_b, clip_b, flows=SourceFlows([[zero]], [[all_kept]]))
    expected = ((0.1**2 + 0.2**2) / 2 + 0.3**2) / 2  # 0.0575; pixel pooling would give another number
    assert float(metric.compute()["warp_error"]) == pytest.approx(expected, rel=1e-5)


def test_dis_flow_motion_boundary_removes_occluded_pixels_from_the_mask() -> None:
    """With estimated (DIS) flows on the same occluder, the motion-boundary term takes truly
    occluded pixels out of the mask that the forward-backward check alone keeps."""
    from stereo_lit.metrics import source_flows
    from stereo_lit.metrics._video import rgb_to_gray_u8, video_to_uint8
    from stereo_lit.metrics.temporal import FB_ALPHA1, FB_ALPHA2, _sample, dis_flow

    video = _occluder_video(frames=2)
    kept = source_flows(video).keep[0][0]
    grey = [rgb_to_gray_u8(f) for f in video_to_uint8(video)[0]]
    forward, backward = dis_flow(grey[0], grey[1]), dis_flow(grey[1], grey[0])
    at_target = _sample(backward, forward)
    fb_only = ((forward + at_target) ** 2).sum(-1) <= FB_ALPHA1 * ((forward**2).sum(-1) + (at_target**2).sum(-1)) + FB_ALPHA2
    occluded = _truly_occluded()
    assert (kept & occluded).sum() < (fb_only & occluded).sum()
    assert not (kept & ~fb_only).any()  # the motion-boundary term only ever removes pixels


def test_no_separate_in_frame_test() -> None:
    """As Lai et al. (their Resample2d clamps to the border): a pan whose flow leaves the frame is
    consistent, so the pixels that leave are not marked occluded."""
    from stereo_lit.metrics import flow_occlusion

    forward = np.zeros((10, 20, 2), np.float32)
    forward[..., 0] = 3.0
    assert not flow_occlusion(forward, -forward).any()
