"""``stereo-lit preview``: one frame at several strengths and convergences, one PNG per video.

For each video or photo of ``SOURCE`` (:func:`stereo_lit.data.wild_sources.resolve_videos`)
one chosen frame is converted as ``predict`` converts it (``DisparityPolicy`` from the depth,
the default depth-edge options, ``WarpFill``, ``apply_convergence``, ``compose``) for every
``max_disparity_pct`` in ``--strengths`` (rows) and ``convergence`` in ``--convergences``
(columns), and the cells are laid out in a grid, each under a band of :data:`LABEL_HEIGHT`
px that names its settings (``2% c0.5``: ``max_disparity_pct`` 2, convergence 0.5). The grid is written to ``OUT/<name>.png`` (atomically).

Depth: a depth file next to the source (``NAME.npy``/``.npz``/``NAME_depths.npz`` or a
16-bit PNG folder ``NAME_depth/``, as the wild datamodule reads it; the strength range is
that of the whole file, sampled as ``predict`` samples it), else Video-Depth-Anything on the
chosen frame alone with ``--depth-checkpoint``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from stereo_lit.io.frames import to_uint8_frames
from stereo_lit.data.wild_videos import check_depth_values, resize_depth
from stereo_lit.data.wild_sources import DepthFile, check_depth_size, find_depth_file, resolve_videos
from stereo_lit.stereo.edges import EdgeOptions
from stereo_lit.stereo.disparity import DisparityPolicy
from stereo_lit.generators.geometric import WarpFill
from stereo_lit.io.image_reader import is_image_file, probe_image
from stereo_lit.io.layouts import apply_convergence, compose
from stereo_lit.io.video_reader import probe_video, read_frames

LABEL_HEIGHT = 14  # px of the label band above each cell
PREVIEW_LAYOUTS = ("anaglyph", "sbs")


def whole_depth_sample(depth: DepthFile) -> torch.Tensor:
    """Every ``T // 64``-th frame ``[T', H, W]`` of a depth file: the sample ``predict``
    fixes a video's strength range from (:mod:`stereo_lit.depth.source`)."""
    return torch.from_numpy(depth.frames(list(range(0, depth.num_frames, max(1, depth.num_frames // 64)))))


def convert_cell(
    left: np.ndarray, depth: torch.Tensor, kind: str, sample: torch.Tensor, strength: float, convergence: float,
    layout: str = "anaglyph", key: str = "preview",
) -> np.ndarray:
    """One frame at one setting, as ``predict`` writes it.

    Args:
        left: uint8 ``[1, H, W, 3]``.
        depth: ``[1, 1, 1, H, W]`` of ``kind`` at the frame's size.
        sample: ``[T', H', W']`` depth the strength range is taken from (the whole video's).
        strength, convergence: ``max_disparity_pct`` (% of the width) and convergence in [0, 1].
    Returns:
        uint8 ``[H, W', 3]`` of ``layout`` (``W' = W`` for anaglyph, ``2W`` for sbs).
    """
    width = left.shape[2]
    policy = DisparityPolicy(max_disparity_pct=strength, convergence=convergence)
    policy.fix_video_range(key, sample, kind)
    disparity = policy.from_depth(depth, kind, key, width_px=width)
    disparity = EdgeOptions().apply(disparity, policy.convergence_px(width))
    left_t = torch.from_numpy(left).permute(3, 0, 1, 2).float().div(255.0)[None]
    right = WarpFill().generate(left_t, disparity.to(left_t)).right
    shifted = apply_convergence(left, to_uint8_frames(right[0]), policy.convergence_px(width))
    return compose(layout, *shifted)[0]


def label_height(cell_height: int) -> int:
    """Pixels of the label band above a cell ``cell_height`` px tall: 6 % of it, at least :data:`LABEL_HEIGHT`,
    so labels stay readable when the grid is viewed scaled down (a 1080-px cell gets a 65-px band)."""
    return max(LABEL_HEIGHT, round(0.06 * cell_height))


def label_band(text: str, width: int, height: int = LABEL_HEIGHT) -> np.ndarray:
    """uint8 ``[height, width, 3]``: white ``text`` on black, the font scaled to the band (PIL's default font)."""
    from PIL import Image, ImageDraw, ImageFont

    band = Image.new("RGB", (width, height), (0, 0, 0))
    if height <= LABEL_HEIGHT:
        ImageDraw.Draw(band).text((2, 1), text, fill=(255, 255, 255))
    else:
        font = ImageFont.load_default(size=max(10, int(height * 0.75)))
        ImageDraw.Draw(band).text((max(2, height // 6), height // 8), text, fill=(255, 255, 255), font=font)
    return np.asarray(band)


def preview_grid(
    left: np.ndarray, depth: torch.Tensor, kind: str, sample: torch.Tensor,
    strengths: list[float], convergences: list[float], layout: str = "anaglyph",
) -> np.ndarray:
    """uint8 grid: row ``i`` = ``strengths[i]``, column ``j`` = ``convergences[j]``; each cell
    is a :func:`label_height`-px label band above :func:`convert_cell`'s image."""
    rows = []
    for strength in strengths:
        cells = []
        for convergence in convergences:
            image = convert_cell(left, depth, kind, sample, strength, convergence, layout)
            label = label_band(f"{strength:g}% c{convergence:g}", image.shape[1], label_height(image.shape[0]))
            cells.append(np.concatenate([label, image], axis=0))
        rows.append(np.concatenate(cells, axis=1))
    return np.concatenate(rows, axis=0)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write ``image`` (uint8 ``[H, W, 3]``) to ``path`` atomically (temp name + ``os.replace``)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        Image.fromarray(image).save(temp, format="PNG")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def frame_and_depth(path: str, frame: int | None, checkpoint: str | None) -> tuple[np.ndarray, torch.Tensor, str, torch.Tensor, int]:
    """The chosen frame ``[1, H, W, 3]``, its depth ``[1,1,1,H,W]``, kind, range sample and index."""
    info = probe_image(path) if is_image_file(path) else probe_video(path)
    index = info.num_frames // 2 if frame is None else frame
    if not 0 <= index < info.num_frames:
        raise ValueError(f"{path}: --frame {index} is outside the video's {info.num_frames} frames")
    left = read_frames(path, index, index + 1, info=info)
    height, width = left.shape[1:3]
    depth_path = find_depth_file(path)
    if depth_path is not None:
        depth_file = DepthFile(depth_path)
        if depth_file.num_frames != info.num_frames:
            raise ValueError(f"{depth_path}: depth has {depth_file.num_frames} frames but {path} has {info.num_frames}")
        check_depth_size(depth_path, tuple(depth_file.array.shape[1:]), path, (info.height, info.width))  # as predict
        values = check_depth_values(depth_file.frames([index]), depth_file.kind, str(depth_path), [index])
        return left, resize_depth(values, height, width)[None], depth_file.kind, whole_depth_sample(depth_file), index
    if checkpoint is None:
        stem = Path(path).with_suffix("")
        raise FileNotFoundError(
            f"{path}: no depth file {stem}.npy (or {stem.name}.npz, {stem.name}_depths.npz, {stem.name}_depth/ of 16-bit PNGs) "
            "next to it; put one there or pass --depth-checkpoint video_depth_anything_vits.pth"
        )
    from stereo_lit.depth.estimator import VDAEstimator

    video = torch.from_numpy(left).permute(3, 0, 1, 2).float().div(255.0)[None]
    result = VDAEstimator(checkpoint=checkpoint).estimate(video)
    values = result.values.float()
    return left, values, result.kind, values[0, 0], index


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace("[", "").replace("]", "").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="stereo-lit preview",
        description="One frame of each video/photo at several strengths and convergences, one labelled PNG grid each.",
    )
    parser.add_argument("source", metavar="SOURCE", help="a video, a photo or a folder of them (as predict's data.source)")
    parser.add_argument("--frame", type=int, default=None, help="frame index (default: the middle frame)")
    parser.add_argument("--strengths", type=_floats, default=[1.0, 2.0, 3.0], help="max_disparity_pct values, rows (default 1,2,3)")
    parser.add_argument("--convergences", type=_floats, default=[0.0, 0.5, 1.0], help="convergence values, columns (default 0,0.5,1)")
    parser.add_argument("--layout", choices=PREVIEW_LAYOUTS, default="anaglyph", help="cell layout (default anaglyph)")
    parser.add_argument("--out", default="outputs/preview", help="output folder (default outputs/preview)")
    parser.add_argument("--depth-checkpoint", default=None, help="Video-Depth-Anything .pth for sources without a depth file")
    args = parser.parse_args(argv)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"--out {args.out} is a file; a folder is needed (one PNG per video or photo is written into it)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Write ``OUT/<name>.png`` for every source; prints each path. Exit status 0."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    for strength in args.strengths:  # refuse bad settings before any decoding
        DisparityPolicy(max_disparity_pct=strength)
    for convergence in args.convergences:
        DisparityPolicy(convergence=convergence)
    out = Path(args.out)
    for entry in resolve_videos(args.source):
        left, depth, kind, sample, index = frame_and_depth(entry.path, args.frame, args.depth_checkpoint)
        grid = preview_grid(left, depth, kind, sample, args.strengths, args.convergences, args.layout)
        target = out / f"{entry.name or Path(entry.path).stem}.png"
        write_png(target, grid)
        print(f"{entry.path} frame {index}: {target} (rows: strength {args.strengths} %, columns: convergence {args.convergences})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
