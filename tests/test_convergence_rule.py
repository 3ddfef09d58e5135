"""One convergence rule for every output: shifted eyes, vacated strips repeat the edge column,
right.mp4 = the right half of sbs.mp4 (exact pixel values)."""

from __future__ import annotations

import numpy as np

from stereo_lit.io.layouts import anaglyph_dubois, apply_convergence, compose

W = 16


def _ramp(offset: int) -> np.ndarray:
    """One frame ``[1, 2, W, 3]`` whose column x holds the value ``offset + 10 x`` in every channel."""
    row = (offset + 10 * np.arange(W)).astype(np.uint8)
    return np.broadcast_to(row[None, None, :, None], (1, 2, W, 3)).copy()


def test_a_4px_shift_moves_each_eye_2px_and_repeats_the_edge_column() -> None:
    left, right = _ramp(20), _ramp(30)
    shifted_left, shifted_right = apply_convergence(left, right, 4.0)
    # left eye moves 2 px left: column x shows x + 2; the last 2 columns repeat the edge column W - 1
    assert shifted_left[0, 0, :, 0].tolist() == [20 + 10 * min(x + 2, W - 1) for x in range(W)]
    # right eye moves 2 px right: column x shows x - 2; the first 2 columns repeat column 0
    assert shifted_right[0, 0, :, 0].tolist() == [30 + 10 * max(x - 2, 0) for x in range(W)]


def test_no_black_seam_and_no_coloured_anaglyph_edge() -> None:
    left, right = _ramp(20), _ramp(20)
    shifted = apply_convergence(left, right, 4.0)
    sbs = compose("sbs", *shifted)
    assert sbs.min() >= 20  # no black column anywhere (the seam was 2 + 2 black columns)
    ana = anaglyph_dubois(*apply_convergence(left, left, 4.0))
    # equal eyes over their whole width -> grey-ish edge columns, not the pure red/cyan of a black strip
    for column in (0, 1, W - 2, W - 1):
        r, g, b = ana[0, 0, column].astype(int)
        assert g > 0 and b > 0, (column, r, g, b)


def test_right_output_is_the_right_half_of_sbs() -> None:
    left, right = _ramp(20), _ramp(40)
    shifted = apply_convergence(left, right, 3.0)
    assert np.array_equal(compose("sbs", *shifted)[:, :, W:], compose("right", *shifted))
    assert np.array_equal(compose("sbs", *shifted)[:, :, :W], shifted[0])


def test_written_right_mp4_is_the_right_half_of_sbs_mp4(tmp_path) -> None:
    import av

    from stereo_lit.predict.writer import _VideoOutputs
    from stereo_lit.io.video_writer import EncoderOptions

    t, h, w = 3, 32, 64
    x = np.arange(w)
    left = np.broadcast_to((40 + 2 * x).astype(np.uint8)[None, None, :, None], (t, h, w, 3)).copy()
    right = np.broadcast_to((60 + 2 * x).astype(np.uint8)[None, None, :, None], (t, h, w, 3)).copy()
    outputs = _VideoOutputs("clip.mp4", tmp_path, ["right", "sbs"], fps=8, num_frames=t, encoder=EncoderOptions(crf=0))
    outputs.write(0, left, right, None, shift=8.0)  # each eye moves 4 px: 8 levels per column of the ramp
    outputs.close()

    def decode(name: str) -> np.ndarray:
        with av.open(str(tmp_path / name)) as container:
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(int)

    written_right, sbs = decode("right.mp4"), decode("sbs.mp4")
    assert np.abs(written_right - sbs[:, :, w:]).max() <= 2  # the same eye (up to the codec's rounding)
    assert np.abs(written_right - right.astype(int)).mean() > 5  # not the unshifted right view
    assert sbs[:, :, w - 4:w + 4].min() >= 40  # no black seam between the eyes


def test_the_compiled_shift_is_linear_interpolation_with_edge_columns_repeated() -> None:
    """Against the formula written out (and within one level of OpenCV's fixed-point warpAffine)."""
    import cv2

    from stereo_lit.io.fast_layouts import shift_rows

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 5, 40, 3), dtype=np.uint8)
    for shift in (-7.25, -2.0, -0.5, 0.3, 3.0, 5.75, 45.0):
        source = np.arange(40) - shift
        x0 = np.floor(source).astype(int)
        weight = (source - x0)[None, None, :, None]
        a, b = frames[:, :, np.clip(x0, 0, 39)], frames[:, :, np.clip(x0 + 1, 0, 39)]
        exact = (1 - weight) * a + weight * b
        expected = np.floor(exact + 0.5).astype(np.uint8)
        got = shift_rows(frames, shift)
        differ = got != expected
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= (0 if shift == int(shift) else 1), shift
        assert np.all(np.abs(exact[differ] - np.floor(exact[differ]) - 0.5) < 1e-3), shift  # float32 rounding at a tie only
        matrix = np.float32([[1, 0, shift], [0, 1, 0]])
        opencv = np.stack([cv2.warpAffine(f, matrix, (40, 5), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                           for f in frames])
        assert np.abs(got.astype(int) - opencv.astype(int)).max() <= 1, shift


def test_the_byte_row_shift_equals_the_strided_kernel() -> None:
    """Contiguous frames take the vectorised byte-row kernel, other layouts the general one:
    the same bytes for shifts inside, at and beyond the frame width, both signs."""
    from stereo_lit.io.fast_layouts import shift_rows

    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, (2, 6, 74, 3), dtype=np.uint8)
    strided = wide[:, :, ::2]  # 37 columns, not contiguous
    contiguous = np.ascontiguousarray(strided)
    for shift in (-60.0, -37.0, -36.5, -9.6, -1.0, -0.25, 0.7, 1.0, 9.6, 36.0, 36.9, 60.0):
        np.testing.assert_array_equal(shift_rows(contiguous, shift), shift_rows(strided, shift), err_msg=str(shift))
