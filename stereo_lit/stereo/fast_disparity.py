"""Compiled CPU kernels of the disparity chain: the same float32 numbers as the torch code, in one pass.

:meth:`~stereo_lit.stereo.disparity.DisparityPolicy.from_inverse_depth` maps relative inverse depth
to disparity as five whole-tensor operations (NaN -> low, ``- low``, ``/ (high - low)``, clamp to
[0, 1], ``* max_disparity_px``), and :func:`~stereo_lit.stereo.edges.dilate_foreground` is a clone
and two maxima per pixel of radius. On a 1080p chunk each of those reads and writes 8 MB a frame.
Here, for CPU float32 tensors:

- :func:`normalise`: the five steps per pixel in one loop (the same float32 operations in the same
  order: bit-for-bit the torch result);
- :func:`max_filter`: the max over ``[i - r, i + r]`` (frame-clipped) along rows or columns,
  NaN propagating as in ``torch.maximum``.

Parity with the torch code is tested in ``tests/test_fast_disparity.py``. Without numba
:func:`available` is False and the callers keep the torch code.
"""

from __future__ import annotations

import numpy as np

try:  # numba is a dependency; a platform without its wheels keeps the torch code
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None


def available() -> bool:
    """True when the compiled kernels can run (numba is importable)."""
    return numba is not None


def _normalise_kernel(values, low, divisor, scale, out):  # noqa: ANN001 - numba
    """``out[f, i] = clamp(((values[f, i] or low[f] where NaN) - low[f]) / divisor[f], 0, 1) * scale``
    in float32; ``values, out``: ``[F, P]``; ``low, divisor``: ``[F]`` float32. Blocks of each
    frame's pixels run in parallel."""
    frames, pixels = values.shape
    blocks_per_frame = max(1, min(32, pixels // 65536))
    zero, one = np.float32(0.0), np.float32(1.0)
    for job in numba.prange(frames * blocks_per_frame):
        f = job // blocks_per_frame
        block = job - f * blocks_per_frame
        lo, div = low[f], divisor[f]
        for i in range(block * pixels // blocks_per_frame, (block + 1) * pixels // blocks_per_frame):
            v = values[f, i]
            if np.isnan(v):
                v = lo
            v = (v - lo) / div
            if v < zero:  # a NaN (0 / 0) stays NaN, as in torch.clamp
                v = zero
            elif v > one:
                v = one
            out[f, i] = v * scale


def _max_rows_kernel(x, radius, out):  # noqa: ANN001 - numba
    """``out[n, y, i] = max(x[n, y, i - r .. i + r])`` (clipped to the row), NaN if any is NaN: per
    offset ``k`` the maximum with the row ``k`` ahead, then ``k`` behind (contiguous loops of
    selects, which the compiler vectorises), as :func:`stereo_lit.stereo.edges._max_along` does."""
    count, height, width = x.shape
    for row in numba.prange(count * height):
        n = row // height
        y = row - n * height
        src, dst = x[n, y], out[n, y]
        dst[:] = src
        for k in range(1, min(radius, width - 1) + 1):
            for i in range(width - k):
                v, d = src[i + k], dst[i]
                dst[i] = v if (v > d or v != v) else d  # a NaN, once there, stays (v > NaN is False)
            for i in range(k, width):
                v, d = src[i - k], dst[i]
                dst[i] = v if (v > d or v != v) else d


def _max_columns_kernel(x, radius, out):  # noqa: ANN001 - numba
    """``out[n, i, w] = max(x[n, i - r .. i + r, w])`` (clipped to the column), NaN if any is NaN."""
    count, height, width = x.shape
    for row in numba.prange(count * height):
        n = row // height
        i = row - n * height
        dst = out[n, i]
        dst[:] = x[n, i]
        for k in range(1, min(radius, height - 1) + 1):
            for j in (i + k, i - k):
                if 0 <= j < height:
                    src = x[n, j]
                    for w in range(width):
                        v, d = src[w], dst[w]
                        dst[w] = v if (v > d or v != v) else d


if numba is not None:
    _compiled_normalise = numba.njit(cache=True, parallel=True, nogil=True, error_model="numpy")(_normalise_kernel)
    _compiled_max_rows = numba.njit(cache=True, parallel=True, nogil=True)(_max_rows_kernel)
    _compiled_max_columns = numba.njit(cache=True, parallel=True, nogil=True)(_max_columns_kernel)


def normalise(values: np.ndarray, low: np.ndarray, divisor: np.ndarray, scale: float) -> np.ndarray:
    """Relative inverse depth -> disparity px, per frame: ``clamp((v - low) / divisor, 0, 1) * scale``
    with NaN read as ``low`` (float32 throughout).

    Args:
        values: float32 ``[F, ...]`` (any trailing shape; made contiguous).
        low, divisor: float32 ``[F]`` or ``[1]`` (one for every frame): the range's low end and its
            width, computed as the caller's reference computes them.
        scale: ``max_disparity_px`` (taken as float32).

    Returns:
        float32 array of ``values``' shape.
    """
    if numba is None:
        raise RuntimeError("stereo_lit.stereo.fast_disparity needs numba")
    source = np.ascontiguousarray(values, dtype=np.float32)
    frames = source.shape[0]
    flat = source.reshape(frames, -1)
    low = np.broadcast_to(np.asarray(low, dtype=np.float32).reshape(-1), (frames,)).copy()
    divisor = np.broadcast_to(np.asarray(divisor, dtype=np.float32).reshape(-1), (frames,)).copy()
    out = np.empty(source.shape, dtype=np.float32)
    _compiled_normalise(flat, low, divisor, np.float32(scale), out.reshape(frames, -1))
    return out


def max_filter(x: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Max over ``[i - radius, i + radius]`` (clipped) along ``axis`` -1 (rows) or -2 (columns) of a
    float32 ``[..., H, W]`` array; a new array (NaN propagates)."""
    if numba is None:
        raise RuntimeError("stereo_lit.stereo.fast_disparity needs numba")
    if axis not in (-1, -2):
        raise ValueError(f"max_filter: axis must be -1 (rows) or -2 (columns), got {axis}")
    source = np.ascontiguousarray(x, dtype=np.float32)
    frames = source.reshape(-1, *source.shape[-2:])
    out = np.empty(source.shape, dtype=np.float32)
    kernel = _compiled_max_rows if axis == -1 else _compiled_max_columns
    kernel(frames, int(radius), out.reshape(frames.shape))
    return out
