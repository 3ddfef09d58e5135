"""Pad videos to the sizes Wan needs (H, W multiples of 16; T = 4k+1) and undo it.

Padding goes on the bottom/right edge (and at the end in time), so pixel coordinates
and disparities of the original content are unchanged. Never crop: callers record
the :class:`Padding` and call :func:`unpad_video` on outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stereo_lit.stereo.windows import next_wan_length


@dataclass(frozen=True)
class Padding:
    """Amount added at the bottom, right and end (frames) of a ``[B, C, T, H, W]`` video."""

    bottom: int = 0
    right: int = 0
    frames: int = 0

    @property
    def is_zero(self) -> bool:
        return self.bottom == 0 and self.right == 0 and self.frames == 0


def padding_for(height: int, width: int, num_frames: int | None = None, multiple: int = 16) -> Padding:
    """The :class:`Padding` that brings ``H, W`` to multiples of ``multiple`` (and T to 4k+1)."""
    if height < 1 or width < 1:
        raise ValueError(f"video size must be positive, got {height}x{width}")
    frames = 0 if num_frames is None else next_wan_length(num_frames) - num_frames
    return Padding(bottom=(-height) % multiple, right=(-width) % multiple, frames=frames)


def pad_video(video: torch.Tensor, padding: Padding, mode: str = "replicate") -> torch.Tensor:
    """Pad ``video [B, C, T, H, W]`` by ``padding``.

    Args:
        mode: ``"replicate"`` or ``"reflect"`` for the spatial border; frames are always
            padded by repeating the last frame.
    """
    if video.ndim != 5:
        raise ValueError(f"expected a video [B, C, T, H, W], got shape {tuple(video.shape)}")
    if mode not in ("replicate", "reflect"):
        raise ValueError(f"pad mode must be 'replicate' or 'reflect', got {mode!r}")
    out = video
    if padding.bottom or padding.right:
        b, c, t, h, w = out.shape
        if mode == "reflect" and (padding.bottom >= h or padding.right >= w):
            mode = "replicate"  # reflect needs pad < size
        flat = out.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        flat = F.pad(flat, (0, padding.right, 0, padding.bottom), mode=mode)
        out = flat.reshape(b, t, c, h + padding.bottom, w + padding.right).permute(0, 2, 1, 3, 4)
    if padding.frames:
        out = torch.cat([out, out[:, :, -1:].expand(-1, -1, padding.frames, -1, -1)], dim=2)
    return out.contiguous()


def unpad_video(video: torch.Tensor, padding: Padding) -> torch.Tensor:
    """Remove ``padding`` from ``video [B, C, T, H, W]`` (the inverse of :func:`pad_video`)."""
    t, h, w = video.shape[-3:]
    return video[..., : t - padding.frames, : h - padding.bottom, : w - padding.right]


def produced_frames(video: torch.Tensor, padding: Padding, first: int, stop: int) -> torch.Tensor:
    """Frames ``first:stop`` of ``video [B, C, T, H, W]`` without ``padding``, on the CPU, as a
    window hands them to the writers: pictures (3 channels) clamped to [0, 1] as float32, uint8
    (from a method that takes uint8) kept as it is, other channels (disparity) as float32."""
    video = unpad_video(video, padding)[:, :, first:stop]
    if video.dtype == torch.uint8:
        return video.cpu()
    return (video.clamp(0, 1) if video.shape[1] == 3 else video).float().cpu()
