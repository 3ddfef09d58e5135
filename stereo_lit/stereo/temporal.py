"""Filling disocclusions from time: what the right eye sees behind an edge, taken from other left frames.

Rectified stereo, left view at frame ``t``. A right-view hole pixel ``(x, y)`` (not covered by
the forward warp) shows a background point P that the left camera at ``t`` does not see (it
is behind a nearer surface) or that lies beyond the left frame's edge. The background rule
(:func:`background_source`) names, for every hole pixel, the nearest covered pixel on its row
on the farther side, column ``xb``, with right-view disparity ``d_bg``; P is taken to lie on
that background surface, so in left-``t`` coordinates it sits at column ``x + d_bg`` (DESIGN:
the left pixel at ``x`` is seen in the right view at ``x - d``).

When the camera moves, another left frame ``s`` may see P. Flow *at* P in frame ``t`` is
useless (P is hidden there: the flow there is the occluder's), so P is followed through a
visible neighbour on the same surface instead:

1. anchor: the background pixel ``xm`` = ``xb`` moved ``anchor_margin`` px further away from
   the hole (away from the blurred flow at the depth edge; ``xb`` itself when that pixel is
   not covered or not on the same surface), at left-``t`` position ``A = (xm + d_r(xm), y)``;
   P is at ``A + o`` with ``o = (x + d_bg - (xm + d_r(xm)), 0)`` px;
2. the anchor is tracked frame by frame through the dense optical flow between consecutive
   left frames (OpenCV DIS on grey frames), both directions, nearest frames first; a step is
   kept only when the flow passes the forward-backward check of Sundaram et al. 2010
   (``|f + b(A + f)|^2 <= 0.01 (|f|^2 + |b|^2) + 0.5``, as the warping-error metric) and
   stays inside the frame; a failed step ends that track;
3. in frame ``s`` the anchor is at ``A_s``; image offsets on a surface scale with inverse
   depth, so ``P_s = A_s + o * d_s(A_s) / d_r(xm)`` (exact for fronto-parallel planes under
   camera translation; 1 under lateral motion);
4. P is accepted in frame ``s`` only when ``P_s`` is inside the frame and none of the four
   left-``s`` pixels around it is nearer than the background (disparity at most
   ``d_bg * scale + max(tol_px, tol_rel * d_bg)``): the surface seen there is at least as far
   as the hole's background, never the occluder; its colour is sampled bilinearly.

Pixels no frame of the window accepts keep the background rule's colour. A static camera
moves nothing, P stays hidden in every frame, so the result is exactly the background rule's.
Everything is deterministic (DIS is), so filled pixels do not flicker more than the frames they
come from. Shapes: frames ``[T, C, H, W]``, flows ``[T-1, H, W, 2]`` (px, ``(dx, dy)``, with
``frame_t(y, x) ~ frame_{t+1}(y + dy, x + dx)`` for forward flows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: forward-backward consistency (Sundaram et al. 2010; Lai et al. 2018), as metrics.temporal
FB_ALPHA1 = 0.01
FB_ALPHA2 = 0.5
DIS_PRESETS = ("ultrafast", "fast", "medium")


@dataclass(frozen=True)
class TemporalFillOptions:
    """Knobs of :func:`temporal_fill`.

    Attributes:
        max_offset: farthest frame (in frames, each direction) searched for a hole's background.
        anchor_margin: px the tracked anchor is moved from the hole into the background.
        tol_px, tol_rel: a left-``s`` pixel is "nearer than the background" when its disparity
            exceeds the expected background disparity by more than ``max(tol_px, tol_rel * d_bg)``.
    """

    max_offset: int = 16
    anchor_margin: int = 3
    tol_px: float = 1.0
    tol_rel: float = 0.1


# ----------------------------------------------------------------------------- background rule
def nearest_covered_index(covered: torch.Tensor, from_left: bool) -> torch.Tensor:
    """Column of the nearest covered pixel on the same row, bool ``[N, H, W]`` -> long ``[N, H, W]``.

    ``from_left``: search towards smaller x (-1 where none) or larger x (``W`` where none).
    """
    width = covered.shape[-1]
    cols = torch.arange(width, device=covered.device).expand_as(covered)
    if from_left:
        idx = torch.where(covered, cols, torch.full_like(cols, -1))
        return torch.cummax(idx, dim=-1).values
    idx = torch.where(covered, cols, torch.full_like(cols, width))
    return torch.flip(torch.cummin(torch.flip(idx, dims=[-1]), dim=-1).values, dims=[-1])


def background_source(covered: torch.Tensor, disparity_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The background rule's source column for every pixel.

    Args:
        covered: bool ``[N, H, W]``, True where the warped right view holds content.
        disparity_px: ``[N, H, W]`` right-view disparity (valid where covered; NaN counts as 0).

    Returns:
        ``(src, has_src)``: long ``[N, H, W]`` column of the nearest covered pixel on the row on
        the farther (smaller-disparity) side, the existing side when only one exists; bool
        ``[N, H, W]``, False on rows with no covered pixel (src is then meaningless).
    """
    w = covered.shape[-1]
    left_idx = nearest_covered_index(covered, from_left=True)
    right_idx = nearest_covered_index(covered, from_left=False)
    has_left, has_right = left_idx >= 0, right_idx < w
    disp = torch.nan_to_num(disparity_px, nan=0.0, posinf=0.0, neginf=0.0)
    d_left = torch.gather(disp, -1, left_idx.clamp(0, w - 1))
    d_right = torch.gather(disp, -1, right_idx.clamp(0, w - 1))
    take_left = has_left & (~has_right | (d_left <= d_right))
    src = torch.where(take_left, left_idx, right_idx).clamp(0, w - 1)
    return src, has_left | has_right


# ----------------------------------------------------------------------------- flow
def grey_u8(frames: torch.Tensor) -> np.ndarray:
    """``[T, 3, H, W]`` RGB in [0, 1] -> uint8 ``[T, H, W]`` BT.601 luma (what DIS takes)."""
    rgb = frames.detach().float().clamp(0, 1).cpu()
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    return (luma * 255.0 + 0.5).to(torch.uint8).numpy()


def consecutive_flows(
    frames: torch.Tensor, method: str = "dis", preset: str = "medium"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense flow between consecutive frames, both ways.

    Args:
        frames: ``[T, 3, H, W]`` RGB in [0, 1].
        method: ``"dis"`` (OpenCV DIS, ``preset`` one of :data:`DIS_PRESETS`) or ``"farneback"``.

    Returns:
        ``(forward, backward)``, float32 ``[T-1, H, W, 2]`` px on CPU: ``forward[k]`` maps frame
        ``k`` to ``k+1``, ``backward[k]`` frame ``k+1`` to ``k``.
    """
    import cv2

    if method not in ("dis", "farneback"):
        raise ValueError(f"flow method must be 'dis' or 'farneback', got {method!r}")
    if method == "dis" and preset not in DIS_PRESETS:
        raise ValueError(f"DIS preset must be one of {DIS_PRESETS}, got {preset!r}")
    grey = grey_u8(frames)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))
        calc = lambda a, b: dis.calc(a, b, None)  # noqa: E731
    else:
        calc = lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)  # noqa: E731
    t, h, w = grey.shape
    forward = np.zeros((max(t - 1, 0), h, w, 2), np.float32)
    backward = np.zeros_like(forward)
    for k in range(t - 1):
        forward[k] = calc(grey[k], grey[k + 1])
        backward[k] = calc(grey[k + 1], grey[k])
    return torch.from_numpy(forward), torch.from_numpy(backward)


# ----------------------------------------------------------------------------- sampling
def _bilinear(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``image [C, H, W]`` at float points ``x, y [P]`` (clamped into the frame) -> ``[C, P]``."""
    _, h, w = image.shape
    x = x.clamp(0, w - 1)
    y = y.clamp(0, h - 1)
    x0, y0 = x.floor().clamp(max=w - 2 if w > 1 else 0), y.floor().clamp(max=h - 2 if h > 1 else 0)
    fx, fy = x - x0, y - y0
    i0, j0 = x0.long(), y0.long()
    i1, j1 = (i0 + 1).clamp(max=w - 1), (j0 + 1).clamp(max=h - 1)
    flat = image.reshape(image.shape[0], -1)

    def at(j: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return flat[:, j * w + i]

    top = at(j0, i0) * (1 - fx) + at(j0, i1) * fx
    bottom = at(j1, i0) * (1 - fx) + at(j1, i1) * fx
    return top * (1 - fy) + bottom * fy


def _max_around(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Max of the four pixels of ``image [H, W]`` around float points ``x, y [P]`` (NaN if any is NaN)."""
    h, w = image.shape
    i0, j0 = x.floor().long().clamp(0, w - 1), y.floor().long().clamp(0, h - 1)
    i1, j1 = (i0 + 1).clamp(max=w - 1), (j0 + 1).clamp(max=h - 1)
    flat = image.reshape(-1)
    vals = torch.stack([flat[j0 * w + i0], flat[j0 * w + i1], flat[j1 * w + i0], flat[j1 * w + i1]])
    return vals.max(dim=0).values


def _track_step(
    pos_x: torch.Tensor, pos_y: torch.Tensor, flow_ab: torch.Tensor, flow_ba: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move points through ``flow_ab [2, H, W]``; ok where forward-backward consistent and in frame."""
    h, w = flow_ab.shape[-2:]
    u = _bilinear(flow_ab, pos_x, pos_y)
    nx, ny = pos_x + u[0], pos_y + u[1]
    inside = (nx >= 0) & (nx <= w - 1) & (ny >= 0) & (ny <= h - 1)
    back = _bilinear(flow_ba, nx, ny)
    mismatch = ((u + back) ** 2).sum(0)
    scale = (u**2).sum(0) + (back**2).sum(0)
    ok = inside & (mismatch <= FB_ALPHA1 * scale + FB_ALPHA2)
    return nx, ny, ok


def _frame_order(t: int, num_frames: int, max_offset: int) -> list[tuple[int, int]]:
    """``(direction, offset)`` pairs, nearest frames first, later before earlier at equal distance."""
    return [(d, k) for k in range(1, max_offset + 1) for d in (1, -1) if 0 <= t + d * k < num_frames]


# ----------------------------------------------------------------------------- the fill
def temporal_fill(
    left: torch.Tensor,
    disparity_left_px: torch.Tensor,
    covered: torch.Tensor,
    disparity_right_px: torch.Tensor,
    flows: tuple[torch.Tensor, torch.Tensor],
    options: TemporalFillOptions = TemporalFillOptions(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colours of right-view hole pixels found in other left frames (see the module docstring).

    Args:
        left: ``[T, 3, H, W]`` left frames in [0, 1].
        disparity_left_px: ``[T, 1, H, W]`` left disparity, px (NaN = unknown: never accepted).
        covered: ``[T, 1, H, W]`` 1 where the forward warp covers the right view.
        disparity_right_px: ``[T, 1, H, W]`` right-view disparity (valid where covered).
        flows: :func:`consecutive_flows` of ``left`` (``[T-1, H, W, 2]`` forward, backward).
        options: search range and tolerances.

    Returns:
        ``(colour, found)``: ``[T, 3, H, W]`` colours (0 where not found) and bool
        ``[T, 1, H, W]``, True on hole pixels whose background was seen in another frame.
    """
    t_len, c, h, w = left.shape
    for name, x in (("disparity_left_px", disparity_left_px), ("covered", covered), ("disparity_right_px", disparity_right_px)):
        if x.shape != (t_len, 1, h, w):
            raise ValueError(f"temporal_fill: {name} must be [T,1,H,W] = {(t_len, 1, h, w)}, got {tuple(x.shape)}")
    forward, backward = flows
    if forward.shape != (max(t_len - 1, 0), h, w, 2) or backward.shape != forward.shape:
        raise ValueError(
            f"temporal_fill: flows must be [T-1,H,W,2] = {(t_len - 1, h, w, 2)}, got {tuple(forward.shape)} and {tuple(backward.shape)}"
        )
    device = left.device
    fwd = forward.to(device, torch.float32).permute(0, 3, 1, 2)  # [T-1, 2, H, W]
    bwd = backward.to(device, torch.float32).permute(0, 3, 1, 2)
    src_img = left.float()
    d_left = disparity_left_px[:, 0].float()
    cov = covered[:, 0] > 0.5
    d_right = torch.nan_to_num(disparity_right_px[:, 0].float(), nan=0.0, posinf=0.0, neginf=0.0)
    src, has_src = background_source(cov, d_right)
    colour = torch.zeros(t_len, c, h, w, device=device)
    found = torch.zeros(t_len, 1, h, w, dtype=torch.bool, device=device)
    cols = torch.arange(w, device=device)
    for t in range(t_len):
        ys, xs = torch.nonzero(~cov[t] & has_src[t], as_tuple=True)
        if ys.numel() == 0 or t_len < 2:
            continue
        xb = src[t, ys, xs]
        d_bg = d_right[t, ys, xb]
        # 1. anchor: move away from the hole into the background when that pixel is on the same surface
        step = torch.where(xb < xs, -1, 1)
        xm = (xb + step * options.anchor_margin).clamp(0, w - 1)
        tol = torch.clamp(options.tol_rel * d_bg, min=options.tol_px)
        same = cov[t, ys, xm] & ((d_right[t, ys, xm] - d_bg).abs() <= tol)
        xm = torch.where(same, xm, xb)
        d_anchor = d_right[t, ys, xm]
        ax = cols[xm].float() + d_anchor
        ay = ys.float()
        offset = xs.float() + d_bg - ax
        pending = torch.ones_like(xs, dtype=torch.bool)
        tracks = {1: (ax, ay, torch.ones_like(pending)), -1: (ax, ay, torch.ones_like(pending))}
        for direction, k in _frame_order(t, t_len, options.max_offset):
            px, py, alive = tracks[direction]
            if not bool((alive & pending).any()):
                continue
            s = t + direction * k
            # 2. one tracking step from frame s - direction to s
            flow_ab = fwd[s - 1] if direction > 0 else bwd[s]
            flow_ba = bwd[s - 1] if direction > 0 else fwd[s]
            px, py, ok = _track_step(px, py, flow_ab, flow_ba)
            alive = alive & ok
            tracks[direction] = (px, py, alive)
            # 3. the hole's background point in frame s
            scale = _bilinear(d_left[s : s + 1], px, py)[0] / d_anchor.clamp_min(1e-6)
            scale = torch.where(d_anchor > 1e-6, scale, torch.ones_like(scale))
            tx, ty = px + offset * scale, py
            inside = (tx >= 0) & (tx <= w - 1)
            # 4. accepted where nothing nearer than the background lies around it
            nearest = _max_around(d_left[s], tx, ty)
            accept = pending & alive & inside & (nearest <= d_bg * scale + tol)
            if not bool(accept.any()):
                continue
            idx = torch.nonzero(accept, as_tuple=True)[0]
            colour[t, :, ys[idx], xs[idx]] = _bilinear(src_img[s], tx[idx], ty[idx])
            found[t, 0, ys[idx], xs[idx]] = True
            pending = pending & ~accept
            if not bool(pending.any()):
                break
    return colour, found
