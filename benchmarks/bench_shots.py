#!/usr/bin/env python
"""Frame-to-frame jump of the disparity range, with and without shot-aware ranges (issue 14 item 3).

    python benchmarks/bench_shots.py [--frames 24 --height 96 --width 128 --particles 0.03]

A synthetic two-shot clip: shot 1 is :func:`stereo_lit.data.synthetic.render_sequence` seed 0
seen from 5x farther (a landscape: inverse depth / 5), shot 2 is seed 1 seen from 3x nearer (a
close-up: inverse depth x 3), each ``--frames`` frames. In every frame a random share (uniform
in ``[0, particles]``) of the pixels are particles (snow, dust) at 3x the frame's nearest
inverse depth, the outliers that make a per-frame range flicker. Cuts are detected on the
rendered frames (PySceneDetect ContentDetector) and must be found at the true frame.

For each mode the table gives, over frames inside a shot (the cut itself is not counted), the
mean and largest frame-to-frame change of the disparity range (the inverse-depth ``low`` and
``high`` mapped to 0 and the maximum disparity; the larger change, in % of the shot's own
range), and the strength each shot gets (mean 98-2 percentile span of the output disparity of
the scene's pixels, in % of the maximum disparity).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.stereo.disparity import DisparityPolicy
from stereo_lit.stereo.shots import detect_cuts


def two_shot_clip(
    frames: int, height: int, width: int, particles: float, seed: int = 0
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """``(rgb uint8 [T,H,W,3], estimated inverse depth [T,H,W], particle mask)`` (module docstring)."""
    far = render_sequence(frames, height, width, seed=0)
    near = render_sequence(frames, height, width, seed=1)
    rgb = np.concatenate([far.left, near.left])
    inv = torch.from_numpy(np.concatenate([1.0 / (5.0 * far.depth_left_m), 3.0 / near.depth_left_m])).float()
    rng = np.random.default_rng(seed)
    share = rng.uniform(0, particles, len(inv)).reshape(-1, 1, 1)
    mask = torch.from_numpy(rng.random(inv.shape) < share)
    peak = inv.flatten(1).amax(1).view(-1, 1, 1).expand_as(inv)
    inv = torch.where(mask, 3.0 * peak, inv)
    return rgb, inv, mask


def run_mode(
    inv: torch.Tensor, cuts: list[int], shot_aware: bool, smoothing: float | None, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(output disparity [T,H,W] px, range used [T, 2])`` of one mode, in 16-frame windows as ``predict``."""
    policy = DisparityPolicy(max_disparity_pct=3.0, convergence=0.0, shot_aware=shot_aware, range_smoothing=smoothing)
    sample = inv[:: max(1, len(inv) // 64)]
    policy.fix_video_range("clip", sample, "inverse_relative", depth=inv, cuts=cuts)
    out = []
    for start in range(0, len(inv), 16):
        window = inv[None, None, start : start + 16]
        out.append(policy.from_depth(window, "inverse_relative", "clip", width_px=width, start=start)[0, 0])
    per_frame = policy.window_range("clip", 0, len(inv))
    if per_frame is None:
        used = torch.tensor([policy.relative_range("clip", sample)] * len(inv))
    else:
        used = torch.stack([per_frame[0].flatten(), per_frame[1].flatten()], dim=1)
    return torch.cat(out), used


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=24, help="frames per shot")
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--particles", type=float, default=0.03, help="largest share of particle pixels")
    args = parser.parse_args(argv)

    rgb, inv, particles = two_shot_clip(args.frames, args.height, args.width, args.particles)
    cuts = detect_cuts(iter(rgb), min_shot_len=min(15, args.frames))
    print(f"cuts detected: {cuts} (true: [{args.frames}])")
    max_px = 0.03 * args.width
    modes = [
        ("whole video (shot_aware: false)", False, None),
        ("per frame, no smoothing (range_smoothing: 0)", True, 0.0),
        ("per shot (shot_aware: true, default)", True, None),
        ("per shot + EMA (range_smoothing: 8)", True, 8.0),
    ]
    n = args.frames
    shot_span = torch.tensor([float(inv[:n].quantile(0.98) - inv[:n].quantile(0.02))] * n
                             + [float(inv[n:].quantile(0.98) - inv[n:].quantile(0.02))] * n)
    print("| mode | mean jump % | max jump % | shot 1 strength % | shot 2 strength % |")
    print("|---|---|---|---|---|")
    for name, shot_aware, smoothing in modes:
        disparity, used = run_mode(inv, cuts, shot_aware, smoothing, args.width)
        jumps = (used[1:] - used[:-1]).abs().amax(1) / shot_span[1:] * 100
        inside = torch.ones_like(jumps, dtype=torch.bool)
        for c in cuts:
            inside[c - 1] = False
        span = torch.stack([
            (d[~m].quantile(0.98) - d[~m].quantile(0.02)) / max_px * 100 for d, m in zip(disparity, particles)
        ])
        print(
            f"| {name} | {jumps[inside].mean():.2f} | {jumps[inside].max():.2f} | "
            f"{span[:n].mean():.0f} | {span[n:].mean():.0f} |"
        )


if __name__ == "__main__":
    main()
