"""Frame preprocessing of the official Video-Depth-Anything inference, with the same numerics.

Frames are resized with OpenCV bicubic so the short side is ``input_size`` and both sides are
multiples of 14 (``lower_bound`` rule), then ImageNet-normalised (in float64, as numpy does with
the official list-valued mean/std) and cast to float32 ``[3,h,w]``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .dinov2 import PATCH_SIZE

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float64)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float64)
MAX_ASPECT = 1.78  # wider videos get a smaller input size (official memory rule)


def _constrain_to_multiple(x: float, multiple: int, min_val: int) -> int:
    y = int(np.round(x / multiple) * multiple)
    if y < min_val:
        y = int(np.ceil(x / multiple) * multiple)
    return y


def effective_input_size(frame_h: int, frame_w: int, input_size: int) -> int:
    """Short-side target; reduced for aspect ratios above 1.78 exactly as the official script does."""
    ratio = max(frame_h, frame_w) / min(frame_h, frame_w)
    if ratio > MAX_ASPECT:
        input_size = int(input_size * 1.777 / ratio)
        input_size = round(input_size / PATCH_SIZE) * PATCH_SIZE
    return input_size


def network_size(frame_h: int, frame_w: int, input_size: int = 518) -> tuple[int, int]:
    """(h, w) the network sees for a ``frame_h`` x ``frame_w`` video: short side ~``input_size``, multiples of 14."""
    size = effective_input_size(frame_h, frame_w, input_size)
    scale_h, scale_w = size / frame_h, size / frame_w
    scale = scale_w if scale_w > scale_h else scale_h  # lower bound: the short side reaches `size`
    return (
        _constrain_to_multiple(scale * frame_h, PATCH_SIZE, size),
        _constrain_to_multiple(scale * frame_w, PATCH_SIZE, size),
    )


def frame_to_float(frame: np.ndarray) -> np.ndarray:
    """HxWx3 RGB uint8 (0..255) or float (0..1) -> float32 HxWx3 in [0,1]."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB frame, got shape {tuple(frame.shape)}")
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / 255.0
    return np.asarray(frame, dtype=np.float32)


def preprocess_frame(frame: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Frame (uint8 or [0,1] float, HxWx3 RGB) -> normalised float32 tensor ``[3, h, w]``; size = (h, w)."""
    image = cv2.resize(frame_to_float(frame), (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    image = (image - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32))
