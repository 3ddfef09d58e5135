"""Streaming pieces of predict: chunk plans, uint8 padding and a reader thread.

A frame-independent method (the model-free ones) needs no ``4k+1``-frame window: predict
cuts each video into chunks of about :data:`CHUNK_PIXELS` pixels (2 frames of 1080p, 1 of
4K), so memory does not grow with the frame size times 81; frames stay uint8 until the
module needs floats; a :class:`ReaderThread` decodes the next chunks while the current one
is computed and encoded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset

from stereo_lit.stereo.padding import Padding
from stereo_lit.stereo.windows import Window

CHUNK_PIXELS = 6_000_000  # px per predict chunk of a frame-independent method (~150 B/px of WarpFill temporaries): 2 frames of 1080p, 1 of 4K


def chunk_plan(num_frames: int, chunk: int) -> list[Window]:
    """Back-to-back chunks of ``chunk`` frames (the last one shorter), no overlap: the
    windows of a frame-independent method (each frame is made from its own depth and
    picture, so any cut gives the same frames)."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 frame, got {chunk}")
    return [Window(s, min(s + chunk, num_frames), s) for s in range(0, num_frames, chunk)]


def frames_per_chunk(height: int, width: int, budget_px: int) -> int:
    """Frames per chunk so that one chunk holds about ``budget_px`` pixels (1 to 16 frames)."""
    return max(1, min(16, budget_px // max(1, height * width)))


def pad_uint8(frames: np.ndarray, padding: Padding, mode: str) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` padded at the bottom/right (``replicate`` or ``reflect``, as
    :func:`~stereo_lit.stereo.padding.pad_video`) and at the end (last frame repeated)."""
    if padding.bottom or padding.right:
        h, w = frames.shape[1:3]
        numpy_mode = "reflect" if mode == "reflect" and padding.bottom < h and padding.right < w else "edge"
        frames = np.pad(frames, ((0, 0), (0, padding.bottom), (0, padding.right), (0, 0)), mode=numpy_mode)
    if padding.frames:
        frames = np.concatenate([frames, np.repeat(frames[-1:], padding.frames, axis=0)])
    return frames



class ReaderThread(IterableDataset):
    """Iterate ``stream`` in a background thread, at most ``depth`` items ahead (a bounded
    queue), so decoding overlaps the model and the encoders (PyAV releases the GIL while it
    decodes and converts). Items and errors arrive in order; stopping early stops the thread."""

    def __init__(self, stream: Any, depth: int = 2) -> None:
        self.stream, self.depth = stream, max(1, int(depth))

    def __len__(self) -> int:
        return len(self.stream)

    def __iter__(self) -> Iterator[Any]:
        items: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        done = object()

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for item in self.stream:
                    if not put((item, None)):
                        return
                put((done, None))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                put((done, exc))

        thread = threading.Thread(target=work, name="stereo-lit-reader", daemon=True)
        thread.start()
        try:
            while True:
                item, error = items.get()
                if error is not None:
                    raise error
                if item is done:
                    return
                yield item
        finally:
            stop.set()
            thread.join(timeout=5)


#: glibc's mmap threshold while streaming: buffers up to this size are reused from the heap
HEAP_BUFFER_BYTES = 16 << 20


def limit_heap_growth(mmap_threshold: int = HEAP_BUFFER_BYTES, arenas: int = 2) -> bool:
    """Fix glibc's mmap threshold and arena count for streaming (glibc only; False elsewhere).

    Streaming allocates and frees the same large buffers every chunk, in several threads.
    Left alone, glibc raises its mmap threshold as buffers are freed (up to 32 MiB) and keeps
    per-thread arenas, so freed chunks stay resident: 2.26 GiB peak RSS at 540p against 1.65
    GiB with a fixed 1 MiB threshold and 2 arenas (one pair of runs, loaded 2-core machine).
    A 1 MiB threshold maps and unmaps every buffer, and each chunk then page-faults its
    buffers in again; a fixed :data:`HEAP_BUFFER_BYTES` (16 MiB: a 1080p frame's float32
    disparity, two of them in a chunk) reuses them from the heap: at 1080p minor faults 0.68
    -> 0.21 million, system time 1.57 -> 0.82 s, peak RSS 1.56 -> 1.76 GiB (medians of three
    interleaved runs; docs/memory.md). Equivalent to
    ``MALLOC_MMAP_THRESHOLD_=16777216 MALLOC_ARENA_MAX=2``."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        try:  # glibc's own name first: find_library runs `ldconfig -p` in a subprocess (0.1-0.2 s)
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_mmap_threshold, m_arena_max = -3, -8
        return bool(libc.mallopt(m_mmap_threshold, int(mmap_threshold))) and bool(libc.mallopt(m_arena_max, int(arenas)))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
