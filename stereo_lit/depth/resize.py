"""Depth kept at the network's resolution and resized to the video's only when frames are read.

Video-Depth-Anything sees every frame at ``network_size`` (short side ~518, whatever the video's
size) and the official script upsamples each window to the video's size (bilinear,
``align_corners=True``) before stitching. Here windows are stitched at network resolution and
each frame is upsampled on its own when it is read, so nothing of the size of a window, let
alone a video, is ever held as float32 at the video's resolution:

=============================  ==========================  ==========================
held                           before (float32, video px)  now
=============================  ==========================  ==========================
one 32-frame window            1080p 265 MB, 4K 1.06 GB    518x924 float32: 61 MB
stitching (10 frames)          1080p 83 MB, 4K 332 MB      518x924 float32: 19 MB
cache / in-memory, per frame   1080p 8.3 MB, 4K 33 MB      518x924 float16: 0.96 MB
=============================  ==========================  ==========================

Bilinear interpolation is linear and its weights sum to 1, so upsampling commutes with the
stitching's scale/shift and cross-fade; the least-squares fit itself is the full-resolution fit
computed through the upsampling's Gram matrices (:func:`upsampled_sums`). What remains is the
clamp at 0 (now before the upsampling) and rounding.

Storage: float16 (:data:`STORAGE_DTYPE`): each value within 2**-11 of itself (round to nearest),
so the disparity moves by at most ``2**-11 * max|depth| / (high - low) * max_disparity_px``.
Measured against the old path (float32 at 1080p; ``benchmarks/bench_vda.py --accuracy``, table in
``docs/memory.md``, section "Depth"), 1080p width, 2% strength (38.4 px): stitching at network
size changes depth by rounding only (1.7e-7 relative); the range sample taken at network size
moves disparity by at most 0.015 px; float16 storage by at most 0.032 px in all (0.005 px mean).
Depth in a narrow band far from 0 is the worst case (values 5..6: 0.14 px, the test's bound).
A finite value beyond :data:`FLOAT16_LIMIT` makes :class:`~stereo_lit.depth.cache.DepthCache`
store the whole entry as float32 instead (exactly), never inf.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stereo_lit.io import mapped

STORAGE_DTYPE = np.float16
#: largest magnitude stored as float16 (its max is 65504); larger values widen the entry to float32
FLOAT16_LIMIT = 60000.0
#: bump when what the cache stores changes (resolution, dtype): old entries are then never read
STORAGE_VERSION = "network-res-float16-v2"


def resize_depth(depth: np.ndarray | torch.Tensor, out_hw: tuple[int, int]) -> np.ndarray:
    """Depth ``[N, h, w]`` (any float dtype) -> float32 ``[N, H, W]``, bilinear with ``align_corners=True``.

    The official VDA upsampling; frames are resized one at a time so that at most one full-size
    float32 temporary exists besides the output.
    """
    if len(depth.shape) != 3:
        raise ValueError(f"resize_depth: expected depth [N, h, w], got shape {tuple(depth.shape)}")
    out = np.empty((depth.shape[0], *out_hw), dtype=np.float32)
    for i in range(depth.shape[0]):
        frame = depth[i]
        frame = frame.float() if isinstance(frame, torch.Tensor) else torch.from_numpy(np.array(frame, np.float32))
        if tuple(frame.shape) == tuple(out_hw):
            out[i] = frame.cpu().numpy()
        else:
            up = F.interpolate(frame[None, None], size=out_hw, mode="bilinear", align_corners=True)
            out[i] = up[0, 0].cpu().numpy()
    return out


@lru_cache(maxsize=8)
def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The 1-D linear interpolation (``align_corners=True``) as a float64 matrix ``[n_out, n_in]``."""
    if n_in == n_out:
        return np.eye(n_in)
    eye = torch.eye(n_in, dtype=torch.float64)[:, None, :]  # n_in signals of length n_in
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=True)[:, 0, :].T.numpy()


@lru_cache(maxsize=8)
def _gram(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``(U^T U [n_in, n_in], U^T 1 [n_in])`` of the interpolation matrix ``U``."""
    u = _interp_matrix(n_in, n_out)
    return u.T @ u, u.sum(axis=0)


def upsampled_sums(
    prediction: list[np.ndarray], target: list[np.ndarray], out_hw: tuple[int, int]
) -> tuple[float, float, float, float, float]:
    """Sums of the least-squares fit of ``up(prediction)`` to ``up(target)``, from network-size frames.

    Returns ``(sum p*p, sum p, count, sum p*t, sum t)`` over the frames as if each ``[h, w]``
    frame were first resized to ``out_hw`` (:func:`resize_depth`): with ``U = Uy (x) Ux`` the
    separable upsampling, ``sum up(P)*up(Q) = sum P * (Gy Q Gx)`` with ``G = U^T U``, and
    ``sum up(P) = cy^T P cx`` with ``c = U^T 1``. Float64, exact up to rounding.
    """
    h, w = prediction[0].shape
    gy, cy = _gram(h, out_hw[0])
    gx, cx = _gram(w, out_hw[1])
    pp = p1 = pt = t1 = 0.0
    for p, t in zip(prediction, target):
        p, t = np.asarray(p, np.float64), np.asarray(t, np.float64)
        gp = gy @ p @ gx
        pp += float(np.sum(p * gp))
        pt += float(np.sum(t * gp))
        p1 += float(cy @ p @ cx)
        t1 += float(cy @ t @ cx)
    return pp, p1, float(len(prediction) * out_hw[0] * out_hw[1]), pt, t1


class ResizedDepth:
    """Read-only ``[T, H, W]`` float32 view of depth stored ``[T, h, w]`` (network size, any dtype).

    Indexing (an int, a slice, or a tuple whose first item is one of those) resizes only the
    frames it selects (:func:`resize_depth`); ``stored`` is the array underneath (memmap or ndarray).
    """

    def __init__(self, stored: Any, out_hw: tuple[int, int]) -> None:
        if len(stored.shape) != 3:
            raise ValueError(f"stored depth must be [T, h, w], got shape {tuple(stored.shape)}")
        self.stored = stored
        self.out_hw = (int(out_hw[0]), int(out_hw[1]))
        self.shape = (int(stored.shape[0]), *self.out_hw)
        self.dtype = np.dtype(np.float32)
        self.ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(index, tuple):
            index, rest = index[0], index[1:]
        if isinstance(index, (int, np.integer)):
            out = resize_depth(self.stored[int(index)][None], self.out_hw)[0][rest]
        elif isinstance(index, slice):
            out = resize_depth(self.stored[index], self.out_hw)[(slice(None), *rest)]
        else:
            raise TypeError(f"ResizedDepth takes an int or a slice of frames, got {type(index).__name__}")
        mapped.release(self.stored)  # a memory-mapped cache entry's pages leave the process (io.mapped)
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)
