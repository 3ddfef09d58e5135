"""Shape checks and conversions shared by the metrics (videos ``[B,C,T,H,W]`` in [0, 1])."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

_F = TypeVar("_F", bound=Callable[..., Any])


def _as_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    return value


@contextlib.contextmanager
def autocast_off():
    """Disable autocast (CPU and, when present, CUDA) inside the block: metrics run in true float32."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield


def full_precision(fn: _F) -> _F:
    """Decorator for metric ``update``/``compute``: float tensor arguments cast to float32, autocast off.

    Under ``bf16-mixed`` a convolution inside SSIM would otherwise run in bfloat16
    (SSIM of the true right view 0.56 instead of 1).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args = tuple(_as_float32(a) for a in args)
        kwargs = {k: _as_float32(v) for k, v in kwargs.items()}
        with autocast_off():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_video(x: torch.Tensor, name: str, channels: int | None = None) -> None:
    """Raise a clear error unless ``x`` is a video ``[B,C,T,H,W]`` (with ``channels`` channels)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 5:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a video tensor [B,C,T,H,W], got {shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s), got shape {tuple(x.shape)}")


def check_same_grid(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Same batch, frames, height and width (channels may differ)."""
    if a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:]:
        raise ValueError(
            f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} must share batch, frames, height and width"
        )


def check_stereo_inputs(view: torch.Tensor, other: torch.Tensor, disparity: torch.Tensor, names: tuple[str, str, str]) -> None:
    """Two views ``[B,3,T,H,W]`` and a disparity ``[B,1,T,H,W]`` (px) on one grid; errors use ``names``."""
    check_video(view, names[0], channels=3)
    check_video(other, names[1], channels=3)
    check_video(disparity, names[2], channels=1)
    check_same_grid(view, other, names[0], names[1])
    check_same_grid(view, disparity, names[0], names[2])


def add_sum_states(metric: Any, names: tuple[str, ...] | list[str]) -> None:
    """One float64 running sum per name on a torchmetrics ``Metric`` (summed across ranks)."""
    for name in names:
        metric.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")


def to_frames(x: torch.Tensor) -> torch.Tensor:
    """``[B,C,T,H,W]`` -> ``[B*T,C,H,W]`` (frame index ``b*T + t``)."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def mask_or_ones(mask: torch.Tensor | None, like: torch.Tensor, name: str) -> torch.Tensor:
    """A float 0/1 mask ``[B,1,T,H,W]`` on ``like``'s device (all ones when ``mask`` is None)."""
    if mask is None:
        return torch.ones_like(like[:, :1], dtype=torch.float32)
    check_video(mask, name, channels=1)
    check_same_grid(mask, like, name, "video")
    return (mask.to(like.device) > 0.5).float()


def video_to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[B,3,T,H,W]`` float in [0, 1] -> uint8 ``[B,T,H,W,3]`` RGB (rounded, clipped)."""
    arr = (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 4, 1).cpu().numpy()


def rgb_to_gray_u8(frame_rgb: np.ndarray) -> np.ndarray:
    """uint8 ``[H,W,3]`` RGB -> uint8 ``[H,W]`` luma (ITU-R BT.601, as OpenCV's RGB2GRAY)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)
