"""Stereo geometry as pure, vectorised torch (CPU and GPU alike).

Conventions (DESIGN.md): images ``[N, C, H, W]``, videos ``[B, C, T, H, W]``; disparity
in pixels of the tensor it belongs to, >= 0, in the *source* view's frame. The left
pixel at column ``x`` is seen in the right view at ``x - d`` (``direction=-1``); the
right pixel at ``x`` is seen in the left view at ``x + d`` (``direction=+1``). Masks are
float 0/1, 1 = valid / known. Rectified stereo: every shift is along rows.

Every function taking a video flattens time into the batch, so the same code serves
images and videos.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Contributions whose disparity is within this many pixels of the nearest surface
#: landing on a target pixel count as the same surface (z-buffer tolerance).
Z_TOLERANCE_PX = 1.0
#: A target pixel is *covered* when the splatted weights sum to at least this. A
#: surface stretched by up to 4x still covers; a pixel grazed by a neighbour's tap only
#: (disocclusion edge) does not.
MIN_COVER_WEIGHT = 0.25
#: Only splat taps carrying at least this weight take part in the z-buffer decision.
ZBUFFER_MIN_WEIGHT = 0.25


# ----------------------------------------------------------------------------- shapes
def _as_frames(x: torch.Tensor, name: str) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    """``[B,C,T,H,W]`` -> ``[B*T,C,H,W]`` (and the video shape to undo it), images unchanged."""
    if x.ndim == 4:
        return x, None
    if x.ndim == 5:
        b, c, t, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), (b, c, t, h, w)
    raise ValueError(f"{name} must be [N,C,H,W] or [B,C,T,H,W], got shape {tuple(x.shape)}")


def _from_frames(x: torch.Tensor, video_shape: tuple[int, ...] | None) -> torch.Tensor:
    if video_shape is None:
        return x
    b, _, t, h, w = video_shape
    return x.reshape(b, t, x.shape[1], h, w).permute(0, 2, 1, 3, 4).contiguous()


def _check_pair(image: torch.Tensor, disparity_px: torch.Tensor) -> None:
    if image.ndim != disparity_px.ndim:
        raise ValueError(
            f"image {tuple(image.shape)} and disparity_px {tuple(disparity_px.shape)} must both be images or videos"
        )
    if disparity_px.shape[1] != 1:
        raise ValueError(f"disparity_px must have one channel, got shape {tuple(disparity_px.shape)}")
    if image.shape[0] != disparity_px.shape[0] or image.shape[2:] != disparity_px.shape[2:]:
        raise ValueError(
            f"disparity_px {tuple(disparity_px.shape)} does not match image {tuple(image.shape)} "
            "(same batch, frames, height and width expected)"
        )


# ----------------------------------------------------------------------------- depth <-> disparity
def valid_depth_mask(depth_m: torch.Tensor) -> torch.Tensor:
    """1 where depth is finite and > 0, else 0 (same shape, float)."""
    return (torch.isfinite(depth_m) & (depth_m > 0)).to(depth_m.dtype if depth_m.is_floating_point() else torch.float32)


def metric_depth_to_disparity(
    depth_m: torch.Tensor,
    focal_px: float | torch.Tensor,
    baseline_m: float | torch.Tensor,
    *,
    max_depth_m: float | None = None,
) -> torch.Tensor:
    """``d = f * B / Z`` in pixels.

    Args:
        depth_m: z-depth in metres, any shape.
        focal_px: focal length in pixels at the tensor's width (scalar or broadcastable).
        baseline_m: stereo baseline in metres.
        max_depth_m: depths beyond this are clamped to it (far plane / sky). TartanAir's
            sky is a large finite depth, which already gives ~0 disparity.

    Returns:
        disparity_px, same shape; 0 where depth is invalid (NaN, inf, <= 0), which is
        reported by :func:`valid_depth_mask`.
    """
    depth = depth_m.float()
    valid = torch.isfinite(depth) & (depth > 0)
    if max_depth_m is not None:
        depth = depth.clamp(max=max_depth_m)
    safe = torch.where(valid, depth, torch.ones_like(depth))
    disparity = torch.as_tensor(focal_px, dtype=depth.dtype, device=depth.device) * torch.as_tensor(
        baseline_m, dtype=depth.dtype, device=depth.device
    ) / safe
    return torch.where(valid, disparity, torch.zeros_like(disparity))


def robust_range(values: torch.Tensor, low_percentile: float = 2.0, high_percentile: float = 98.0) -> tuple[float, float]:
    """``(low, high)`` percentiles of the finite entries of ``values`` (subsampled when huge)."""
    flat = values[torch.isfinite(values)].float().flatten()
    if flat.numel() == 0:
        raise ValueError("inverse depth has no finite value")
    if flat.numel() > 4_000_000:  # torch.quantile is limited to 16M elements; subsample evenly
        flat = flat[:: flat.numel() // 4_000_000 + 1]
    q = torch.tensor([low_percentile, high_percentile], dtype=flat.dtype, device=flat.device) / 100.0
    low, high = torch.quantile(flat, q).tolist()
    return low, (high if high > low else low + 1e-6)


def inverse_depth_to_disparity(
    inv_depth: torch.Tensor,
    max_disparity_px: float,
    *,
    low_percentile: float = 2.0,
    high_percentile: float = 98.0,
    value_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Relative inverse depth (larger = nearer) -> disparity in ``[0, max_disparity_px]``.

    Each batch element (a clip) is normalised with robust percentiles over all its
    entries, not min/max, so a few outliers (particles, sky noise) do not change the
    3D strength. ``value_range=(low, high)`` fixes the mapping instead (e.g. one range
    for all windows of a video). NaN maps to 0 (far).
    """
    if max_disparity_px <= 0:
        raise ValueError(f"max_disparity_px must be > 0, got {max_disparity_px}")
    out = torch.empty_like(inv_depth, dtype=torch.float32)
    for i in range(inv_depth.shape[0]):
        low, high = value_range if value_range is not None else robust_range(inv_depth[i], low_percentile, high_percentile)
        scaled = (torch.nan_to_num(inv_depth[i].float(), nan=low, posinf=high, neginf=low) - low) / (high - low)
        out[i] = scaled.clamp(0.0, 1.0) * max_disparity_px
    return out


# ----------------------------------------------------------------------------- warps
def _row_taps(disparity: torch.Tensor, direction: int) -> tuple[torch.Tensor, ...]:
    """The two linear splat taps of every source pixel, as columns of a padded row.

    Target rows are padded by one dummy column on each side (index 0 and ``W + 1``)
    that is cut off at the end: taps that fall off the frame land there (clamped), and
    invalid disparities are sent off the frame, so every scatter is dense (no boolean
    compaction).

    Args:
        disparity: ``[N, 1, H, W]``.

    Returns:
        ``(i0, i1, w0, w1, key)``: long column indices into the padded row
        (``[N,1,H,W]`` each), the taps' linear weights, and the z-key (the disparity;
        -1 where invalid so that it never wins the z-buffer).
    """
    w = disparity.shape[-1]
    valid = torch.isfinite(disparity) & (disparity >= 0)
    cols = torch.arange(w, device=disparity.device, dtype=disparity.dtype)
    x_t = torch.where(valid, cols + direction * disparity, torch.full_like(disparity, -2.0))
    x0 = torch.floor(x_t)
    w1 = x_t - x0
    w0 = 1.0 - w1
    i0 = (x0.clamp(-1, w) + 1).long()  # -1 -> left dummy 0, w -> right dummy w + 1
    i1 = (x0.clamp(-2, w - 1) + 2).long()
    key = torch.where(valid, disparity, torch.full_like(disparity, -1.0))
    return i0, i1, w0, w1, key


def _zbuffer_accept(
    i0: torch.Tensor, i1: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor, key: torch.Tensor, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool masks of the taps whose surface is the nearest (within tolerance) at their target.

    Only taps carrying at least :data:`ZBUFFER_MIN_WEIGHT` (> 0) set the z-buffer: a
    near surface that merely grazes a target pixel (its edge) does not hide the far
    surface that fills the rest of that pixel; the grazing tap still blends in
    (anti-aliasing). Taps on the dummy columns are accepted and later cut off.
    """
    n, _, h, _ = key.shape
    zmax = torch.full((n, 1, h, width + 2), -1.0, device=key.device, dtype=key.dtype)
    no_claim = torch.full_like(key, -1.0)
    zmax.scatter_reduce_(-1, i0, torch.where(w0 >= ZBUFFER_MIN_WEIGHT, key, no_claim), reduce="amax", include_self=True)
    zmax.scatter_reduce_(-1, i1, torch.where(w1 >= ZBUFFER_MIN_WEIGHT, key, no_claim), reduce="amax", include_self=True)
    ok0 = key >= torch.gather(zmax, -1, i0) - Z_TOLERANCE_PX
    ok1 = key >= torch.gather(zmax, -1, i1) - Z_TOLERANCE_PX
    return ok0, ok1


def forward_warp(
    image: torch.Tensor, disparity_px: torch.Tensor, *, direction: int = -1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-splat ``image`` along rows: source column ``x`` goes to ``x + direction * d``.

    Sub-pixel: each source pixel splats to the two target columns around its position
    with linear weights. Z-buffered: at each target only the nearest surface (largest d,
    within :data:`Z_TOLERANCE_PX`) contributes. NaN/inf/negative disparities are
    invalid and never splatted; contributions beyond the frame edge are dropped.

    Args:
        image: ``[N, C, H, W]`` or ``[B, C, T, H, W]``.
        disparity_px: ``[N, 1, H, W]`` or ``[B, 1, T, H, W]`` in the source frame.
        direction: -1 left->right, +1 right->left.

    Returns:
        ``(warped, covered)``: warped image (0 where uncovered) and float 0/1 mask with
        one channel, 1 where the splatted weight reaches :data:`MIN_COVER_WEIGHT`.
    """
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 (left->right) or +1 (right->left), got {direction}")
    _check_pair(image, disparity_px)
    frames, vshape = _as_frames(image, "image")
    disp, _ = _as_frames(disparity_px, "disparity_px")
    n, c, h, w = frames.shape
    i0, i1, w0, w1, key = _row_taps(disp.float(), direction)
    ok0, ok1 = _zbuffer_accept(i0, i1, w0, w1, key, w)
    w0 = w0 * ok0 * (key >= 0)
    w1 = w1 * ok1 * (key >= 0)

    work_dtype = torch.float32 if frames.dtype in (torch.float16, torch.bfloat16) else frames.dtype
    src = frames.to(work_dtype)
    acc = torch.zeros(n, c, h, w + 2, device=frames.device, dtype=work_dtype)
    acc.scatter_add_(-1, i0.expand(n, c, h, w), src * w0.to(work_dtype))
    acc.scatter_add_(-1, i1.expand(n, c, h, w), src * w1.to(work_dtype))
    total = torch.zeros(n, 1, h, w + 2, device=frames.device, dtype=work_dtype)
    total.scatter_add_(-1, i0, w0.to(work_dtype))
    total.scatter_add_(-1, i1, w1.to(work_dtype))
    acc, total = acc[..., 1 : w + 1], total[..., 1 : w + 1]

    covered = total >= MIN_COVER_WEIGHT
    warped = torch.where(covered, acc / total.clamp_min(1e-12), torch.zeros_like(acc)).to(frames.dtype)
    covered_map = covered.to(warped.dtype if warped.is_floating_point() else torch.float32)
    return _from_frames(warped, vshape), _from_frames(covered_map, vshape)


def shift_noise(
    noise: torch.Tensor, disparity: torch.Tensor, fill: torch.Tensor | None = None, *, direction: int = -1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-shift Gaussian *noise* along rows, nearest cell: i.i.d. N(0, 1) stays i.i.d. N(0, 1).

    :func:`forward_warp` averages two sub-pixel taps, which shrinks white noise (std 0.71
    at half a pixel) and correlates neighbours. Here every source cell goes to the one
    column ``floor(x + direction * d + 0.5)``; where several land on one target the nearest
    surface (largest d, then the rightmost source) wins, so each target holds exactly one
    source value and no source is used twice. NaN/inf/negative disparities are invalid and
    never shifted (as in :func:`forward_warp`).

    Args:
        noise: ``[N, C, H, W]`` or ``[B, C, T, H, W]`` (e.g. Wan latents ``[B, 16, f, h, w]``).
        disparity: ``[N, 1, H, W]`` / ``[B, 1, T, H, W]`` in cells of ``noise``'s grid,
            in the source frame.
        fill: same shape as ``noise``: what uncovered cells get (fresh noise); None = 0.
        direction: -1 left->right, +1 right->left.

    Returns:
        ``(shifted, covered)``, covered float 0/1 ``[.., 1, ..]``: 1 where a source landed.
    """
    if direction not in (-1, 1):
        raise ValueError(f"shift_noise: direction must be -1 or +1, got {direction}")
    _check_pair(noise, disparity)
    if fill is not None and fill.shape != noise.shape:
        raise ValueError(f"shift_noise: fill must have the noise's shape {tuple(noise.shape)}, got {tuple(fill.shape)}")
    frames, vshape = _as_frames(noise, "noise")
    d = _as_frames(disparity, "disparity")[0].float()
    n, c, h, w = frames.shape
    valid = torch.isfinite(d) & (d >= 0)
    src = torch.arange(w, device=d.device).expand_as(d)
    target = torch.floor(src + direction * torch.where(valid, d, torch.zeros_like(d)) + 0.5)
    valid = valid & (target >= 0) & (target <= w - 1)
    index = torch.where(valid, target + 1, torch.zeros_like(target)).long()  # column 0: dummy for the invalid
    key = torch.where(valid, d, torch.full_like(d, -1.0))
    zmax = torch.full((n, 1, h, w + 1), -1.0, device=d.device).scatter_reduce(-1, index, key, reduce="amax")
    wins = valid & (key >= torch.gather(zmax, -1, index))
    winner = torch.full((n, 1, h, w + 1), -1, device=d.device, dtype=torch.long)
    winner = winner.scatter_reduce(-1, index, torch.where(wins, src, torch.full_like(src, -1)), reduce="amax")[..., 1:]
    covered = winner >= 0
    shifted = torch.gather(frames, -1, winner.clamp_min(0).expand(n, c, h, w))
    base = torch.zeros_like(frames) if fill is None else _as_frames(fill.to(frames), "fill")[0]
    shifted = torch.where(covered, shifted, base)
    return _from_frames(shifted, vshape), _from_frames(covered.to(frames.dtype), vshape)


def backward_warp(
    image: torch.Tensor, disparity_px: torch.Tensor, *, direction: int = -1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``image`` at ``x + direction * d(x)`` along rows (linear interpolation).

    ``disparity_px`` lives in the *output* frame: with ``direction=-1`` and the left
    disparity, ``backward_warp(right, d_left)`` rebuilds the left view from the right.

    Returns:
        ``(sampled, valid)``: valid is 1 where d is finite and >= 0 and the sample lies
        inside the frame. Occlusions are not detected here; see :func:`occlusion_mask`.
    """
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or +1, got {direction}")
    _check_pair(image, disparity_px)
    frames, vshape = _as_frames(image, "image")
    disp, _ = _as_frames(disparity_px, "disparity_px")
    n, c, h, w = frames.shape
    d = disp[:, 0].float()
    ok = torch.isfinite(d) & (d >= 0)
    d = torch.where(ok, d, torch.zeros_like(d))
    x_s = torch.arange(w, device=d.device, dtype=d.dtype) + direction * d
    inside = ok & (x_s >= 0) & (x_s <= w - 1)
    x0 = torch.floor(x_s).clamp(0, w - 1)
    w1 = (x_s - x0).clamp(0, 1)
    i0 = x0.long()
    i1 = (i0 + 1).clamp(max=w - 1)
    src = frames.float()
    g0 = torch.gather(src, 3, i0.unsqueeze(1).expand(n, c, h, w))
    g1 = torch.gather(src, 3, i1.unsqueeze(1).expand(n, c, h, w))
    sampled = (g0 * (1 - w1).unsqueeze(1) + g1 * w1.unsqueeze(1)) * inside.unsqueeze(1)
    valid = inside.unsqueeze(1).float()
    return _from_frames(sampled.to(frames.dtype), vshape), _from_frames(valid, vshape)


def occlusion_mask(disparity_px: torch.Tensor, *, direction: int = -1) -> torch.Tensor:
    """1 where a source pixel is seen in the other view (it wins the z-buffer at its target).

    Args:
        disparity_px: ``[N,1,H,W]`` / ``[B,1,T,H,W]`` in the source frame;
            ``direction=-1`` for left pixels seen by the right camera, ``+1`` for right
            pixels seen by the left camera.

    Returns:
        float 0/1 mask, same shape; 0 for occluded pixels, pixels whose target is off
        frame, and invalid disparities.
    """
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or +1, got {direction}")
    disp, vshape = _as_frames(disparity_px, "disparity_px")
    i0, i1, w0, w1, key = _row_taps(disp.float(), direction)
    ok0, ok1 = _zbuffer_accept(i0, i1, w0, w1, key, disp.shape[-1])
    # a pixel is visible when the tap carrying most of its weight is accepted and in frame
    width = disp.shape[-1]
    main = torch.where(w1 > w0, i1, i0)
    visible = torch.where(w1 > w0, ok1, ok0) & (key >= 0) & (main >= 1) & (main <= width)
    return _from_frames(visible.float(), vshape)


def right_disparity_from_left(disparity_left_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The right view's disparity, by forward-splatting the left disparity.

    Returns:
        ``(disparity_right_px, covered)``; disparity is 0 where uncovered.
    """
    clean = torch.where(
        torch.isfinite(disparity_left_px) & (disparity_left_px >= 0), disparity_left_px, torch.full_like(disparity_left_px, float("nan"))
    )
    values = torch.nan_to_num(clean, nan=0.0)
    return forward_warp(values, clean, direction=-1)


def cycle_warp_right_to_left(right: torch.Tensor, disparity_right_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp the right view back to the left with the right view's disparity (z-buffered).

    Returns:
        ``(left_hat, valid)``: valid is 1 on left pixels that received right content.
    """
    return forward_warp(right, disparity_right_px, direction=1)


# ----------------------------------------------------------------------------- Wan latent grid
def _check_latent_video(x: torch.Tensor, name: str) -> None:
    if x.ndim != 5:
        raise ValueError(f"{name} must be a video [B,1,T,H,W], got shape {tuple(x.shape)}")
    t, h, w = x.shape[-3:]
    if (t - 1) % 4 != 0:
        raise ValueError(f"{name} must have 4k+1 frames for Wan's causal VAE, got T={t}")
    if h % 8 or w % 8:
        raise ValueError(f"{name} height and width must be multiples of 8, got {h}x{w}")


def _temporal_groups(x: torch.Tensor, reduce: str) -> torch.Tensor:
    """``[B,C,4k+1,h,w]`` -> ``[B,C,1+k,h,w]``: frame 0 alone, then groups of 4 frames."""
    first, rest = x[:, :, :1], x[:, :, 1:]
    if rest.shape[2] == 0:
        return first
    b, c, t, h, w = rest.shape
    grouped = rest.reshape(b, c, t // 4, 4, h, w)
    pooled = grouped.mean(dim=3) if reduce == "mean" else grouped.amin(dim=3)
    return torch.cat([first, pooled], dim=2)


def disparity_to_latent_grid(disparity_px: torch.Tensor) -> torch.Tensor:
    """Disparity ``[B,1,T,H,W]`` (px) -> ``[B,1,1+(T-1)//4,H/8,W/8]`` in latent pixels.

    Spatial: mean over each 8x8 cell, values divided by 8. Temporal (causal VAE):
    latent frame 0 is pixel frame 0; latent frame k covers pixel frames 4k-3..4k (mean).
    Invalid values count as 0.
    """
    _check_latent_video(disparity_px, "disparity_px")
    d = torch.nan_to_num(disparity_px.float(), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
    b, _, t, h, w = d.shape
    spatial = F.avg_pool2d(d.permute(0, 2, 1, 3, 4).reshape(b * t, 1, h, w), 8) / 8.0
    spatial = spatial.reshape(b, t, 1, h // 8, w // 8).permute(0, 2, 1, 3, 4)
    return _temporal_groups(spatial, "mean")


def mask_to_latent_grid(mask: torch.Tensor) -> torch.Tensor:
    """Mask ``[B,1,T,H,W]`` -> ``[B,1,1+(T-1)//4,H/8,W/8]``: 1 only where every pixel it covers is 1."""
    _check_latent_video(mask, "mask")
    m = (mask > 0.5).float()
    b, _, t, h, w = m.shape
    spatial = -F.max_pool2d(-m.permute(0, 2, 1, 3, 4).reshape(b * t, 1, h, w), 8)
    spatial = spatial.reshape(b, t, 1, h // 8, w // 8).permute(0, 2, 1, 3, 4)
    return _temporal_groups(spatial, "min")
