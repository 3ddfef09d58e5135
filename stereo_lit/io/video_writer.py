"""Streaming mp4 writing with PyAV: chunk by chunk, atomic, with the source's audio.

:class:`StreamingVideoWriter` never holds the video in memory. It writes to a
temporary name of its own in the target folder (``.NAME.partial-<pid>-<random>.mp4``,
so two runs never write one file) and renames to ``NAME`` only when closed without
error, so a killed run never leaves a file that looks finished. Audio from
``audio_from`` is remuxed unchanged when mp4 can carry it (aac, mp3, ...), else
transcoded to aac. Every file is tagged (container ``comment`` = :data:`WRITER_TAG`) so
that the reader can leave this package's own outputs out of a folder of sources.

Odd frame sizes: yuv420p (the pixel format every player and hardware decoder takes)
needs even sizes, so an odd last row/column is *repeated* (edge replication), never
filled with black: a 97x61 source is stored as 98x62 whose last row/column equals its
neighbour.
"""

from __future__ import annotations

import logging
import os
import uuid
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

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


def _video_codec() -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


class StreamingVideoWriter:
    """Write an mp4 frame chunk by frame chunk.

    Args:
        path: final file name (``.mp4``).
        fps: frame rate.
        audio_from: optional source video whose first audio stream is copied.
        crf: x264 constant rate factor (lower = better; 18 is visually lossless).

    Frames are uint8 ``[T, H, W, 3]`` RGB; odd sizes get their last row/column repeated
    so that yuv420p can encode them (:func:`pad_to_even`; the size is fixed by the first
    chunk).
    """

    def __init__(self, path: str | Path, fps: float, audio_from: str | Path | None = None, crf: int = 18) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps} for {path}")
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.audio_from = Path(audio_from) if audio_from else None
        self.crf = crf
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self.frames_written = 0

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
        codec = _video_codec()
        self._stream = self._container.add_stream(codec, rate=self.fps)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": str(self.crf), "preset": "medium"}
        self._size = (height, width)

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 frames ``[T, H, W, 3]`` (or one ``[H, W, 3]``)."""
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames for {self.path} must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        if self._container is None:
            self._open(frames.shape[1], frames.shape[2])
        if frames.shape[1:3] != self._size:
            raise ValueError(f"frame size {frames.shape[1:3]} differs from the first chunk's {self._size} in {self.path}")
        h, w = self._size
        for frame in frames:
            frame = pad_to_even(frame)
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                self._container.mux(packet)
            self.frames_written += 1

    def close(self) -> Path:
        """Flush, add the audio, and rename to the final name."""
        if self._container is None:
            raise ValueError(f"no frame was written to {self.path}")
        for packet in self._stream.encode():
            self._container.mux(packet)
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
                if copy_audio:
                    for packet in source.demux(audio_in):
                        if packet.dts is None:
                            continue
                        packet.stream = a_out
                        out.mux(packet)
                else:
                    for frame in source.decode(audio_in):
                        frame.pts = None
                        for packet in a_out.encode(frame):
                            out.mux(packet)
                    for packet in a_out.encode():
                        out.mux(packet)
            os.replace(with_audio, self.tmp)


def write_video(path: str | Path, frames: np.ndarray, fps: float, audio_from: str | Path | None = None) -> Path:
    """Write all ``frames`` (uint8 ``[T, H, W, 3]``) to ``path`` atomically."""
    with StreamingVideoWriter(path, fps, audio_from=audio_from) as writer:
        writer.write(frames)
    return Path(path)
