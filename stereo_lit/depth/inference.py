"""Windowed Video-Depth-Anything inference that streams frames in and depth out.

Same algorithm as the official ``infer_video_depth`` (32-frame windows stepping by 22 frames; the
first 10 frames of each window are the previous window's keyframes ``[0,12,24..31]``; the video is
padded with its last frame; windows are aligned by least-squares scale/shift on two keyframes and
cross-faded over 8 seam frames), but frames are read lazily and depth is yielded as soon as it is
final, so memory is bounded by a few windows whatever the video length.

With shot ``cuts``, every shot is streamed as a video of its own: windows restart at a cut, so
no keyframe is carried, aligned or cross-faded across it (a new shot's depth scale owes nothing
to the previous shot's).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from stereo_lit.io.console import stage_progress

from .align import FRAME_STEP, INFER_LEN, KEYFRAMES, WindowAligner
from .model import VideoDepthAnything
from .preprocess import network_size, preprocess_frame
from .resize import resize_depth


class FrameFeeder:
    """Reads frames lazily and preprocesses them; pads with the last frame once the video ends."""

    def __init__(self, frames: Iterator[np.ndarray], size: tuple[int, int]) -> None:
        self._frames = frames
        self.size = size
        self.n_read = 0  # real frames read so far (== video length once exhausted)
        self.exhausted = False
        self._last: torch.Tensor | None = None
        self._shape: tuple[int, ...] | None = None

    def take(self, n: int) -> list[torch.Tensor]:
        out = []
        for _ in range(n):
            frame = None if self.exhausted else next(self._frames, None)
            if frame is None:
                self.exhausted = True
                if self._last is None:
                    raise ValueError("the video has no frames")
                out.append(self._last)
            else:
                frame = np.asarray(frame)
                if self._last is not None and frame.shape != self._shape:
                    raise ValueError(f"frame {self.n_read} has shape {frame.shape}, the video started with {self._shape}")
                self._shape = frame.shape
                self.n_read += 1
                self._last = preprocess_frame(frame, self.size)
                out.append(self._last)
        return out


def num_windows(num_frames: int) -> int:
    """Windows the official algorithm runs for a video of ``num_frames`` frames."""
    return max(1, math.ceil(num_frames / FRAME_STEP))


def _autocast_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    if name is None or isinstance(name, torch.dtype):
        return name
    table = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if name in ("float32", "fp32", "none"):
        return None
    if name not in table:
        raise ValueError(f"autocast dtype must be one of float16/bfloat16/float32, got {name!r}")
    return table[name]


@torch.no_grad()
def run_windows(
    model: VideoDepthAnything,
    windows: torch.Tensor,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> np.ndarray:
    """windows ``[N,32,3,h,w]`` -> depth ``[N,32,h,w]`` float32 numpy at the network's resolution."""
    param = next(model.parameters())
    x = windows.to(device=device, dtype=param.dtype)
    with torch.autocast(device_type=device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        depth = model(x)
    return depth.float().cpu().numpy()


def stream_video_depth(
    model: VideoDepthAnything,
    frames: Iterable[np.ndarray],
    input_size: int = 518,
    device: str | torch.device = "cpu",
    autocast_dtype: str | torch.dtype | None = None,
    windows_per_batch: int = 1,
    progress: bool = False,
    total_frames: int | None = None,
    metric: bool | None = None,
    cuts: Sequence[int] | None = None,
    resize: bool = True,
) -> Iterator[np.ndarray]:
    """Depth of each frame, in order, as float32 ``[H,W]`` arrays (same size as the frames).

    ``resize=False`` yields them at the network's size (``network_size``) instead: windows are
    stitched at that size and each frame is upsampled on its own (:mod:`stereo_lit.depth.resize`),
    so memory does not grow with the video's resolution.

    frames: HxWx3 RGB, uint8 or float in [0,1]; read lazily (a generator works).
    ``metric`` (default: ``model.metric``) skips scale/shift alignment; output is metres then,
    relative inverse depth otherwise. ``windows_per_batch`` runs that many windows per forward pass
    (their inputs do not depend on earlier outputs). At most about ``32 * (windows_per_batch + 1)``
    preprocessed frames and ``32 * windows_per_batch + 10`` depth frames (network size) are held at any time.
    ``cuts``: first frame of each shot after the first; each shot is estimated independently.
    """
    if windows_per_batch < 1:
        raise ValueError(f"windows_per_batch must be >= 1, got {windows_per_batch}")
    if cuts:
        yield from _stream_shots(
            model, frames, sorted({int(c) for c in cuts if int(c) > 0}), input_size, device, autocast_dtype,
            windows_per_batch, progress, total_frames, metric, resize,
        )
        return
    device = torch.device(device)
    dtype = _autocast_dtype(autocast_dtype)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        return
    first = np.asarray(first)
    out_hw = (int(first.shape[0]), int(first.shape[1]))
    feeder = FrameFeeder(itertools.chain([first], iterator), network_size(*out_hw, input_size))
    aligner = WindowAligner(metric=model.metric if metric is None else metric, out_hw=out_hw)
    total = num_windows(total_frames) if total_frames else None
    bar = stage_progress(total=total, desc="depth", unit="window", disable=not progress)
    emitted = 0
    built = 0  # windows built so far; window k starts at frame k*22 and exists iff k*22 < length
    previous: torch.Tensor | None = None
    try:
        while True:
            batch = []
            while len(batch) < windows_per_batch:
                if previous is None:
                    window = torch.stack(feeder.take(INFER_LEN))
                elif feeder.n_read > built * FRAME_STEP:
                    window = torch.stack([previous[k] for k in KEYFRAMES] + feeder.take(FRAME_STEP))
                else:
                    break
                batch.append(window)
                previous = window
                built += 1
            if not batch:
                break
            depth = run_windows(model, torch.stack(batch), device, dtype)
            del batch
            for window_depth in depth:
                for frame_depth in aligner.push(window_depth):
                    if emitted < feeder.n_read:
                        emitted += 1
                        yield resize_depth(frame_depth[None], out_hw)[0] if resize else frame_depth
                bar.update(1)
            del depth
        for frame_depth in aligner.flush():
            if emitted < feeder.n_read:
                emitted += 1
                yield resize_depth(frame_depth[None], out_hw)[0] if resize else frame_depth
    finally:
        bar.close()


def _stream_shots(
    model: VideoDepthAnything, frames: Iterable[np.ndarray], cuts: list[int], input_size: int,
    device: str | torch.device, autocast_dtype: str | torch.dtype | None, windows_per_batch: int, progress: bool,
    total_frames: int | None, metric: bool | None, resize: bool = True,
) -> Iterator[np.ndarray]:
    """:func:`stream_video_depth` shot by shot (the frames between consecutive cuts)."""
    iterator = iter(frames)
    edges = [0, *cuts]
    for i, start in enumerate(edges):
        stop = edges[i + 1] if i + 1 < len(edges) else None
        shot = itertools.islice(iterator, None if stop is None else stop - start)
        length = None if stop is None else stop - start
        if stop is None and total_frames:
            length = max(1, total_frames - start)
        yield from stream_video_depth(
            model, shot, input_size, device, autocast_dtype, windows_per_batch, progress, length, metric,
            resize=resize,
        )


def infer_video_depth(
    model: VideoDepthAnything,
    frames: Iterable[np.ndarray] | np.ndarray,
    input_size: int = 518,
    device: str | torch.device = "cpu",
    autocast_dtype: str | torch.dtype | None = None,
    windows_per_batch: int = 1,
    progress: bool = False,
    cuts: Sequence[int] | None = None,
) -> np.ndarray:
    """Whole-video depth ``[T,H,W]`` float32 (the official ``infer_video_depth`` result, fp32 on CPU).

    ``cuts``: shot cuts at which the windows restart (:func:`stream_video_depth`).
    """
    total = len(frames) if hasattr(frames, "__len__") else None
    depth = list(
        stream_video_depth(
            model, frames, input_size, device, autocast_dtype, windows_per_batch, progress, total, cuts=cuts
        )
    )
    if not depth:
        raise ValueError("the video has no frames")
    return np.stack(depth, axis=0)
