"""The CPU kernel of the model-free methods: forward warp + background fill, one pass per row.

:func:`~stereo_lit.stereo.geometry.forward_warp` (torch, any device) is the reference: it
computes the warp as whole-tensor scatters, which on a CPU makes and reads about twenty
frame-sized temporaries per call and runs at 2-3 Mpix/s. This module computes the same
numbers row by row in one compiled loop (numba), reading the picture where it lies (uint8 or
float32, channel-first, any strides) and writing the right view, the covered mask and the
right view's disparity straight into their outputs:

1. the two linear splat taps of every valid source pixel (``x + direction * d``);
2. the z-buffer: the nearest surface claiming each target (taps of weight >= 0.25 only);
3. the accumulation of the accepted taps, picture and disparity together (the reference
   warps the disparity in a second call with the same taps), in the reference's order;
4. ``fill=True``: every uncovered pixel takes the colour of the nearest covered pixel on
   its row on the farther side (the background rule of ``WarpFill``).

Parity with the reference (colour to float32 rounding, identical masks) is tested in
``tests/test_fast_warp.py``. Without numba :func:`available` is False and callers use
the torch reference.
"""

from __future__ import annotations

import numpy as np

from stereo_lit.stereo.geometry import MIN_COVER_WEIGHT, Z_TOLERANCE_PX, ZBUFFER_MIN_WEIGHT

try:  # numba is a dependency; a platform without its wheels falls back to the torch reference
    import numba
    import numba.extending
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None


#: ``float32(v) / 255`` for each byte: the float path's division, looked up
_UINT8_TO_FLOAT = np.arange(256, dtype=np.float32) / np.float32(255.0)


def available() -> bool:
    """True when the compiled kernel can run (numba is importable)."""
    return numba is not None


def _value(image, to_float, c, t, y, x):  # noqa: ANN001, ANN202 - a stub numba specialises below
    """``image[c, t, y, x]`` as float32 in [0, 1] for uint8 (by the table ``to_float``), as it is for floats."""
    raise NotImplementedError("compiled use only")


if numba is not None:

    @numba.extending.overload(_value)
    def _value_typed(image, to_float, c, t, y, x):  # noqa: ANN001, ANN202
        if image.dtype == numba.types.uint8:
            return lambda image, to_float, c, t, y, x: to_float[image[c, t, y, x]]
        return lambda image, to_float, c, t, y, x: image[c, t, y, x]


def _row_kernel(image, disparity, direction, fill, is_u8, to_float, out, covered_out, disparity_out):  # noqa: ANN001 - numba
    """Warp (and fill) every row of ``image [C, T, H, W]`` by ``disparity [T, H, W]`` px.

    Writes ``out [T, H, W, C]`` (C-contiguous, the dtype of ``image``: uint8 rounded as the
    writers round floats, or float32), ``covered_out [T, H, W]`` (uint8 0/1) and ``disparity_out
    [T, H, W]`` (float32 right-view disparity, 0 where uncovered). ``is_u8``: ``image`` holds
    0-255; ``to_float``: then the 256 values ``float32(v) / 255`` (what the float path divides to;
    a lookup instead of a division per tap), else ``image`` is read as it is. Blocks of rows run
    in parallel, each with its own scratch rows.
    """
    channels, frames, height, width = image.shape
    step = np.float32(direction)
    min_claim = np.float32(ZBUFFER_MIN_WEIGHT)
    tolerance = np.float32(Z_TOLERANCE_PX)
    min_cover = np.float32(MIN_COVER_WEIGHT)
    rows = frames * height
    blocks = min(rows, 64)
    for block in numba.prange(blocks):
        zmax = np.empty(width + 2, dtype=np.float32)  # targets are shifted by 1: column -1 and W are off-frame
        acc = np.empty((channels + 1, width + 2), dtype=np.float32)  # last channel: disparity
        total = np.empty(width + 2, dtype=np.float32)
        first = np.empty(width, dtype=np.int32)  # per source pixel: first tap's column (-1: invalid)
        second = np.empty(width, dtype=np.int32)
        frac = np.empty(width, dtype=np.float32)  # the second tap's weight
        values = np.empty((channels + 1, width), dtype=np.float32)  # the row normalised (and filled)
        cover = np.empty(width, dtype=np.bool_)
        nearest_right = np.empty(width, dtype=np.int64)
        for row in range(block * rows // blocks, (block + 1) * rows // blocks):
            t = row // height
            y = row - t * height
            zmax[:] = np.float32(-1.0)
            acc[:] = np.float32(0.0)
            total[:] = np.float32(0.0)
            drow = disparity[t, y]
            # 1. taps: a loop without branches or scatter, which the compiler vectorises (an
            #    invalid source gets first = -1; its other values are never read)
            for x in range(width):
                d = drow[x]
                valid = np.isfinite(d) and d >= 0
                x_t = np.float32(x) + step * (d if valid else np.float32(0.0))
                x0 = np.floor(x_t)
                frac[x] = x_t - x0
                first[x] = int(min(max(x0, -1.0), width)) + 1 if valid else -1
                second[x] = int(min(max(x0, -2.0), width - 1.0)) + 2
            # 2. z-buffer: the nearest surface claiming each target
            for x in range(width):
                i0 = first[x]
                if i0 < 0:
                    continue
                d = drow[x]
                w1 = frac[x]
                if np.float32(1.0) - w1 >= min_claim and d > zmax[i0]:
                    zmax[i0] = d
                i1 = second[x]
                if w1 >= min_claim and d > zmax[i1]:
                    zmax[i1] = d
            # 3. accumulation: every first tap, then every second tap (the reference's order)
            for x in range(width):
                i0 = first[x]
                if i0 < 0:
                    continue
                d = drow[x]
                weight = np.float32(1.0) - frac[x]
                if d >= zmax[i0] - tolerance:
                    for c in range(channels):
                        acc[c, i0] += _value(image, to_float, c, t, y, x) * weight
                    acc[channels, i0] += d * weight
                    total[i0] += weight
            for x in range(width):
                if first[x] < 0:
                    continue
                i1 = second[x]
                d = drow[x]
                weight = frac[x]
                if d >= zmax[i1] - tolerance:
                    for c in range(channels):
                        acc[c, i1] += _value(image, to_float, c, t, y, x) * weight
                    acc[channels, i1] += d * weight
                    total[i1] += weight
            # normalise the covered pixels, 0 elsewhere (contiguous rows and a select: vectorised)
            for c in range(channels + 1):
                for x in range(width):
                    weight = total[x + 1]
                    values[c, x] = acc[c, x + 1] / max(weight, np.float32(1e-12)) if weight >= min_cover else np.float32(0.0)
            for x in range(width):
                cover[x] = total[x + 1] >= min_cover
            # 4. background rule: a hole takes the colour of the nearest covered pixel on its
            #    row on the farther side
            if fill:
                last = width
                for x in range(width - 1, -1, -1):
                    if cover[x]:
                        last = x
                    nearest_right[x] = last
                last = -1
                for x in range(width):
                    if cover[x]:
                        last = x
                        continue
                    right = nearest_right[x]
                    if last < 0 and right >= width:
                        continue  # a row with no covered pixel stays empty
                    if last >= 0 and (right >= width or values[channels, last] <= values[channels, right]):
                        source = last
                    else:
                        source = right
                    for c in range(channels):
                        values[c, x] = values[c, source]
            # outputs: the mask and disparity (0 where uncovered, filled or not), the picture
            for x in range(width):
                covered_out[t, y, x] = 1 if cover[x] else 0
                disparity_out[t, y, x] = values[channels, x] if cover[x] else np.float32(0.0)
            if is_u8:  # clamped, rounded half up: floor(v * 255 + 0.5) of the float result
                for c in range(channels):
                    for x in range(width):
                        value = min(max(values[c, x], np.float32(0.0)), np.float32(1.0))
                        values[c, x] = np.floor(value * np.float32(255.0) + np.float32(0.5))
                for x in range(width):
                    for c in range(channels):
                        out[t, y, x, c] = np.uint8(np.int32(values[c, x]))
            else:
                for x in range(width):
                    for c in range(channels):
                        out[t, y, x, c] = values[c, x]


_compiled = numba.njit(cache=True, parallel=True, nogil=True, error_model="numpy")(_row_kernel) if numba is not None else None


def warp_fill(
    image: np.ndarray, disparity_px: np.ndarray, *, direction: int = -1, fill: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward-warp ``image`` along rows by ``disparity_px`` and (``fill``) fill its holes.

    Args:
        image: ``[C, T, H, W]`` uint8 (0-255) or float32 ([0, 1] by convention), any strides.
        disparity_px: ``[T, H, W]`` float32 in the source frame; NaN, inf and negative
            values are invalid (never splatted).
        direction: -1 left->right, +1 right->left.
        fill: fill uncovered pixels by the background rule (else they are 0).

    Returns:
        ``(right, covered, right_disparity_px)``: ``[C, T, H, W]`` in ``image``'s dtype, laid out
        channel-last in memory (``right.transpose(1, 2, 3, 0)`` is contiguous ``[T, H, W, C]``; uint8
        rounded half up from the clamped float), uint8 ``[T, H, W]`` 0/1 covered mask, float32
        ``[T, H, W]`` right-view disparity (0 where uncovered).
    """
    if _compiled is None:
        raise RuntimeError("stereo_lit.stereo.fast_warp needs numba; use stereo_lit.stereo.geometry.forward_warp")
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 (left->right) or +1 (right->left), got {direction}")
    if image.ndim != 4 or disparity_px.ndim != 3 or image.shape[1:] != disparity_px.shape:
        raise ValueError(
            f"expected image [C,T,H,W] and disparity_px [T,H,W] of the same T, H, W, got {image.shape} and {disparity_px.shape}"
        )
    if image.dtype not in (np.uint8, np.float32):
        raise ValueError(f"image must be uint8 or float32, got {image.dtype}")
    disparity = np.asarray(disparity_px, dtype=np.float32)
    c, t, h, w = image.shape
    out = np.empty((t, h, w, c), dtype=image.dtype)  # channel-last memory: what encoders take
    covered = np.empty(disparity.shape, dtype=np.uint8)
    right_disparity = np.empty(disparity.shape, dtype=np.float32)
    _compiled(image, disparity, int(direction), bool(fill), image.dtype == np.uint8, _UINT8_TO_FLOAT, out, covered, right_disparity)
    return out.transpose(3, 0, 1, 2), covered, right_disparity
