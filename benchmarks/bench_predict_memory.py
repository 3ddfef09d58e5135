"""Peak RSS of ``stereo-lit predict`` for a short and a 4x longer video (issue 10, item 9).

Runs the real console script (geometric method, ``WarpFill``; depth from a small
``<stem>.npy`` beside the video, so no estimator and no weights) on synthetic videos and
prints the peak resident memory of each run (``os.wait4``'s ``ru_maxrss``). Bounded
memory means the long video's peak is within ~10 % of the short one's.

    .venv/bin/python benchmarks/bench_predict_memory.py                   # 960x540, 70 vs 280 frames
    .venv/bin/python benchmarks/bench_predict_memory.py --width 320 --height 180 --frames 35 140
    .venv/bin/python benchmarks/bench_predict_memory.py --return-predictions true   # Lightning's default
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_video(path: Path, num_frames: int, height: int, width: int, fps: int = 24) -> None:
    """A moving texture (so the encoder works as on real footage) and its inverse depth at 1/8 size."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height, width + num_frames, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, t : t + width]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    h, w = max(2, height // 8), max(2, width // 8)
    depth = np.broadcast_to(np.linspace(0.2, 1.0, w, dtype=np.float32), (num_frames, h, w))
    np.save(path.with_suffix(".npy"), np.ascontiguousarray(depth))


def peak_rss_mb(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """Run ``args``; its peak RSS in MiB, wall seconds and exit status."""
    start = time.time()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-3000:])
    return usage.ru_maxrss / 1024.0, time.time() - start, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[70, 280])
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--window", type=int, default=17)
    parser.add_argument("--return-predictions", default=None, help="pass --return_predictions to predict")
    opts = parser.parse_args()
    exe = Path(sys.executable).with_name("stereo-lit")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = []
        for n in opts.frames:
            video = root / f"clip_{n}.mp4"
            make_video(video, n, opts.height, opts.width)
            cmd = [
                str(exe), "predict", "-c", str(REPO / "stereo_lit/configs/predict_wild.yaml"),
                "--model.generator", "stereo_lit.generators.geometric.WarpFill", "--model.depth", "null",
                "--model.output.dir", str(root / f"out_{n}"), "--data.init_args.source", str(video),
                "--data.init_args.window", str(opts.window), "--data.init_args.overlap", "1",
                "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
            ]
            if opts.return_predictions is not None:
                cmd += ["--return_predictions", opts.return_predictions]
            rss, wall, code = peak_rss_mb(cmd, root)
            rows.append((n, rss, wall, code))
            print(f"{n:5d} frames {opts.width}x{opts.height}: peak RSS {rss:8.1f} MiB  ({wall:.1f} s, exit {code})", flush=True)
        base = rows[0][1]
        for n, rss, _, _ in rows[1:]:
            print(f"{n} vs {rows[0][0]} frames: {100.0 * (rss - base) / base:+.1f} % peak RSS (goal: within 10 %)")


if __name__ == "__main__":
    main()
