"""Depth for one window of a batch, from an estimator, consistent over the whole video.

A datamodule hands the model windows of a long video. Estimating depth window by
window would give each window its own relative scale (and flicker at the seams), so
for a video *file* the estimator runs once over the whole video, streamed and cached
on disk (:meth:`stereo_lit.depth.VDAEstimator.video_depth`), and each window takes its
slice. In-memory clips (TartanAir, text-to-stereo) go through ``estimate`` directly.
With ``shot_aware``, the shot cuts of a video file are found first (a decoding pass at
low resolution, :func:`stereo_lit.io.cut_scan.scan_cuts`), the depth windows restart at every
cut, and the cuts go with the depth to the disparity policy (one range per shot).

Also here: least-squares alignment of relative inverse depth to a reference
disparity, used when an estimated depth is evaluated against ground truth.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereo_lit.stereo.cuts import CUT_DETECTION_WIDTH  # noqa: F401 - re-exported (it was defined here)
from stereo_lit.stereo.padding import Padding, pad_video

log = logging.getLogger(__name__)


def _first(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.flatten()[0].item()
    if isinstance(value, (list, tuple)):
        return value[0]
    return value


def batch_padding(batch: dict[str, Any]) -> Padding:
    """The :class:`Padding` recorded in a (collated) batch; zero when absent."""
    pad = batch.get("padding")
    if pad is None:
        return Padding()
    if isinstance(pad, (list, tuple)):
        pad = pad[0]
    if isinstance(pad, Padding):
        return pad
    return Padding(int(_first(pad["bottom"])), int(_first(pad["right"])), int(_first(pad.get("frames", 0))))


def _at(value: Any, i: int) -> Any:
    """Element ``i`` of a collated batch field (tensor, list or a scalar shared by all)."""
    if isinstance(value, torch.Tensor):
        return value.flatten()[i].item() if value.numel() > 1 else value.flatten()[0].item()
    if isinstance(value, (list, tuple)):
        return value[i] if len(value) > 1 else value[0]
    return value


def element_padding(batch: dict[str, Any], i: int) -> Padding:
    """The :class:`Padding` of batch element ``i`` (zero when the batch records none)."""
    pad = batch.get("padding")
    if pad is None:
        return Padding()
    if isinstance(pad, (list, tuple)):
        pad = pad[i] if len(pad) > 1 else pad[0]
    if isinstance(pad, Padding):
        return pad
    return Padding(int(_at(pad["bottom"], i)), int(_at(pad["right"], i)), int(_at(pad.get("frames", 0), i)))


_FILE_KEYS: dict[tuple[str, int, int], str] = {}


def video_file_key(video_path: str) -> str:
    """Content hash of a video file, memoised by path, size and mtime (hashing a film takes seconds)."""
    from stereo_lit.depth.cache import file_content_hash

    stat = Path(video_path).stat()
    memo = (str(Path(video_path).resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _FILE_KEYS:
        if len(_FILE_KEYS) > 256:
            _FILE_KEYS.clear()
        _FILE_KEYS[memo] = file_content_hash(video_path)
    return _FILE_KEYS[memo]


def whole_video_depth(
    estimator: Any,
    video_path: str,
    fps: float,
    size: tuple[int, int],
    num_frames: int | None = None,
    cuts: list[int] | None = None,
    source_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """Depth ``[T, H, W]`` of a whole video file at ``size`` and ``fps`` (the datamodule's timeline).

    An array-like indexed by frames (``VDAEstimator``: a :class:`~stereo_lit.depth.resize.ResizedDepth`
    that resizes only the frames it is asked for).

    Uses ``estimator.video_depth`` (streamed; cached on disk when the estimator has a
    cache) keyed by the file's content, the frame rate and the size. ``cuts``: shot cuts
    where the depth windows restart (passed on when the estimator's ``video_depth`` takes them).
    """
    from stereo_lit.io.video_reader import iter_frames

    key = f"{video_file_key(video_path)}-{fps:.6f}-{size[0]}x{size[1]}"
    if source_range is not None:  # a start_time/end_time cut: its own timeline
        key += f"-src{source_range[0]}-{source_range[1]}"
    accepted = inspect.signature(estimator.video_depth).parameters
    extra: dict[str, Any] = {"cuts": cuts} if cuts and "cuts" in accepted else {}
    if "size" in accepted:  # the frames' size is known: no frame is decoded to learn it
        extra["size"] = size
    if "frame_indices" in accepted and num_frames is not None:  # a depth file: frames by source index
        extra["frame_indices"] = source_frame_indices(video_path, fps, num_frames, source_range)
    return estimator.video_depth(
        lambda: iter_frames(video_path, fps=fps, size=size, source_range=source_range), key=key,
        total_frames=num_frames, **extra
    )


def source_frame_indices(
    video_path: str, fps: float, num_frames: int, source_range: tuple[int, int] | None = None
) -> list[int]:
    """The source frame shown at each of the ``num_frames`` output frames of the datamodule's
    timeline (``fps``; a ``start_time``/``end_time`` cut is ``source_range``): what a depth file of
    the source's frames is indexed by."""
    from stereo_lit.io.video_reader import probe_video, source_index

    info = probe_video(video_path)
    first, stop = source_range or (0, info.num_frames)
    return [first + source_index(j, stop - first, info.fps, fps) for j in range(num_frames)]


def video_cuts(
    video_path: str, fps: float, size: tuple[int, int], cache_dir: Path | None = None,
    source_range: tuple[int, int] | None = None,
) -> list[int]:
    """Shot cuts of a video file on the datamodule's timeline (``fps``), memoised in ``cache_dir``.

    The cuts of :func:`stereo_lit.io.cut_scan.scan_cuts` (frames decoded
    :data:`~stereo_lit.stereo.cuts.CUT_DETECTION_WIDTH` px wide, PySceneDetect ``ContentDetector``,
    defaults), or the same pass's result when ``stereo-lit convert`` started it early
    (:func:`stereo_lit.io.cut_scan.prefetch`).
    """
    from stereo_lit.io.cut_scan import cancel_prefetched, scan_cuts, take_prefetched

    note = None
    if cache_dir is not None:
        cut = "" if source_range is None else f"-src{source_range[0]}-{source_range[1]}"
        note = Path(cache_dir) / f"cuts-{video_file_key(video_path)}-{fps:.6f}{cut}.json"
        if note.is_file():
            try:
                cuts = [int(c) for c in json.loads(note.read_text())["cuts"]]
                cancel_prefetched(video_path, fps, size, source_range)
                return cuts
            except (ValueError, KeyError, TypeError):
                pass
    cuts = take_prefetched(video_path, fps, size, source_range)
    if cuts is None:
        cuts = scan_cuts(video_path, fps, size, source_range)
    log.info("%s: %d shot cut(s) at frames %s", video_path, len(cuts), cuts[:20])
    if note is not None:
        try:
            note.parent.mkdir(parents=True, exist_ok=True)
            note.write_text(json.dumps({"video": str(video_path), "fps": fps, "cuts": cuts}))
        except OSError:
            pass
    return cuts


@dataclass
class VideoDepth:
    """What the disparity policy needs of one batch element's video.

    Attributes:
        sample: ``[T', h, w]`` evenly spaced frames (at most ~64) of the whole video's depth, at the
            size it is stored at (VDA: the network's size; the disparity range is a percentile
            statistic, which needs no upsampling).
        depth: ``[T, h, w]`` the whole video's depth as stored (numpy array or memmap; VDA: the
            network's size, float16), for per-frame (per-shot) ranges.
        start: the window's first frame in the video.
        cuts: first frame of each shot after the first (empty: not detected, or one shot).
    """

    sample: torch.Tensor
    depth: Any
    start: int
    cuts: list[int] = field(default_factory=list)


class WindowDepth:
    """Per-video memo of whole-video depth, sliced per window, for every video of a batch.

    Each element of a batch (batch size >= 1) gets the window of its own video's
    whole-video depth and that video's whole-video sample (for its disparity range).

    Args:
        estimator: a depth estimator (``estimate(video) -> DepthResult``; ``video_depth``
            for whole files when it has one).
        keep: whole-video depths kept in memory besides the current batch's videos.
        shot_aware: detect each video file's shot cuts; depth windows restart at them.
    """

    def __init__(self, estimator: Any, keep: int = 2, shot_aware: bool = False) -> None:
        self.estimator = estimator
        self.keep = int(keep)
        self.shot_aware = bool(shot_aware)
        self._depths: dict[tuple[str, float, tuple[int, int]], np.ndarray] = {}
        self._samples: dict[tuple[str, float, tuple[int, int]], torch.Tensor] = {}
        self._cuts: dict[tuple[str, float, tuple[int, int]], list[int]] = {}

    @property
    def kind(self) -> str:
        return str(getattr(self.estimator, "kind", "inverse_relative"))

    def _whole(self, video: tuple[str, float, tuple[int, int]], num_frames: int | None) -> np.ndarray:
        if video in self._depths:
            self._depths[video] = self._depths.pop(video)  # most recent last
        else:
            cuts = self.cuts(video)
            path, fps, size, *rest = video
            self._depths[video] = whole_video_depth(
                self.estimator, path, fps, size, num_frames=num_frames, cuts=cuts, source_range=rest[0] if rest else None
            )
        return self._depths[video]

    def cuts(self, video: tuple[str, float, tuple[int, int]]) -> list[int]:
        """Shot cuts of ``(path, fps, size)`` (``[]`` unless ``shot_aware``), memoised."""
        if not self.shot_aware:
            return []
        if video not in self._cuts:
            cache = getattr(self.estimator, "cache", None)
            path, fps, size, *rest = video
            self._cuts[video] = video_cuts(
                path, fps, size, cache_dir=getattr(cache, "dir", None), source_range=rest[0] if rest else None
            )
        return self._cuts[video]

    def for_batch(self, batch: dict[str, Any]) -> tuple[torch.Tensor, str, list[VideoDepth] | None]:
        """``(depth [B,1,T,H,W] on the batch's padded grid, kind, per-element :class:`VideoDepth` or None)``.

        The third item holds, for each batch element, its whole video's depth (and a subsample
        of at most ~64 frames), the window's start and the video's shot cuts; None for
        in-memory clips (depth from ``estimate``).
        """
        left = batch["left"]
        paths = batch.get("video_path")
        count = left.shape[0]
        is_file = (
            paths is not None and hasattr(self.estimator, "video_depth") and "window_start" in batch
            and all(Path(str(_at(paths, i))).is_file() for i in range(count))
        )
        if not is_file:
            result = self.estimator.estimate(left)
            dtype = left.dtype if left.is_floating_point() else torch.float32
            return result.values.to(device=left.device, dtype=dtype), result.kind, None
        windows, wholes, current = [], [], []
        for i in range(count):
            padding = element_padding(batch, i)
            height, width = left.shape[-2] - padding.bottom, left.shape[-1] - padding.right
            video = (str(_at(paths, i)), float(_at(batch["fps"], i)), (height, width))
            if "source_start" in batch:  # a start_time/end_time cut (stereo_lit.data.wild)
                video += ((int(_at(batch["source_start"], i)), int(_at(batch["source_stop"], i))),)
            num_frames = int(_at(batch["num_frames"], i)) if "num_frames" in batch else None
            depth = self._whole(video, num_frames)
            current.append(video)
            start, stop = int(_at(batch["window_start"], i)), int(_at(batch["window_stop"], i))
            if depth.shape[0] < stop:
                raise ValueError(
                    f"{video[0]}: depth has {depth.shape[0]} frames but window [{start}, {stop}) was requested"
                )
            # an array's slice is a view of the whole video's depth: copied; an array-like that makes the
            # frames when asked (ResizedDepth, FileDepthFrames) returns new ones: taken as they are
            values = depth[start:stop]
            made = not isinstance(depth, np.ndarray) and isinstance(values, np.ndarray)
            window = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32) if made
                                      else np.array(values, dtype=np.float32))[None, None]
            grid = Padding(padding.bottom, padding.right, left.shape[2] - (stop - start))
            windows.append(pad_video(window, grid, "replicate"))
            stored = getattr(depth, "stored", depth)  # ResizedDepth: the network-size array underneath
            if video not in self._samples:  # once per video, not once per window
                self._samples[video] = torch.from_numpy(
                    np.array(stored[:: max(1, stored.shape[0] // 64)], dtype=np.float32)
                )
            wholes.append(VideoDepth(self._samples[video], stored, start, list(self._cuts.get(video, []))))
        others = [v for v in self._depths if v not in current]  # oldest first; the batch's own stay
        for video in others[: max(0, len(others) - self.keep)]:
            del self._depths[video]
            self._cuts.pop(video, None)
            self._samples.pop(video, None)
        # on the picture's device; float32 when the picture is uint8 (streamed chunks): depth is never
        # rounded to the picture's integer type
        dtype = left.dtype if left.is_floating_point() else torch.float32
        depth = windows[0] if len(windows) == 1 else torch.cat(windows)  # one video (the streamed chunks): no copy
        return depth.to(device=left.device, dtype=dtype), self.kind, wholes


def align_inverse_depth(
    inv_depth: torch.Tensor, disparity_ref_px: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Least-squares ``scale * inv_depth + shift`` matching ``disparity_ref_px`` on valid pixels.

    The usual protocol for scoring relative depth: the scale and shift are the only
    things relative depth cannot know. One fit per batch element; the result is
    clamped at 0 (disparity is >= 0).

    Args:
        inv_depth: ``[B,1,T,H,W]`` relative inverse depth (larger = nearer).
        disparity_ref_px: ``[B,1,T,H,W]`` reference disparity (e.g. ground truth).
        valid: ``[B,1,T,H,W]`` mask of pixels to fit on (finite reference assumed elsewhere).
    """
    out = torch.empty_like(disparity_ref_px, dtype=torch.float32)
    for i in range(inv_depth.shape[0]):
        x, y = inv_depth[i].double().flatten(), disparity_ref_px[i].double().flatten()
        ok = torch.isfinite(x) & torch.isfinite(y)
        if valid is not None:
            ok &= valid[i].flatten() > 0.5
        if ok.sum() < 2:
            raise ValueError("cannot align estimated depth: fewer than 2 valid reference pixels")
        design = torch.stack([x[ok], torch.ones_like(x[ok])], dim=1)
        solution = torch.linalg.lstsq(design, y[ok].unsqueeze(1)).solution.flatten()
        out[i] = (solution[0] * inv_depth[i].double() + solution[1]).clamp_min(0).float()
    return out
