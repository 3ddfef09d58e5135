"""``bench_vda.py --accuracy``: the disparity error of each way of keeping VDA depth, against the old path.

The reference is the old path: each window upsampled to 1080p, stitched at 1080p, float32. The
candidates are the new path (stitched at network size, resized per frame) kept as float32,
float16, or uint16 with a per-frame affine scale, and the old size kept as float16. Each is
turned into disparity by ``DisparityPolicy()`` (2% of 1920 px = 38.4 px; range from the
whole-video sample at the size it is stored at, as ``WindowDepth`` does) and compared pixel by
pixel with the reference's disparity.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import torch

HW = (1080, 1920)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _model(encoder: str, weights: str):
    from stereo_lit.depth import VideoDepthAnything

    torch.manual_seed(0)
    model = VideoDepthAnything(encoder).eval()
    if weights == "seeded":
        spec = importlib.util.spec_from_file_location("seeded", SHARED / "fixtures" / "vda_seeded_weights.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model.load_state_dict(module.seeded_state_dict({k: v.shape for k, v in model.state_dict().items()}))
    return model


def _frames(args: argparse.Namespace) -> list[np.ndarray]:
    if args.video:
        from stereo_lit.io.video_reader import iter_frames

        return list(iter_frames(args.video, 0, args.frames, size=HW))
    import bench_vda

    return list(bench_vda._frames(args.frames, *HW))


def _uint16(frame: np.ndarray) -> np.ndarray:
    """Per-frame affine uint16 quantisation and back (what a uint16 store with a [T, 2] scale table keeps)."""
    low, high = float(frame.min()), float(frame.max())
    scale = (high - low) / 65535 or 1.0
    return (np.round((frame - low) / scale).astype(np.uint16) * scale + low).astype(np.float32)


def accuracy_main(args: argparse.Namespace) -> None:
    import stereo_lit.depth.inference as inference
    from stereo_lit.depth import WindowAligner, stream_video_depth
    from stereo_lit.depth.resize import resize_depth
    from stereo_lit.stereo.disparity import DisparityPolicy

    frames = _frames(args)
    count = len(frames)
    model = _model("vits" if args.encoder == "stub" else args.encoder, args.weights)
    raw_windows: list[np.ndarray] = []
    original = inference.run_windows

    def recording(*a, **k):
        out = original(*a, **k)
        raw_windows.extend(out)
        return out

    inference.run_windows = recording
    start = time.perf_counter()
    net = np.stack(list(stream_video_depth(model, iter(frames), resize=False)))  # new path, network size
    seconds = time.perf_counter() - start
    inference.run_windows = original

    aligner = WindowAligner(metric=False)  # old path: upsample each window, stitch at 1080p
    reference: list[np.ndarray] = []
    for window in raw_windows:
        reference += aligner.push(resize_depth(window, HW))
    reference = np.stack((reference + aligner.flush())[:count])

    stored = {  # name: (what is read back, bytes per pixel)
        "network size, float32": (net, 4),
        "network size, float16 (chosen)": (net.astype(np.float16), 2),
        "network size, uint16 + per-frame scale": (np.stack([_uint16(f) for f in net]), 2),
        "video size, float16": (reference.astype(np.float16), 2),
    }
    step = max(1, count // 64)

    def disparity(depth: np.ndarray, sample: np.ndarray) -> np.ndarray:
        policy = DisparityPolicy()
        policy.fix_video_range("v", torch.from_numpy(np.array(sample, np.float32)), "inverse_relative")
        values = torch.from_numpy(np.array(depth, np.float32))[None, None]
        return policy.from_depth(values, "inverse_relative", "v", width_px=HW[1])[0, 0].numpy()

    ref_disp = disparity(reference, reference[::step])
    max_px = DisparityPolicy().max_disparity_px(HW[1])
    print(f"VDA-{args.encoder} ({args.weights} weights), {count} frames of "
          f"{args.video or 'synthetic'} at {HW[0]}x{HW[1]} (network {net.shape[1]}x{net.shape[2]}), "
          f"{seconds:.0f} s on cpu; depth values {reference.min():.3g}..{reference.max():.3g}; "
          f"max disparity {max_px:.1f} px; load {os.getloadavg()[0]:.2f}")
    print()
    print("| kept as | MiB per frame (1080p / 4K) | depth max rel. error | disparity max abs px | mean abs px "
          "| 99.9th pct px | max / 38.4 px |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, (kept, bytes_per_px) in stored.items():
        full = kept if kept.shape[1:] == HW else resize_depth(kept, HW)
        sample = kept[::step]
        err = np.abs(disparity(full, sample) - ref_disp)
        rel = float(np.max(np.abs(full - reference)) / np.max(np.abs(reference)))
        per_frame = kept[0].size * bytes_per_px / 2**20
        size_4k = per_frame * (4 if kept.shape[1:] == HW else 1)
        print(f"| {name} | {per_frame:.2f} / {size_4k:.2f} | {rel:.2e} | {err.max():.4f} | {err.mean():.5f} | "
              f"{np.quantile(err, 0.999):.4f} | {err.max() / max_px:.2e} |")
