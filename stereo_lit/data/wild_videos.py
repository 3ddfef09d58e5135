"""In-the-wild (monocular) video: windows of ``4k+1`` frames for predict, clips for fit.

Every sample (one window of one video) holds:

- ``left`` float ``[3, T, H, W]`` in [0, 1], padded at the bottom/right to multiples of 16
  (``pad_mode`` replicate/reflect) and at the end to ``4k+1`` frames (last frame
  repeated); ``padding`` = ``{"bottom", "right", "frames"}`` so outputs are restored.
  Predict's streamed chunks (model-free methods) are uint8 and not padded;
- ``video_path``, ``sample_id``, ``caption`` ("" when none), ``fps``, ``num_frames`` (of
  the whole video on the output timeline), ``window_start``, ``window_stop``,
  ``keep_start`` (absolute frame indices, :func:`stereo_lit.stereo.windows.plan_windows`),
  ``has_audio``;
- with a depth file next to the video: ``depth`` float ``[1, T, H, W]`` and
  ``depth_kind`` (``"inverse_relative"`` or ``"metric_m"``).

Photos (PNG, JPEG, WebP; :mod:`stereo_lit.io.image_reader`) are one-frame videos
(``fps`` 1, no audio; EXIF orientation applied); folders may mix videos and photos. A
video can be cut to ``[start_time, end_time)`` seconds and capped at ``max_fps`` (frames
dropped evenly); the samples then also carry ``source_start`` / ``source_stop`` (the
source frames seen as the whole video) and the output timeline runs at the effective rate.

Decoding streams (:mod:`stereo_lit.io.video_reader`): a window decodes only its own
frames. Predict yields each video's windows in order (whole videos per rank/worker,
:class:`~stereo_lit.data.collate.OrderedVideoStream`), so every frame is produced once.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from stereo_lit.data.collate import OrderedVideoStream, check_on_error, collate_samples, guarded_getitem
from stereo_lit.data.streaming import (
    CHUNK_PIXELS, ReaderThread, chunk_plan, frames_per_chunk, limit_heap_growth, pad_uint8,
)
from stereo_lit.data.windowed import WindowedData, check_pad_mode, check_window
from stereo_lit.data.wild_sources import DepthFile, VideoEntry, check_depth_size, find_depth_file, resolve_videos
from stereo_lit.io.image_reader import is_image_file, probe_image
from stereo_lit.io.video_reader import (
    SequentialFrames, VideoInfo, probe_video, read_frames, resampled_num_frames, source_index,
)
from stereo_lit.stereo.padding import Padding, pad_video, padding_for
from stereo_lit.stereo.windows import Window, plan_windows

log = logging.getLogger(__name__)

MIN_SIDE = 16  # px: the smallest frame side (size / max_side) that still carries a picture


@dataclass(frozen=True)
class WildVideo:
    """A probed video: its entry, header info, output size/timeline and depth file."""

    entry: VideoEntry
    info: VideoInfo
    num_frames: int  # on the output timeline (after fps resampling)
    fps: float
    size: tuple[int, int] | None  # resize target (H, W) or None
    depth_path: str | None
    source_range: tuple[int, int] | None = None  # source frames [first, stop) seen as the video

    @property
    def is_image(self) -> bool:
        return is_image_file(self.info.path)

    @property
    def source_frames(self) -> tuple[int, int]:
        """``(first, stop)`` source frames this video's output timeline covers."""
        return self.source_range or (0, self.info.num_frames)

    @property
    def audio_range(self) -> tuple[float, float] | None:
        """``(start, stop)`` seconds of the source's audio that go with the output (None: all):
        from the first kept frame's time for the output's duration, so sound stays in sync."""
        if self.source_range is None:
            return None
        start = self.source_range[0] / self.info.fps
        return start, start + self.num_frames / self.fps


def time_range_frames(
    num_frames: int, fps: float, start_time: float | None, end_time: float | None, path: str
) -> tuple[int, int] | None:
    """Source frames ``[first, stop)`` shown from ``start_time`` until before ``end_time`` (s).

    ``first`` is the frame on screen at ``start_time`` (``floor(t * fps)``), ``stop`` the
    first frame that starts at or after ``end_time`` (``ceil(t * fps)``, at most the
    video's end). Frames are taken as evenly spaced at the average rate. None: no cut.
    """
    if start_time is None and end_time is None:
        return None
    first = int(math.floor((start_time or 0.0) * fps + 1e-6))
    stop = num_frames if end_time is None else min(num_frames, int(math.ceil(end_time * fps - 1e-6)))
    if first >= num_frames:
        raise ValueError(
            f"{path}: start_time {start_time} s is at or after the video's end ({num_frames} frames, {num_frames / fps:.3f} s)"
        )
    if stop <= first:
        raise ValueError(f"{path}: [start_time, end_time) = [{start_time}, {end_time}) s holds no frame at {fps:g} fps")
    return first, stop


def effective_fps(source_fps: float, fps: float | None, max_fps: float | None) -> float:
    """The output frame rate: ``fps`` (or the source's), capped at ``max_fps``."""
    rate = float(fps or source_fps)
    return min(rate, float(max_fps)) if max_fps is not None else rate


def output_size(height: int, width: int, size: tuple[int, int] | None, max_side: int | None) -> tuple[int, int] | None:
    """The resize target ``(H, W)`` for a ``height x width`` video, None to keep it."""
    if size is not None:
        return int(size[0]), int(size[1])
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        return max(2, int(round(height * scale / 2)) * 2), max(2, int(round(width * scale / 2)) * 2)
    return None


def clip_plan(num_frames: int, window: int, stride: int) -> list[Window]:
    """Training clips: ``window`` frames every ``stride`` frames (one padded clip if shorter)."""
    if num_frames <= window:
        return plan_windows(num_frames, window, 0)
    return [Window(s, s + window, s) for s in range(0, num_frames - window + 1, stride)]


def resize_depth(depth: np.ndarray, height: int, width: int) -> torch.Tensor:
    """``[T, h, w]`` -> float ``[1, T, H, W]`` (bilinear when the size differs)."""
    tensor = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))
    if tensor.shape[-2:] != (height, width):
        tensor = F.interpolate(tensor[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return tensor[None]


def check_depth_values(depth: np.ndarray, kind: str, path: str, indices: list[int]) -> np.ndarray:
    """Refuse depth that cannot give a meaningful disparity; returns ``depth`` unchanged.

    Metric depth (metres) must be > 0 everywhere; relative inverse depth must be >= 0 and
    not all zero (that is "everything at infinity": a flat, meaningless right view). A
    constant but non-zero relative depth is a legitimate flat scene: a warning, not an error.

    Args:
        depth: ``[T, H, W]`` of frames ``indices[0]..indices[-1]`` of the file ``path``.
    """
    where = f"{path} (frames {indices[0]}..{indices[-1]})"
    if kind == "metric_m":
        if float(depth.min()) <= 0.0:
            raise ValueError(f"{where}: metric depth must be > 0 metres everywhere, min is {float(depth.min()):g}")
        return depth
    if float(depth.min()) < 0.0:
        raise ValueError(
            f"{where}: relative inverse depth must be >= 0 (larger = nearer), min is {float(depth.min()):g}; "
            "metric depth files need depth_kind: metric_m"
        )
    if float(depth.max()) <= 0.0:
        raise ValueError(f"{where}: depth is all zero: no 3D effect can be derived from it (a broken depth export?)")
    if float(depth.max()) == float(depth.min()):
        log.warning("%s: depth is constant: the whole frame gets one disparity (a flat picture in 3D)", where)
    return depth


RANGE_SAMPLE_MAX = 1_000_000  # values: stereo_lit.stereo.shots.robust_range subsamples above this


def depth_range_sample(
    depth_file: DepthFile, indices: list[int], height: int, width: int, padding: Padding,
) -> torch.Tensor:
    """The values :func:`~stereo_lit.stereo.shots.robust_range` takes from the padded,
    resized depth ``[1, T, H', W']`` of frames ``indices`` (every ``step``-th of the
    flattened finite values), made one frame at a time: a window's range without its
    whole depth in memory. Returns float ``[N]`` (all finite values when the file has
    non-finite ones: then the whole tensor is built, as before)."""
    total_frames = len(indices) + padding.frames
    frame_px = (height + padding.bottom) * (width + padding.right)
    numel = total_frames * frame_px
    step = numel // RANGE_SAMPLE_MAX + 1 if numel > RANGE_SAMPLE_MAX else 1
    parts = []
    for t in range(total_frames):
        raw = depth_file.frames([indices[min(t, len(indices) - 1)]])  # padded frames repeat the last one
        if not np.isfinite(raw).all():  # the stride runs over finite values only: build the whole window
            depth = pad_video(resize_depth(depth_file.frames(indices), height, width)[None], padding, "replicate")
            return depth[torch.isfinite(depth)].float()
        frame = pad_video(resize_depth(raw, height, width)[None], Padding(padding.bottom, padding.right, 0), "replicate")
        parts.append(frame.flatten()[(-t * frame_px) % step :: step])
    return torch.cat(parts).float()


class WildVideoWindows(Dataset):
    """Map-style dataset: item ``i`` is window ``items[i] = (video, Window)``.

    Args (predict streaming; the defaults give float windows as before):
        uint8: ``left`` stays uint8 ``[3, T, H, W]`` (the module makes it float).
        pad_frames: pad each window to ``4k+1`` frames and multiples of 16 px (Wan); False for
            chunks, which are not padded at all.
        range_windows: ``(window, overlap)`` of the data windows: the first chunk of a video
            with a depth file carries ``depth_range_sample``, the values the disparity range
            is taken from in the first data window, so chunked output equals windowed output.
        keep: decoded frames kept for the next, overlapping window (its overlap).
"""

    def __init__(
        self,
        items: list[tuple[WildVideo, Window]],
        pad_mode: str = "replicate",
        depth_kind: str = "inverse_relative",
        on_error: str = "raise",
        use_depth: bool = True,
        uint8: bool = False,
        pad_frames: bool = True,
        range_windows: tuple[int, int] | None = None,
        keep: int = 0,
    ) -> None:
        self.items = items
        self.uint8, self.pad_frames, self.range_windows, self.keep = uint8, pad_frames, range_windows, keep
        self._reader: tuple[str, SequentialFrames] | None = None
        self.pad_mode = pad_mode
        self.depth_kind = depth_kind
        self.on_error = check_on_error(on_error)
        self.use_depth = use_depth
        self._depth_cache: tuple[str, DepthFile] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def _depth(self, path: str) -> DepthFile:
        if self._depth_cache is None or self._depth_cache[0] != path:
            self._depth_cache = (path, DepthFile(path, self.depth_kind))
        return self._depth_cache[1]

    def _frames(self, video: WildVideo, window: Window) -> np.ndarray:
        """uint8 ``[T, H, W, 3]`` of ``window``: consecutive windows of a video share one decoder."""
        info = video.info
        if video.is_image:
            return read_frames(info.path, window.start, window.stop, size=video.size, info=info)
        if self._reader is None or self._reader[0] != info.path:
            if self._reader is not None:
                self._reader[1].close()
            reader = SequentialFrames(
                info.path, fps=video.fps, size=video.size, info=info, source_range=video.source_range, keep=self.keep
            )
            self._reader = (info.path, reader)
        frames = self._reader[1].read(window.start, window.stop)
        if window.stop >= video.num_frames:  # the video's last window: free the decoder
            self._reader[1].close()
            self._reader = None
        return frames

    def load(self, index: int) -> dict[str, Any]:
        video, window = self.items[index]
        info = video.info
        started = time.perf_counter()
        frames = self._frames(video, window)
        height, width = frames.shape[1:3]
        # Wan windows: multiples of 16 and 4k+1 frames; streamed chunks (model-free methods) need
        # neither, so their left view stays a view over the decoded frames and their depth unpadded
        padding = padding_for(height, width, window.num_frames) if self.pad_frames else Padding()
        if self.uint8 and not self.pad_frames:  # streamed chunks: [3, T, H, W] over the decoded memory, no copy
            left = torch.from_numpy(pad_uint8(frames, padding, self.pad_mode)).permute(3, 0, 1, 2)
        elif self.uint8:
            left = torch.from_numpy(np.ascontiguousarray(pad_uint8(frames, padding, self.pad_mode).transpose(3, 0, 1, 2)))
        else:
            left = pad_video(torch.from_numpy(frames).permute(3, 0, 1, 2).float().div_(255.0)[None], padding, self.pad_mode)[0]
        sample: dict[str, Any] = {
            "left": left,
            "padding": {"bottom": padding.bottom, "right": padding.right, "frames": padding.frames},
            "video_path": info.path,
            "sample_id": f"{Path(info.path).stem}:{window.start:06d}-{window.stop:06d}",
            "caption": video.entry.caption,
            "fps": float(video.fps),
            "num_frames": int(video.num_frames),
            "window_start": int(window.start),
            "window_stop": int(window.stop),
            "keep_start": int(window.keep_start),
            "has_audio": bool(info.has_audio),
        }
        if video.source_range is not None:  # a start_time/end_time cut: the estimator reads the same frames
            sample["source_start"], sample["source_stop"] = (int(x) for x in video.source_range)
        if self.use_depth and video.depth_path is not None:
            depth_file = self._depth(video.depth_path)
            if depth_file.num_frames != info.num_frames:
                raise ValueError(
                    f"{video.depth_path}: depth has {depth_file.num_frames} frames but {info.path} has {info.num_frames}"
                )
            check_depth_size(video.depth_path, tuple(depth_file.array.shape[1:]), info.path, (info.height, info.width))
            first, stop = video.source_frames
            indices = [first + source_index(j, stop - first, info.fps, video.fps) for j in range(window.start, window.stop)]
            depth = resize_depth(check_depth_values(depth_file.frames(indices), depth_file.kind, video.depth_path, indices), height, width)
            sample["depth"] = pad_video(depth[None], padding, "replicate")[0]
            sample["depth_kind"] = depth_file.kind
            if self.range_windows is not None and window.start == 0:
                first_window = plan_windows(video.num_frames, *self.range_windows)[0]
                sample["depth_range_sample"] = depth_range_sample(
                    depth_file, [first + source_index(j, stop - first, info.fps, video.fps) for j in range(first_window.stop)],
                    height, width, padding_for(height, width, first_window.num_frames),
                )
        sample["stage_seconds"] = {"decode": time.perf_counter() - started}
        return sample

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        return guarded_getitem(self.load, index, len(self), self.on_error, lambda i: self.items[i][0].info.path, substitute=True)


class WildVideoData(WindowedData):
    """Monocular videos for ``predict`` (ordered windows) and ``fit`` (shuffled clips); the configs'
    :class:`stereo_lit.data.wild.WildVideoDataModule` is this class as a LightningDataModule.

    Args:
        source: a video, a folder, a ``.txt`` list, a saved ``datasets`` folder or a
            ``.csv``/``.parquet``/``.json`` table (see :mod:`stereo_lit.data.wild_sources`),
            or a list of these.
        window: frames per window/clip, ``4k+1``.
        overlap: frames shared by consecutive predict windows, ``4m+1`` (0 for none).
        train_stride: frames between training clips (default ``window - overlap``).
        fps: resample every video to this frame rate (nearest frame); None keeps it.
        max_fps: cap the frame rate: a video faster than this drops frames evenly (24 ->
            12 keeps every other frame); slower videos are kept as they are.
        start_time, end_time: convert only ``[start_time, end_time)`` seconds of each video
            (None: from the start / to the end); the audio is cut to the same range.
        size: resize every frame to ``(H, W)``; max_side: downscale so the longer side is
            at most this (aspect kept). Either way windows are padded to multiples of 16 (streamed
            chunks of the model-free methods are not padded).
        pad_mode: ``"replicate"`` or ``"reflect"`` for the spatial padding.
        use_depth: read ``<stem>.npy``/``<stem>.npz``/``<stem>_depths.npz`` next to videos.
        depth_kind: kind of depth files that do not say (``inverse_relative`` or ``metric_m``).
        path_column, caption_column, split: for table / ``datasets`` sources.
        batch_size, num_workers: DataLoader settings (predict: keep batch_size 1 unless all
            videos share a size).
        on_error: ``"raise"`` or ``"skip"`` (log a warning naming the file and go on).
    """

    def __init__(
        self,
        source: str | list[str],
        window: int = 33,
        overlap: int = 9,
        train_stride: int | None = None,
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        max_side: int | None = None,
        pad_mode: str = "replicate",
        use_depth: bool = True,
        depth_kind: str = "inverse_relative",
        path_column: str | None = None,
        caption_column: str | None = None,
        split: str | None = None,
        batch_size: int = 1,
        num_workers: int = 0,
        on_error: str = "raise",
        start_time: float | None = None,
        end_time: float | None = None,
        max_fps: float | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers, on_error)
        if start_time is not None and start_time < 0:
            raise ValueError(f"data.start_time must be >= 0 seconds, got {start_time}")
        if end_time is not None and end_time <= (start_time or 0.0):
            raise ValueError(f"data.end_time must be > data.start_time ({start_time or 0.0} s), got {end_time}")
        if max_fps is not None and max_fps <= 0:
            raise ValueError(f"data.max_fps must be > 0 frames per second, got {max_fps}")
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be > 0 frames per second, got {fps}")
        check_window(window, overlap)
        check_pad_mode(pad_mode)
        if size is not None and (len(size) != 2 or min(size) < MIN_SIDE):
            raise ValueError(f"size must be (H, W) with both sides >= {MIN_SIDE} px, got {size}")
        if max_side is not None and max_side < MIN_SIDE:
            raise ValueError(
                f"max_side must be >= {MIN_SIDE} px (one Wan patch block; smaller leaves nothing to see in 3D), got {max_side}"
            )
        self.source = source
        self.window, self.overlap = window, overlap
        self.train_stride = train_stride or (window - overlap)
        self.fps, self.size, self.max_side = fps, (tuple(size) if size is not None else None), max_side
        self.pad_mode, self.use_depth, self.depth_kind = pad_mode, use_depth, depth_kind
        self.path_column, self.caption_column, self.split = path_column, caption_column, split
        self.start_time, self.end_time, self.max_fps = start_time, end_time, max_fps
        self.videos: list[WildVideo] | None = None
        self.chunk_pixels = CHUNK_PIXELS  # predict chunks of frame-independent methods (predict_chunked)
        self.prefetch = 2  # predict windows decoded ahead in a reader thread when num_workers is 0

    # ------------------------------------------------------------------ set-up
    def _probe(self, entry: VideoEntry) -> WildVideo:
        depth = find_depth_file(entry.path) if self.use_depth else None
        depth_path = None if depth is None else str(depth)
        if is_image_file(entry.path):  # a photo: one frame, no timeline options
            info = probe_image(entry.path)
            return WildVideo(entry, info, 1, info.fps, output_size(info.height, info.width, self.size, self.max_side), depth_path)
        info = probe_video(entry.path)
        source_range = time_range_frames(info.num_frames, info.fps, self.start_time, self.end_time, info.path)
        first, stop = source_range or (0, info.num_frames)
        fps = effective_fps(info.fps, self.fps, self.max_fps)
        num_frames = resampled_num_frames(stop - first, info.fps, fps)
        return WildVideo(
            entry, info, num_frames, fps, output_size(info.height, info.width, self.size, self.max_side), depth_path,
            source_range,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.videos is None:
            entries = resolve_videos(self.source, self.path_column, self.caption_column, self.split)
            self.videos = self._probe_sources(entries, self._probe, "video")

    def _active(self) -> list[WildVideo]:
        self.setup()
        return self._kept(self.videos, lambda v: v.info.path)

    def _dataset(self, items: list[tuple[WildVideo, Window]]) -> WildVideoWindows:
        return WildVideoWindows(items, self.pad_mode, self.depth_kind, self.on_error, self.use_depth)

    # ------------------------------------------------------------------ loaders
    def predict_chunked(self) -> bool:
        """True when predict streams short chunks instead of ``window``-frame windows: the
        model's generator says it is ``frame_independent`` (the model-free methods) and
        ``batch_size`` is 1 (a batch of several videos needs equal window sizes)."""
        module = getattr(getattr(self, "trainer", None), "lightning_module", None)
        generator = getattr(module, "generator", None)
        return bool(getattr(generator, "frame_independent", False)) and self.batch_size == 1

    def predict_items(self) -> list[tuple[WildVideo, Window]]:
        """Every window of every (not excluded) video, videos in order, windows in order
        (chunks of about :attr:`chunk_pixels` pixels under :meth:`predict_chunked`)."""
        if self.predict_chunked():
            return [
                (v, w) for v in self._active()
                for w in chunk_plan(v.num_frames, frames_per_chunk(*self._frame_size(v), self.chunk_pixels))
            ]
        return [(v, w) for v in self._active() for w in plan_windows(v.num_frames, self.window, self.overlap)]

    def reads_depth_files(self) -> bool:
        """True when predict windows carry the depth files found next to the videos: ``use_depth``
        and the model has no depth estimator of its own (its depth wins; reading, checking and
        resizing a file's frames for every window would be work thrown away)."""
        module = getattr(getattr(self, "trainer", None), "lightning_module", None)
        return self.use_depth and getattr(module, "depth", None) is None

    @staticmethod
    def _frame_size(video: WildVideo) -> tuple[int, int]:
        return video.size or (video.info.height, video.info.width)

    def predict_dataloader(self) -> DataLoader:
        items = self.predict_items()
        chunked = self.predict_chunked()
        if chunked:
            limit_heap_growth()
        dataset = WildVideoWindows(
            items, self.pad_mode, self.depth_kind, self.on_error, self.reads_depth_files(), uint8=True, pad_frames=not chunked,
            range_windows=(self.window, self.overlap) if chunked else None, keep=0 if chunked else self.overlap,
        )
        stream: Any = OrderedVideoStream(dataset, [v.info.path for v, _ in items], self.on_error)
        if self.num_workers == 0 and self.prefetch > 0:
            stream = ReaderThread(stream, self.prefetch)
        return DataLoader(stream, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=collate_samples)

    def train_dataloader(self) -> DataLoader:
        items = [(v, w) for v in self._active() for w in clip_plan(v.num_frames, self.window, self.train_stride)]
        return DataLoader(
            self._dataset(items), batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
            collate_fn=collate_samples, drop_last=False, persistent_workers=self.num_workers > 0,
        )
