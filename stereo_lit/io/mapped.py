"""Reading frames from memory-mapped ``.npy`` files without keeping the file in the process's memory.

Depth files and the depth cache are ``np.load(..., mmap_mode="r")`` arrays: a window reads its
frames on demand. Every page read stays mapped into the process, though, so its resident memory
grew with the video's length (1080p convert with a 270x480 depth file: 1.80 GiB peak for 70
frames, 1.90 GiB for 280; the pages are the page cache's, but RSS and the peak the converter
reports count them). :func:`read` copies the frames out and then drops the mapping's pages from the
process (``MADV_DONTNEED``: the kernel keeps them cached, the next read maps them again).
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np


def release(array: Any) -> None:
    """Unmap the pages of a read-only memory-mapped array (an ``np.memmap`` of mode ``"r"``, as
    ``np.load(..., mmap_mode="r")`` gives, or a view of one) from this process; anything else is
    left alone (a copy-on-write ``"c"`` mapping would lose its changes). Reading it again maps the
    pages again."""
    mapping = getattr(array, "_mmap", None)
    if mapping is None or getattr(array, "mode", None) != "r" or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        mapping.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # a closed mapping, or a platform that refuses it: keep the pages
        pass


def read(array: Any, index: Any, dtype: Any = None) -> np.ndarray:
    """``array[index]`` as a new in-memory array (as ``dtype`` when given), after which the pages of a
    memory-mapped ``array`` are dropped from the process (:func:`release`)."""
    out = np.array(array[index], dtype=dtype)
    release(array)
    return out
