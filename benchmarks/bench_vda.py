#!/usr/bin/env python
"""Benchmark Video-Depth-Anything streaming inference: frames per second and peak memory.

    python benchmarks/bench_vda.py                      # CPU: VDA-Small, 64 frames, short side 280; 64 vs 256 frames
    python benchmarks/bench_vda.py --device cuda --short-side 518 --autocast float16

Random weights with the real architecture (``--encoder vits|vitb|vitl``); synthetic 16:9 frames are
generated on the fly so the input itself takes no memory. Each measurement runs in a fresh
subprocess so peak memory (CPU: peak RSS; CUDA: ``max_memory_allocated``) is that run's alone.
Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _frames(num_frames: int, height: int, width: int):
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for t in range(num_frames):
        wave = np.sin((xx + 3 * t) / 23.0) * np.cos((yy - 2 * t) / 17.0)
        frame = 127 + 100 * wave[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
        yield frame.astype(np.uint8)


def _child(args: argparse.Namespace) -> dict:
    import torch

    from stereo_lit.depth import VideoDepthAnything, network_size, stream_video_depth

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = VideoDepthAnything(args.encoder).eval().to(device)
    height = args.short_side
    width = int(round(height * 16 / 9 / 2)) * 2
    base_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    checksum, count = 0.0, 0
    for depth in stream_video_depth(
        model,
        _frames(args.frames, height, width),
        input_size=args.short_side,
        device=device,
        autocast_dtype=None if args.autocast == "none" else args.autocast,
        windows_per_batch=args.windows_per_batch,
    ):
        checksum += float(depth.mean())
        count += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "frames": count,
        "video": f"{height}x{width}",
        "network": "x".join(map(str, network_size(height, width, args.short_side))),
        "seconds": seconds,
        "fps": count / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "model_rss_mb": base_rss_mb,
        "checksum": checksum,
    }
    if device.type == "cuda":
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def _run(args: argparse.Namespace, frames: int) -> dict:
    cmd = [
        sys.executable, os.path.abspath(__file__), "--child",
        "--frames", str(frames), "--short-side", str(args.short_side), "--encoder", args.encoder,
        "--device", args.device, "--autocast", args.autocast, "--windows-per-batch", str(args.windows_per_batch),
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="vits", choices=["vits", "vitb", "vitl", "tiny"])
    parser.add_argument("--short-side", type=int, default=280, help="video height and network input size")
    parser.add_argument("--frames", type=int, default=64, help="clip length for the speed measurement")
    parser.add_argument("--memory-frames", default="64,256", help="two lengths whose peak memory is compared")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--autocast", default="none", choices=["none", "float16", "bfloat16"])
    parser.add_argument("--windows-per-batch", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(_child(args)))
        return

    lengths = [int(x) for x in args.memory_frames.split(",")]
    runs = {n: _run(args, n) for n in sorted({args.frames, *lengths})}
    mem_key = "peak_cuda_mb" if args.device.startswith("cuda") else "peak_rss_mb"
    import torch

    print(f"Video-Depth-Anything ({args.encoder}, random weights) on {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, autocast={args.autocast}, windows/batch={args.windows_per_batch}")
    print()
    print(f"| frames | video | network | seconds | fps | {mem_key} | model-only RSS MB |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for n, r in runs.items():
        print(f"| {r['frames']} | {r['video']} | {r['network']} | {r['seconds']:.1f} | {r['fps']:.2f} | "
              f"{r[mem_key]:.0f} | {r['model_rss_mb']:.0f} |")
    if len(lengths) == 2:
        a, b = (runs[n][mem_key] for n in lengths)
        verdict = "OK (within 10%)" if b <= 1.10 * a else "GROWS (more than 10%)"
        print()
        print(f"peak memory {lengths[1]} vs {lengths[0]} frames: {b:.0f} / {a:.0f} MB = {b / a:.3f}  -> {verdict}")


if __name__ == "__main__":
    main()
