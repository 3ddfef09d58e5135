"""SIoU (Mono2Stereo), including the documented wrap-around and colour-order handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.metrics import SIoU, siou_frame


def _video(frames_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames_u8).permute(3, 0, 1, 2)[None].float() / 255.0


def test_true_right_scores_higher_than_copy_left() -> None:
    seq = render_sequence(2, 96, 128)
    left, right = _video(seq.left), _video(seq.right)
    true_metric, copy_metric = SIoU(), SIoU()
    true_metric.update(right, right, left)
    copy_metric.update(left, right, left)
    true_score, copy_score = float(true_metric.compute()["siou"]), float(copy_metric.compute()["siou"])
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
