"""Window planning covers every frame once; padding round-trips and never crops."""

from __future__ import annotations

import pytest
import torch

from stereo_lit.stereo.padding import Padding, pad_video, padding_for, unpad_video
from stereo_lit.stereo.windows import is_wan_length, next_wan_length, plan_windows


@pytest.mark.parametrize("num_frames", [1, 2, 5, 33, 34, 70, 81, 82, 200, 1001])
@pytest.mark.parametrize("window,overlap", [(33, 9), (81, 9), (17, 5), (9, 1), (21, 0)])
def test_windows_cover_every_frame_once(num_frames: int, window: int, overlap: int) -> None:
    windows = plan_windows(num_frames, window, overlap)
    produced = [f for w in windows for f in range(w.keep_start, w.stop)]
    assert produced == list(range(num_frames))
    for w in windows:
        assert is_wan_length(w.num_frames + w.pad_frames)
        assert w.start <= w.keep_start <= w.stop
        assert w.num_frames <= window
    for prev, nxt in zip(windows, windows[1:]):
        assert nxt.start <= prev.stop - overlap  # at least `overlap` frames carried in
        assert nxt.keep_start == prev.stop


def test_windows_reject_bad_lengths() -> None:
    with pytest.raises(ValueError, match="4k\\+1"):
        plan_windows(100, 32, 9)
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(100, 33, 8)
    with pytest.raises(ValueError, match="num_frames"):
        plan_windows(0, 33, 9)


def test_next_wan_length() -> None:
    assert [next_wan_length(n) for n in (1, 2, 5, 6, 70)] == [1, 5, 5, 9, 73]


def test_pad_unpad_round_trip_davis_size() -> None:
    video = torch.rand(1, 3, 7, 540, 60)
    padding = padding_for(540, 60, num_frames=7)
    assert padding == Padding(bottom=4, right=4, frames=2)
    padded = pad_video(video, padding, mode="reflect")
    assert padded.shape == (1, 3, 9, 544, 64)
    # original content untouched, padding replicated/reflected, then removed exactly
    assert torch.equal(padded[:, :, :7, :540, :60], video)
    assert torch.equal(padded[:, :, 7], padded[:, :, 6])
    assert torch.equal(unpad_video(padded, padding), video)


def test_pad_rejects_non_video() -> None:
    with pytest.raises(ValueError, match="B, C, T, H, W"):
        pad_video(torch.rand(3, 8, 8), Padding(1, 1, 0))
