#!/usr/bin/env python
"""Draw the README's picture, docs/what_it_does.png: left | depth | right | anaglyph of one frame.

    python scripts/make_readme_figure.py [--out docs/what_it_does.png --frame 16]

The frame is one of the synthetic sequence that ``scripts/demo.sh`` renders (33 frames of
320x240, seed 0; ray-cast, so its depth is exact). Its true disparity (``fx * B / Z``)
goes through the model-free method (``WarpFill``, forward warp + background fill), the
generator that ``stereo_lit/configs/demo.yaml`` runs, and the Dubois anaglyph that
``predict`` writes. Nothing is downloaded; about 10 s on one CPU core.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.generators.geometric import WarpFill
from stereo_lit.io.layouts import anaglyph_dubois, disparity_to_colormap

#: the sequence scripts/demo.sh renders (data_prep/make_synthetic.py arguments)
DEMO_FRAMES, DEMO_HEIGHT, DEMO_WIDTH, DEMO_SEED = 33, 240, 320, 0
LABEL_PX = 22


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` (uint8 ``[H, W, 3]``) under a white band holding ``text``."""
    band = np.full((LABEL_PX, image.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (6, LABEL_PX - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, image], axis=0)


def figure(frame: int) -> np.ndarray:
    """The four labelled panels side by side, uint8 ``[H + LABEL_PX, 4 W + 3 gaps, 3]`` RGB."""
    if not 0 <= frame < DEMO_FRAMES:
        raise SystemExit(f"--frame must be in 0..{DEMO_FRAMES - 1}, got {frame}")
    seq = render_sequence(DEMO_FRAMES, DEMO_HEIGHT, DEMO_WIDTH, DEMO_SEED)
    left = seq.left[frame : frame + 1]  # [1, H, W, 3] uint8
    disparity = seq.disparity_left_px[frame : frame + 1]  # [1, H, W] px
    left_t = torch.from_numpy(left).permute(3, 0, 1, 2)[None].float() / 255.0  # [1, 3, 1, H, W]
    right_t = WarpFill().generate(left_t, torch.from_numpy(disparity)[None, None]).right
    right = (right_t[0].permute(1, 2, 3, 0).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    panels = [
        _label(left[0], "left (input)"),
        _label(disparity_to_colormap(seq.disparity_left_px)[frame], "depth (as disparity, near = red)"),
        _label(right[0], "right (made: warp + fill)"),
        _label(anaglyph_dubois(left, right)[0], "anaglyph (red-cyan glasses)"),
    ]
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    row = [panels[0]]
    for panel in panels[1:]:
        row += [gap, panel]
    return np.concatenate(row, axis=1)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/what_it_does.png"))
    parser.add_argument("--frame", type=int, default=DEMO_FRAMES // 2, help="frame of the demo sequence (default 16)")
    args = parser.parse_args(argv)
    image = figure(args.frame)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise SystemExit(f"could not write {args.out}")
    print(f"{args.out}: {image.shape[1]}x{image.shape[0]}, {args.out.stat().st_size // 1024} KiB")
    return args.out


if __name__ == "__main__":
    main()
