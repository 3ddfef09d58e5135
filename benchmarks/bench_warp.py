#!/usr/bin/env python
"""Forward-warp throughput: stereo_lit.stereo.geometry.forward_warp vs the two reference schemes.

    python benchmarks/bench_warp.py [--frames 33 --height 480 --width 832 --repeats 3 --device cpu]

Target (issue: foundation): >= 8 Mpix/s for a 33-frame 480x832 video on a 2-core CPU.
Prints one table; times are the best of ``--repeats`` runs in this process, so the three
schemes are compared under the same load. Throughput counts source pixels (frames x H x W).
"""

from __future__ import annotations

import argparse
import time

import torch

from stereo_lit.stereo.geometry import forward_warp
from stereo_lit.stereo.warp_references import nearest_zbuffer_warp, soft_splat_warp


def _frames(x: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def _best_time(fn, repeats: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    gen = torch.Generator().manual_seed(0)
    video = torch.rand(1, 3, args.frames, args.height, args.width, generator=gen).to(device)
    # smooth disparity field with discontinuities: a ramp plus a near box, up to ~3% of the width
    disparity = torch.linspace(0, 0.02 * args.width, args.width).expand(1, 1, args.frames, args.height, -1).clone()
    disparity[..., args.height // 4 : args.height // 2, args.width // 3 : args.width // 2] = 0.03 * args.width
    disparity = disparity.to(device)
    mpix = args.frames * args.height * args.width / 1e6

    rows = []
    schemes = {
        "forward_warp (linear, z-buffer)": lambda: forward_warp(video, disparity),
        "nearest pixel, z-buffer": lambda: nearest_zbuffer_warp(_frames(video), _frames(disparity)),
        "soft splat 1.414**d": lambda: soft_splat_warp(_frames(video), _frames(disparity)),
    }
    for name, fn in schemes.items():
        fn()  # warm-up
        seconds = _best_time(fn, args.repeats, device)
        rows.append((name, seconds, mpix / seconds))
    ours = rows[0][2]
    print(f"forward warp, {args.frames}x{args.height}x{args.width} video on {device} ({torch.get_num_threads()} threads)")
    print(f"| scheme | seconds | Mpix/s | ours / scheme |")
    print(f"| --- | --- | --- | --- |")
    for name, seconds, rate in rows:
        print(f"| {name} | {seconds:.3f} | {rate:.2f} | {ours / rate:.2f}x |")
    verdict = "meets" if ours >= 8.0 else "MISSES"
    print(f"target >= 8 Mpix/s: {verdict} ({ours:.2f} Mpix/s)")


if __name__ == "__main__":
    main()
