"""Streaming mp4 writing with PyAV: chunk by chunk, atomic, with the source's audio.

:class:`StreamingVideoWriter` never holds the video in memory. It writes to a
temporary name of its own in the target folder (``.NAME.partial-<pid>-<random>.mp4``,
so two runs never write one file) and renames to ``NAME`` only when closed without
error, so a killed run never leaves a file that looks finished. Audio from
``audio_from`` is remuxed unchanged when mp4 can carry it (aac, mp3, ...), else
transcoded to aac. Every file is tagged (container ``comment`` = :data:`WRITER_TAG`) so
that the reader can leave this package's own outputs out of a folder of sources.

Encoder settings are one option (:class:`~stereo_lit.io.encoder.EncoderOptions`,
``model.output.encoder``, in :mod:`stereo_lit.io.encoder`); H.265 is tagged ``hvc1`` so Apple
players take it. The source's colour tags (``color_primaries``,
``color_trc``, ``colorspace``, ``color_range``, :func:`read_color_metadata`) are written
to the output and the RGB -> YUV conversion uses the source's matrix and range, so a
BT.709 source stays BT.709. Untagged sources are written as before (untagged, BT.601
matrix, limited range).

Odd frame sizes: yuv420p (the pixel format every player and hardware decoder takes)
needs even sizes, so an odd last row/column is *repeated* (edge replication), never
filled with black: a 97x61 source is stored as 98x62 whose last row/column equals its
neighbour.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np

from stereo_lit.io.encoder import EncoderOptions, as_encoder_options, resolve_encoder  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
WRITER_TAG = "stereo-lit"  # container metadata "comment" of every file written here


def partial_path(path: Path, token: str | None = None) -> Path:
    """The temporary name a file is written under before it is complete.

    ``.<stem>.partial-<pid>-<token><suffix>``: unique to this process and writer (``token``
    defaults to a random one), hidden, so no other run and no reader takes it.
    """
    token = token or uuid.uuid4().hex[:8]
    return path.with_name(f".{path.stem}.partial-{os.getpid()}-{token}{path.suffix}")


def pad_to_even(frame: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` -> ``[H + H%2, W + W%2, 3]`` by repeating the last row/column."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def rgb_frame(rgb: np.ndarray) -> av.VideoFrame:
    """An ``rgb24`` frame of uint8 ``[H, W, 3]`` that reads ``rgb``'s memory where its rows are
    contiguous (no copy; the frame holds a reference), else of a contiguous copy.

    ``VideoFrame.from_ndarray`` copies every frame twice (through ``tobytes()``), into fresh
    memory each time: at 1080p SBS that was 25 MB of copying and page faults per frame.
    The frame keeps ``rgb`` alive for as long as FFmpeg holds it (an encoder in RGB may keep
    it queued), so arrays handed to a writer must not be changed afterwards; this package's
    writers are always handed fresh (or never-written) arrays.
    """
    if rgb.strides[1:] == (3, 1) and rgb.strides[0] >= 3 * rgb.shape[1]:
        return av.VideoFrame.from_numpy_buffer(rgb, format="rgb24")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")


def zero_row_padding(frame: av.VideoFrame) -> av.VideoFrame:
    """``frame`` with the bytes past each row's end zeroed in every plane (in place).

    FFmpeg aligns rows (a 24-px chroma row of a 48x30 4:2:0 frame takes 32 bytes) and leaves the
    rest uninitialised, and x264 reads some of it: the same frames encoded twice gave files that
    differed now and then. A 48x30 clip converted in a loop: 1 to 8 files in 20 differed before;
    with the padding zeroed and the conversion on one thread (:meth:`StreamingVideoWriter._frame`),
    47 of 48 were identical. The one left was most likely x264's AVX-512 code, which
    :func:`stereo_lit.io.encoder.x264_cpu_cap` keeps it from running."""
    used: dict[int, int] = {}
    for component in frame.format.components:  # bytes of picture per row, per plane (nv12: U and V share one)
        used[component.plane] = used.get(component.plane, 0) + component.width * ((component.bits + 7) // 8)
    for index, plane in enumerate(frame.planes):
        width = used.get(index, plane.line_size)
        if width < plane.line_size:
            np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:, width:] = 0
    return frame


COLOR_FIELDS = ("color_primaries", "color_trc", "colorspace", "color_range")
_UNSPECIFIED = {"color_primaries": 2, "color_trc": 2, "colorspace": 2, "color_range": 0}  # FFmpeg's values


def read_color_metadata(path: str | Path | None) -> dict[str, int] | None:
    """The colour tags of the first video stream of ``path`` that are set (FFmpeg enum
    values, e.g. 1 = BT.709 for primaries/trc/colorspace, 1 = limited / 2 = full range);
    None when the file has none or cannot be read."""
    if path is None or not Path(path).is_file():
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            ctx = container.streams.video[0].codec_context
            tags = {key: int(getattr(ctx, key)) for key in COLOR_FIELDS}
    except (av.error.FFmpegError, OSError, AttributeError) as err:
        log.warning("colour metadata of %s not read: %s", path, err)
        return None
    tags = {k: v for k, v in tags.items() if v != _UNSPECIFIED[k]}
    return tags or None


class StreamingVideoWriter:
    """Write an mp4 frame chunk by frame chunk.

    Args:
        path: final file name (``.mp4``).
        fps: frame rate.
        audio_from: optional source video whose first audio stream is copied.
        crf: x264 constant rate factor (lower = better; 18 is visually lossless); used
            when ``encoder`` is None.
        encoder: :class:`EncoderOptions` (or a dict of its fields); None = defaults with ``crf``.
        color: colour tags to write (:func:`read_color_metadata` of the source); None = untagged.
        audio_range: ``(start, stop)`` seconds of ``audio_from``'s audio to keep (a
            ``start_time``/``end_time`` cut), moved to start at 0; None = all of it.
            Copied audio is cut at packet boundaries (packets starting in the range keep
            their time relative to ``start``, so sync is exact; the first sound may start
            up to one packet, ~20 ms, late); transcoded audio at decoded-frame boundaries.

    Frames are uint8 ``[T, H, W, 3]`` RGB; odd sizes get their last row/column repeated
    so that yuv420p can encode them (:func:`pad_to_even`; the size is fixed by the first
    chunk).
    """

    def __init__(
        self, path: str | Path, fps: float, audio_from: str | Path | None = None, crf: int = 18,
        encoder: EncoderOptions | dict | None = None, color: dict[str, int] | None = None,
        audio_range: tuple[float, float] | None = None,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps} for {path}")
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.audio_from = Path(audio_from) if audio_from else None
        if audio_range is not None and not 0 <= float(audio_range[0]) < float(audio_range[1]):
            raise ValueError(f"audio_range for {path} must be (start, stop) seconds with 0 <= start < stop, got {audio_range}")
        self.audio_range = None if audio_range is None else (float(audio_range[0]), float(audio_range[1]))
        self.encoder = as_encoder_options(encoder) if encoder is not None else EncoderOptions(crf=crf)
        self.crf = self.encoder.crf
        unknown = set(color or {}) - set(COLOR_FIELDS)
        if unknown:
            raise ValueError(f"color tags for {path} must be among {COLOR_FIELDS}, got {sorted(unknown)}")
        self.color = dict(color or {})
        self.codec_name: str | None = None
        self.pix_fmt: str | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self.frames_written = 0
        self.encode_seconds = 0.0  # wall seconds spent in the encoder (colour conversion, encode, mux)
        self._flushed = False

    def __enter__(self) -> "StreamingVideoWriter":
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self, height: int, width: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.tmp), mode="w", format="mp4")
        self._container.metadata["comment"] = WRITER_TAG
        codec, pix_fmt, options = resolve_encoder(self.encoder, height, width)
        if codec == "libx265" and min(height, width) < 64:
            # seen with PyAV 18 / FFmpeg 8.1: libx265 corrupts the heap on frames with a side
            # under 64 px (48x32 at 10 bit at once; 96x32 at 8 bit, crashing later)
            raise ValueError(
                f"{self.path}: model.output.encoder codec h265 needs frames of at least 64x64 "
                f"(got {width}x{height}); use codec h264 for small videos"
            )
        self._stream = self._container.add_stream(codec, rate=self.fps)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = pix_fmt
        if options:
            self._stream.options = options
        if codec in ("libx265", "hevc_nvenc"):
            self._stream.codec_tag = "hvc1"  # Apple's players refuse mp4 HEVC tagged hev1
        if options.get("b") == "0":
            self._stream.codec_context.bit_rate = 0  # NVENC constant quality
        for key, value in self.color.items():
            setattr(self._stream.codec_context, key, value)
        self.codec_name, self.pix_fmt = codec, pix_fmt
        self._size = (height, width)

    def _frame(self, rgb: np.ndarray) -> av.VideoFrame:
        """RGB uint8 ``[H, W, 3]`` -> a frame in the encoder's pixel format, converted with
        the source's matrix and range and carrying its colour tags (without tags: BT.601,
        limited range, as the encoder's own conversion did), its row padding zeroed
        (:func:`zero_row_padding`). One thread: each layout already has its own encoder thread."""
        frame = rgb_frame(rgb)
        if not self.color:
            return zero_row_padding(frame.reformat(format=self.pix_fmt, threads=1))
        frame = frame.reformat(
            format=self.pix_fmt, dst_colorspace=self.color.get("colorspace"),
            dst_color_range=self.color.get("color_range"), threads=1,
        )
        for key, value in self.color.items():
            setattr(frame, key, value)
        return zero_row_padding(frame)

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 frames ``[T, H, W, 3]`` (or one ``[H, W, 3]``)."""
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames for {self.path} must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        self.prepare(frames.shape[1], frames.shape[2])
        self.encode_frames(self.convert(frame) for frame in frames)

    def prepare(self, height: int, width: int) -> None:
        """Open the file for ``height x width`` RGB frames (on the first call; the encoder's
        pixel format is then known), or check that size against the first chunk's."""
        if self._container is None:
            self._open(height, width)
        if (height, width) != self._size:
            raise ValueError(f"frame size {(height, width)} differs from the first chunk's {self._size} in {self.path}")

    def convert(self, rgb: np.ndarray) -> av.VideoFrame:
        """One RGB uint8 frame ``[H, W, 3]`` as the encoder takes it: even-sized (:func:`pad_to_even`),
        in its pixel format, with the colour tags (after :meth:`prepare`)."""
        return self._frame(pad_to_even(rgb))

    @property
    def conversion(self) -> tuple:
        """What :meth:`convert` depends on besides the picture (pixel format and colour tags):
        writers with equal values make the same frames of the same picture."""
        return (self.pix_fmt, tuple(sorted(self.color.items())))

    def encode_frames(self, frames: Iterable[av.VideoFrame]) -> None:
        """Append frames made by :meth:`convert` (or of the same pixel format, size and tags)."""
        started = time.perf_counter()
        for frame in frames:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames_written += 1
        self.encode_seconds += time.perf_counter() - started

    def flush(self) -> None:
        """Encode the frames the encoder still holds (x264 keeps its lookahead, about 20 frames),
        ending the stream; :meth:`close` then finishes the file. Once; :meth:`close` calls it."""
        if self._container is None:
            raise ValueError(f"no frame was written to {self.path}")
        if self._flushed:
            return
        started = time.perf_counter()
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._flushed = True
        self.encode_seconds += time.perf_counter() - started

    def close(self, path: Path | None = None) -> Path:
        """Flush, add the audio, and rename to the final name (or to ``path``, e.g. a hidden name
        that a whole output set is renamed from at once)."""
        if path is not None:
            self.path = Path(path)
        self.flush()
        self._container.close()
        self._container = None
        if self.audio_from is not None:
            self._mux_audio()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file (after an error)."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - already failing; the file is removed anyway
                pass
            self._container = None
        self.tmp.unlink(missing_ok=True)
        self.tmp.with_name(self.tmp.stem + ".audio.mp4").unlink(missing_ok=True)

    def _mux_audio(self) -> None:
        """Rewrite the temporary file with the source's first audio stream added."""
        try:
            source = av.open(str(self.audio_from))
        except av.error.FFmpegError as err:
            log.warning("audio of %s not copied: %s", self.audio_from, err)
            return
        with source:
            if not source.streams.audio:
                return
            audio_in = source.streams.audio[0]
            with_audio = self.tmp.with_name(self.tmp.stem + ".audio.mp4")  # still .*.partial-<pid>-*
            with av.open(str(self.tmp)) as video_src, av.open(str(with_audio), "w", format="mp4") as out:
                out.metadata["comment"] = WRITER_TAG
                v_in = video_src.streams.video[0]
                v_out = out.add_stream_from_template(v_in)
                copy_audio = audio_in.codec_context.name in _MP4_AUDIO
                if copy_audio:
                    a_out = out.add_stream_from_template(audio_in)
                else:
                    a_out = out.add_stream("aac", rate=audio_in.codec_context.sample_rate or 48000)
                for packet in video_src.demux(v_in):
                    if packet.dts is None:
                        continue
                    packet.stream = v_out
                    out.mux(packet)
                first = last = None  # audio_range in the audio stream's time base
                if self.audio_range is not None:
                    tb = audio_in.time_base
                    first, last = int(round(self.audio_range[0] / tb)), int(round(self.audio_range[1] / tb))
                    if first > 0:
                        try:
                            source.seek(first, stream=audio_in, backward=True, any_frame=True)
                        except av.error.FFmpegError:
                            pass  # unseekable: demux from the start and skip
                if copy_audio:
                    for packet in source.demux(audio_in):
                        if packet.dts is None:
                            continue
                        if first is not None:
                            if packet.pts is None or packet.pts < first:
                                continue
                            if packet.pts >= last:
                                break
                            packet.pts, packet.dts = packet.pts - first, packet.dts - first
                        packet.stream = a_out
                        out.mux(packet)
                else:
                    for frame in source.decode(audio_in):
                        if first is not None and frame.pts is not None:
                            if frame.pts < first:
                                continue
                            if frame.pts >= last:
                                break
                        frame.pts = None
                        for packet in a_out.encode(frame):
                            out.mux(packet)
                    for packet in a_out.encode():
                        out.mux(packet)
            os.replace(with_audio, self.tmp)


#: the item that tells a :class:`BackgroundWriter`'s thread to flush its encoder and stop
_FLUSH = object()


class BackgroundWriter:
    """A :class:`StreamingVideoWriter` fed from a thread of its own through a bounded queue.

    :meth:`write` hands over frames (or a function that makes them, e.g. a layout
    composition, so that it runs in the thread too) and returns at once unless ``depth``
    chunks are already waiting; the thread encodes them in order. PyAV releases the GIL
    while it converts and encodes, so several writers and the model run at the same time.
    An error in the thread is raised by the next :meth:`write` or by :meth:`close`.

    Attributes:
        wait_seconds: time :meth:`write` waited for room in the queue (encoder-bound).
    """

    def __init__(self, writer: StreamingVideoWriter, depth: int = 2) -> None:
        self.writer = writer
        self.wait_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._error: BaseException | None = None
        self._finishing = False
        self._thread = threading.Thread(target=self._run, name=f"stereo-lit-encode-{writer.path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item is _FLUSH:  # the end of the stream: flush here, beside the other layouts' threads
                if self._error is None:
                    try:
                        self.writer.flush()
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        self._error = exc
                return
            if self._error is not None:
                continue  # drain after a failure
            try:
                if hasattr(item, "encode_into"):  # a job that makes the encoder's frames itself (io.eye_frames)
                    item.encode_into(self.writer)
                else:
                    self.writer.write(item() if callable(item) else item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def write(self, frames: "np.ndarray | Callable[[], np.ndarray] | Any") -> None:
        """Queue uint8 frames ``[T, H, W, 3]`` (or a function returning them, or a job with an
        ``encode_into(writer)`` method: :mod:`stereo_lit.io.eye_frames`) for encoding."""
        self._raise()
        started = time.perf_counter()
        self._queue.put(frames)
        self.wait_seconds += time.perf_counter() - started

    def finish(self) -> None:
        """End the stream without waiting: the thread encodes what is queued, flushes the encoder
        and stops. Call it on every layout's writer before closing any, so that their encoders
        flush at the same time instead of one after another; :meth:`close` waits for it."""
        if self._thread.is_alive() and not self._finishing:
            self._finishing = True
            self._queue.put(_FLUSH)

    def _join(self) -> None:
        if self._thread.is_alive():
            if not self._finishing:
                self._queue.put(None)
            self._thread.join()

    @property
    def path(self) -> Path:
        """The final path of the wrapped writer."""
        return self.writer.path

    @property
    def frames_written(self) -> int:
        return self.writer.frames_written

    @property
    def encode_seconds(self) -> float:
        return self.writer.encode_seconds

    def close(self, path: Path | None = None) -> Path:
        """Encode what is queued, then :meth:`StreamingVideoWriter.close` (flush, audio, rename to ``path``)."""
        started = time.perf_counter()
        self.finish()
        self._join()
        self._raise()
        joined, encoded = time.perf_counter() - started, self.writer.encode_seconds
        path = self.writer.close(path)
        # waiting for the thread and flushing the encoder are encode time, not the caller's
        self.wait_seconds += joined + (self.writer.encode_seconds - encoded)
        return path

    def abort(self) -> None:
        """Stop the thread (dropping queued frames) and remove the temporary file."""
        self._error = self._error or RuntimeError("aborted")
        self._join()
        self._error = None
        self.writer.abort()


def write_video(
    path: str | Path, frames: np.ndarray, fps: float, audio_from: str | Path | None = None,
    encoder: EncoderOptions | dict | None = None, color: dict[str, int] | None = None,
) -> Path:
    """Write all ``frames`` (uint8 ``[T, H, W, 3]``) to ``path`` atomically."""
    with StreamingVideoWriter(path, fps, audio_from=audio_from, encoder=encoder, color=color) as writer:
        writer.write(frames)
    return Path(path)
