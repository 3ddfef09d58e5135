"""Per-video wall time of ``predict`` (the hooks of a Lightning callback, without Lightning):
:class:`stereo_lit.progress.VideoTiming` is this class as a callback, and the converter's
direct run (:mod:`stereo_lit.predict.direct`) calls the same hooks."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("stereo_lit.progress")  # the name the jobs' log lines always had


class VideoClock:
    """``predict``: one log line per finished video, ``video NAME: F frames in S s (X frames/s)``.

    A video's time runs from the start of its first window to the start of its next video
    (the writer included); windows of one video are consecutive on a process. Before the
    writer encodes a window it logs ``writing frames A-B of NAME``. Prompt batches are
    named by their ``sample_id``. The times are also in :attr:`seconds` (name -> s).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._current: dict[str, tuple[float, int]] = {}  # name -> (start time, frames)
        self._batch_start = 0.0

    @staticmethod
    def _names(batch: Any) -> list[str]:
        if not isinstance(batch, dict):
            return []
        names = batch.get("video_path") or batch.get("sample_id") or []
        return [str(n) for n in (names if isinstance(names, (list, tuple)) else [names])]

    def on_predict_batch_start(self, trainer: Any, pl_module: Any, batch: Any, *args: Any) -> None:
        self._batch_start = time.perf_counter()
        names = self._names(batch)
        for name in [n for n in self._current if n not in names]:
            self._finish(name)
        for name in names:
            self._current.setdefault(name, (self._batch_start, 0))

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, *args: Any) -> None:
        # runs before the writer (trainer callbacks come before the module's): the encoding's status line
        produced = isinstance(outputs, dict) and hasattr(outputs.get("left"), "shape")
        frames = int(outputs["left"].shape[2]) if produced else _window_frames(batch)
        if produced:
            start = int(_first(outputs.get("frames_start") or [0]))
            names = ", ".join(Path(n).name for n in self._names(outputs))
            log.info("writing frames %d-%d of %s", start, start + frames - 1, names)
        for name in self._names(batch):
            start, seen = self._current.get(name, (self._batch_start, 0))
            self._current[name] = (start, seen + frames)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        for name in list(self._current):
            self._finish(name)

    def _finish(self, name: str) -> None:
        start, frames = self._current.pop(name)
        seconds = time.perf_counter() - start
        self.seconds[name] = seconds
        rate = f" ({frames / seconds:.2f} frames/s)" if frames and seconds > 0 else ""
        log.info("video %s: %d frames in %.1f s%s", Path(name).name if "/" in name else name, frames, seconds, rate)


def _window_frames(batch: Any) -> int:
    """Frames a window adds to its video: ``window_stop - keep_start`` when known, else T of ``left``."""
    if not isinstance(batch, dict):
        return 0
    stop, keep = batch.get("window_stop"), batch.get("keep_start")
    try:
        if stop is not None and keep is not None:
            return int(_first(stop)) - int(_first(keep))
        left = batch.get("left")
        return int(left.shape[2]) if left is not None else 0
    except (TypeError, ValueError):
        return 0


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return value[0]
    if hasattr(value, "ndim") and value.ndim > 0:
        return value.reshape(-1)[0]
    return value
