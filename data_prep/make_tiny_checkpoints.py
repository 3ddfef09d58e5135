#!/usr/bin/env python
"""Write tiny random checkpoints in the formats users have, for tests, CI and the demo.

    python data_prep/make_tiny_checkpoints.py --out DIR

Writes (layout mirrors ``checkpoints/README.md``):
  DIR/video_depth_anything_tiny.pth        official VDA key names, reduced width
  DIR/Wan2.1-T2V-tiny-Diffusers/           a diffusers Wan2.1 text-to-video folder (model_index.json, ...)
  DIR/Wan2.1-VACE-tiny-Diffusers/          a diffusers Wan2.1-VACE folder (WanVACEPipeline; same VAE,
                                           text encoder and tokenizer)

Nothing is downloaded. Re-running skips what is already complete (a tiny Wan folder written by an
older version, with a smaller positional range, is rewritten).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the tiny checkpoints into")
    parser.add_argument("--only", choices=["vda", "wan", "vace"], default=None, help="write just one of them")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    if args.only in (None, "vda"):
        from stereo_lit.depth.tiny import write_tiny_vda

        print(f"VDA : {write_tiny_vda(args.out, seed=args.seed)}")
    if args.only in (None, "wan"):
        from stereo_lit.diffusion.tiny import write_tiny_wan

        print(f"Wan : {write_tiny_wan(args.out, seed=args.seed)}")
    if args.only in (None, "vace"):
        from stereo_lit.diffusion.tiny import write_tiny_wan_vace

        print(f"VACE: {write_tiny_wan_vace(args.out, seed=args.seed)}")


if __name__ == "__main__":
    main()
