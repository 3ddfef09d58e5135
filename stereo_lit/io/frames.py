"""Frame tensors <-> uint8 arrays at the I/O boundary."""

from __future__ import annotations

import numpy as np
import torch


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """``[3, T, H, W]`` float [0,1] (or uint8, taken as it is) -> uint8 ``[T, H, W, 3]``."""
    if video.dtype == torch.uint8:
        return np.ascontiguousarray(video.detach().permute(1, 2, 3, 0).cpu().numpy())
    return (video.detach().float().clamp(0, 1).permute(1, 2, 3, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
