"""Model-free right-view generators: the baselines of every evaluation table.

- :class:`CopyLeft`: the right view is the left view (zero parallax; the failure mode
  the original study hit, kept as a reference row).
- :class:`WarpOnly`: forward warp of the left view, holes left black.
- :class:`WarpFill`: forward warp, then disocclusions filled with *background*
  content. It is also the demo's method when no checkpoints are present.

Hole filling (``fill="background"``): a disocclusion in the right view lies between a
near surface and a far one; the content that belongs there is the far surface's.
Each hole pixel takes the colour of the nearest covered pixel on its row on the
side whose right-view disparity is smaller (farther). The rule depends only on
geometry, so it is deterministic frame to frame (no flicker from a random or
iterative inpainter). ``fill="temporal"`` first looks for the hole's background in other left frames
(camera motion shows it there; :mod:`stereo_lit.stereo.temporal`) and uses the background rule
only where no frame of the window shows it. ``fill="telea"`` uses OpenCV's Telea inpainting instead (per
frame, slower): smoother, but it draws from every side of the hole, so foreground
colour bleeds into the disocclusion; it is the "classical inpainting" row of the tables.
"""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
import torch

from stereo_lit.generators.base import StereoGenerator, StereoOutput
from stereo_lit.stereo import fast_warp
from stereo_lit.stereo.geometry import forward_warp, right_disparity_from_left
from stereo_lit.stereo.temporal import TemporalFillOptions, background_source, consecutive_flows, temporal_fill


class CopyLeft(StereoGenerator):
    """Right view = left view. Known mask is all zeros: nothing was warped."""

    name = "copy_left"
    frame_independent = True  # each output frame depends on its own frame only: predict streams chunks
    takes_uint8 = True

    def generate(
        self, left: torch.Tensor, disparity_px: torch.Tensor, *, prompt: str | None = None, carry: Any = None,
        num_overlap: int = 0,
    ) -> StereoOutput:
        return StereoOutput(right=left.clone(), known_mask=torch.zeros_like(left[:, :1], dtype=torch.float32))


class WarpOnly(StereoGenerator):
    """Forward warp of the left view; holes (disocclusions, frame edge) stay black."""

    name = "warp_only"
    frame_independent = True  # each output frame depends on its own frame only: predict streams chunks
    takes_uint8 = True

    def generate(
        self, left: torch.Tensor, disparity_px: torch.Tensor, *, prompt: str | None = None, carry: Any = None,
        num_overlap: int = 0,
    ) -> StereoOutput:
        warped, covered, _ = warp_and_fill(left, disparity_px, fill=False)
        return StereoOutput(right=warped, known_mask=covered)


def _uses_kernel(left: torch.Tensor, disparity_px: torch.Tensor) -> bool:
    """The compiled CPU kernel applies: numba present, CPU tensors, no autograd, uint8/float32 picture."""
    return (
        fast_warp.available() and left.device.type == "cpu" and disparity_px.device.type == "cpu"
        and left.dtype in (torch.uint8, torch.float32) and not (left.requires_grad or disparity_px.requires_grad)
    )


def warp_and_fill(
    left: torch.Tensor, disparity_px: torch.Tensor, *, fill: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward warp of ``left [B,3,T,H,W]`` by ``disparity_px [B,1,T,H,W]``, holes filled by the
    background rule (``fill``) or 0.

    On the CPU the compiled kernel (:mod:`stereo_lit.stereo.fast_warp`) computes it in one pass;
    elsewhere the torch reference (:func:`~stereo_lit.stereo.geometry.forward_warp` and
    :func:`fill_from_background`), which gives the same numbers.

    Returns:
        ``(right, covered, right_disparity_px)``: ``right`` in ``left``'s dtype (uint8 0-255 in,
        uint8 out, rounded as the writers round), float 0/1 ``covered [B,1,T,H,W]`` and the
        right view's disparity ``[B,1,T,H,W]`` px (0 where uncovered).
    """
    if left.ndim != 5 or disparity_px.ndim != 5:
        raise ValueError(
            f"expected left [B,3,T,H,W] and disparity_px [B,1,T,H,W], got {tuple(left.shape)} "
            f"and {tuple(disparity_px.shape)}"
        )
    if _uses_kernel(left, disparity_px):
        results = [
            fast_warp.warp_fill(left[i].numpy(), disparity_px[i, 0].float().numpy(), fill=fill)
            for i in range(left.shape[0])
        ]
        def batch(arrays: list[np.ndarray]) -> torch.Tensor:  # one video: a view, keeping the channel-last memory
            tensors = [torch.from_numpy(a) for a in arrays]
            return tensors[0][None] if len(tensors) == 1 else torch.stack(tensors)

        right = batch([r[0] for r in results])
        covered = batch([r[1] for r in results])[:, None].float()
        disp_right = batch([r[2] for r in results])[:, None]
        return right, covered, disp_right
    image = left.float() / 255.0 if left.dtype == torch.uint8 else left
    b, c, t, h, w = image.shape
    warped, covered = forward_warp(image, disparity_px)
    disp_right, _ = right_disparity_from_left(disparity_px)
    right = warped * covered
    if fill:
        def frames(x: torch.Tensor) -> torch.Tensor:
            return x.permute(0, 2, 1, 3, 4).reshape(b * t, x.shape[1], h, w)

        filled = fill_from_background(frames(right), frames(covered), frames(disp_right))
        right = filled.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4).contiguous()
    if left.dtype == torch.uint8:
        right = (right.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
    return right, covered, disp_right


def warp_only(out: StereoOutput) -> torch.Tensor:
    """The warp without its fill ``[B, C, T, H, W]``: ``out.right`` where the warp covers it
    (``known_mask``), 0 in the holes; ``out.extras["warped"]`` when the method kept it.

    Computed on demand: predict never reads it, and making it for every 1080p chunk took
    20-30% of the generate step's time."""
    warped = out.extras.get("warped")
    if warped is not None:
        return warped
    return torch.where(out.known_mask > 0.5, out.right, torch.zeros((), dtype=out.right.dtype))


def fill_from_background(
    image: torch.Tensor, covered: torch.Tensor, disparity_px: torch.Tensor
) -> torch.Tensor:
    """Fill uncovered pixels along rows from the farther (smaller-disparity) side.

    Args:
        image: ``[N, C, H, W]`` warped right view.
        covered: ``[N, 1, H, W]``, 1 where ``image`` holds warped content.
        disparity_px: ``[N, 1, H, W]`` right-view disparity (valid where covered).

    Returns:
        ``[N, C, H, W]``: covered pixels unchanged, holes filled. A row with no covered
        pixel at all is left as it was.
    """
    n, c, h, w = image.shape
    cov = covered[:, 0] > 0.5
    src, has_src = background_source(cov, disparity_px[:, 0])
    filled = torch.gather(image, -1, src.unsqueeze(1).expand(n, c, h, w))
    keep = cov | ~has_src
    return torch.where(keep.unsqueeze(1), image, filled)


def _telea(image: torch.Tensor, covered: torch.Tensor, radius: int) -> torch.Tensor:
    """OpenCV Telea inpainting of the uncovered pixels of ``image [N, 3, H, W]`` in [0, 1]."""
    out = []
    for frame, mask in zip(image, covered):
        rgb = (frame.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
        hole = (mask[0].cpu().numpy() < 0.5).astype(np.uint8)
        painted = cv2.inpaint(rgb, hole, radius, cv2.INPAINT_TELEA)
        out.append(torch.from_numpy(painted).permute(2, 0, 1).float() / 255.0)
    restored = torch.stack(out).to(image)
    return torch.where(covered > 0.5, image, restored)


class WarpFill(StereoGenerator):
    """Forward warp + hole filling; the model-free baseline.

    Args:
        fill: ``"background"`` (row-wise from the far side), ``"telea"`` (OpenCV Telea
            inpainting of the holes) or ``"temporal"`` (the hole's background taken from other
            left frames of the window through optical flow, :mod:`stereo_lit.stereo.temporal`;
            what no frame shows falls back to ``"background"``).
        inpaint_radius: Telea radius in pixels.
        max_offset: ``temporal``: farthest frame searched, each direction (frames).
        flow: ``temporal``: ``"dis"`` or ``"farneback"`` (OpenCV, CPU).
        flow_preset: ``temporal`` with DIS: ``ultrafast``, ``fast`` or ``medium``.
    """

    name = "warp_fill"
    FILLS = ("background", "telea", "temporal")
    takes_uint8 = True  # the background fill runs on uint8 frames; the others convert

    def __init__(
        self,
        fill: Literal["background", "telea", "temporal"] = "background",
        inpaint_radius: int = 3,
        max_offset: int = 16,
        flow: Literal["dis", "farneback"] = "dis",
        flow_preset: Literal["ultrafast", "fast", "medium"] = "medium",
    ) -> None:
        if fill not in self.FILLS:
            raise ValueError(f"WarpFill: fill must be one of {self.FILLS}, got {fill!r}")
        if flow not in ("dis", "farneback"):
            raise ValueError(f"WarpFill: flow must be 'dis' or 'farneback', got {flow!r}")
        if flow_preset not in ("ultrafast", "fast", "medium"):
            raise ValueError(f"WarpFill: flow_preset must be 'ultrafast', 'fast' or 'medium', got {flow_preset!r}")
        if int(max_offset) < 1:
            raise ValueError(f"WarpFill: max_offset must be >= 1 frame, got {max_offset!r}")
        self.fill = fill
        self.inpaint_radius = inpaint_radius
        self.flow, self.flow_preset = flow, flow_preset
        self.temporal_options = TemporalFillOptions(max_offset=int(max_offset))
        if fill != "background":
            self.name = f"warp_fill_{fill}"

    @property
    def frame_independent(self) -> bool:
        """Each output frame depends on its own frame only (predict streams short chunks), except
        for the temporal fill, which looks at the other frames of its window."""
        return self.fill != "temporal"

    def generate(
        self, left: torch.Tensor, disparity_px: torch.Tensor, *, prompt: str | None = None, carry: Any = None,
        num_overlap: int = 0,
    ) -> StereoOutput:
        if left.ndim != 5 or disparity_px.ndim != 5:
            raise ValueError(
                f"expected left [B,3,T,H,W] and disparity_px [B,1,T,H,W], got {tuple(left.shape)} "
                f"and {tuple(disparity_px.shape)}"
            )
        if self.fill == "background":
            right, covered, _ = warp_and_fill(left, disparity_px, fill=True)
            return StereoOutput(right=right, known_mask=covered)  # the warp alone: warp_only(out), on demand
        uint8_in = left.dtype == torch.uint8
        if uint8_in:
            left = left.float() / 255.0
        b, c, t, h, w = left.shape
        warped, covered, disp_right = warp_and_fill(left, disparity_px, fill=False)

        def frames(x: torch.Tensor) -> torch.Tensor:
            return x.permute(0, 2, 1, 3, 4).reshape(b * t, x.shape[1], h, w)

        if self.fill == "telea":
            filled = _telea(frames(warped), frames(covered), self.inpaint_radius)
        else:
            filled = fill_from_background(frames(warped), frames(covered), frames(disp_right))
        if self.fill == "temporal":
            filled = filled.reshape(b, t, c, h, w)
            for i in range(b):
                lv = left[i].permute(1, 0, 2, 3)
                colour, source = temporal_fill(
                    lv, disparity_px[i].permute(1, 0, 2, 3), covered[i].permute(1, 0, 2, 3),
                    disp_right[i].permute(1, 0, 2, 3), consecutive_flows(lv, self.flow, self.flow_preset),
                    self.temporal_options,
                )
                filled[i] = torch.where(source >= 0, colour.to(filled), filled[i])
        right = filled.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4).contiguous()
        if uint8_in:
            right = (right.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
        return StereoOutput(right=right, known_mask=covered, extras={"warped": warped})
