#!/usr/bin/env python
"""Right-view PSNR around depth edges with and without each depth-edge option (issue 14 item 4).

    python benchmarks/bench_edges.py [--seeds 3 --frames 3 --height 240 --width 320 --band 4]

Scenes: :func:`stereo_lit.data.synthetic.render_sequence` (each eye ray-cast, so the true right
view is exact). The right view is made by :class:`~stereo_lit.generators.geometric.WarpFill`
from the left view and a disparity that is either exact or degraded the way estimated depth is:

- ``soft``: the true disparity blurred with a Gaussian of sigma 1.5 px (a soft depth edge);
- ``lowres``: the true disparity at 1/4 resolution (area) and bilinearly upsampled (a network
  that sees 518 px and is upsampled to the frame, as Video-Depth-Anything).

PSNR (dB, images in [0, 1]) is taken over pixels within ``--band`` px of a depth edge of the
true right view (|horizontal or vertical disparity step| > 1 px), away from the left frame
edge, over all frames and seeds; ``all`` is the whole frame. The foreground scale changes the
geometry on purpose (an artistic control), so its rows only show what it costs.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.stereo.edges import EdgeOptions, antialias
from stereo_lit.generators.geometric import WarpFill

OPTIONS: list[tuple[str, EdgeOptions]] = [
    ("none", EdgeOptions()),
    ("dilate 1x0", EdgeOptions(dilate_px=(1, 0))),
    ("dilate 2x0", EdgeOptions(dilate_px=(2, 0))),
    ("dilate 3x0", EdgeOptions(dilate_px=(3, 0))),
    ("dilate 2x2", EdgeOptions(dilate_px=(2, 2))),
    ("antialias 0.5", EdgeOptions(antialias=0.5)),
    ("antialias 1.0", EdgeOptions(antialias=1.0)),
    ("antialias 2.0", EdgeOptions(antialias=2.0)),
    ("dilate 2x0 + aa 1.0", EdgeOptions(dilate_px=(2, 0), antialias=1.0)),
    ("fg scale 1.2", EdgeOptions(foreground_scale=1.2)),
]


def _video(array) -> torch.Tensor:
    """uint8 ``[T,H,W,3]`` -> float ``[1,3,T,H,W]`` in [0, 1]."""
    return torch.from_numpy(array).permute(3, 0, 1, 2)[None].float() / 255.0


def degrade(disparity: torch.Tensor, kind: str) -> torch.Tensor:
    """``exact``, ``soft`` or ``lowres`` version of a true disparity ``[B,1,T,H,W]`` (module docstring)."""
    if kind == "exact":
        return disparity
    if kind == "soft":
        return antialias(disparity, 1.5)
    b, _, t, h, w = disparity.shape
    frames = disparity.permute(0, 2, 1, 3, 4).reshape(b * t, 1, h, w)
    low = F.interpolate(frames, size=(h // 4, w // 4), mode="area")
    up = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    return up.reshape(b, t, 1, h, w).permute(0, 2, 1, 3, 4)


def edge_band(disparity_right: torch.Tensor, band: int, margin: int) -> torch.Tensor:
    """Bool ``[B,1,T,H,W]``: within ``band`` px of a > 1 px disparity step, ``margin`` px off the left edge."""
    dx = (disparity_right[..., :, 1:] - disparity_right[..., :, :-1]).abs() > 1.0
    dy = (disparity_right[..., 1:, :] - disparity_right[..., :-1, :]).abs() > 1.0
    edges = torch.zeros_like(disparity_right, dtype=torch.bool)
    edges[..., :, 1:] |= dx
    edges[..., :, :-1] |= dx
    edges[..., 1:, :] |= dy
    edges[..., :-1, :] |= dy
    k = 2 * band + 1
    near = F.max_pool3d(edges.float(), (1, k, k), stride=1, padding=(0, band, band)) > 0
    near[..., :margin] = False
    return near


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    mse = ((a - b) ** 2).mean(dim=1, keepdim=True)[mask].mean().clamp_min(1e-12)
    return float(10 * torch.log10(1.0 / mse))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--band", type=int, default=4, help="px around a depth edge")
    args = parser.parse_args(argv)

    scenes = []
    for seed in range(args.seeds):
        seq = render_sequence(args.frames, args.height, args.width, seed=seed)
        d_left = torch.from_numpy(seq.disparity_left_px)[None, None]
        d_right = torch.from_numpy(seq.fx * seq.baseline_m / seq.depth_right_m)[None, None].float()
        margin = int(d_left.max().ceil()) + 1
        scenes.append((_video(seq.left), _video(seq.right), d_left, edge_band(d_right, args.band, margin), margin))

    warp = WarpFill()
    degradations = ("exact", "soft", "lowres")
    rows = []
    for name, options in OPTIONS:
        row = [name]
        for kind in degradations:
            outs, trues, bands, alls = [], [], [], []
            for left, right, d_left, band, margin in scenes:
                disparity = options.apply(degrade(d_left, kind), float(d_left.median()))
                outs.append(warp.generate(left, disparity).right)
                trues.append(right)
                bands.append(band)
                full = torch.ones_like(band)
                full[..., :margin] = False
                alls.append(full)
            out, true = torch.cat(outs), torch.cat(trues)
            row += [psnr(out, true, torch.cat(bands)), psnr(out, true, torch.cat(alls))]
        rows.append(row)

    band_share = float(torch.cat([s[3] for s in scenes]).float().mean())
    print(f"right-view PSNR (dB): {args.seeds} scenes x {args.frames} frames at {args.height}x{args.width}, "
          f"band = {args.band} px around depth edges ({100 * band_share:.1f}% of pixels)")
    header = "| option | " + " | ".join(f"{k} band | {k} all" for k in degradations) + " |"
    print(header)
    print("|" + "---|" * (1 + 2 * len(degradations)))
    for row in rows:
        print(f"| {row[0]} | " + " | ".join(f"{v:.2f}" for v in row[1:]) + " |")


if __name__ == "__main__":
    main()
