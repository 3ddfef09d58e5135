"""Reference forward-splatting schemes that :func:`stereo_lit.stereo.geometry.forward_warp` is measured against.

They exist for the accuracy test on a real stereo pair and for ``benchmarks/bench_warp.py``;
the package itself always uses :func:`~stereo_lit.stereo.geometry.forward_warp`.

- :func:`nearest_zbuffer_warp`: every source pixel lands on the nearest target column;
  the largest disparity (nearest surface) wins. No sub-pixel accuracy.
- :func:`soft_splat_warp`: linear (two-tap) splatting where every contribution is
  weighted by ``1.414 ** d`` and the result normalised by the summed weights, the
  soft z-buffer StereoCrafter uses: near surfaces dominate, but far ones still leak
  in proportionally (no hard visibility decision).

Both take images ``[N, C, H, W]`` and disparity ``[N, 1, H, W]`` (left frame, the left
pixel at ``x`` lands at ``x - d``) and return ``(warped, covered)`` like
``forward_warp``; invalid (NaN, inf, negative) disparities are never splatted.
"""

from __future__ import annotations

import torch

from stereo_lit.stereo.geometry import MIN_COVER_WEIGHT

#: base of the StereoCrafter soft-splatting weight ``SOFT_BASE ** d``
SOFT_BASE = 1.414


def _clean(disparity_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    valid = torch.isfinite(disparity_px) & (disparity_px >= 0)
    return torch.where(valid, disparity_px, torch.zeros_like(disparity_px)), valid


def nearest_zbuffer_warp(image: torch.Tensor, disparity_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-pixel splat with a hard z-buffer (the largest disparity wins a target)."""
    n, c, h, w = image.shape
    d, valid = _clean(disparity_px.float())
    x_t = torch.round(torch.arange(w, dtype=d.dtype, device=d.device) - d)
    ok = valid & (x_t >= 0) & (x_t <= w - 1)
    target = torch.where(ok, x_t.long() + 1, torch.zeros_like(x_t, dtype=torch.long))  # column 0: dummy
    key = torch.where(ok, d, torch.full_like(d, -1.0))
    zmax = torch.full((n, 1, h, w + 1), -1.0, dtype=d.dtype, device=d.device)
    zmax.scatter_reduce_(-1, target, key, reduce="amax", include_self=True)
    winner = ok & (key >= torch.gather(zmax, -1, target))
    weight = winner.to(image.dtype)
    acc = torch.zeros(n, c, h, w + 1, dtype=image.dtype, device=image.device)
    acc.scatter_add_(-1, target.expand(n, c, h, w), image * weight)
    total = torch.zeros(n, 1, h, w + 1, dtype=image.dtype, device=image.device)
    total.scatter_add_(-1, target, weight)
    acc, total = acc[..., 1:], total[..., 1:]
    covered = total > 0
    return torch.where(covered, acc / total.clamp_min(1e-12), torch.zeros_like(acc)), covered.to(image.dtype)


def soft_splat_warp(
    image: torch.Tensor, disparity_px: torch.Tensor, base: float = SOFT_BASE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear splat with soft z-weights ``base ** d`` (StereoCrafter); coverage as ``forward_warp``.

    The weights are computed relative to each row's largest disparity (a common factor
    that cancels in the normalisation) so that ``base ** d`` cannot overflow, in float64
    so that far surfaces of a row with a large disparity range do not underflow.
    """
    n, c, h, w = image.shape
    out_dtype = image.dtype
    image = image.double()
    d, valid = _clean(disparity_px.double())
    d_row_max = d.amax(dim=-1, keepdim=True)
    z_weight = torch.pow(torch.tensor(base, dtype=d.dtype), d - d_row_max) * valid
    x_t = torch.arange(w, dtype=d.dtype, device=d.device) - d
    x0 = torch.floor(x_t)
    frac = x_t - x0
    acc = torch.zeros(n, c, h, w + 2, dtype=image.dtype, device=image.device)
    total = torch.zeros(n, 1, h, w + 2, dtype=image.dtype, device=image.device)
    cover = torch.zeros(n, 1, h, w + 2, dtype=image.dtype, device=image.device)
    for offset, tap_weight in ((0, 1.0 - frac), (1, frac)):
        col = x0 + offset
        ok = valid & (col >= 0) & (col <= w - 1)
        target = torch.where(ok, col.long() + 1, torch.zeros_like(col, dtype=torch.long))
        weight = tap_weight * z_weight * ok
        acc.scatter_add_(-1, target.expand(n, c, h, w), image * weight)
        total.scatter_add_(-1, target, weight)
        cover.scatter_add_(-1, target, tap_weight * ok)
    acc, total, cover = acc[..., 1 : w + 1], total[..., 1 : w + 1], cover[..., 1 : w + 1]
    covered = (cover >= MIN_COVER_WEIGHT) & (total > 0)
    warped = torch.where(covered, acc / total.clamp_min(1e-300), torch.zeros_like(acc))
    return warped.to(out_dtype), covered.to(out_dtype)
