"""TartanAir in webdataset tar shards: the format, the manifest, writing and reading.

One webdataset sample is one stereo frame of one trajectory, key
``<ENV>__<Difficulty>__<P000>__<frame:06d>``, with members

- ``left.png``, ``right.png``: the original PNG bytes (lossless, byte-identical);
- ``depth_left.npy``, ``depth_right.npy``: depth in metres, float32 or float16 (``.npy``);
- ``json``: ``{"trajectory": id, "frame": k}``.

A shard holds consecutive frames of a single trajectory (at most ``frames_per_shard``);
``manifest.json`` beside the shards lists every trajectory (ids, size, intrinsics, fps,
its shards in order) and every shard (trajectory, first frame, frame count, bytes,
sha256). Readers plan clips from the manifest and stream each trajectory's shards in
order; DDP ranks and dataloader workers each take a disjoint set of *trajectories*
(:func:`stereo_lit.data.collate.shard_of`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
FORMAT = "stereo-lit-tartanair-wds"
FORMAT_VERSION = 1


def frame_key(traj_id: str, frame: int) -> str:
    """Webdataset key of frame ``frame`` of ``traj_id`` (no dots, no slashes)."""
    return f"{traj_id.replace('/', '__').replace('.', '_')}__{frame:06d}"


def shard_name(index: int, prefix: str = "tartanair") -> str:
    return f"{prefix}-{index:06d}.tar"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_from_bytes(data: bytes, name: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - name the member
        raise ValueError(f"{name}: unreadable .npy: {exc}") from exc


def png_from_bytes(data: bytes, name: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - name the member
        raise ValueError(f"{name}: unreadable PNG: {exc}") from exc


# ----------------------------------------------------------------------------- manifest
def manifest_path(location: str | Path) -> Path:
    """``location`` itself if it is a manifest file, else ``location/manifest.json``."""
    location = Path(location)
    return location if location.suffix == ".json" else location / MANIFEST


def load_manifest(location: str | Path) -> dict[str, Any]:
    """Read and check a shard manifest; errors name the file."""
    path = manifest_path(location)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no shard manifest (write shards with data_prep/tartanair_to_wds.py)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} manifest (format={manifest.get('format')!r})")
    if not manifest.get("complete", False):
        raise ValueError(f"{path}: the conversion did not finish; re-run data_prep/tartanair_to_wds.py to resume it")
    return manifest


def write_manifest(location: str | Path, manifest: dict[str, Any]) -> Path:
    """Write atomically (temporary name, then rename)."""
    path = manifest_path(location)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- writing
def write_shard(path: Path, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``samples`` (webdataset dicts of bytes) to the tar ``path`` atomically.

    Returns ``{"bytes", "sha256", "num_samples"}`` for the manifest.
    """
    import webdataset as wds

    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "wb") as handle:
        writer = wds.TarWriter(handle, encoder=False, mtime=0.0)
        for sample in samples:
            writer.write(sample)
        writer.close()
    os.replace(tmp, path)
    return {"bytes": path.stat().st_size, "sha256": sha256_of(path), "num_samples": len(samples)}


# ----------------------------------------------------------------------------- reading
def iter_shard_samples(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """Raw webdataset samples (``__key__`` + member bytes) of ``paths``, in order, all of them."""
    import webdataset as wds

    urls = [str(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shard listed in the manifest is missing")
    dataset = wds.WebDataset(
        urls, shardshuffle=False, nodesplitter=None, workersplitter=None, empty_check=False,
    )
    yield from dataset


def decode_frame(sample: dict[str, Any], shard: str) -> dict[str, Any]:
    """Member bytes -> ``{"trajectory", "frame", "left", "right", "depth_left", "depth_right"}``."""
    key = sample.get("__key__", "?")
    name = f"{shard}:{key}"
    if "json" not in sample or "left.png" not in sample:
        raise ValueError(f"{name}: sample lacks json/left.png members (has {sorted(k for k in sample if not k.startswith('__'))})")
    info = json.loads(sample["json"])
    out: dict[str, Any] = {"trajectory": info["trajectory"], "frame": int(info["frame"]), "left": png_from_bytes(sample["left.png"], name)}
    if "right.png" in sample:
        out["right"] = png_from_bytes(sample["right.png"], name)
    for eye in ("left", "right"):
        member = f"depth_{eye}.npy"
        if member in sample:
            from stereo_lit.data.tartanair_layout import check_depth

            out[f"depth_{eye}"] = check_depth(npy_from_bytes(sample[member], f"{name}/{member}"), f"{name}/{member}")
    return out


def iter_trajectory_frames(folder: Path, manifest: dict[str, Any], traj_id: str) -> Iterator[dict[str, Any]]:
    """Decoded frames 0..N-1 of one trajectory, streamed from its shards in order.

    Raises:
        ValueError: a frame is missing, out of order or from another trajectory (names the shard).
    """
    shards = manifest["trajectories"][traj_id]["shards"]
    expected = 0
    for shard in shards:
        path = folder / shard
        for sample in iter_shard_samples([path]):
            frame = decode_frame(sample, str(path))
            if frame["trajectory"] != traj_id or frame["frame"] != expected:
                raise ValueError(
                    f"{path}: expected frame {expected} of {traj_id}, found frame {frame['frame']} of {frame['trajectory']}"
                )
            expected += 1
            yield frame
    total = manifest["trajectories"][traj_id]["num_frames"]
    if expected != total:
        raise ValueError(f"{folder}: shards of {traj_id} hold {expected} frames, the manifest says {total}")
