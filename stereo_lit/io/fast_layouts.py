"""Compiled per-pixel kernels of the output layouts (numba; OpenCV fallbacks without it).

- :func:`anaglyph`: red-cyan (Dubois) computed on linear light, equal to the float64 formula.
- :func:`shift_rows`: the convergence shift, a sub-pixel horizontal translation with the
  vacated columns repeating the edge column.

Anaglyph, for each pixel: both eyes' sRGB bytes to linear light by a 256-entry table (exact), the
Dubois 3x3 mix of each eye, the sum clipped to [0, 1], and back to an sRGB byte rounded to
nearest. The last step is the costly one as a formula (a ``pow`` per channel); here it is a
table of the 255 linear-light thresholds where the byte changes, each found by bisection on
the float64 formula itself, so the byte equals the formula's
``floor(255 * srgb(x) + 0.5)`` for every ``x``. The thresholds are at least 1.5e-4 apart, so
each of 8192 equal bins holds at most one: the byte is the bin's first byte, plus one at or
above the bin's threshold (two lookups and a compare, no loop: 1.5x faster than a 4096-bin
start and a search, 24 vs 38 ms per 1080p frame on one core). Without numba the same tables run through OpenCV
kernels (float32 mix: within one level of the formula).
"""

from __future__ import annotations

import cv2
import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

#: the Dubois least-squares matrices (red-cyan), rows = output R, G, B; columns = the eye's linear R, G, B
DUBOIS_LEFT = np.array(
    [[0.4561, 0.500484, 0.176381], [-0.0400822, -0.0378246, -0.0157589], [-0.0152161, -0.0205971, -0.00546856]],
    dtype=np.float32,
)
DUBOIS_RIGHT = np.array(
    [[-0.0434706, -0.0879388, -0.00155529], [0.378476, 0.73364, -0.0184503], [-0.0721527, -0.112961, 1.2264]],
    dtype=np.float32,
)
_BINS = 8192  # bins of [0, 1] in linear light; narrower than the closest two thresholds


def srgb_to_linear_formula(srgb: np.ndarray) -> np.ndarray:
    """sRGB bytes -> linear light in float64 (IEC 61966-2-1)."""
    x = np.asarray(srgb, dtype=np.float64) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb_byte_formula(linear: np.ndarray) -> np.ndarray:
    """Linear light (clipped to [0, 1]) -> sRGB byte rounded to nearest, in float64."""
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)
    return np.floor(srgb * 255.0 + 0.5).astype(np.uint8)


def _byte_thresholds() -> np.ndarray:
    """``t[b]`` (b = 1..255): the smallest float64 ``x`` whose formula byte is ``>= b`` (``t[0] = 0``)."""
    targets = np.arange(256)
    low, high = np.zeros(256), np.ones(256)  # formula(low) < b <= formula(high) for b >= 1
    for _ in range(100):  # bisection down to adjacent float64 values
        mid = (low + high) / 2
        above = linear_to_srgb_byte_formula(mid) >= targets
        high, low = np.where(above, mid, high), np.where(above, low, mid)
    high[0] = 0.0
    return high


#: linear light of each sRGB byte (float64, exact)
SRGB_TO_LINEAR = srgb_to_linear_formula(np.arange(256))
def bin_tables(thresholds: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, threshold)`` per bin ``[i / bins, (i + 1) / bins)``: the formula's byte at the bin's
    start, and the linear value inside the bin where the byte goes up by one (inf: none). The byte
    of ``x`` in bin ``i`` is ``start[i] + (x >= threshold[i])``; a ValueError if a bin holds two."""
    start = linear_to_srgb_byte_formula(np.arange(bins) / bins)
    inside = np.full(bins, np.inf)
    for i, byte in enumerate(start.tolist()):
        upper = (i + 1) / bins
        if byte < 255 and thresholds[byte + 1] < upper:
            if byte < 254 and thresholds[byte + 2] < upper:
                raise ValueError(f"bin {i} of {bins} holds two byte thresholds: use more bins")
            inside[i] = thresholds[byte + 1]
    return start, inside


#: the byte boundaries in linear light, and per bin its first byte and the boundary inside it
_THRESHOLDS = _byte_thresholds()
_BIN_START, _BIN_THRESHOLD = bin_tables(_THRESHOLDS, _BINS)


def _anaglyph_kernel(left, right, to_linear, mix_left, mix_right, bin_start, bin_threshold, bins, out):  # noqa: ANN001
    """``left, right, out``: uint8 ``[T, H, W, 3]``; blocks of rows in parallel. Per row: the linear
    light of both eyes (table gathers, a loop per channel and eye: 12.3 against 14.0 ms per 1080p
    frame on one core with the six in one loop), then per channel the Dubois mix over contiguous
    float64 rows (the same sums in the same order as one pixel at a time: vectorised), then the bytes."""
    frames, height, width, _ = left.shape
    rows = frames * height
    blocks = min(rows, 64)
    for block in numba.prange(blocks):
        lin = np.empty((6, width), dtype=np.float64)
        mixed = np.empty(width, dtype=np.float64)
        index = np.empty(width, dtype=np.int64)
        for row in range(block * rows // blocks, (block + 1) * rows // blocks):
            t = row // height
            y = row - t * height
            left_row, right_row, out_row = left[t, y], right[t, y], out[t, y]
            for c in range(3):  # one channel of one eye per loop: the table gathers vectorise
                left_lin, right_lin = lin[c], lin[3 + c]
                for x in range(width):
                    left_lin[x] = to_linear[left_row[x, c]]
                for x in range(width):
                    right_lin[x] = to_linear[right_row[x, c]]
            for c in range(3):
                a0, a1, a2 = mix_left[c, 0], mix_left[c, 1], mix_left[c, 2]
                b0, b1, b2 = mix_right[c, 0], mix_right[c, 1], mix_right[c, 2]
                for x in range(width):
                    value = (a0 * lin[0, x] + a1 * lin[1, x] + a2 * lin[2, x]
                             + b0 * lin[3, x] + b1 * lin[4, x] + b2 * lin[5, x])
                    value = min(max(value, 0.0), 1.0)
                    mixed[x] = value
                    index[x] = min(int(value * bins), bins - 1)
                for x in range(width):
                    i = index[x]
                    out_row[x, c] = bin_start[i] + (mixed[x] >= bin_threshold[i])


_compiled = numba.njit(cache=True, parallel=True, nogil=True, error_model="numpy")(_anaglyph_kernel) if numba is not None else None
_LUT_F32 = np.ascontiguousarray(SRGB_TO_LINEAR.astype(np.float32).reshape(1, 256))


def _anaglyph_opencv(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The fallback: float32 OpenCV kernels frame by frame (within one level of the formula)."""
    out = np.empty_like(left)
    for i, (l_frame, r_frame) in enumerate(zip(left, right)):
        mixed = cv2.transform(cv2.LUT(l_frame, _LUT_F32), DUBOIS_LEFT)
        mixed += cv2.transform(cv2.LUT(r_frame, _LUT_F32), DUBOIS_RIGHT)
        x = np.clip(mixed, 0.0, 1.0, out=mixed)
        y = cv2.pow(x, 1 / 2.4)
        y *= 1.055
        y -= 0.055
        np.copyto(y, x * 12.92, where=x <= 0.0031308)
        out[i] = cv2.convertScaleAbs(y, alpha=255.0)
    return out


def anaglyph(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Red-cyan anaglyph of uint8 ``[T, H, W, 3]`` eyes (any strides) -> uint8 ``[T, H, W, 3]`` sRGB."""
    if _compiled is None:
        return _anaglyph_opencv(left, right)
    out = np.empty(left.shape, dtype=np.uint8)
    _compiled(
        left, right, SRGB_TO_LINEAR, DUBOIS_LEFT.astype(np.float64), DUBOIS_RIGHT.astype(np.float64),
        _BIN_START, _BIN_THRESHOLD, _BINS, out,
    )
    return out


def _shift_kernel(frames, offset, weight, out):  # noqa: ANN001 - numba
    """``out[..., x, :] = (1 - weight) * frames[..., clip(x + offset), :] + weight * frames[..., clip(x + offset + 1), :]``,
    rounded half up; ``frames, out``: uint8 ``[T, H, W, C]``."""
    count, height, width, channels = frames.shape
    keep = np.float32(1.0) - weight
    for row in numba.prange(count * height):
        t = row // height
        y = row - t * height
        for x in range(width):
            a = min(max(x + offset, 0), width - 1)
            b = min(max(x + offset + 1, 0), width - 1)
            for c in range(channels):
                value = keep * np.float32(frames[t, y, a, c]) + weight * np.float32(frames[t, y, b, c])
                out[t, y, x, c] = np.uint8(value + np.float32(0.5))


def _shift_rows_kernel(rows, offset, weight, channels, out):  # noqa: ANN001 - numba
    """:func:`_shift_kernel` on C-contiguous rows ``[N, W * C]``, the same values: the interior
    (both source columns inside the row) as one loop over byte slices, which the compiler
    vectorises (indexing with ``x + offset`` instead keeps it scalar: 12x slower); the
    clamped edge columns as in :func:`_shift_kernel`."""
    count, row_bytes = rows.shape
    width = row_bytes // channels
    keep = np.float32(1.0) - weight
    start = min(max(-offset, 0), width)  # first column whose two sources lie inside the row
    stop = max(min(width - 1 - offset, width), start)  # one past the last such column
    size = (stop - start) * channels
    first = (start + offset) * channels  # the byte of the interior's first source column
    for row in numba.prange(count):
        dst = out[row, start * channels : start * channels + size]
        a = rows[row, first : first + size]
        b = rows[row, first + channels : first + channels + size]
        for i in range(size):
            dst[i] = np.uint8(keep * np.float32(a[i]) + weight * np.float32(b[i]) + np.float32(0.5))
        src = rows[row]
        edge = out[row]
        for x in list(range(0, start)) + list(range(stop, width)):
            ia = min(max(x + offset, 0), width - 1)
            ib = min(max(x + offset + 1, 0), width - 1)
            for c in range(channels):
                value = keep * np.float32(src[ia * channels + c]) + weight * np.float32(src[ib * channels + c])
                edge[x * channels + c] = np.uint8(value + np.float32(0.5))


_compiled_shift = numba.njit(cache=True, parallel=True, nogil=True)(_shift_kernel) if numba is not None else None
_compiled_shift_rows = numba.njit(cache=True, parallel=True, nogil=True)(_shift_rows_kernel) if numba is not None else None


def shift_rows(frames: np.ndarray, shift_px: float) -> np.ndarray:
    """Translate uint8 frames ``[T, H, W, C]`` right by ``shift_px`` (negative: left), linear
    interpolation between the two nearest source columns; the vacated columns repeat the edge column."""
    t, h, w, _ = frames.shape
    if _compiled_shift is None:
        matrix = np.float32([[1, 0, shift_px], [0, 1, 0]])
        return np.stack(
            [cv2.warpAffine(f, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for f in frames]
        )
    position = -float(shift_px)  # output column x shows source column x - shift
    offset = int(np.floor(position))
    out = np.empty(frames.shape, dtype=np.uint8)
    if frames.flags.c_contiguous:  # the usual case (decoded or warped frames): byte rows
        _compiled_shift_rows(frames.reshape(t * h, -1), offset, np.float32(position - offset), frames.shape[3], out.reshape(t * h, -1))
    else:
        _compiled_shift(frames, offset, np.float32(position - offset), out)
    return out
