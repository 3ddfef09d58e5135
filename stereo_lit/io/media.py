"""What the readers share: the probe result of a video or photo and the read error (no imports of readers)."""

from __future__ import annotations

from dataclasses import dataclass

from stereo_lit.errors import UserError


class VideoReadError(RuntimeError, UserError):
    """A video could not be opened or decoded; the message names the file (a short error, no traceback)."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns from a file's headers (no full decode).

    Attributes:
        path: the file.
        num_frames: frames in the video stream.
        fps: average frame rate (frames per second).
        height, width: displayed frame size in pixels (after the display rotation).
        has_audio: the container has at least one audio stream.
        duration_s: duration of the video stream in seconds (``num_frames / fps`` if unknown).
        codec: video codec name; audio_codec / audio_sample_rate / audio_channels: first
            audio stream (None without audio).
        rotation: counter-clockwise display rotation applied to the stored frames (0, 90,
            180, 270; phone footage), already applied by the readers.
    """

    path: str
    num_frames: int
    fps: float
    height: int
    width: int
    has_audio: bool
    duration_s: float
    codec: str
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    rotation: int = 0
