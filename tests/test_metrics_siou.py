"""SIoU (Mono2Stereo): the RGB / exact-difference variant and the reference release's variant, known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.metrics import SIOU_VARIANTS, SIoU, siou_frame


def _video(frames_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames_u8).permute(3, 0, 1, 2)[None].float() / 255.0


def test_true_right_scores_higher_than_copy_left() -> None:
    seq = render_sequence(2, 96, 128)
    left, right = _video(seq.left), _video(seq.right)
    true_metric, copy_metric = SIoU(), SIoU()
    true_metric.update(right, right, left)
    copy_metric.update(left, right, left)
    true_score, copy_score = float(true_metric.compute()["siou_rgb"]), float(copy_metric.compute()["siou_rgb"])
    assert true_score == pytest.approx(1.0)
    assert copy_score < 0.6
    assert copy_score < true_score


def test_no_uint8_wrap_around() -> None:
    rng = np.random.default_rng(0)
    left = (rng.integers(40, 200, (32, 32, 3))).astype(np.uint8)
    pred = left - np.uint8(3)  # 3 levels darker everywhere: below the difference threshold of 5
    assert siou_frame(pred, left, left) == pytest.approx(1.0)
    # the reference code subtracts uint8: left - 3 - left wraps to 253 and counts as a change
    assert siou_frame(pred, left, left, reference_quirks=True) == pytest.approx(0.75)


def test_colour_order_is_rgb() -> None:
    left = np.zeros((16, 16, 3), np.uint8)
    pred = left.copy()
    pred[..., 0] = 20  # red +20: luma 0.299 * 20 = 6 > 5 in RGB order, 0.114 * 20 = 2 in BGR order
    assert siou_frame(pred, left, left) == pytest.approx(0.75)  # pred differs from left where the truth does not
    assert siou_frame(pred, left, left, reference_quirks=True) == pytest.approx(1.0)


def test_rejects_non_uint8_frames() -> None:
    with pytest.raises(ValueError, match="uint8"):
        siou_frame(np.zeros((4, 4, 3)), np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8))


def _clip(frame_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame_u8).permute(2, 0, 1)[None, :, None].float() / 255.0


def test_each_variant_has_its_own_column_and_known_answers() -> None:
    """3 levels darker everywhere (below the threshold of 5): 1.0 with exact differences; the
    reference release's uint8 subtraction wraps to 253, a change everywhere: 0.75. Red +20
    (luma 6 in RGB order, 2 with BGR2GRAY on RGB): 0.75 vs 1.0."""
    rng = np.random.default_rng(1)
    left = rng.integers(40, 200, (24, 32, 3)).astype(np.uint8)
    darker = left - np.uint8(3)
    red = left.copy()
    red[..., 0] += 20
    cases = ((darker, {"siou_rgb": 1.0, "siou_m2s_release": 0.75}), (red, {"siou_rgb": 0.75, "siou_m2s_release": 1.0}))
    for pred, expected in cases:
        for variant, column in SIOU_VARIANTS.items():
            metric = SIoU(variant=variant)
            # flat frames (no Canny edges in either): the edge term is an empty union, IoU 1
            flat_left = np.full_like(left, 100)
            flat_pred = (flat_left.astype(np.int16) + (pred.astype(np.int16) - left)).astype(np.uint8)
            metric.update(_clip(flat_pred), _clip(flat_left), _clip(flat_left))
            out = {k: float(v) for k, v in metric.compute().items()}
            assert set(out) == {column}
            assert out[column] == pytest.approx(expected[column]), (variant, expected)


def test_unknown_variant_is_an_error() -> None:
    with pytest.raises(ValueError, match="variant"):
        SIoU(variant="bgr")
