"""Depth for one window of a batch, from an estimator, consistent over the whole video.

A datamodule hands the model windows of a long video. Estimating depth window by
window would give each window its own relative scale (and flicker at the seams), so
for a video *file* the estimator runs once over the whole video, streamed and cached
on disk (:meth:`stereo_lit.depth.VDAEstimator.video_depth`), and each window takes its
slice. In-memory clips (TartanAir, text-to-stereo) go through ``estimate`` directly.

Also here: least-squares alignment of relative inverse depth to a reference
disparity, used when an estimated depth is evaluated against ground truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereo_lit.padding import Padding, pad_video


def _first(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.flatten()[0].item()
    if isinstance(value, (list, tuple)):
        return value[0]
    return value


def batch_padding(batch: dict[str, Any]) -> Padding:
    """The :class:`Padding` recorded in a (collated) batch; zero when absent."""
    pad = batch.get("padding")
    if pad is None:
        return Padding()
    if isinstance(pad, (list, tuple)):
        pad = pad[0]
    if isinstance(pad, Padding):
        return pad
    return Padding(int(_first(pad["bottom"])), int(_first(pad["right"])), int(_first(pad.get("frames", 0))))


def whole_video_depth(
    estimator: Any, video_path: str, fps: float, size: tuple[int, int], num_frames: int | None = None
) -> np.ndarray:
    """Depth ``[T, H, W]`` of a whole video file at ``size`` and ``fps`` (the datamodule's timeline).

    Uses ``estimator.video_depth`` (streamed; cached on disk when the estimator has a
    cache) keyed by the file's content, the frame rate and the size.
    """
    from stereo_lit.depth.cache import file_content_hash
    from stereo_lit.io.video_reader import iter_frames

    key = f"{file_content_hash(video_path)}-{fps:.6f}-{size[0]}x{size[1]}"
    return estimator.video_depth(lambda: iter_frames(video_path, fps=fps, size=size), key=key, total_frames=num_frames)


class WindowDepth:
    """Per-video memo of whole-video depth, sliced per window (one video at a time).

    Args:
        estimator: a depth estimator (``estimate(video) -> DepthResult``; ``video_depth``
            for whole files when it has one).
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self._video: tuple[str, float, tuple[int, int]] | None = None
        self._depth: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return str(getattr(self.estimator, "kind", "inverse_relative"))

    def for_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, str, torch.Tensor | None]:
        """``(depth [B,1,T,H,W] on the batch's padded grid, kind, whole-video depth or None)``."""
        left = batch["left"]
        path = batch.get("video_path")
        is_file = (
            path is not None and left.shape[0] == 1 and hasattr(self.estimator, "video_depth")
            and "window_start" in batch and Path(str(_first(path))).is_file()
        )
        if not is_file:
            result = self.estimator.estimate(left)
            return result.values.to(left), result.kind, None
        padding = batch_padding(batch)
        height, width = left.shape[-2] - padding.bottom, left.shape[-1] - padding.right
        video = (str(_first(path)), float(_first(batch["fps"])), (height, width))
        if video != self._video:
            self._video, self._depth = video, None
            self._depth = whole_video_depth(self.estimator, *video, num_frames=int(_first(batch["num_frames"])))
        start, stop = int(_first(batch["window_start"])), int(_first(batch["window_stop"]))
        if self._depth.shape[0] < stop:
            raise ValueError(
                f"{video[0]}: depth has {self._depth.shape[0]} frames but window [{start}, {stop}) was requested"
            )
        window = torch.from_numpy(np.array(self._depth[start:stop], dtype=np.float32))[None, None]
        window = pad_video(window, padding, "replicate")
        whole = torch.from_numpy(np.array(self._depth[:: max(1, self._depth.shape[0] // 64)], dtype=np.float32))
        return window.to(left), self.kind, whole


def align_inverse_depth(
    inv_depth: torch.Tensor, disparity_ref_px: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Least-squares ``scale * inv_depth + shift`` matching ``disparity_ref_px`` on valid pixels.

    The usual protocol for scoring relative depth: the scale and shift are the only
    things relative depth cannot know. One fit per batch element; the result is
    clamped at 0 (disparity is >= 0).

    Args:
        inv_depth: ``[B,1,T,H,W]`` relative inverse depth (larger = nearer).
        disparity_ref_px: ``[B,1,T,H,W]`` reference disparity (e.g. ground truth).
        valid: ``[B,1,T,H,W]`` mask of pixels to fit on (finite reference assumed elsewhere).
    """
    out = torch.empty_like(disparity_ref_px, dtype=torch.float32)
    for i in range(inv_depth.shape[0]):
        x, y = inv_depth[i].double().flatten(), disparity_ref_px[i].double().flatten()
        ok = torch.isfinite(x) & torch.isfinite(y)
        if valid is not None:
            ok &= valid[i].flatten() > 0.5
        if ok.sum() < 2:
            raise ValueError("cannot align estimated depth: fewer than 2 valid reference pixels")
        design = torch.stack([x[ok], torch.ones_like(x[ok])], dim=1)
        solution = torch.linalg.lstsq(design, y[ok].unsqueeze(1)).solution.flatten()
        out[i] = (solution[0] * inv_depth[i].double() + solution[1]).clamp_min(0).float()
    return out
