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
   (``|f + b(A + f)|^2 <= 0.01 (|f|^2 + |b|^2) + 0.5``, as the warping-error metric), stays
   inside the frame and stays on its surface (its disparity changes by at most the tolerance
   below per frame and nothing nearer lies around it: a track that slid onto or under the
   occluder ends); a failed step ends that track;
3. in frame ``s`` the anchor is at ``A_s``; image offsets on a surface scale with inverse
   depth, so ``P_s = A_s + o * d_s(A_s) / d_r(xm)`` (exact for fronto-parallel planes under
   camera translation; 1 under lateral motion);
4. P is accepted in frame ``s`` only when ``P_s`` is inside the frame and none of the left-``s``
   pixels a bilinear sample there draws on (up to four) is nearer than the background (disparity
   at most ``d_bg * scale + max(tol_px, tol_rel * d_bg)``): the surface seen there is at least as
   far as the hole's background, never the occluder; its colour is sampled bilinearly.
   The nearest accepted frame wins (the later one at equal distance).

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
#: frames are padded to at least this many pixels a side for the flow (OpenCV's DIS refuses tiny frames)
MIN_FLOW_SIDE = 32


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
    t, h, w = grey.shape
    # OpenCV's flows need a few pyramid levels: tiny frames are padded (edge replicated), flows cropped
    grey = np.pad(grey, ((0, 0), (0, max(MIN_FLOW_SIDE - h, 0)), (0, max(MIN_FLOW_SIDE - w, 0))), mode="edge")
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))
        calc = lambda a, b: dis.calc(a, b, None)  # noqa: E731
    else:
        calc = lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)  # noqa: E731
    forward = np.zeros((max(t - 1, 0), h, w, 2), np.float32)
    backward = np.zeros_like(forward)
    for k in range(t - 1):
        forward[k] = calc(grey[k], grey[k + 1])[:h, :w]
        backward[k] = calc(grey[k + 1], grey[k])[:h, :w]
    return torch.from_numpy(forward), torch.from_numpy(backward)


# ----------------------------------------------------------------------------- sampling
# Images are stacks of frames flattened to ``[C, F * H * W]``; a point is ``(frame, x, y)``.
# ``index_select`` rather than advanced indexing: the latter is ~100x slower on a busy
# multi-threaded CPU for a few thousand points.
def _stack(frames: torch.Tensor) -> torch.Tensor:
    """``[F, C, H, W]`` -> contiguous ``[C, F * H * W]``."""
    f, c, h, w = frames.shape
    return frames.float().permute(1, 0, 2, 3).reshape(c, f * h * w).contiguous()


def _corners(h: int, w: int, frame: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Flat indices ``[4P]`` of the four pixels around float points ``x, y [P]`` of frames ``frame [P]``
    (clamped into the ``H x W`` frame; top-left, top-right, bottom-left, bottom-right) and weights ``fx, fy``."""
    x = x.clamp(0, w - 1)
    y = y.clamp(0, h - 1)
    x0, y0 = x.floor().clamp(max=max(w - 2, 0)), y.floor().clamp(max=max(h - 2, 0))
    i0, j0 = x0.long(), y0.long()
    i1, j1 = (i0 + 1).clamp(max=w - 1), (j0 + 1).clamp(max=h - 1)
    base = frame * (h * w)
    return torch.cat([base + j0 * w + i0, base + j0 * w + i1, base + j1 * w + i0, base + j1 * w + i1]), x - x0, y - y0


def _bilinear(stack: torch.Tensor, h: int, w: int, frame: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``stack [C, F*H*W]`` sampled bilinearly at ``(frame, x, y) [P]`` (clamped into the frame) -> ``[C, P]``."""
    index, fx, fy = _corners(h, w, frame, x, y)
    v = stack.index_select(1, index).reshape(stack.shape[0], 4, -1)
    return (v[:, 0] * (1 - fx) + v[:, 1] * fx) * (1 - fy) + (v[:, 2] * (1 - fx) + v[:, 3] * fx) * fy


def _max_around(stack: torch.Tensor, h: int, w: int, frame: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Max of ``stack [1, F*H*W]`` over the pixels a bilinear sample at ``(frame, x, y) [P]`` draws on
    (floor and ceil of each coordinate: one pixel at integer points, up to four); NaN if any is NaN."""
    x, y = x.clamp(0, w - 1), y.clamp(0, h - 1)
    i0, i1 = x.floor().long(), x.ceil().long()
    j0, j1 = y.floor().long(), y.ceil().long()
    base = frame * (h * w)
    index = torch.cat([base + j0 * w + i0, base + j0 * w + i1, base + j1 * w + i0, base + j1 * w + i1])
    v = stack[0].index_select(0, index).reshape(4, -1)
    return torch.maximum(torch.maximum(v[0], v[1]), torch.maximum(v[2], v[3]))  # not .max(dim=0): slow on a busy CPU


def _track_step(
    h: int, w: int, x: torch.Tensor, y: torch.Tensor, flow_ab: torch.Tensor, flow_ba: torch.Tensor, pair: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move points ``x, y [P]`` through flows ``flow_ab [2, (T-1)*H*W]`` of frame pairs ``pair [P]``;
    ok where forward-backward consistent (with ``flow_ba``) and inside the frame."""
    u = _bilinear(flow_ab, h, w, pair, x, y)
    nx, ny = x + u[0], y + u[1]
    inside = (nx >= 0) & (nx <= w - 1) & (ny >= 0) & (ny <= h - 1)
    back = _bilinear(flow_ba, h, w, pair, nx, ny)
    mismatch = ((u + back) ** 2).sum(0)
    scale = (u**2).sum(0) + (back**2).sum(0)
    ok = inside & (mismatch <= FB_ALPHA1 * scale + FB_ALPHA2)
    return nx, ny, ok


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
        ``(colour, source)``: ``[T, 3, H, W]`` colours (0 where not found) and long
        ``[T, 1, H, W]``: the frame each hole pixel's colour came from, -1 where no frame
        showed its background (and on covered pixels).
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
    fwd = _stack(forward.to(device).permute(0, 3, 1, 2))  # [2, (T-1)*H*W]
    bwd = _stack(backward.to(device).permute(0, 3, 1, 2))
    image, d_left = _stack(left), _stack(disparity_left_px)
    cov = covered[:, 0] > 0.5
    d_right = torch.nan_to_num(disparity_right_px[:, 0].float(), nan=0.0, posinf=0.0, neginf=0.0)
    src, has_src = background_source(cov, d_right)
    colour = torch.zeros(c, t_len * h * w, device=device)
    source = torch.full((t_len * h * w,), -1, dtype=torch.long, device=device)
    # every hole pixel of every frame at once: frame tp, row ys, column xs
    tp, ys, xs = torch.nonzero(~cov & has_src, as_tuple=True)
    if tp.numel() == 0 or t_len < 2:
        return colour.reshape(c, t_len, h, w).permute(1, 0, 2, 3), source.reshape(t_len, 1, h, w)
    xb = src[tp, ys, xs]
    d_bg = d_right[tp, ys, xb]
    # 1. anchor: move away from the hole into the background when that pixel is on the same surface
    xm = (xb + torch.where(xb < xs, -1, 1) * options.anchor_margin).clamp(0, w - 1)
    tol = torch.clamp(options.tol_rel * d_bg, min=options.tol_px)
    same = cov[tp, ys, xm] & ((d_right[tp, ys, xm] - d_bg).abs() <= tol)
    xm = torch.where(same, xm, xb)
    d_anchor = d_right[tp, ys, xm].clamp_min(1e-6)
    ax = xm.float() + d_anchor
    offset = xs.float() + d_bg - ax
    pixel = (tp * h + ys) * w + xs  # flat index of each hole pixel
    pending = torch.ones_like(xs, dtype=torch.bool)
    tracks = {d: (ax.clone(), ys.float(), pending.clone(), d_anchor.clone()) for d in (1, -1)}
    for k in range(1, min(options.max_offset, t_len - 1) + 1):
        for direction in (1, -1):  # nearest frames first; the later one first at equal distance
            x, y, alive, d_track = tracks[direction]
            target = tp + direction * k
            active = torch.nonzero(alive & pending & (target >= 0) & (target < t_len), as_tuple=True)[0]
            if active.numel() == 0:
                continue
            s = target.index_select(0, active)
            # 2. one tracking step of the active points from frame s - direction to s
            if direction > 0:
                pair, flow_ab, flow_ba = s - 1, fwd, bwd
            else:
                pair, flow_ab, flow_ba = s, bwd, fwd
            nx, ny, ok = _track_step(h, w, x.index_select(0, active), y.index_select(0, active), flow_ab, flow_ba, pair)
            # the anchor stays on its surface: its disparity changes little per frame and nothing
            # nearer lies around it (a track that slid onto, or under, the occluder ends here)
            d_prev = d_track.index_select(0, active)
            d_new = _bilinear(d_left, h, w, s, nx, ny)[0]
            step_tol = torch.clamp(options.tol_rel * d_prev, min=options.tol_px)
            ok = ok & ((d_new - d_prev).abs() <= step_tol) & (_max_around(d_left, h, w, s, nx, ny) <= d_new + step_tol)
            x.index_copy_(0, active, nx)
            y.index_copy_(0, active, ny)
            alive.index_copy_(0, active, ok)
            d_track.index_copy_(0, active, torch.where(ok, d_new, d_prev))
            # 3. the hole's background point in frame s (offsets scale with inverse depth)
            scale = torch.where(ok, d_new, d_prev) / d_anchor.index_select(0, active)
            known = torch.isfinite(scale)  # NaN disparity at the anchor: unknown surface, never accepted
            scale = torch.where(known, scale, torch.ones_like(scale))
            tx = nx + offset.index_select(0, active) * scale
            # 4. accepted where nothing nearer than the background lies around it
            nearest = _max_around(d_left, h, w, s, tx, ny)
            limit = d_bg.index_select(0, active) * scale + tol.index_select(0, active)
            accept = ok & known & (tx >= 0) & (tx <= w - 1) & (nearest <= limit)
            chosen = torch.nonzero(accept, as_tuple=True)[0]
            if chosen.numel() == 0:
                continue
            points = active.index_select(0, chosen)
            values = _bilinear(image, h, w, s.index_select(0, chosen), tx.index_select(0, chosen), ny.index_select(0, chosen))
            colour.index_copy_(1, pixel.index_select(0, points), values)
            source.index_copy_(0, pixel.index_select(0, points), s.index_select(0, chosen))
            pending.index_fill_(0, points, False)
        if not bool(pending.any()):
            break
    return colour.reshape(c, t_len, h, w).permute(1, 0, 2, 3), source.reshape(t_len, 1, h, w)
