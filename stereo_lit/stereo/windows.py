"""Temporal windows over a long video: pure planning, no tensors.

Wan2.1 takes clips of ``4k+1`` frames. A long video is cut into windows of that
length which overlap, and every source frame is *produced* by exactly one window:
window ``i`` writes frames ``[keep_start, stop)``; its first ``keep_start - start``
frames overlap the previous window and are conditioning only (the previous
window's output is carried in as known content, so there is no seam).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """One window of source frames.

    Attributes:
        start: first source frame of the window (inclusive).
        stop: one past the last source frame of the window.
        keep_start: first source frame this window writes to the output; frames
            ``[start, keep_start)`` were produced by the previous window.
        pad_frames: frames to append (repeat of the last frame) so that the window
            length becomes ``4k+1``; non-zero only for a video shorter than one window.
    """

    start: int
    stop: int
    keep_start: int
    pad_frames: int = 0

    @property
    def num_frames(self) -> int:
        """Source frames in the window (without temporal padding)."""
        return self.stop - self.start

    @property
    def num_overlap(self) -> int:
        """Leading frames already produced by the previous window."""
        return self.keep_start - self.start


def is_wan_length(num_frames: int) -> bool:
    """True when ``num_frames`` is ``4k+1`` (k >= 0), the lengths Wan's causal VAE takes."""
    return num_frames >= 1 and (num_frames - 1) % 4 == 0


def next_wan_length(num_frames: int) -> int:
    """Smallest ``4k+1 >= num_frames``."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return num_frames + (-(num_frames - 1)) % 4


def plan_windows(num_frames: int, window: int = 81, overlap: int = 9) -> list[Window]:
    """Cut ``num_frames`` into overlapping ``4k+1``-frame windows covering each frame once.

    Args:
        num_frames: frames in the video (>= 1).
        window: frames per window, ``4k+1``.
        overlap: frames shared by consecutive windows, ``4m+1`` and < ``window`` (so the
            carried frames fill whole latent frames of the next window). The last window
            is aligned to the end of the video and may overlap more.

    Returns:
        Windows in order; ``keep_start`` of each equals ``stop`` of the one before, the
        first keeps from 0 and the last stops at ``num_frames``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not is_wan_length(window):
        raise ValueError(f"window must be 4k+1 frames (e.g. 33, 49, 81), got {window}")
    if overlap < 0 or overlap >= window:
        raise ValueError(f"overlap must be in [0, window={window}), got {overlap}")
    if overlap > 0 and not is_wan_length(overlap):
        raise ValueError(f"overlap must be 0 or 4m+1 frames (e.g. 1, 5, 9), got {overlap}")

    if num_frames <= window:
        return [Window(0, num_frames, 0, next_wan_length(num_frames) - num_frames)]

    stride = window - overlap
    windows: list[Window] = []
    start, produced = 0, 0
    while True:
        if start + window >= num_frames:
            start = num_frames - window
            windows.append(Window(start, num_frames, produced))
            return windows
        windows.append(Window(start, start + window, produced))
        produced = start + window
        start += stride
