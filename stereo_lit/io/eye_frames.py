"""Each eye converted to the encoders' pixel format once per chunk, shared by ``right`` and ``sbs``.

The ``right`` layout encodes the right eye; full side-by-side encodes ``left | right``. Made
as RGB and converted per layout, the right eye went through the RGB -> YUV conversion twice
(once alone, once as the right half of the SBS frame), and the SBS frame was first copied
together in RGB: at 1080p 11 ms a frame for the SBS conversion and 2-3 ms for the copy, against
5 ms per eye. For the 4:2:0 formats in :data:`COLUMN_LOCAL_FORMATS` the conversion of a pixel
column pair depends on those columns only (no horizontal chroma filter reaches past them), so
for an even eye width the SBS frame's planes *are* the eyes' planes side by side, byte for byte
(``tests/test_eye_frames.py`` checks it on noise, for every colour matrix and range the writers
use). Top-bottom is not: the chroma's vertical filter reaches across the seam, so it keeps the
RGB path.

- :class:`EyeFrames`: one chunk's (convergence-shifted) eyes; :meth:`EyeFrames.converted`
  converts a frame of an eye once per writer set-up (:attr:`StreamingVideoWriter.conversion`),
  whichever encoder thread asks first, and hands the others the same frame;
- :class:`EyeJob` and :class:`SideBySideJob`: what the ``right`` and ``sbs`` writers' threads
  run (:class:`~stereo_lit.io.video_writer.BackgroundWriter` calls ``encode_into``);
- :func:`side_by_side_frame`: two converted frames joined plane by plane.
"""

from __future__ import annotations

import threading

import av
import numpy as np

from stereo_lit.io.layouts import side_by_side
from stereo_lit.io.video_writer import StreamingVideoWriter, zero_row_padding

#: pixel formats whose RGB -> YUV conversion is column-local (see the module docstring)
COLUMN_LOCAL_FORMATS = ("yuv420p", "yuv420p10le")


class EyeFrames:
    """The eyes of one chunk, uint8 ``[T, H, W, 3]`` each, and their converted frames."""

    def __init__(self, left: np.ndarray, right: np.ndarray) -> None:
        for name, eye in (("left", left), ("right", right)):
            if eye.ndim != 4 or eye.shape[-1] != 3 or eye.dtype != np.uint8:
                raise ValueError(f"the {name} eye must be uint8 [T, H, W, 3], got {eye.dtype} {eye.shape}")
        if left.shape != right.shape:
            raise ValueError(f"both eyes must have one shape, got {left.shape} and {right.shape}")
        self.eyes = {"left": left, "right": right}
        self._lock = threading.Lock()
        self._frames: dict[tuple, tuple[threading.Lock, list]] = {}

    def converted(self, eye: str, index: int, writer: StreamingVideoWriter) -> av.VideoFrame:
        """Frame ``index`` of ``eye`` converted by ``writer`` (prepared), made once for every
        writer of the same :attr:`~StreamingVideoWriter.conversion`. The frame is shared: read it only."""
        key = (eye, index, writer.conversion)
        with self._lock:
            lock, slot = self._frames.setdefault(key, (threading.Lock(), []))
        with lock:  # a second thread asking for the same frame waits for the first one's
            if not slot:
                slot.append(writer.convert(self.eyes[eye][index]))
            return slot[0]


def side_by_side_frame(left: av.VideoFrame, right: av.VideoFrame) -> av.VideoFrame:
    """``left | right``: a new frame of the same pixel format whose every plane holds the two
    frames' planes side by side (row padding zeroed, the colour tags of ``left``)."""
    out = av.VideoFrame(left.width + right.width, left.height, left.format.name)
    for index, (plane, a, b) in enumerate(zip(out.planes, left.planes, right.planes)):
        a_bytes, b_bytes = _row_bytes(left, index), _row_bytes(right, index)
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        rows[:, :a_bytes] = np.frombuffer(a, np.uint8).reshape(-1, a.line_size)[:, :a_bytes]
        rows[:, a_bytes : a_bytes + b_bytes] = np.frombuffer(b, np.uint8).reshape(-1, b.line_size)[:, :b_bytes]
    for key in ("color_primaries", "color_trc", "colorspace", "color_range"):
        setattr(out, key, getattr(left, key))
    return zero_row_padding(out)


def _row_bytes(frame: av.VideoFrame, plane: int) -> int:
    """Bytes of picture in a row of ``frame``'s plane ``plane`` (its line size may be padded)."""
    return sum(c.width * ((c.bits + 7) // 8) for c in frame.format.components if c.plane == plane)


class EyeJob:
    """Encode one eye of a chunk (the ``right`` layout), through the shared conversions."""

    def __init__(self, frames: EyeFrames, eye: str) -> None:
        self.frames, self.eye = frames, eye

    def encode_into(self, writer: StreamingVideoWriter) -> None:
        eye = self.frames.eyes[self.eye]
        writer.prepare(eye.shape[1], eye.shape[2])
        writer.encode_frames(self.frames.converted(self.eye, i, writer) for i in range(eye.shape[0]))


class SideBySideJob:
    """Encode ``left | right`` of a chunk (the ``sbs`` layout): the eyes' converted frames joined
    where that is exact (an even eye width, a :data:`COLUMN_LOCAL_FORMATS` encoder), else the
    RGB frames joined and converted as any layout."""

    def __init__(self, frames: EyeFrames) -> None:
        self.frames = frames

    def encode_into(self, writer: StreamingVideoWriter) -> None:
        left, right = self.frames.eyes["left"], self.frames.eyes["right"]
        count, height, width = left.shape[:3]
        writer.prepare(height, 2 * width)
        if width % 2 or writer.pix_fmt not in COLUMN_LOCAL_FORMATS:  # an odd eye is padded alone, not in SBS
            writer.write(side_by_side(left, right))
            return
        writer.encode_frames(
            side_by_side_frame(self.frames.converted("left", i, writer), self.frames.converted("right", i, writer))
            for i in range(count)
        )
