"""The shot-cut pass over a video file, and that pass started early in a background thread.

- :func:`scan_cuts`: frames decoded at :func:`~stereo_lit.stereo.cuts.detection_size` on the
  datamodule's timeline, into :func:`~stereo_lit.stereo.cuts.detect_cuts`.
- :func:`prefetch` / :func:`take_prefetched` / :func:`cancel_prefetched`: that pass in a daemon
  thread, started as soon as a video is known (``stereo-lit convert`` starts it before importing
  torch: the decoder runs on the second core while Python imports on the first); the depth source
  (:func:`stereo_lit.depth.source.video_cuts`) takes the result when it asks for the same video,
  timeline and size, or calls the pass off when the cuts were cached on disk.

No torch here: this module is imported before it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from stereo_lit.io.video_reader import iter_frames
from stereo_lit.stereo.cuts import detect_cuts, detection_size

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """A prefetched pass was called off (its result is not wanted)."""


def scan_cuts(
    video_path: str, fps: float, size: tuple[int, int], source_range: tuple[int, int] | None = None,
    stop: threading.Event | None = None,
) -> list[int]:
    """Shot cuts of a video file on the timeline of ``fps`` (a ``start_time``/``end_time`` cut is
    ``source_range``), from frames decoded at :func:`detection_size` of ``size``. ``stop``: raise
    :class:`Cancelled` at the next frame once it is set."""
    frames = iter_frames(video_path, fps=fps, size=detection_size(size), source_range=source_range)
    if stop is not None:
        frames = _until(frames, stop)
    return detect_cuts(frames, fps=fps)


def _until(frames: Iterable[np.ndarray], stop: threading.Event) -> Iterator[np.ndarray]:
    for frame in frames:
        if stop.is_set():
            raise Cancelled
        yield frame


_Key = tuple[str, float, tuple[int, int], "tuple[int, int] | None"]
_PENDING: dict[_Key, tuple[threading.Thread, threading.Event, dict]] = {}


def _key(video_path: str, fps: float, size: tuple[int, int], source_range: tuple[int, int] | None) -> _Key:
    return (
        str(Path(video_path).resolve()), round(float(fps), 6), (int(size[0]), int(size[1])),
        None if source_range is None else (int(source_range[0]), int(source_range[1])),
    )


def prefetch(
    video_path: str, fps: float, size: tuple[int, int], source_range: tuple[int, int] | None = None
) -> None:
    """Start :func:`scan_cuts` of this video, timeline and size in a daemon thread (once per key)."""
    key = _key(video_path, fps, size, source_range)
    if key in _PENDING:
        return
    result: dict = {}
    stop = threading.Event()

    def work() -> None:
        try:
            result["cuts"] = scan_cuts(video_path, fps, size, source_range, stop=stop)
        except Exception as exc:  # noqa: BLE001 - the depth source scans again and reports it
            result["error"] = exc

    thread = threading.Thread(target=work, name="stereo-lit-cuts", daemon=True)
    _PENDING[key] = (thread, stop, result)
    thread.start()


def cancel_prefetched(
    video_path: str, fps: float, size: tuple[int, int], source_range: tuple[int, int] | None = None
) -> None:
    """Call off a prefetched pass whose result is not needed (the cuts were cached on disk): it
    stops at its next frame instead of decoding the rest of the video."""
    pending = _PENDING.pop(_key(video_path, fps, size, source_range), None)
    if pending is not None:
        pending[1].set()


def keep_only(video_paths: Iterable[str]) -> None:
    """Call off the prefetched passes of every video not in ``video_paths`` (a video the run
    skips, e.g. one finished by an earlier run, would otherwise be decoded for nothing)."""
    wanted = {str(Path(p).resolve()) for p in video_paths}
    for key in [k for k in _PENDING if k[0] not in wanted]:
        _PENDING.pop(key)[1].set()


def take_prefetched(
    video_path: str, fps: float, size: tuple[int, int], source_range: tuple[int, int] | None = None
) -> list[int] | None:
    """The prefetched cuts of exactly this video, timeline and size (waiting for the pass to end);
    None when none was started for it or it failed (the caller scans, and reports any error)."""
    pending = _PENDING.pop(_key(video_path, fps, size, source_range), None)
    if pending is None:
        return None
    thread, _, result = pending
    thread.join()
    if "error" in result:
        log.debug("prefetched cut detection of %s failed: %s", video_path, result["error"])
        return None
    return list(result["cuts"])
