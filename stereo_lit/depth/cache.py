"""On-disk depth cache: one ``.npy`` per (decoded frames, model, settings), written atomically.

The content part of a key is the fingerprint of the decoded frames (:meth:`DepthCache.content_key`),
so a remuxed file with identical frames hits the entry its original wrote.

Entries are streamed to disk frame by frame (bounded memory) and read back memory-mapped.
Video-Depth-Anything entries hold depth at the network's size in float16 (:mod:`stereo_lit.depth.resize`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .resize import FLOAT16_LIMIT

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def frames_content_hash(frames: Iterable[np.ndarray]) -> str:
    """sha256 over each frame's shape, dtype and bytes (streamed; nothing kept)."""
    digest = hashlib.sha256()
    count = 0
    for frame in frames:
        frame = np.ascontiguousarray(frame)
        digest.update(f"{frame.shape}{frame.dtype}".encode())
        digest.update(memoryview(frame).cast("B"))
        count += 1
    digest.update(f"frames={count}".encode())
    return digest.hexdigest()


def tensor_content_hash(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's shape, dtype and values."""
    array = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{tuple(array.shape)}{array.dtype}".encode())
    digest.update(memoryview(array.view(torch.uint8).numpy() if array.numel() else b""))
    return digest.hexdigest()


def file_content_hash(path: str | Path, full: bool = True) -> str:
    """sha256 of a file's bytes; ``full=False`` hashes size + first and last MiB (fast for large weights)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f"size={size}".encode())
    with open(path, "rb") as f:
        if full or size <= 2 * _CHUNK:
            for block in iter(lambda: f.read(_CHUNK), b""):
                digest.update(block)
        else:
            digest.update(f.read(_CHUNK))
            f.seek(size - _CHUNK)
            digest.update(f.read(_CHUNK))
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """The default depth cache folder: ``$STEREO_LIT_CACHE/depth`` when that variable is set, else
    ``$XDG_CACHE_HOME/stereo-lit/depth``, else ``~/.cache/stereo-lit/depth``."""
    root = os.environ.get("STEREO_LIT_CACHE")
    if root:
        return Path(root).expanduser() / "depth"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "stereo-lit" / "depth"


def settings_key(**parts) -> str:
    """Stable hex key of JSON-able settings (content hash, model id, input size, precision, ...)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class DepthCache:
    """``cache_dir/<key>.npy`` ``[T,h,w]`` with a ``<key>.json`` note of what made it.

    :class:`~stereo_lit.depth.VDAEstimator` stores network-size float16 depth (its settings carry
    :data:`~stereo_lit.depth.resize.STORAGE_VERSION`, so entries of another format are never read).
    """

    def __init__(self, cache_dir: str | Path) -> None:
        self.dir = Path(cache_dir)

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.npy"

    def content_key(
        self, frames_factory: Callable[[], Iterable[np.ndarray]], source_key: str | None = None
    ) -> tuple[str, Callable[[], None]]:
        """The decoded frames' fingerprint (:func:`frames_content_hash`) and a ``remember()`` to call on success.

        ``source_key`` names where the frames come from (a file's content hash plus fps and size):
        its fingerprint is memoised in ``sources/`` so a known source is not decoded twice, and a
        remux (new file bytes, identical frames) reaches the same depth entry. ``remember()``
        writes that memo; call it once the depth is cached so a failed run leaves nothing.
        """
        if source_key is None:
            return frames_content_hash(frames_factory()), lambda: None
        memo = self.dir / "sources" / f"{hashlib.sha256(source_key.encode()).hexdigest()[:32]}.txt"
        try:
            known = memo.read_text().strip()
        except OSError:
            known = ""
        if len(known) == 64:
            return known, lambda: None
        fingerprint = frames_content_hash(frames_factory())

        def remember() -> None:
            tmp = memo.with_name(f"{memo.name}.tmp-{os.getpid()}-{id(self)}")
            try:
                memo.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(fingerprint)
                os.replace(tmp, memo)
            except OSError as exc:  # a memo only saves decoding next time: warn and go on
                tmp.unlink(missing_ok=True)
                log.warning("depth cache: could not write %s: %s", memo, exc)

        return fingerprint, remember

    def load(self, key: str) -> np.memmap | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError):
            return None  # unreadable entry: recompute (it is replaced atomically)

    def write(
        self, key: str, frames: Iterable[np.ndarray], meta: dict | None = None, dtype: Any = np.float32
    ) -> np.ndarray:
        """Stream ``[H,W]`` frames into ``<key>.npy`` as ``dtype`` (temp file, then rename); returns a memmap.

        ``dtype`` float16: a frame with a finite value beyond :data:`~stereo_lit.depth.resize.FLOAT16_LIMIT`
        widens the entry to float32 (the frames written so far are converted exactly), so nothing
        overflows to inf. A write that fails (disk full, read-only folder) does not lose the depth:
        a warning names the cache file, the frames are kept in memory (``[T,H,W]`` array) and
        nothing is cached.
        """
        frames = iter(frames)
        store = np.dtype(dtype)
        tag = f".tmp-{os.getpid()}-{id(self)}"
        raw_path = self.dir / f"{key}.raw{tag}"
        raw_paths = [raw_path]
        npy_tmp = self.dir / f"{key}.npy{tag}"
        shape = None
        count = 0
        pending: np.ndarray | None = None  # the frame being written when a write fails
        written = (raw_path, store)  # the file holding the `count` frames written so far, and its dtype
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            narrower: Path | None = None
            while True:
                widen = False
                with open(raw_path, "wb", buffering=0) as raw:
                    if narrower is not None:  # float16 so far: convert (exactly) to float32 first
                        _convert_raw(narrower, raw, np.dtype(np.float16), store)
                        written = (raw_path, store)
                        narrower.unlink()
                    for frame in frames:
                        pending = frame = np.ascontiguousarray(frame, dtype=np.float32)
                        if shape is None:
                            shape = frame.shape
                        elif frame.shape != shape:
                            raise ValueError(f"depth frame {count} has shape {frame.shape}, expected {shape}")
                        if store == np.float16 and not fits_float16(frame):
                            widen = True
                            break
                        _write_all(raw, memoryview(frame.astype(store, copy=False)).cast("B"))
                        pending = None
                        count += 1
                if not widen:
                    break
                frames, pending = itertools.chain([pending], frames), None  # the too-large frame comes first
                narrower, store = raw_path, np.dtype(np.float32)
                raw_path = self.dir / f"{key}.raw32{tag}"
                raw_paths.append(raw_path)
            if shape is None:
                raise ValueError("no depth frames to cache")
            with open(npy_tmp, "wb") as out, open(raw_path, "rb") as raw:
                header = {"descr": np.lib.format.dtype_to_descr(store), "fortran_order": False,
                          "shape": (count, *shape)}
                np.lib.format.write_array_header_1_0(out, header)
                shutil.copyfileobj(raw, out, _CHUNK)
            os.replace(npy_tmp, self.path(key))
        except OSError as exc:
            return self._in_memory(*written, shape, count, pending, frames, exc)
        finally:
            for leftover in (*raw_paths, npy_tmp):
                try:
                    leftover.unlink(missing_ok=True)
                except OSError:  # the folder itself is unusable: nothing was written there
                    pass
        if meta is not None:
            meta_tmp = self.dir / f"{key}.json{tag}"
            try:
                meta_tmp.write_text(json.dumps({**meta, "shape": [count, *shape], "dtype": store.name}, indent=1,
                                               default=str))
                os.replace(meta_tmp, self.dir / f"{key}.json")
            except OSError as exc:  # the depth itself is cached; only its note is missing
                meta_tmp.unlink(missing_ok=True)
                log.warning("depth cache: could not write %s: %s", self.dir / f"{key}.json", exc)
        return np.load(self.path(key), mmap_mode="r")

    def _in_memory(
        self, raw_path: Path, store: np.dtype, shape: tuple[int, ...] | None, count: int, pending: np.ndarray | None,
        rest: Iterator[np.ndarray], exc: OSError,
    ) -> np.ndarray:
        """After a failed cache write: the frames written so far (read back), the one being written and the rest."""
        parts: list[np.ndarray] = []
        if count and shape is not None:
            parts.append(np.fromfile(raw_path, dtype=store, count=count * int(np.prod(shape))).reshape(count, *shape))
        tail = ([] if pending is None else [pending]) + [np.ascontiguousarray(f, dtype=np.float32) for f in rest]
        if tail:
            tail_store = store if store != np.float16 or all(fits_float16(f) for f in tail) else np.dtype(np.float32)
            parts.append(np.stack(tail).astype(tail_store, copy=False))
        if not parts:
            raise ValueError("no depth frames to cache") from exc
        log.warning("depth cache: could not write %s (%s); this video's depth is kept in memory, not cached",
                    raw_path.with_name(raw_path.name.split(".raw")[0] + ".npy"), exc.strerror or exc)
        return np.concatenate(parts)


def fits_float16(frame: np.ndarray) -> bool:
    """Whether every finite value of ``frame`` is within :data:`FLOAT16_LIMIT` (NaN and inf stay as they are)."""
    finite = np.isfinite(frame)
    return not np.any(np.abs(np.where(finite, frame, 0)) > FLOAT16_LIMIT)


def _convert_raw(source: Path, out: Any, from_dtype: np.dtype, to_dtype: np.dtype) -> None:
    """Append the raw ``from_dtype`` values of file ``source`` to ``out`` as ``to_dtype``, a chunk at a time."""
    with open(source, "rb") as raw:
        for block in iter(lambda: raw.read(_CHUNK), b""):
            _write_all(out, memoryview(np.frombuffer(block, dtype=from_dtype).astype(to_dtype)).cast("B"))


def _write_all(raw: Any, data: memoryview) -> None:
    """Write every byte of ``data`` to the unbuffered file ``raw`` (an OSError when the disk is full)."""
    while len(data):
        written = raw.write(data)
        if not written:
            raise OSError(28, "No space left on device (short write)")
        data = data[written:]
