"""Stereo layouts people watch, on uint8 frames ``[T, H, W, 3]`` (numpy, RGB).

- side-by-side (full: ``2W`` wide; half: each eye squeezed to ``W/2``), top-bottom
  (full and half);
- red-cyan anaglyph with Dubois' least-squares matrices, applied in linear light;
- :func:`apply_convergence`: horizontal image translation (HIT) of both eyes that puts
  the zero-parallax (screen) plane at a chosen disparity; screen parallax of a point
  is ``p = x_R - x_L = shift_px - d``. One rule for every output: the shifted eyes are what
  every layout shows (``right.mp4`` is the right half of ``sbs.mp4``), and the strip each
  shift vacates (``|shift|/2`` px at one edge of each eye) repeats that eye's edge column, so
  no layout has a black seam or a coloured anaglyph edge;
- :func:`vr180`: each eye painted into a 180x180-degree equirectangular half
  (:func:`stereo_lit.stereo.projection.pinhole_to_equirect`, the source treated as a pinhole
  camera of horizontal field of view ``hfov_deg``), left | right; black outside the
  source's frustum;
- :func:`disparity_to_colormap` for a depth visualisation video;
- :func:`output_filename`: ``plain`` names (``sbs.mp4``) or ``player`` names
  (``<name>_LRF_Full_SBS.mp4``) that VR players and 3D TVs read the format from.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from stereo_lit.stereo.projection import pinhole_focal_px, pinhole_to_equirect
from stereo_lit.io.fast_layouts import anaglyph, shift_rows

LAYOUTS = ("right", "sbs", "sbs_half", "tb", "tb_half", "anaglyph", "vr180", "depth")
NAMINGS = ("plain", "player")

# suffixes VR players / 3D TVs detect in file names (iw3's scheme where it has one:
# LRF = left-right full; _LR half SBS is read as SBS by DeoVR, SKYBOX, HereSphere; TBF full
# top-bottom; _180x180_3dh_LR = 180-degree equirect, 3D horizontal, left first)
PLAYER_SUFFIXES = {
    "right": "_R", "sbs": "_LRF_Full_SBS", "sbs_half": "_LR_Half_SBS", "tb": "_TBF_fulltb", "tb_half": "_TB",
    "anaglyph": "_redcyan", "vr180": "_180x180_3dh_LR", "depth": "_depth",
}
VR180_MAX_EYE = 2048  # px per eye by default: 4096x2048 stays within H.264 level 5.1 decoders


def output_filename(layout: str, naming: str = "plain", stem: str = "") -> str:
    """File name of ``layout``: ``plain`` -> ``<layout>.mp4``; ``player`` ->
    ``<stem><suffix>.mp4`` with :data:`PLAYER_SUFFIXES` (``clip_LRF_Full_SBS.mp4``)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if naming == "plain":
        return f"{layout}.mp4"
    if naming == "player":
        return f"{stem or 'video'}{PLAYER_SUFFIXES[layout]}.mp4"
    raise ValueError(f"model.output.naming must be one of {NAMINGS}, got {naming!r}")


@dataclass
class VR180Options:
    """The ``vr180`` layout (``model.output.vr180`` in YAML).

    Args:
        hfov_deg: horizontal field of view of the source camera, degrees in (0, 180)
            (phones and most film: 60-90).
        eye_size: pixels per eye (square, 180x180 degrees); None: the source's centre
            pixel density (``pi * f_px``), at most :data:`VR180_MAX_EYE`, even.
    """

    hfov_deg: float = 90.0
    eye_size: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < float(self.hfov_deg) < 180.0:
            raise ValueError(f"model.output.vr180.hfov_deg must be in (0, 180) degrees, got {self.hfov_deg!r}")
        if self.eye_size is not None and int(self.eye_size) < 2:
            raise ValueError(f"model.output.vr180.eye_size must be >= 2 px or null, got {self.eye_size!r}")
        self.hfov_deg = float(self.hfov_deg)
        self.eye_size = None if self.eye_size is None else int(self.eye_size)

    def settings(self) -> dict:
        return asdict(self)

    def size_for(self, width: int) -> int:
        """Pixels per eye for a ``width``-pixel source."""
        if self.eye_size is not None:
            return self.eye_size
        side = math.pi * pinhole_focal_px(width, self.hfov_deg)
        return max(2, min(VR180_MAX_EYE, int(round(side / 2.0)) * 2))


@functools.lru_cache(maxsize=4)
def vr180_maps(height: int, width: int, hfov_deg: float, eye_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(map_x, map_y, valid)``, each ``[S, S]`` float32: the source pixel (column, row)
    each equirect pixel reads and whether it lies in the source's frustum.

    The maps come from :func:`pinhole_to_equirect` applied to the source's own pixel
    coordinates (bilinear sampling of a linear ramp is exact), so the geometry is that
    function's and the frames are remapped with ``cv2.remap``, in uint8, chunk by chunk."""
    rows, cols = torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64)
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    coords, valid = pinhole_to_equirect(torch.stack([u, v]), (eye_size, eye_size), hfov_deg)
    return coords[0].float().numpy(), coords[1].float().numpy(), valid.numpy()


def vr180(left: np.ndarray, right: np.ndarray, options: VR180Options | None = None) -> np.ndarray:
    """VR180 side by side ``[T, S, 2S, 3]``: each eye projected into a 180-degree
    equirectangular half (:func:`vr180_maps`), black outside the source's view."""
    _check(left, "left"), _check(right, "right")
    options = options or VR180Options()
    t, h, w, _ = left.shape
    size = options.size_for(w)
    map_x, map_y, valid = vr180_maps(h, w, options.hfov_deg, size)
    keep = valid[..., None] > 0
    out = np.zeros((t, size, 2 * size, 3), dtype=np.uint8)
    for eye, frames in enumerate((left, right)):
        for i, frame in enumerate(frames):
            warped = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out[i, :, eye * size:(eye + 1) * size] = np.where(keep, warped, 0)
    return out


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


def anaglyph_dubois(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Red-cyan anaglyph (Dubois), computed on linear-light RGB, returned as sRGB uint8 ``[T, H, W, 3]``
    (:mod:`stereo_lit.io.fast_layouts`: equal to the float64 formula)."""
    _check(left, "left"), _check(right, "right")
    return anaglyph(left, right)


def apply_convergence(left: np.ndarray, right: np.ndarray, shift_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Shift the left eye by ``-shift/2`` and the right eye by ``+shift/2`` pixels (uint8 ``[T, H, W, 3]``).

    A point of disparity ``d`` then has screen parallax ``shift_px - d``: zero on the
    plane ``d = shift_px``, behind the screen for farther points (``d < shift``), in
    front for nearer ones. The ``|shift|/2`` columns each shift vacates repeat the eye's
    edge column (no black seam in SBS/TB, no red or cyan edge in the anaglyph). Every
    output of one video uses these shifted eyes: ``right.mp4`` is the right half of ``sbs.mp4``.
    """
    if shift_px == 0:
        return left, right
    return shift_rows(left, -shift_px / 2.0), shift_rows(right, shift_px / 2.0)


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


def compose(layout: str, left: np.ndarray, right: np.ndarray, vr: VR180Options | None = None) -> np.ndarray:
    """Frames of one stereo ``layout`` (not ``depth``) from both eyes."""
    if layout == "vr180":
        return vr180(left, right, vr)
    if layout == "right":
        return right
    if layout in ("sbs", "sbs_half"):
        return side_by_side(left, right, half=layout == "sbs_half")
    if layout in ("tb", "tb_half"):
        return top_bottom(left, right, half=layout == "tb_half")
    if layout == "anaglyph":
        return anaglyph_dubois(left, right)
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
