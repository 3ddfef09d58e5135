"""Depth estimators: video ``[B,3,T,H,W]`` in [0,1] -> labelled depth ``[B,1,T,H,W]``.

``VDAEstimator`` runs Video-Depth-Anything (relative or metric) with streaming windowed inference and
an optional on-disk cache; ``PrecomputedDepth`` reads ``.npy``/``.npz`` files (VDA's ``*_depths.npz``).
Depth that comes with the data (TartanAir ``depth_left_m``) needs no estimator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from stereo_lit.io import mapped
from stereo_lit.io.hub import expected_name, resolve

from .cache import (
    DepthCache,
    default_cache_dir,
    file_content_hash,
    fits_float16,
    frames_content_hash,
    settings_key,
    tensor_content_hash,
)
from .checkpoint import load_vda, parse_checkpoint_name
from .inference import stream_video_depth
from .model import VideoDepthAnything
from .preprocess import network_size
from .resize import STORAGE_DTYPE, STORAGE_VERSION, ResizedDepth

DEPTH_KINDS = ("metric_m", "inverse_relative")
ALGORITHM_VERSION = "vda-windows-v2"  # bump when the inference changes results (v2: stitched at network size)
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class DepthResult:
    values: torch.Tensor  # [B,1,T,H,W] at the input video's H,W
    kind: str  # "metric_m" (metres) or "inverse_relative" (larger = nearer)


@runtime_checkable
class DepthEstimator(Protocol):
    def estimate(self, video: torch.Tensor) -> DepthResult: ...  # video [B,3,T,H,W] in [0,1]


def _check_video(video: torch.Tensor) -> None:
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"expected a video [B,3,T,H,W] in [0,1], got shape {tuple(video.shape)}")


def video_frames(video: torch.Tensor) -> Iterator[np.ndarray]:
    """One clip ``[3,T,H,W]`` in [0,1] -> HxWx3 float32 frames (one at a time)."""
    for t in range(video.shape[1]):
        yield video[:, t].permute(1, 2, 0).detach().float().cpu().numpy()


class VDAEstimator:
    """Video-Depth-Anything as a :class:`DepthEstimator` (YAML-friendly arguments; weights load lazily).

    Args:
        checkpoint: official ``.pth`` (``video_depth_anything_vits.pth``, ``metric_..._vitl.pth``, ...).
        encoder: ``vits``/``vitb``/``vitl``/``tiny``; default from the file name (or the weights).
        metric: metric model (metres, no scale/shift alignment); default from the file name.
        input_size: short side the network sees (multiple of 14; official 518).
        device: ``cuda``/``cpu``/...; default CUDA when available.
        dtype: weights dtype (``float32``, ``float16``, ``bfloat16``).
        autocast: ``auto`` (float16 on CUDA as the official script, off on CPU), ``float16``,
            ``bfloat16`` or ``none``.
        windows_per_batch: 32-frame windows per forward pass (more uses more memory, runs faster on big GPUs).
        cache_dir: folder of cached depth, keyed by video content, model and settings. None (default):
            :func:`~stereo_lit.depth.cache.default_cache_dir` (``$STEREO_LIT_CACHE/depth``, else
            ``$XDG_CACHE_HOME/stereo-lit/depth``, else ``~/.cache/stereo-lit/depth``), used for whole
            video files (``video_depth``: what ``predict`` and ``fit`` re-read). A folder given here also
            caches in-memory clips (``estimate``: TartanAir clips, re-scored every validation).
        cache: False: never cache (every call estimates again).
        progress: show a progress bar over windows.
    """

    def __init__(
        self,
        checkpoint: str,
        encoder: str | None = None,
        metric: bool | None = None,
        input_size: int = 518,
        device: str | None = None,
        dtype: str = "float32",
        autocast: str = "auto",
        windows_per_batch: int = 1,
        cache_dir: str | None = None,
        cache: bool = True,
        progress: bool = True,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if autocast not in ("auto", "float16", "bfloat16", "none"):
            raise ValueError(f"autocast must be auto/float16/bfloat16/none, got {autocast!r}")
        if input_size < 14:
            raise ValueError(f"input_size must be >= 14, got {input_size}")
        if windows_per_batch < 1:
            raise ValueError(f"windows_per_batch must be >= 1, got {windows_per_batch}")
        name_encoder, name_metric = parse_checkpoint_name(expected_name(checkpoint))
        self.checkpoint = str(checkpoint)
        self._checkpoint_path: Path | None = None
        self.encoder = encoder or name_encoder
        self.metric = name_metric if metric is None else bool(metric)
        self.input_size = int(input_size)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype
        self.autocast = autocast
        self.windows_per_batch = int(windows_per_batch)
        self.cache = DepthCache(cache_dir or default_cache_dir()) if cache else None
        self._cache_clips = bool(cache and cache_dir)  # in-memory clips only into a folder the config names
        self.progress = progress
        self._model: VideoDepthAnything | None = None
        self._model_id: str | None = None

    # ------------------------------------------------------------------ model
    @property
    def kind(self) -> str:
        return "metric_m" if self.metric else "inverse_relative"

    @property
    def model(self) -> VideoDepthAnything:
        return self.load()

    def checkpoint_path(self) -> Path:
        """The local checkpoint file: the path given, or the hub id's cached/downloaded file
        (:func:`stereo_lit.io.hub.resolve`; offline and not cached: a short error naming the repository)."""
        if self._checkpoint_path is None:
            path = resolve(self.checkpoint, option="model.depth.init_args.checkpoint")
            if not path.is_file():
                raise FileNotFoundError(
                    f"Video-Depth-Anything checkpoint {self.checkpoint} is not a file (tried {path.resolve()}; "
                    "model.depth.init_args.checkpoint)"
                )
            self._checkpoint_path = path
        return self._checkpoint_path

    def check_paths(self) -> None:
        """Fail at setup (before any video is decoded) when the checkpoint is missing (fetches a hub id)."""
        if self._model is None:
            self.checkpoint_path()

    def load(self) -> VideoDepthAnything:
        """Load the checkpoint (once); errors name the path and any missing/unexpected keys."""
        if self._model is None:
            model = load_vda(self.checkpoint_path(), encoder=self.encoder, metric=self.metric)
            self.encoder = model.encoder
            self._model = model.to(device=self.device, dtype=_DTYPES[self.dtype]).eval()
        return self._model

    def _autocast_dtype(self) -> str | None:
        if self.autocast == "auto":
            return "float16" if self.device.type == "cuda" else None
        return None if self.autocast == "none" else self.autocast

    def model_id(self) -> str:
        """Identity of the weights for cache keys (content hash of the file's size and ends)."""
        if self._model_id is None:
            path = self.checkpoint_path()
            self._model_id = file_content_hash(path, full=False)
        return self._model_id

    def settings(self) -> dict:
        # the weights' content identifies the architecture too, so the (possibly not yet known) encoder is left out
        return {
            "model": self.model_id(),
            "metric": self.metric,
            "input_size": self.input_size,
            "dtype": self.dtype,
            "autocast": self._autocast_dtype(),
            "algorithm": ALGORITHM_VERSION,
            "storage": STORAGE_VERSION,
        }

    # ------------------------------------------------------------------ streaming
    def estimate_stream(
        self, frames: Iterable[np.ndarray], total_frames: int | None = None, cuts: list[int] | None = None,
        resize: bool = True,
    ) -> Iterator[np.ndarray]:
        """HxWx3 RGB frames (uint8, or float in [0,1]) -> float32 ``[H,W]`` depth per frame, in bounded memory.

        ``cuts``: shot cuts (first frame of each later shot): the windows restart there.
        ``resize=False``: depth at the network's size (``network_size``), not the frames'.
        """
        if total_frames is None and hasattr(frames, "__len__"):
            total_frames = len(frames)
        return stream_video_depth(
            self.load(),
            frames,
            input_size=self.input_size,
            device=self.device,
            autocast_dtype=self._autocast_dtype(),
            windows_per_batch=self.windows_per_batch,
            progress=self.progress,
            total_frames=total_frames,
            metric=self.metric,
            cuts=cuts,
            resize=resize,
        )

    def video_depth(
        self,
        frames_factory: Callable[[], Iterable[np.ndarray]],
        key: str | None = None,
        total_frames: int | None = None,
        cuts: list[int] | None = None,
        size: tuple[int, int] | None = None,
    ) -> ResizedDepth:
        """Whole-video depth ``[T,H,W]`` float32 (a lazy :class:`ResizedDepth`), from the cache when this
        video/model/settings ran before.

        What is kept (on disk, or in memory with ``cache=False``) is the depth at the network's size
        in float16 (:mod:`stereo_lit.depth.resize`); indexing resizes the frames it selects to the
        video's size ``size`` (H, W; default: the first frame's size, one frame decoded).
        ``frames_factory()`` returns a fresh iterable of the frames (called once to hash when ``key`` is
        None, once more to compute). ``key`` names the source (e.g. ``file_content_hash`` of the
        video file plus fps and size); the cache key is the decoded frames' fingerprint plus the
        settings, the source's fingerprint memoised under ``key`` (a remux with identical frames hits).
        ``total_frames`` (when known) gives the progress bar its length. ``cuts``: shot cuts at which
        the depth windows restart (part of the cache key).
        """
        cuts = sorted(int(c) for c in cuts) if cuts else None
        if size is None:
            first = next(iter(frames_factory()), None)
            if first is None:
                raise ValueError("the video has no frames")
            size = (int(np.shape(first)[0]), int(np.shape(first)[1]))
        size = (int(size[0]), int(size[1]))
        if self.cache is None:
            return ResizedDepth(self._estimate_stored(frames_factory, total_frames, cuts), size)
        content, remember = self.cache.content_key(frames_factory, key)  # decoded frames' fingerprint
        settings = self.settings()
        cache_key = settings_key(content=content, **settings, **({"cuts": cuts} if cuts else {}))
        cached = self.cache.load(cache_key)
        expected = network_size(*size, self.input_size)
        if cached is not None and cached.ndim == 3 and tuple(cached.shape[1:]) == expected:
            remember()
            return ResizedDepth(cached, size)
        meta = {"content": content, "source": key, "checkpoint": str(self.checkpoint_path().resolve()), "kind": self.kind,
                "video_size": list(size), **settings}
        if cuts:
            meta["cuts"] = cuts
        stored = self.cache.write(
            cache_key, self.estimate_stream(frames_factory(), total_frames, cuts, resize=False), meta, dtype=STORAGE_DTYPE
        )
        remember()
        return ResizedDepth(stored, size)

    def _estimate_stored(
        self,
        frames_factory: Callable[[], Iterable[np.ndarray]],
        total_frames: int | None = None,
        cuts: list[int] | None = None,
    ) -> np.ndarray:
        """Depth ``[T,h,w]`` at the network's size, float16 (float32 when a value does not fit), in memory."""
        frames: list[np.ndarray] = []
        wide = False  # a value beyond float16's range: every frame float32
        for depth in self.estimate_stream(frames_factory(), total_frames, cuts, resize=False):
            if not wide and not fits_float16(depth):
                wide, frames = True, [f.astype(np.float32) for f in frames]
            frames.append(depth if wide else depth.astype(STORAGE_DTYPE))
        if not frames:
            raise ValueError("the video has no frames")
        return np.stack(frames)

    def _estimate_in_memory(
        self,
        frames_factory: Callable[[], Iterable[np.ndarray]],
        total_frames: int | None = None,
        cuts: list[int] | None = None,
    ) -> np.ndarray:
        depth = list(self.estimate_stream(frames_factory(), total_frames, cuts))
        if not depth:
            raise ValueError("the video has no frames")
        return np.stack(depth)

    # ------------------------------------------------------------------ DepthEstimator
    def estimate(self, video: torch.Tensor) -> DepthResult:
        """video ``[B,3,T,H,W]`` in [0,1] -> depth ``[B,1,T,H,W]`` float32 on the video's device."""
        _check_video(video)
        per_clip = []
        for clip in video:
            total = int(clip.shape[1])  # the depth bar's total (text-to-stereo, TartanAir clips)
            if self._cache_clips:
                depth = self.video_depth(
                    lambda clip=clip: video_frames(clip), key=tensor_content_hash(clip), total_frames=total,
                    size=(int(clip.shape[2]), int(clip.shape[3])),
                )[:]
            else:
                depth = self._estimate_in_memory(lambda clip=clip: video_frames(clip), total)
            per_clip.append(torch.from_numpy(np.array(depth, dtype=np.float32)))
        values = torch.stack(per_clip).unsqueeze(1).to(video.device)
        return DepthResult(values=values, kind=self.kind)


class PrecomputedDepth:
    """Depth from a file: ``.npy`` ``[T,H,W]`` or ``.npz`` (key ``depths``, as VDA's ``*_depths.npz``).

    Args:
        path: the file.
        kind: ``inverse_relative`` (VDA relative output) or ``metric_m`` (metres).
        key: array name inside an ``.npz``.
        start_frame: first depth frame used (for clips cut from a longer video).
    The depth is resized (bilinear) to the video's H, W when they differ; its values are unchanged.
    """

    def __init__(self, path: str, kind: str = "inverse_relative", key: str = "depths", start_frame: int = 0) -> None:
        if kind not in DEPTH_KINDS:
            raise ValueError(f"kind must be one of {DEPTH_KINDS}, got {kind!r}")
        self.path = Path(path)
        self.kind = kind
        self.key = key
        self.start_frame = int(start_frame)

    def check_paths(self) -> None:
        """Fail at setup when the depth file is missing."""
        if not self.path.is_file():
            raise FileNotFoundError(f"precomputed depth file not found: {self.path.resolve()} (.npy or .npz)")

    def load(self) -> np.ndarray:
        """The stored depth as ``[T,H,W]`` (memory-mapped for ``.npy``)."""
        if not self.path.is_file():
            raise FileNotFoundError(f"precomputed depth file not found: {self.path.resolve()} (.npy or .npz)")
        if self.path.suffix == ".npz":
            with np.load(self.path) as archive:
                if self.key in archive.files:
                    depth = archive[self.key]
                elif len(archive.files) == 1:
                    depth = archive[archive.files[0]]
                else:
                    raise KeyError(f"{self.path} has no array {self.key!r} (arrays: {archive.files})")
        elif self.path.suffix == ".npy":
            depth = np.load(self.path, mmap_mode="r")
        else:
            raise ValueError(f"precomputed depth must be .npy or .npz, got {self.path}")
        if depth.ndim == 4 and 1 in (depth.shape[1], depth.shape[-1]):
            depth = depth.reshape(depth.shape[0], *[s for s in depth.shape[1:] if s != 1][:2])
        if depth.ndim != 3:
            raise ValueError(f"{self.path}: expected depth [T,H,W], got shape {depth.shape}")
        return depth

    def video_depth(
        self, frames_factory: Callable[[], Iterable[np.ndarray]] | None = None, key: str | None = None,
        total_frames: int | None = None, cuts: list[int] | None = None, size: tuple[int, int] | None = None,
        frame_indices: list[int] | None = None,
    ) -> FileDepthFrames:
        """The file's depth on the video's timeline, ``[T, H, W]`` float32 resized on read to ``size``
        (no frame is decoded). ``frame_indices``: the source frame of each output frame (a cut or a
        lower frame rate, :func:`stereo_lit.depth.source.whole_video_depth`); default one file frame
        per output frame from ``start_frame``. A ValueError names the file when it is too short."""
        depth = self.load()
        indices = list(range(total_frames if total_frames is not None else depth.shape[0] - self.start_frame)) \
            if frame_indices is None else [int(i) for i in frame_indices]
        needed = self.start_frame + (max(indices) + 1 if indices else 0)
        if depth.shape[0] < needed:
            raise ValueError(
                f"{self.path} has {depth.shape[0]} depth frames; the video needs {needed} "
                f"(one per source frame{f', from frame {self.start_frame}' if self.start_frame else ''})"
            )
        return FileDepthFrames(depth, [self.start_frame + i for i in indices], size or tuple(depth.shape[1:]))

    def estimate(self, video: torch.Tensor) -> DepthResult:
        """The first ``T`` frames from ``start_frame`` (an in-memory clip; video files go through
        :meth:`video_depth`, which follows the window's place in the video)."""
        _check_video(video)
        b, _, t, h, w = video.shape
        if b != 1:
            raise ValueError(f"PrecomputedDepth({self.path}) holds one video's depth; the batch has {b} videos")
        depth = self.load()
        stop = self.start_frame + t
        if depth.shape[0] < stop:
            raise ValueError(
                f"{self.path} has {depth.shape[0]} depth frames; frames {self.start_frame}..{stop - 1} are needed"
            )
        values = torch.from_numpy(mapped.read(depth, slice(self.start_frame, stop), np.float32))[:, None]
        if values.shape[-2:] != (h, w):
            values = F.interpolate(values, size=(h, w), mode="bilinear", align_corners=False)
        return DepthResult(values=values.permute(1, 0, 2, 3)[None].to(video.device), kind=self.kind)


class FileDepthFrames:
    """Read-only ``[T, H, W]`` float32 view of chosen frames of a depth file, resized when read
    (bilinear, as :meth:`PrecomputedDepth.estimate`); ``stored`` is the same frames at the file's size.

    Indexing takes an int or a slice of the output frames (what window slicing and range sampling use).
    """

    def __init__(self, depth: np.ndarray, indices: list[int], out_hw: tuple[int, int]) -> None:
        self.depth, self.indices = depth, list(indices)
        self.out_hw = (int(out_hw[0]), int(out_hw[1]))
        self.shape = (len(self.indices), *self.out_hw)
        self.ndim, self.dtype = 3, np.dtype(np.float32)
        self.stored = _FileFrames(depth, self.indices)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | slice) -> np.ndarray:
        frames = torch.from_numpy(np.asarray(self.stored[index], dtype=np.float32))
        single = frames.ndim == 2
        frames = frames[None] if single else frames
        if tuple(frames.shape[-2:]) != self.out_hw:
            frames = F.interpolate(frames[:, None], size=self.out_hw, mode="bilinear", align_corners=False)[:, 0]
        out = frames.numpy()
        return out[0] if single else out


class _FileFrames:
    """Frames ``indices`` of ``depth`` at the file's size, indexed by output frame (int or slice)."""

    def __init__(self, depth: np.ndarray, indices: list[int]) -> None:
        self.depth, self.indices = depth, indices
        self.shape = (len(indices), *depth.shape[1:])
        self.ndim, self.dtype = 3, depth.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | slice) -> np.ndarray:
        # copied out of a memory-mapped file, whose pages then leave the process (io.mapped)
        if isinstance(index, slice):
            return mapped.read(self.depth, self.indices[index])
        return mapped.read(self.depth, self.indices[int(index)])

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)
