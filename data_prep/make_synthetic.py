#!/usr/bin/env python
"""Render a synthetic stereo sequence in the TartanAir v1 layout (exact ground truth).

    python data_prep/make_synthetic.py --out demo_data/synthetic [--frames 17 --height 480 --width 640 --seed 0]

Writes image_left/, image_right/, depth_left/, depth_right/ (float32 metres), pose_left.txt
and meta.json (intrinsics scale with size: fx = 320 * W / 640, baseline 0.25 m).
A complete folder with the same frame count is skipped; writing is atomic.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from stereo_lit.data.synthetic import is_complete_sequence, render_sequence, write_tartanair_sequence


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="sequence folder to write")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="re-render even if the folder is complete")
    args = parser.parse_args(argv)
    if is_complete_sequence(args.out, args.frames) and not args.force:
        print(f"{args.out}: complete ({args.frames} frames), skipped")
        return args.out
    start = time.perf_counter()
    print(f"rendering {args.frames} frames of {args.width}x{args.height} (both eyes ray-cast) ...", flush=True)
    seq = render_sequence(args.frames, args.height, args.width, args.seed)
    write_tartanair_sequence(seq, args.out)
    print(f"{args.out}: written in {time.perf_counter() - start:.1f} s")
    return args.out


if __name__ == "__main__":
    main()
