"""Time estimates for ``stereo-lit convert``, from measured per-frame costs (``convert_costs.json``).

The table is written by ``benchmarks/convert_costs.py`` (median of repeats on the machine it names):
per device (``cpu``, ``cuda``), ``depth:NAME`` in seconds per frame (Video-Depth-Anything sees
every frame at a 518-px short side, so its cost hardly depends on the input size) and
``fill:METHOD`` in seconds per megapixel-frame (warp, fill and encoding scale with the pixels).
A cost that was not measured is named as such, never guessed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

COSTS_FILE = Path(__file__).with_name("convert_costs.json")


@dataclass(frozen=True)
class Work:
    """What a conversion will process: videos, frames in all, and megapixel-frames."""

    videos: int
    frames: int
    megapixel_frames: float
    largest: tuple[int, int]  # (width, height)


def load_costs(path: Path = COSTS_FILE) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"devices": {}}


def measure_work(sources: list[str], start: float | None = None, end: float | None = None, max_fps: float | None = None) -> Work:
    """Frames and pixels of every video in ``sources`` (probed, not decoded), within ``start``..``end`` seconds."""
    from stereo_lit.data.wild_sources import resolve_videos
    from stereo_lit.io.video_reader import probe_video

    videos = frames = 0
    mp_frames = 0.0
    largest = (0, 0)
    for entry in resolve_videos(sources):
        try:
            info = probe_video(entry.path)
        except Exception:  # noqa: BLE001 - a photo or unreadable file: predict reports it by name
            continue
        fps = float(info.fps) or 1.0
        duration = info.num_frames / fps
        seconds = max(0.0, min(duration, end if end is not None else duration) - (start or 0.0))
        n = max(1, round(seconds * min(fps, max_fps or fps)))
        videos, frames = videos + 1, frames + n
        mp_frames += n * info.width * info.height / 1e6
        largest = max(largest, (info.width, info.height), key=lambda s: s[0] * s[1])
    return Work(videos, frames, mp_frames, largest)


def estimate(work: Work, method: str, depth: str, device: str, costs: dict[str, Any]) -> tuple[float | None, list[str]]:
    """``(seconds or None, parts)``: the total from the measured table, and one phrase per part."""
    table = costs.get("devices", {}).get(device, {})
    depth = depth_name(depth)
    wanted = [] if depth.endswith((".npy", ".npz")) else [(f"depth:{depth}", work.frames, f"depth {depth}")]
    wanted.append((f"fill:{method}", work.megapixel_frames, f"fill {method}"))
    total, parts, missing = 0.0, [], False
    for key, amount, label in wanted:  # each part: its cost per unit times the units of work
        if key in table:
            seconds = table[key] * amount
            total += seconds
            parts.append(f"{label} {format_seconds(seconds)}")
        else:
            missing = True
            parts.append(f"{label}: not measured on {device}")
    return (None if missing else total), parts


def depth_name(depth: str) -> str:
    """The cost-table name of a ``--depth`` value: ``vda-s|b|l`` for a short name, hub id or VDA file name."""
    from stereo_lit.io.hub import MODELS, expected_name

    if depth.lower() in MODELS or depth.endswith((".npy", ".npz")):
        return depth.lower() if depth.lower() in MODELS else depth
    name = expected_name(depth).lower()
    for encoder, short in (("vits", "s"), ("vitb", "b"), ("vitl", "l")):
        if encoder in name:
            return f"vda-metric-{short}" if name.startswith("metric") else f"vda-{short}"
    return depth


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def print_estimate(sources: list[str], method: str, opts: Any, file: TextIO = sys.stderr) -> None:
    """One line: the work and its estimated time on this device (or which cost is unmeasured)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        work = measure_work(sources, opts.start, opts.end, opts.max_fps)
    except Exception:  # noqa: BLE001 - predict checks the inputs and names the bad one
        return
    if work.videos == 0:
        return
    costs = load_costs()
    seconds, parts = estimate(work, method, opts.depth, device, costs)
    head = f"stereo-lit convert: {work.videos} video(s), {work.frames} frames (largest {work.largest[0]}x{work.largest[1]})"
    where = costs.get("machine", "an unnamed machine")
    if seconds is None:
        print(f"{head}; estimate: {'; '.join(parts)} (benchmarks/convert_costs.py measures it)", file=file)
    else:
        print(f"{head}; estimate {format_seconds(seconds)} on {device} ({', '.join(parts)}; costs measured on {where})", file=file)
