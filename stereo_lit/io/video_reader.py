"""Streaming video decoding with PyAV: probe a file, then decode a frame range.

Nothing here holds a whole video: :func:`iter_frames` seeks to the keyframe before the
first wanted frame and yields decoded frames one at a time (uint8 ``[H, W, 3]`` RGB).
Every failure (missing, empty, corrupt, no video stream, truncated data) raises
:class:`VideoReadError` whose message names the file.

Frame indices are positions in the decoded stream (0-based, display order), also for
variable-frame-rate files: after a seek, each frame's index is looked up from its exact
timestamp in a per-file table (:func:`frame_timestamps`), never computed from the average
rate. With ``fps=`` a video is seen on a resampled timeline (frames dropped or repeated);
:func:`resampled_num_frames` and :func:`source_index` give the mapping, which treats the
source frames as evenly spaced at the average rate (exact for constant-rate video; for
variable-rate video it is still one fixed index mapping, shared by every pass).

Frames come out as *displayed*: a phone video's display rotation (the container's display
matrix, 90/180/270 degrees) is applied to every frame (:func:`display_rotation`), and
:func:`probe_video` reports the displayed size, so every consumer (depth, generator, writers)
sees upright frames and depth files are read in the displayed orientation.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stereo_lit.io.image_reader import is_animated_image, is_image_file, iter_animated, probe_animated, read_image
from stereo_lit.io.media import VideoInfo, VideoReadError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts", ".gif")


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoReadError(f"{path}: video file does not exist")
    if path.is_dir():
        raise VideoReadError(f"{path}: expected a video file, got a folder")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path}: video file is empty (0 bytes)")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoReadError(f"{path}: not a readable video (corrupt or unsupported): {exc}") from exc


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoReadError(f"{path}: the file has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _stream_fps(stream: av.video.stream.VideoStream, path: Path) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or float(rate) <= 0:
        raise VideoReadError(f"{path}: the video stream has no usable frame rate")
    return Fraction(rate)


def _quarter_turns(degrees: float) -> int:
    """Counter-clockwise display rotation in degrees -> quarter turns for :func:`numpy.rot90` (0..3)."""
    return int(round(float(degrees) / 90.0)) % 4


def _frame_rotation(frame: av.VideoFrame) -> int:
    """The frame's display rotation, counter-clockwise degrees in {0, 90, 180, 270}."""
    try:
        return 90 * _quarter_turns(frame.rotation or 0)
    except (AttributeError, ValueError, TypeError):  # no display matrix
        return 0


def display_rotation(path: str | Path) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) by which ``path``'s frames are rotated for
    display (the display matrix phones write; 0 when there is none or no frame decodes)."""
    path = Path(path)
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        for frame in container.decode(stream):
            return _frame_rotation(frame)
    except (av.FFmpegError, OSError, ValueError):
        return 0
    finally:
        container.close()
    return 0


#: probes already made in this process, by (resolved path, inode, size, mtime, count_frames), the
#: newest :data:`PROBES_KEPT`: a run asks for the same file's headers several times (the estimate,
#: the cut pass, the datamodule, the depth source), and each probe opens it twice and decodes a
#: frame (the display rotation)
_PROBES: OrderedDict[tuple[str, int, int, int, bool], VideoInfo] = OrderedDict()
PROBES_KEPT = 256


def probe_video(path: str | Path, count_frames: bool = False) -> VideoInfo:
    """Read the headers of ``path`` (and count packets when the header has no frame count).

    A file probed before in this process, unchanged since (same inode, size and modification
    time), gives the same :class:`VideoInfo` without being opened again.

    Args:
        count_frames: count the video packets even when the header gives a count.

    Raises:
        VideoReadError: missing/empty/corrupt file, no video stream, or no frames.
    """
    path = Path(path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, bool(count_frames))
    except OSError:
        key = None  # missing: _open names the problem
    if key is not None and key in _PROBES:
        _PROBES.move_to_end(key)
        return dataclasses.replace(_PROBES[key], path=str(path))  # frozen: the caller's spelling of the path
    info = _probe(path, count_frames)
    if key is not None:
        _PROBES[key] = info
        while len(_PROBES) > PROBES_KEPT:
            _PROBES.popitem(last=False)
    return info


def _probe(path: Path, count_frames: bool) -> VideoInfo:
    if is_animated_image(path):  # an animated WebP: FFmpeg cannot decode it, Pillow can
        return probe_animated(path)
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream, path)
        num_frames = int(stream.frames or 0)
        if count_frames or num_frames <= 0:
            try:
                num_frames = sum(1 for p in container.demux(stream) if p.size > 0)
            except (av.FFmpegError, OSError, ValueError) as exc:
                raise VideoReadError(f"{path}: corrupt video data while counting frames: {exc}") from exc
        if num_frames <= 0:
            raise VideoReadError(f"{path}: the video stream has no frames")
        height, width = int(stream.codec_context.height), int(stream.codec_context.width)
        if height <= 0 or width <= 0:
            raise VideoReadError(f"{path}: the video stream has no frame size (corrupt header?)")
        rotation = display_rotation(path)
        if rotation in (90, 270):  # the displayed size
            height, width = width, height
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else num_frames / float(fps)
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=str(path), num_frames=num_frames, fps=float(fps), height=height, width=width,
            has_audio=audio is not None, duration_s=duration, codec=stream.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None,
            audio_sample_rate=int(audio.codec_context.sample_rate or 0) or None if audio is not None else None,
            audio_channels=int(audio.codec_context.channels or 0) or None if audio is not None else None,
            rotation=rotation,
        )
    finally:
        container.close()


def resampled_num_frames(num_frames: int, source_fps: float, fps: float | None) -> int:
    """Frames of a ``num_frames`` video at ``source_fps`` seen at ``fps`` (None: unchanged)."""
    if fps is None or math.isclose(fps, source_fps, rel_tol=1e-6):
        return num_frames
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return max(1, int(num_frames * fps / source_fps + 1e-6))


def source_index(index: int, num_frames: int, source_fps: float, fps: float | None) -> int:
    """Source frame shown at output frame ``index`` of the ``fps`` timeline (nearest in time)."""
    if fps is None or math.isclose(fps, source_fps, rel_tol=1e-6):
        return index
    return min(num_frames - 1, int(index * source_fps / fps + 0.5))


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB as displayed (display rotation applied), resized to ``size=(H, W)``
    (the displayed size) when given."""
    turns = _frame_rotation(frame) // 90
    if size is None:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        height, width = size if turns % 2 == 0 else (size[1], size[0])  # the stored frame's size
        rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
    return rgb if turns == 0 else np.ascontiguousarray(np.rot90(rgb, turns))


_TIMESTAMPS: OrderedDict[tuple[str, int, int], tuple[tuple[int, ...], dict[int, int]] | None] = OrderedDict()
_TIMESTAMPS_KEPT = 16


def frame_timestamps(path: str | Path) -> tuple[tuple[int, ...], dict[int, int]] | None:
    """Presentation timestamps of every frame in display order, and the inverse map pts -> index.

    Built once per file (demuxing only, no decoding; memoised by path, size and mtime) so that a
    frame's index is its position in the decoded stream whatever the frame rate does: for a
    variable-frame-rate file, ``timestamp x average rate`` is not the index. Timestamps are in the
    video stream's ``time_base``. None when some packet has no timestamp or two share one (the
    caller then decodes from the start and counts).
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _TIMESTAMPS:
        _TIMESTAMPS.move_to_end(key)
        return _TIMESTAMPS[key]
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        pts = [packet.pts for packet in container.demux(stream) if packet.size > 0]
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoReadError(f"{path}: corrupt video data while indexing frames: {exc}") from exc
    finally:
        container.close()
    table = None
    if pts and all(p is not None for p in pts) and len(set(pts)) == len(pts):
        ordered = tuple(sorted(int(p) for p in pts))
        table = (ordered, {p: i for i, p in enumerate(ordered)})
    _TIMESTAMPS[key] = table
    while len(_TIMESTAMPS) > _TIMESTAMPS_KEPT:
        _TIMESTAMPS.popitem(last=False)
    return table


def _decode_from(path: Path, start: int) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(index, frame)`` pairs from the keyframe at or before ``start`` to the end.

    ``index`` is the frame's position in display order, looked up from its exact timestamp in
    :func:`frame_timestamps` (never derived from the frame rate). Without a usable timestamp
    table, or when the seek lands after ``start``, frames are decoded from the start and counted.
    """
    if is_animated_image(path):  # an animated WebP (Pillow decodes it)
        for index, rgb in iter_animated(path, start):
            yield index, av.VideoFrame.from_ndarray(rgb, format="rgb24")
        return
    table = frame_timestamps(path) if start > 0 else None
    if table is None or start >= len(table[0]):
        yield from _decode_from_start(path)
        return
    timestamps, index_of = table
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        try:
            container.seek(timestamps[start], stream=stream, backward=True, any_frame=False)
        except (av.FFmpegError, OSError, ValueError):  # unseekable: decode from the beginning
            container.close()
            yield from _decode_from_start(path)
            return
        first = True
        for frame in container.decode(stream):
            index = None if frame.pts is None else index_of.get(int(frame.pts))
            if index is None or (first and index > start):  # unknown timestamp, or the seek overshot
                container.close()
                yield from _decode_from_start(path)  # the caller skips frames it already has
                return
            first = False
            yield index, frame
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoReadError(f"{path}: corrupt video data while decoding (near frame {start}): {exc}") from exc
    finally:
        container.close()


def _decode_from_start(path: Path) -> Iterator[tuple[int, av.VideoFrame]]:
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        for index, frame in enumerate(container.decode(stream)):
            yield index, frame
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoReadError(f"{path}: corrupt video data while decoding: {exc}") from exc
    finally:
        container.close()


def iter_frames(
    path: str | Path,
    start: int = 0,
    stop: int | None = None,
    *,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    info: VideoInfo | None = None,
    source_range: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Yield frames ``[start, stop)`` of ``path`` as uint8 ``[H, W, 3]`` RGB, one at a time.

    Args:
        start, stop: frame range on the output timeline (``stop=None``: to the end).
        fps: resample to this frame rate (nearest frame; None keeps the source rate).
        size: ``(H, W)`` to resize each frame to (area filter); None keeps the source size.
        info: the file's :class:`VideoInfo` if already probed.
        source_range: ``(first, stop)`` source frames seen as the whole video (a
            ``start_time``/``end_time`` cut); the output timeline starts at ``first``.

    A photo (:func:`stereo_lit.io.image_reader.is_image_file`) is a one-frame video.

    Raises:
        VideoReadError: the file is unreadable or ends before ``stop``.
    """
    path = Path(path)
    if is_image_file(path):
        if start != 0 or stop not in (None, 1):
            raise ValueError(f"{path}: a photo has one frame; frame range [{start}, {stop}) was requested")
        yield read_image(path, size)
        return
    info = info or probe_video(path)
    first, end = (0, info.num_frames) if source_range is None else (int(source_range[0]), int(source_range[1]))
    count = end - first
    if not 0 <= first < first + count <= info.num_frames:
        raise ValueError(f"{path}: source frames {source_range} are outside the video's {info.num_frames} frames")
    total = resampled_num_frames(count, info.fps, fps)
    stop = total if stop is None else stop
    if not 0 <= start < stop <= total:
        raise ValueError(f"{path}: frame range [{start}, {stop}) is outside the video's {total} frames")
    wanted = [first + source_index(j, count, info.fps, fps) for j in range(start, stop)]
    position = 0
    last: tuple[int, np.ndarray] | None = None
    for index, frame in _decode_from(path, wanted[0]):
        if index < wanted[position]:
            continue
        rgb = _to_rgb(frame, size)
        while position < len(wanted) and wanted[position] <= index:
            yield rgb
            position += 1
        last = (index, rgb)
        if position == len(wanted):
            return
    seen = "no frame" if last is None else f"frame {last[0]}"
    raise VideoReadError(
        f"{path}: the video ended at {seen} but source frame {wanted[position]} was requested "
        f"(header says {info.num_frames} frames; truncated or corrupt file?)"
    )


def read_frames(path: str | Path, start: int = 0, stop: int | None = None, **kwargs) -> np.ndarray:
    """Frames ``[start, stop)`` as one uint8 array ``[T, H, W, 3]`` (see :func:`iter_frames`)."""
    frames = list(iter_frames(path, start, stop, **kwargs))
    return np.stack(frames)


class SequentialFrames:
    """Consecutive frame ranges of one video from one open decoder (no seek per window).

    :func:`read_frames` opens the file and seeks for every range; a video read as many
    short windows in order would re-decode from the previous keyframe each time (with a
    250-frame GOP, up to 250 frames per window). This keeps one :func:`iter_frames`
    generator open and the last ``keep`` decoded frames (the overlap of the next window),
    so each frame is decoded once; a range that starts before the kept frames or after the
    decoder's position reopens it (a seek, as :func:`read_frames` does). Output is the same.

    Args:
        path, fps, size, info, source_range: as :func:`iter_frames`.
        keep: frames kept after each read for an overlapping next range.
    """

    def __init__(
        self, path: str | Path, *, fps: float | None = None, size: tuple[int, int] | None = None,
        info: VideoInfo | None = None, source_range: tuple[int, int] | None = None, keep: int = 0,
    ) -> None:
        self.path = Path(path)
        self.kwargs = {"fps": fps, "size": size, "info": info, "source_range": source_range}
        self.keep = max(0, int(keep))
        self._frames: Iterator[np.ndarray] | None = None
        self._next = 0  # output-timeline index of the decoder's next frame
        self._kept: list[np.ndarray] = []  # frames [self._next - len(self._kept), self._next)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` as uint8 ``[T, H, W, 3]`` (the same as :func:`read_frames`)."""
        first_kept = self._next - len(self._kept)
        if self._frames is None or not first_kept <= start <= self._next:
            self.close()
            self._frames = iter_frames(self.path, start, None, **self.kwargs)
            self._next, self._kept, first_kept = start, [], start
        frames = self._kept[start - first_kept :]
        while self._next < stop:
            try:
                frames.append(next(self._frames))
            except StopIteration:
                raise ValueError(f"{self.path}: frame range [{start}, {stop}) is past the video's end ({self._next} frames)") from None
            self._next += 1
        out = np.stack(frames[: stop - start])
        if self._next == stop:  # else the range lay inside the kept frames: keep them as they are
            self._kept = frames[len(frames) - min(self.keep, len(frames)) :]
        return out

    def close(self) -> None:
        """Close the decoder (and its file)."""
        if self._frames is not None:
            self._frames.close()
        self._frames, self._kept = None, []
