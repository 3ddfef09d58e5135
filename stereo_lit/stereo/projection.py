"""Equirectangular 180-degree (VR180) half-frames <-> rectified pinhole views: pure torch math.

Conventions (one meaning for both directions):

- **Camera axes** are OpenCV's: x right, y down, z forward. A direction ``(x, y, z)`` has
  longitude ``lon = atan2(x, z)`` (positive to the right) and latitude
  ``lat = asin(y)`` (positive *down*).
- **Equirectangular 180 half-frame** (one eye of a VR180 side-by-side frame), ``He x We``
  pixels: columns span ``lon`` in ``[-90, 90]`` degrees and rows span ``lat`` in
  ``[-90, 90]`` degrees, pixel *edges* on the bounds, so pixel ``(v, u)`` has its centre at
  ``lon = ((u + 0.5) / We - 0.5) * pi``, ``lat = ((v + 0.5) / He - 0.5) * pi``
  (``grid_sample`` with ``align_corners=False``).
- **Pinhole view**, ``h x w`` pixels, square pixels, horizontal field of view ``hfov``
  (edge to edge of the centres' span): ``f = ((w - 1) / 2) / tan(hfov / 2)``,
  ``cx = (w - 1) / 2``, ``cy = (h - 1) / 2``; pixel ``(v, u)`` (integer = pixel centre) looks
  along ``((u - cx) / f, (v - cy) / f, 1)`` (``grid_sample`` with ``align_corners=True``).
- **Rotation** ``R`` (3x3, camera -> equirect frame): a pinhole ray ``r`` is looked up in
  the equirect image along ``R @ r``. Use the *same* ``R`` for both eyes so that the
  two pinhole views form a parallel (rectified) rig; :func:`rotation_yaw_pitch` builds one.

A scene rendered directly as an equirect image and projected with
:func:`equirect_to_pinhole` equals the pinhole rendering of the same scene up to the
bilinear interpolation error (tests/test_projection.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def pinhole_focal_px(width: int, hfov_deg: float) -> float:
    """Focal length in pixels of a ``width``-pixel pinhole view with horizontal FOV ``hfov_deg``."""
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"hfov_deg must be in (0, 180), got {hfov_deg}")
    if width < 2:
        raise ValueError(f"width must be >= 2, got {width}")
    return ((width - 1) / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)


def pinhole_intrinsics(height: int, width: int, hfov_deg: float) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` in pixels (square pixels) of the pinhole view."""
    f = pinhole_focal_px(width, hfov_deg)
    return f, f, (width - 1) / 2.0, (height - 1) / 2.0


def rotation_yaw_pitch(yaw_deg: float = 0.0, pitch_deg: float = 0.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``R = R_yaw @ R_pitch`` (3x3): yaw turns the view right (about +y, down axis), pitch
    turns it down (about +x), camera -> equirect frame."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    yaw = torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]], dtype=dtype)
    pitch = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(b), math.sin(b)], [0.0, -math.sin(b), math.cos(b)]], dtype=dtype)
    return yaw @ pitch


def pinhole_rays(height: int, width: int, hfov_deg: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Unit ray directions ``[h, w, 3]`` of the pinhole pixels (camera axes)."""
    fx, fy, cx, cy = pinhole_intrinsics(height, width, hfov_deg)
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    rays = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u)], dim=-1)
    return rays / rays.norm(dim=-1, keepdim=True)


def equirect_rays(height: int, width: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Unit ray directions ``[He, We, 3]`` at the pixel centres of an equirect 180 half-frame."""
    lon = ((torch.arange(width, dtype=dtype) + 0.5) / width - 0.5) * math.pi
    lat = ((torch.arange(height, dtype=dtype) + 0.5) / height - 0.5) * math.pi
    lat, lon = torch.meshgrid(lat, lon, indexing="ij")
    return torch.stack([torch.cos(lat) * torch.sin(lon), torch.sin(lat), torch.cos(lat) * torch.cos(lon)], dim=-1)


def _rotation(rotation: torch.Tensor | None) -> torch.Tensor:
    if rotation is None:
        return torch.eye(3, dtype=torch.float64)
    rotation = torch.as_tensor(rotation, dtype=torch.float64)
    if rotation.shape != (3, 3):
        raise ValueError(f"rotation must be a 3x3 matrix, got shape {tuple(rotation.shape)}")
    return rotation


def _as_batch(image: torch.Tensor, name: str) -> tuple[torch.Tensor, tuple[int, ...]]:
    if image.ndim < 3:
        raise ValueError(f"{name} must be [..., C, H, W], got shape {tuple(image.shape)}")
    lead = tuple(image.shape[:-3])
    return image.reshape(-1, *image.shape[-3:]), lead


def _sample(image: torch.Tensor, grid: torch.Tensor, align_corners: bool, mode: str) -> torch.Tensor:
    flat, lead = _as_batch(image, "image")
    work = flat if flat.is_floating_point() else flat.float()
    g = grid.to(device=work.device, dtype=work.dtype)[None].expand(work.shape[0], -1, -1, -1)
    out = F.grid_sample(work, g, mode=mode, padding_mode="border", align_corners=align_corners)
    return out.reshape(*lead, *out.shape[-3:])


def equirect_to_pinhole(
    equirect: torch.Tensor,
    size: tuple[int, int],
    hfov_deg: float = 90.0,
    rotation: torch.Tensor | None = None,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Re-project an equirect 180 half-frame to a rectified pinhole view.

    Args:
        equirect: ``[..., C, He, We]`` (any leading dims; a video is ``[T, C, He, We]``).
        size: output ``(h, w)``.
        hfov_deg: horizontal field of view of the output (< 180).
        rotation: camera -> equirect 3x3 (see module docstring); None = identity.
        mode: ``grid_sample`` mode (``bilinear``, ``bicubic``, ``nearest``).

    Returns:
        ``[..., C, h, w]``. Rays outside the 180-degree hemisphere (only reachable with a
        rotation) read the border.
    """
    h, w = int(size[0]), int(size[1])
    rays = pinhole_rays(h, w, hfov_deg) @ _rotation(rotation).T  # [h, w, 3] in the equirect frame
    lon = torch.atan2(rays[..., 0], rays[..., 2])
    lat = torch.asin(rays[..., 1].clamp(-1.0, 1.0))
    grid = torch.stack([lon / (math.pi / 2), lat / (math.pi / 2)], dim=-1)  # align_corners=False normalisation
    return _sample(equirect, grid, align_corners=False, mode=mode)


def pinhole_to_equirect(
    pinhole: torch.Tensor,
    size: tuple[int, int],
    hfov_deg: float = 90.0,
    rotation: torch.Tensor | None = None,
    mode: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of :func:`equirect_to_pinhole`: a pinhole view painted into an equirect
    180 half-frame (e.g. for a VR180 output layout).

    Args:
        pinhole: ``[..., C, h, w]``.
        size: output ``(He, We)``.

    Returns:
        ``(equirect [..., C, He, We], valid [He, We])``: ``valid`` (float, 1 = inside the
        pinhole view's frustum) says where the equirect pixels have content; outside it
        the image holds the pinhole border colour.
    """
    he, we = int(size[0]), int(size[1])
    h, w = int(pinhole.shape[-2]), int(pinhole.shape[-1])
    fx, fy, cx, cy = pinhole_intrinsics(h, w, hfov_deg)
    rays = equirect_rays(he, we) @ _rotation(rotation)  # R^T @ d for each row vector d
    z = rays[..., 2]
    safe_z = torch.where(z > 1e-9, z, torch.ones_like(z))
    u = fx * rays[..., 0] / safe_z + cx
    v = fy * rays[..., 1] / safe_z + cy
    valid = (z > 1e-9) & (u >= -0.5) & (u <= w - 0.5) & (v >= -0.5) & (v <= h - 0.5)
    u = torch.where(valid, u, torch.zeros_like(u))
    v = torch.where(valid, v, torch.zeros_like(v))
    grid = torch.stack([2.0 * u / (w - 1) - 1.0, 2.0 * v / (h - 1) - 1.0], dim=-1)  # align_corners=True
    return _sample(pinhole, grid, align_corners=True, mode=mode), valid.to(torch.float32)


def default_pinhole_size(equirect_height: int, equirect_width: int, hfov_deg: float = 90.0) -> tuple[int, int]:
    """A square pinhole size whose centre pixel density matches the equirect's
    (``f = We / pi`` px per radian), rounded to even numbers."""
    del equirect_height  # the width fixes the angular resolution
    f = equirect_width / math.pi
    w = 2.0 * f * math.tan(math.radians(hfov_deg) / 2.0) + 1.0
    side = max(2, int(round(w / 2.0)) * 2)
    return side, side


__all__ = [
    "default_pinhole_size", "equirect_rays", "equirect_to_pinhole", "pinhole_focal_px", "pinhole_intrinsics",
    "pinhole_rays", "pinhole_to_equirect", "rotation_yaw_pitch",
]
