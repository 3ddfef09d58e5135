#!/usr/bin/env python
"""Convert a TartanAir tree (v1 or v2 layout) into webdataset tar shards.

    python data_prep/tartanair_to_wds.py SRC OUT [--frames-per-shard 200] [--depth-dtype float32|float16]
                                                 [--include ENV/Easy ...] [--no-verify]

- one sample per stereo frame: the original PNG bytes (lossless) and depth as ``.npy``
  (float32, or float16 to halve the size); see :mod:`stereo_lit.data.shards`;
- a shard holds consecutive frames of one trajectory; ``OUT/manifest.json`` lists every
  trajectory (ids, size, intrinsics, fps, shards) and shard (frames, bytes, sha256);
- resumable: re-running skips shards already written with the same content plan; the
  manifest is rewritten (atomically) after every shard and marked complete at the end;
- a verification pass reads every shard back (checksums, every frame decodes, frame order).

Read them with ``TartanAirDataModule(source="shards", shards=OUT)``; under DDP each rank
(and each dataloader worker) streams a disjoint set of trajectories.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stereo_lit.data.shards import (
    FORMAT,
    FORMAT_VERSION,
    decode_frame,
    frame_key,
    iter_shard_samples,
    manifest_path,
    npy_bytes,
    sha256_of,
    shard_name,
    write_manifest,
    write_shard,
)
from stereo_lit.data.tartanair_layout import Trajectory, find_trajectories, open_trajectory, read_depth


def plan_shards(trajectories: list[Trajectory], frames_per_shard: int, prefix: str) -> list[dict[str, Any]]:
    """Shard names and their frame ranges, in a deterministic order."""
    shards = []
    for traj in trajectories:
        for first in range(0, traj.num_frames, frames_per_shard):
            count = min(frames_per_shard, traj.num_frames - first)
            shards.append({"name": shard_name(len(shards), prefix), "trajectory": traj.traj_id, "first_frame": first, "num_frames": count})
    return shards


def frame_sample(traj: Trajectory, k: int, depth_dtype: str) -> dict[str, Any]:
    """The webdataset sample (member bytes) of frame ``k`` of ``traj``."""
    sample: dict[str, Any] = {
        "__key__": frame_key(traj.traj_id, k),
        "json": json.dumps({"trajectory": traj.traj_id, "frame": k}).encode(),
        "left.png": traj.files["left"][k].read_bytes(),
    }
    if "right" in traj.files:
        sample["right.png"] = traj.files["right"][k].read_bytes()
    for eye in ("left", "right"):
        if f"depth_{eye}" in traj.files:
            depth = read_depth(traj.files[f"depth_{eye}"][k])
            if depth_dtype == "float16" and np.isfinite(depth).all() and np.abs(depth).max() > 65504:
                raise ValueError(f"{traj.files[f'depth_{eye}'][k]}: depth exceeds the float16 range; use --depth-dtype float32")
            sample[f"depth_{eye}.npy"] = npy_bytes(depth.astype(depth_dtype))
    return sample


def trajectory_entry(traj: Trajectory, shards: list[str]) -> dict[str, Any]:
    return {
        "env": traj.env, "difficulty": traj.difficulty, "trajectory": traj.name, "source_path": str(traj.path),
        "layout": traj.layout.name, "num_frames": traj.num_frames, "height": traj.height, "width": traj.width,
        "intrinsics": list(traj.intrinsics), "fps": traj.fps,
        "modalities": sorted(traj.files), "shards": shards,
    }


def verify(out: Path, manifest: dict[str, Any]) -> None:
    """Read every shard back: checksum, sample count, frame order, every member decodes."""
    for name, info in tqdm(sorted(manifest["shards"].items()), desc="verify", unit="shard"):
        path = out / name
        if sha256_of(path) != info["sha256"]:
            raise ValueError(f"{path}: checksum differs from the manifest (corrupt or partial shard); delete it and re-run")
        expected = info["first_frame"]
        for sample in iter_shard_samples([path]):
            frame = decode_frame(sample, str(path))
            if frame["trajectory"] != info["trajectory"] or frame["frame"] != expected:
                raise ValueError(f"{path}: expected frame {expected} of {info['trajectory']}, got {frame['frame']} of {frame['trajectory']}")
            if frame["left"].shape[:2] != tuple(manifest["trajectories"][info["trajectory"]][k] for k in ("height", "width")):
                raise ValueError(f"{path}: frame {expected} has size {frame['left'].shape[:2]}, not the trajectory's")
            expected += 1
        if expected - info["first_frame"] != info["num_frames"]:
            raise ValueError(f"{path}: holds {expected - info['first_frame']} frames, the manifest says {info['num_frames']}")


def convert(
    src: Path, out: Path, frames_per_shard: int = 200, depth_dtype: str = "float32", include: list[str] | None = None,
    prefix: str = "tartanair", run_verify: bool = True,
) -> dict[str, Any]:
    """Convert ``src`` into shards in ``out``; returns the manifest."""
    if depth_dtype not in ("float32", "float16"):
        raise ValueError(f"depth dtype must be float32 or float16, got {depth_dtype!r}")
    if frames_per_shard < 1:
        raise ValueError(f"frames_per_shard must be >= 1, got {frames_per_shard}")
    src = Path(src)
    trajectories = [open_trajectory(folder, src) for folder in find_trajectories(src, include)]
    ids = [t.traj_id for t in trajectories]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{src}: trajectory ids are not unique: {ids}")
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_shards(trajectories, frames_per_shard, prefix)
    previous: dict[str, Any] = {}
    if manifest_path(out).is_file():
        old = json.loads(manifest_path(out).read_text())
        if old.get("format") == FORMAT and old.get("depth_dtype") == depth_dtype:
            previous = old.get("shards", {})
    by_id = {t.traj_id: t for t in trajectories}
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": FORMAT_VERSION, "source": str(src.resolve()), "depth_dtype": depth_dtype,
        "frames_per_shard": frames_per_shard, "complete": False,
        "trajectories": {t.traj_id: trajectory_entry(t, [s["name"] for s in plan if s["trajectory"] == t.traj_id]) for t in trajectories},
        "shards": {},
    }
    skipped = 0
    with tqdm(total=sum(t.num_frames for t in trajectories), desc="frames", unit="frame") as bar:
        for shard in plan:
            path = out / shard["name"]
            old = previous.get(shard["name"])
            same_plan = old is not None and all(old.get(k) == shard[k] for k in ("trajectory", "first_frame", "num_frames"))
            if same_plan and path.is_file() and path.stat().st_size == old.get("bytes"):
                manifest["shards"][shard["name"]] = old
                skipped += 1
                bar.update(shard["num_frames"])
                continue
            traj = by_id[shard["trajectory"]]
            samples = []
            for k in range(shard["first_frame"], shard["first_frame"] + shard["num_frames"]):
                samples.append(frame_sample(traj, k, depth_dtype))
                bar.update(1)
            info = write_shard(path, samples)
            manifest["shards"][shard["name"]] = {**{k: shard[k] for k in ("trajectory", "first_frame", "num_frames")}, **info}
            write_manifest(out, manifest)
    if skipped:
        print(f"resumed: {skipped} of {len(plan)} shards were already written", file=sys.stderr)
    if run_verify:
        verify(out, manifest)
    manifest["complete"] = True
    write_manifest(out, manifest)
    return manifest


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="TartanAir root (ENV/Easy/P000/...) or one trajectory folder")
    parser.add_argument("out", type=Path, help="folder for the shards and manifest.json")
    parser.add_argument("--frames-per-shard", type=int, default=200)
    parser.add_argument("--depth-dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--include", nargs="*", default=None, help="trajectory patterns (ENV, ENV/Easy, ENV/Easy/P000, globs)")
    parser.add_argument("--prefix", default="tartanair", help="shard file name prefix")
    parser.add_argument("--no-verify", action="store_true", help="skip reading the shards back")
    args = parser.parse_args(argv)
    manifest = convert(args.src, args.out, args.frames_per_shard, args.depth_dtype, args.include, args.prefix, not args.no_verify)
    print(f"{args.out}: {len(manifest['shards'])} shards, {len(manifest['trajectories'])} trajectories")
    return manifest


if __name__ == "__main__":
    main()
