#!/usr/bin/env python
"""Benchmark Video-Depth-Anything: streaming speed and memory, the whole depth path, storage accuracy.

    python benchmarks/bench_vda.py                      # CPU: VDA-Small, 64 frames, short side 280; 64 vs 256 frames
    python benchmarks/bench_vda.py --device cuda --short-side 518 --autocast float16
    python benchmarks/bench_vda.py --sizes 1080p,4k --frames 16 --repeats 2            # whole depth path
    python benchmarks/bench_vda.py --sizes 1080p,4k --frames 16 --code /tmp/base       # ... of another checkout
    python benchmarks/bench_vda.py --accuracy --frames 40                              # storage error table

Random weights with the real architecture (``--encoder vits|vitb|vitl``); synthetic 16:9 frames are
generated on the fly so the input itself takes no memory. Each measurement runs in a fresh
subprocess so peak memory (CPU: peak RSS; CUDA: ``max_memory_allocated``) is that run's alone.

``--sizes``: the whole depth path of ``predict`` (``VDAEstimator.video_depth`` into an empty cache:
hash the frames, estimate, stitch, store; then every frame read back at the video's size in
chunks of ``--read-chunk`` frames, as the model-free converter does), per video size, repeated
``--repeats`` times (runs interleaved across sizes); ``--code`` runs it against another checkout
of the package (e.g. the commit before, for the old full-size float32 path).

``--accuracy``: one VDA run on ``--video`` (default: a synthetic clip) resized to 1080p; the
windows' raw outputs are stitched the old way (upsampled, then aligned: float32 at full size,
the reference) and the new way (aligned at network size, resized per frame), and each storage
format's disparity (``DisparityPolicy`` defaults: 2% of 1920 px = 38.4 px, range from the
whole-video sample) is compared with the reference's. Not a test: it prints tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

SIZES = {"540p": (540, 960), "720p": (720, 1280), "1080p": (1080, 1920), "4k": (2160, 3840)}


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


def _path_child(args: argparse.Namespace) -> dict:
    """The whole depth path at one video size (``--sizes`` mode), in this process."""
    import inspect
    from pathlib import Path

    import numpy as np
    import torch

    from stereo_lit.depth import VDAEstimator, VideoDepthAnything

    torch.manual_seed(0)
    encoder = "tiny" if args.encoder == "stub" else args.encoder
    checkpoint = Path(args.workdir) / f"video_depth_anything_{encoder}.pth"
    if not checkpoint.is_file():
        torch.save(VideoDepthAnything(encoder).state_dict(), checkpoint)
    height, width = SIZES[args.size]
    estimator = VDAEstimator(str(checkpoint), device=args.device, cache_dir=tempfile.mkdtemp(dir=args.workdir),
                             progress=False, autocast=args.autocast if args.autocast != "none" else "none")
    if args.encoder == "stub":  # no network: what is left is hashing, stitching, resizing and storing
        estimator._model = _StubVDA()
    estimator.load()
    base_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    extra = {"size": (height, width)} if "size" in inspect.signature(estimator.video_depth).parameters else {}
    start = time.perf_counter()
    depth = estimator.video_depth(lambda: _frames(args.frames, height, width), key=f"bench-{args.size}",
                                  total_frames=args.frames, **extra)
    estimated = time.perf_counter() - start
    checksum = 0.0
    for i in range(0, args.frames, args.read_chunk):
        chunk = np.array(depth[i : i + args.read_chunk], dtype=np.float32)
        assert chunk.shape[1:] == (height, width), chunk.shape
        checksum += float(chunk.mean())
    seconds = time.perf_counter() - start
    stored = getattr(depth, "stored", depth)
    return {
        "size": args.size, "frames": args.frames, "seconds": seconds, "read_seconds": seconds - estimated,
        "fps": args.frames / seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "model_rss_mb": base_rss_mb, "stored": f"{'x'.join(map(str, stored.shape[1:]))} {np.dtype(stored.dtype).name}",
        "stored_mb_per_frame": stored[0].nbytes / 2**20, "checksum": checksum,
    }


class _StubVDA:
    """Stands in for the network (``--encoder stub``): depth = 1 + mean of the input's channels, ``[B,T,h,w]``."""

    metric = False
    encoder = "stub"

    def __init__(self) -> None:
        import torch

        self._param = torch.zeros(1)

    def parameters(self):
        yield self._param

    def __call__(self, x):
        return 1.0 + x.mean(dim=2)


def _run(args: argparse.Namespace, frames: int) -> dict:
    cmd = [
        sys.executable, os.path.abspath(__file__), "--child",
        "--frames", str(frames), "--short-side", str(args.short_side), "--encoder", args.encoder,
        "--device", args.device, "--autocast", args.autocast, "--windows-per-batch", str(args.windows_per_batch),
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_path(args: argparse.Namespace, size: str, workdir: str) -> dict:
    cmd = [
        sys.executable, os.path.abspath(__file__), "--path-child", "--size", size, "--workdir", workdir,
        "--frames", str(args.frames), "--encoder", args.encoder, "--device", args.device,
        "--autocast", args.autocast, "--read-chunk", str(args.read_chunk),
    ]  # fmt: skip
    env = dict(os.environ)
    if args.code:
        env["PYTHONPATH"] = os.path.abspath(args.code)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spread(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.3g} ({min(values):.3g}-{max(values):.3g})" if len(values) > 1 else f"{med:.3g}"


def _sizes_main(args: argparse.Namespace) -> None:
    import torch

    sizes = [s.strip().lower() for s in args.sizes.split(",")]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"--sizes: unknown {unknown}; choose from {sorted(SIZES)}")
    runs: dict[str, list[dict]] = {s: [] for s in sizes}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.repeats):  # interleaved: every size once per round
            for size in sizes:
                runs[size].append(_run_path(args, size, workdir))
    code = args.code or "this checkout"
    print(f"Depth path (VDAEstimator.video_depth + read back in {args.read_chunk}-frame chunks), {args.encoder} random "
          f"weights on {args.device}, {args.frames} frames, code: {code}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load before: {os.getloadavg()[0]:.2f}")
    print()
    print("| video | stored per frame | frames/s median (min-max) | read-back s | peak RSS MB | model-only RSS MB |")
    print("|---|---|---:|---:|---:|---:|")
    for size, rs in runs.items():
        h, w = SIZES[size]
        print(f"| {size} {h}x{w} | {rs[0]['stored']}, {rs[0]['stored_mb_per_frame']:.2f} MB | "
              f"{_spread([r['fps'] for r in rs])} | {_spread([r['read_seconds'] for r in rs])} | "
              f"{_spread([r['peak_rss_mb'] for r in rs])} | {_spread([r['model_rss_mb'] for r in rs])} |")
    print(f"\nload after: {os.getloadavg()[0]:.2f} (runs: {args.repeats} per size)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="vits", choices=["vits", "vitb", "vitl", "tiny", "stub"],
                        help="stub (--sizes only): no network, to isolate stitching, resizing and storing")
    parser.add_argument("--short-side", type=int, default=280, help="video height and network input size")
    parser.add_argument("--frames", type=int, default=64, help="clip length for the speed measurement")
    parser.add_argument("--memory-frames", default="64,256", help="two lengths whose peak memory is compared")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--autocast", default="none", choices=["none", "float16", "bfloat16"])
    parser.add_argument("--windows-per-batch", type=int, default=1)
    parser.add_argument("--sizes", help="whole depth path at these video sizes, e.g. 1080p,4k (input size 518)")
    parser.add_argument("--repeats", type=int, default=2, help="--sizes: runs per size (interleaved)")
    parser.add_argument("--read-chunk", type=int, default=2, help="--sizes: frames read back at a time")
    parser.add_argument("--code", help="--sizes: run against the stereo_lit package in this folder")
    parser.add_argument("--accuracy", action="store_true", help="storage-format error table (see above)")
    parser.add_argument("--video", help="--accuracy: a video file (default: synthetic frames)")
    parser.add_argument("--weights", default="seeded", choices=["seeded", "random"],
                        help="--accuracy: ../shared/fixtures seeded weights (signal in the output) or torch init")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(_child(args)))
        return
    if args.path_child:
        print(json.dumps(_path_child(args)))
        return
    if args.sizes:
        _sizes_main(args)
        return
    if args.accuracy:
        from vda_accuracy import accuracy_main  # benchmarks/vda_accuracy.py

        accuracy_main(args)
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
