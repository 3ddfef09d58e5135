"""Window stitching of the official inference: scale/shift alignment and seam interpolation.

Works on numpy float32 frames with the official dtypes (float32 least squares via ``np.sum``), so
results match the reference implementation bit for bit up to the model's own rounding. Given
network-size frames and the video's size (``out_hw``), it stitches at network size with the fit
the official code makes on upsampled frames (float64 sums through the upsampling's Gram matrices).
Streaming: each window's frames go in, final frames come out; at most ``INTERP_LEN`` aligned
frames (plus two reference frames) are held between windows.
"""

from __future__ import annotations

import numpy as np

from .resize import upsampled_sums

INFER_LEN = 32  # frames per window
OVERLAP = 10  # frames of a window taken from the previous window's input (keyframes)
KEYFRAMES = (0, 12, 24, 25, 26, 27, 28, 29, 30, 31)  # previous-window positions reused as the overlap
INTERP_LEN = 8  # seam frames blended between consecutive windows
FRAME_STEP = INFER_LEN - OVERLAP  # new frames per window (22)
ALIGN_LEN = OVERLAP - INTERP_LEN  # keyframes used for the scale/shift fit (2)


def scale_and_shift(prediction: np.ndarray, target: np.ndarray) -> tuple[np.float32, np.float32]:
    """Least-squares ``s, t`` minimising ``|s*prediction + t - target|^2`` in float32 (official numerics)."""
    prediction = prediction.astype(np.float32)
    target = target.astype(np.float32)
    mask = np.ones_like(prediction, dtype=np.float32)
    a_00 = np.sum(mask * prediction * prediction)
    a_01 = np.sum(mask * prediction)
    a_11 = np.sum(mask)
    b_0 = np.sum(mask * prediction * target)
    b_1 = np.sum(mask * target)
    det = a_00 * a_11 - a_01 * a_01
    if det == 0:
        return np.float32(1.0), np.float32(0.0)
    return (a_11 * b_0 - a_01 * b_1) / det, (-a_01 * b_0 + a_00 * b_1) / det


def scale_and_shift_from_sums(sums: tuple[float, float, float, float, float]) -> tuple[np.float32, np.float32]:
    """:func:`scale_and_shift` from its sums ``(sum p*p, sum p, count, sum p*t, sum t)`` (float64 solve)."""
    a_00, a_01, a_11, b_0, b_1 = sums
    det = a_00 * a_11 - a_01 * a_01
    if det == 0:
        return np.float32(1.0), np.float32(0.0)
    return np.float32((a_11 * b_0 - a_01 * b_1) / det), np.float32((-a_01 * b_0 + a_00 * b_1) / det)


def seam_blend(previous: list[np.ndarray], following: list[np.ndarray]) -> list[np.ndarray]:
    """Linear cross-fade from ``previous`` (weight 1 -> 0) to ``following`` (0 -> 1), frame by frame."""
    if len(previous) != len(following):
        raise ValueError(f"seam blend needs equal lengths, got {len(previous)} and {len(following)}")
    n = len(previous)
    step = 1.0 / (n - 1)
    weights = [0.0] + [i * step for i in range(1, n - 1)] + [1.0]
    return [p * (1 - w) + f * w for p, f, w in zip(previous, following, weights)]


def _apply(depth: np.ndarray, scale, shift) -> np.ndarray:
    out = depth * scale + shift
    out[out < 0] = 0
    return out


class WindowAligner:
    """Stitches per-window depth (``INFER_LEN`` frames each) into one consistent sequence.

    ``push(window)`` returns the frames that are final; ``flush()`` returns the rest at the end.
    ``metric=True`` keeps scale 1 and shift 0 (metric depth is already consistent across windows).
    ``out_hw``: the video's size when the frames are smaller (network size): the scale/shift fit is
    then the one on frames upsampled to ``out_hw`` (:func:`stereo_lit.depth.resize.upsampled_sums`),
    computed without upsampling them.
    """

    def __init__(self, metric: bool = False, out_hw: tuple[int, int] | None = None) -> None:
        self.metric = metric
        self.out_hw = out_hw
        self._pending: list[np.ndarray] = []  # last INTERP_LEN aligned frames, changed by the next seam
        self._reference: list[np.ndarray] = []  # aligned depth of the keyframes used for the fit
        self.windows = 0

    @property
    def held_frames(self) -> int:
        return len(self._pending) + len(self._reference)

    def push(self, window: list[np.ndarray] | np.ndarray) -> list[np.ndarray]:
        window = list(window)
        if len(window) != INFER_LEN:
            raise ValueError(f"a window has {INFER_LEN} frames, got {len(window)}")
        self.windows += 1
        if self.windows == 1:
            self._reference = [window[k].copy() for k in KEYFRAMES[:ALIGN_LEN]]  # callers may edit yielded frames
            aligned = window
            ready: list[np.ndarray] = []
        else:
            if self.metric:
                scale, shift = 1.0, 0.0
            elif self.out_hw is not None and tuple(window[0].shape) != tuple(self.out_hw):
                sums = upsampled_sums(window[:ALIGN_LEN], self._reference, self.out_hw)
                scale, shift = scale_and_shift_from_sums(sums)
            else:
                scale, shift = scale_and_shift(np.concatenate(window[:ALIGN_LEN]), np.concatenate(self._reference))
            post = [_apply(d, scale, shift) for d in window[ALIGN_LEN:OVERLAP]]
            ready = seam_blend(self._pending, post)
            aligned = [_apply(d, scale, shift) for d in window[OVERLAP:]]
            self._reference = self._reference[:1] + [
                _apply(window[k], scale, shift) for k in KEYFRAMES[1:ALIGN_LEN]
            ]
        self._pending = aligned[-INTERP_LEN:]
        return ready + aligned[:-INTERP_LEN]

    def flush(self) -> list[np.ndarray]:
        pending, self._pending = self._pending, []
        return pending
