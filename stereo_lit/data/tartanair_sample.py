"""Turn the raw frames of one TartanAir clip into a training/evaluation sample.

Shared by the folder and the shard readers, so both give identical samples. Pure
functions over numpy/torch; no file access.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stereo_lit.stereo.padding import pad_video, padding_for
from stereo_lit.stereo.windows import next_wan_length, plan_windows


@dataclass(frozen=True)
class ClipSpec:
    """Which source frames a sample holds and how it is padded in time.

    Attributes:
        indices: source frame indices, in order (``frame_step`` apart).
        window_start, window_stop, keep_start: absolute source frames covered/produced.
        target_frames: length after temporal padding (``4k+1``).
    """

    indices: tuple[int, ...]
    window_start: int
    window_stop: int
    keep_start: int
    target_frames: int


def plan_clips(num_frames: int, clip_frames: int, stride: int, frame_step: int = 1) -> list[ClipSpec]:
    """Clips of ``clip_frames`` frames ``frame_step`` apart, starting every ``stride`` frames.

    A trajectory too short for one clip gives one clip of all its frames, padded in time.
    """
    if stride < 1 or frame_step < 1:
        raise ValueError(f"stride and frame_step must be >= 1, got {stride}, {frame_step}")
    span = (clip_frames - 1) * frame_step + 1
    if num_frames < span:
        indices = tuple(range(0, num_frames, frame_step))
        return [ClipSpec(indices, 0, indices[-1] + 1, 0, clip_frames)]
    clips = []
    for start in range(0, num_frames - span + 1, stride):
        indices = tuple(range(start, start + span, frame_step))
        clips.append(ClipSpec(indices, start, start + span, start, clip_frames))
    return clips


def plan_predict(num_frames: int, window: int, overlap: int) -> list[ClipSpec]:
    """Predict windows (every frame, each produced once): :func:`plan_windows` as clips."""
    specs = []
    for w in plan_windows(num_frames, window, overlap):
        specs.append(ClipSpec(tuple(range(w.start, w.stop)), w.start, w.stop, w.keep_start, next_wan_length(w.num_frames)))
    return specs


def scaled_intrinsics(
    intrinsics: tuple[float, float, float, float, float], native: tuple[int, int], out: tuple[int, int]
) -> tuple[float, float, float, float, float]:
    """(fx, fy, cx, cy, baseline) at the native ``(H, W)`` -> at the output ``(H, W)``."""
    fx, fy, cx, cy, baseline = intrinsics
    sy, sx = out[0] / native[0], out[1] / native[1]
    return fx * sx, fy * sy, cx * sx, cy * sy, baseline


def _video(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float ``[3, T, H, W]`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float().div_(255.0)


def _resize_video(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[C, T, H, W]`` bilinear (antialiased when shrinking)."""
    frames = video.permute(1, 0, 2, 3)
    out = F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0, 1).permute(1, 0, 2, 3).contiguous()


def _resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[1, T, H, W]`` nearest (no invented depths at object edges)."""
    return F.interpolate(depth.permute(1, 0, 2, 3), size=size, mode="nearest-exact").permute(1, 0, 2, 3).contiguous()


def depth_targets(
    depth_m: np.ndarray, fx_px: float, baseline_m: float, size: tuple[int, int] | None, invalid_depth: str, name: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(depth_m, disparity_px, valid)`` each ``[1, T, H, W]`` at the output size.

    ``disparity = fx * baseline / depth`` with ``fx`` at the output width; invalid
    (non-finite or <= 0) depth is an error naming ``name`` unless ``invalid_depth="mask"``,
    in which case it gets depth 0, disparity 0 and valid 0.
    """
    depth = torch.from_numpy(np.ascontiguousarray(depth_m, dtype=np.float32))[None]
    if size is not None and tuple(depth.shape[-2:]) != tuple(size):
        depth = _resize_depth(depth, size)
    valid = torch.isfinite(depth) & (depth > 0)
    if not bool(valid.all()) and invalid_depth == "raise":
        bad = int((~valid).sum())
        raise ValueError(f"{name}: depth has {bad} NaN/inf/non-positive values (set invalid_depth='mask' to mask them)")
    depth = torch.where(valid, depth, torch.zeros_like(depth))
    disparity = torch.where(valid, fx_px * baseline_m / depth.clamp_min(1e-6), torch.zeros_like(depth))
    return depth, disparity, valid.float()


def build_sample(
    spec: ClipSpec,
    frames: dict[str, np.ndarray],
    intrinsics: tuple[float, float, float, float, float],
    ids: dict[str, Any],
    size: tuple[int, int] | None = None,
    pad_mode: str = "replicate",
    invalid_depth: str = "raise",
) -> dict[str, Any]:
    """The sample of one clip.

    Args:
        spec: the clip.
        frames: ``left`` (and ``right``) uint8 ``[T, H, W, 3]``; ``depth_left`` /
            ``depth_right`` float32 ``[T, H, W]`` metres, where present.
        intrinsics: (fx, fy, cx, cy, baseline_m) at the native size.
        ids: ``video_path``, ``sample_id``, ``env``, ``difficulty``, ``trajectory``,
            ``fps``, ``num_frames``, ``caption`` (copied into the sample).
        size: output ``(H, W)`` (multiples of 16) or None for the native size.
    """
    left = _video(frames["left"])
    native = tuple(left.shape[-2:])
    if size is not None and tuple(size) != native:
        left = _resize_video(left, size)
    out_size = tuple(left.shape[-2:])
    fx, fy, cx, cy, baseline = scaled_intrinsics(intrinsics, native, out_size)
    num = left.shape[1]
    padding = padding_for(out_size[0], out_size[1])
    padding = type(padding)(padding.bottom, padding.right, spec.target_frames - num)
    if padding.frames < 0:
        raise ValueError(f"{ids.get('video_path')}: clip of {num} frames is longer than its target {spec.target_frames}")

    def pad(x: torch.Tensor, mode: str = "replicate") -> torch.Tensor:
        return pad_video(x[None], padding, mode)[0]

    def pad_mask(mask: torch.Tensor) -> torch.Tensor:
        return F.pad(mask, (0, padding.right, 0, padding.bottom, 0, padding.frames), value=0.0)

    sample: dict[str, Any] = {"left": pad(left, pad_mode)}
    if "right" in frames:
        right = _video(frames["right"])
        sample["right"] = pad(_resize_video(right, out_size) if tuple(right.shape[-2:]) != out_size else right, pad_mode)
    for eye in ("left", "right"):
        key = f"depth_{eye}"
        if key not in frames:
            continue
        name = f"{ids.get('video_path')} ({key}, frames {spec.indices[0]}..{spec.indices[-1]})"
        depth, disparity, valid = depth_targets(frames[key], fx, baseline, out_size, invalid_depth, name)
        sample[f"depth_{eye}_m"] = pad(depth)
        sample[f"disparity_{eye}_px"] = pad(disparity)
        sample[f"valid_{eye}"] = pad_mask(valid)
    sample.update(
        padding={"bottom": padding.bottom, "right": padding.right, "frames": padding.frames},
        intrinsics=torch.tensor([fx, fy, cx, cy, baseline], dtype=torch.float32),
        first_frame=int(spec.indices[0]),
        window_start=int(spec.window_start),
        window_stop=int(spec.window_stop),
        keep_start=int(spec.keep_start),
    )
    sample.update(ids)
    return sample
