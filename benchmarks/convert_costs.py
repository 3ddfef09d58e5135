"""Measure the per-frame costs `stereo-lit convert` uses for its time estimate (convert_costs.json).

    python benchmarks/convert_costs.py [--frames 32] [--repeats 3] [--write]

- ``depth:vda-s|vda-b|vda-l``: seconds per frame of Video-Depth-Anything (official architecture,
  random weights: the cost does not depend on the weights' values) on a 32-frame 640x360 window
  at the official 518-px input size;
- ``fill:fast``: seconds per megapixel-frame of the model-free fill (WarpFill forward warp +
  background fill) plus composing and encoding right/sbs/anaglyph.

Warm-up first (unless --no-warmup), then repeats, one cost after the other; prints median and spread, and with ``--write`` stores the
medians for this device (cpu or cuda) in stereo_lit/commands/convert_costs.json, with the machine.
Wan fills are not measured here (they need the real weights); the estimate names them as unmeasured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

COSTS = Path(__file__).resolve().parents[1] / "stereo_lit" / "commands" / "convert_costs.json"


def clip(frames: int, height: int = 360, width: int = 640) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height, width + frames, 3), dtype=np.uint8)
    return np.stack([base[:, t:t + width] for t in range(frames)])


def depth_cost(encoder: str, frames: np.ndarray, device: str) -> float:
    """Seconds per frame of VDA ``encoder`` (random weights) on ``frames``."""
    from stereo_lit.depth.inference import stream_video_depth
    from stereo_lit.depth.model import VideoDepthAnything

    model = VideoDepthAnything(encoder).eval().to(device)
    start = time.perf_counter()
    for _ in stream_video_depth(model, iter(frames), input_size=518, device=torch.device(device), total_frames=len(frames)):
        pass
    return (time.perf_counter() - start) / len(frames)


def fill_cost(frames: np.ndarray) -> float:
    """Seconds per megapixel-frame of WarpFill + compose + encode of right, sbs and anaglyph."""
    from stereo_lit.generators.geometric import WarpFill
    from stereo_lit.io.layouts import compose
    from stereo_lit.io.video_writer import write_video

    t, h, w, _ = frames.shape
    left = torch.from_numpy(frames).permute(3, 0, 1, 2)[None]  # uint8, as predict streams it
    disparity = torch.linspace(0, 0.02 * w, w).expand(1, 1, t, h, w).contiguous()
    start = time.perf_counter()
    right = WarpFill().generate(left, disparity).right
    right_np = np.ascontiguousarray(right[0].permute(1, 2, 3, 0).numpy())
    with tempfile.TemporaryDirectory() as folder:
        for layout in ("right", "sbs", "anaglyph"):
            write_video(Path(folder) / f"{layout}.mp4", compose(layout, frames, right_np), fps=24)
    return (time.perf_counter() - start) / (t * h * w / 1e6)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--encoders", default="vits", help="VDA encoders to time (vits,vitb,vitl; '' for none)")
    p.add_argument("--skip-fill", action="store_true", help="time only the depth models")
    p.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the warm-up run of each cost")
    p.add_argument("--write", action="store_true", help="store the medians in stereo_lit/commands/convert_costs.json")
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    frames = clip(args.frames)
    names = {"vits": "vda-s", "vitb": "vda-b", "vitl": "vda-l"}
    jobs = {} if args.skip_fill else {"fill:fast": lambda: fill_cost(frames)}
    for enc in filter(None, args.encoders.split(",")):
        jobs[f"depth:{names[enc]}"] = lambda enc=enc: depth_cost(enc, frames, device)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs" + (
        f", {torch.cuda.get_device_name()}" if device == "cuda" else "")
    print(f"device {device} ({machine}); load {os.getloadavg()}; {args.frames} frames 640x360, {args.repeats} repeats")
    print(f"{'cost':<14} {'median':>10} {'spread':>10}  unit")
    for key, job in jobs.items():  # one cost at a time, stored as soon as measured (depth runs are long on a CPU)
        if args.warmup:
            job()
        values = [job() for _ in range(args.repeats)]
        unit = "s/frame" if key.startswith("depth") else "s/MP-frame"
        print(f"{key:<14} {statistics.median(values):>10.4f} {max(values) - min(values):>10.4f}  {unit}", flush=True)
        if args.write:
            costs = json.loads(COSTS.read_text()) if COSTS.is_file() else {"devices": {}}
            costs.setdefault("devices", {}).setdefault(device, {})[key] = round(statistics.median(values), 4)
            costs["machine"] = (f"{device}: {machine}, load average {os.getloadavg()[0]:.1f} "
                                f"(benchmarks/convert_costs.py, {time.strftime('%Y-%m-%d')})")
            COSTS.write_text(json.dumps(costs, indent=2) + "\n")

if __name__ == "__main__":
    main()
