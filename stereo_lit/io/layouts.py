"""Stereo layouts people watch, on uint8 frames ``[T, H, W, 3]`` (numpy, RGB).

- side-by-side (full: ``2W`` wide; half: each eye squeezed to ``W/2``), top-bottom
  (full and half);
- red-cyan anaglyph with Dubois' least-squares matrices, applied in linear light;
- :func:`apply_convergence`: horizontal image translation (HIT) of both eyes that puts
  the zero-parallax (screen) plane at a chosen disparity; screen parallax of a point
  is ``p = x_R - x_L = shift_px - d``. The vacated edge strips are black (a
  "floating window");
- :func:`disparity_to_colormap` for a depth visualisation video.
"""

from __future__ import annotations

import cv2
import numpy as np

LAYOUTS = ("right", "sbs", "sbs_half", "tb", "tb_half", "anaglyph", "depth")

# Dubois red-cyan matrices (E. Dubois, 2001; the widely used revision), rows = output R, G, B
_DUBOIS_LEFT = np.array(
    [[0.4561, 0.500484, 0.176381], [-0.0400822, -0.0378246, -0.0157589], [-0.0152161, -0.0205971, -0.00546856]],
    dtype=np.float32,
)
_DUBOIS_RIGHT = np.array(
    [[-0.0434706, -0.0879388, -0.00155529], [0.378476, 0.73364, -0.0184503], [-0.0721527, -0.112961, 1.2264]],
    dtype=np.float32,
)


def _check(frames: np.ndarray, name: str) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")


def _resize_width(frames: np.ndarray, width: int) -> np.ndarray:
    return np.stack([cv2.resize(f, (width, f.shape[0]), interpolation=cv2.INTER_AREA) for f in frames])


def _resize_height(frames: np.ndarray, height: int) -> np.ndarray:
    return np.stack([cv2.resize(f, (f.shape[1], height), interpolation=cv2.INTER_AREA) for f in frames])


def side_by_side(left: np.ndarray, right: np.ndarray, half: bool = False) -> np.ndarray:
    """Left | right. Full: ``[T, H, 2W, 3]``; half: each eye squeezed to ``ceil(W/2)``."""
    _check(left, "left"), _check(right, "right")
    if half:
        w = (left.shape[2] + 1) // 2
        left, right = _resize_width(left, w), _resize_width(right, w)
    return np.concatenate([left, right], axis=2)


def top_bottom(left: np.ndarray, right: np.ndarray, half: bool = False) -> np.ndarray:
    """Left over right. Full: ``[T, 2H, W, 3]``; half: each eye squeezed to ``ceil(H/2)``."""
    _check(left, "left"), _check(right, "right")
    if half:
        h = (left.shape[1] + 1) // 2
        left, right = _resize_height(left, h), _resize_height(right, h)
    return np.concatenate([left, right], axis=1)


def _to_linear(srgb: np.ndarray) -> np.ndarray:
    x = srgb.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    x = np.clip(linear, 0.0, 1.0)
    y = np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)
    return (y * 255.0 + 0.5).astype(np.uint8)


def anaglyph_dubois(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Red-cyan anaglyph (Dubois), computed on linear-light RGB, returned as sRGB uint8."""
    _check(left, "left"), _check(right, "right")
    mixed = _to_linear(left) @ _DUBOIS_LEFT.T + _to_linear(right) @ _DUBOIS_RIGHT.T
    return _to_srgb(mixed)


def _shift_rows(frames: np.ndarray, shift_px: float) -> np.ndarray:
    """Translate frames horizontally by ``shift_px`` (sub-pixel, linear); vacated columns black."""
    t, h, w, _ = frames.shape
    matrix = np.float32([[1, 0, shift_px], [0, 1, 0]])
    return np.stack(
        [cv2.warpAffine(f, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0) for f in frames]
    )


def apply_convergence(left: np.ndarray, right: np.ndarray, shift_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Shift the left eye by ``-shift/2`` and the right eye by ``+shift/2`` pixels.

    A point of disparity ``d`` then has screen parallax ``shift_px - d``: zero on the
    plane ``d = shift_px``, behind the screen for farther points (``d < shift``), in
    front for nearer ones.
    """
    if shift_px == 0:
        return left, right
    return _shift_rows(left, -shift_px / 2.0), _shift_rows(right, shift_px / 2.0)


def disparity_to_colormap(disparity_px: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """``[T, H, W]`` disparity (near = large) -> uint8 ``[T, H, W, 3]`` RGB (turbo).

    The range defaults to the 2nd/98th percentiles of the whole clip, so the colours do
    not flicker from frame to frame.
    """
    finite = disparity_px[np.isfinite(disparity_px)]
    if low is None or high is None:
        low, high = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
    scaled = np.clip((np.nan_to_num(disparity_px, nan=low) - low) / max(high - low, 1e-6), 0, 1)
    grey = (scaled * 255.0 + 0.5).astype(np.uint8)
    return np.stack([cv2.cvtColor(cv2.applyColorMap(g, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB) for g in grey])


def compose(layout: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Frames of one stereo ``layout`` (not ``depth``) from both eyes."""
    if layout == "right":
        return right
    if layout in ("sbs", "sbs_half"):
        return side_by_side(left, right, half=layout == "sbs_half")
    if layout in ("tb", "tb_half"):
        return top_bottom(left, right, half=layout == "tb_half")
    if layout == "anaglyph":
        return anaglyph_dubois(left, right)
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
