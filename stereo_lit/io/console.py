"""Progress of one stage: a tqdm bar on a terminal, one plain log line per stage otherwise.

A log file (stderr not a terminal: ``stereo-lit predict ... 2> run.log``, a job runner, CI) gets
``depth: 3/3 windows in 12.4 s`` instead of the carriage-return updates of nested bars.
``STEREO_LIT_PROGRESS=bars`` or ``=plain`` overrides the detection.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger("stereo_lit.progress")


def is_terminal() -> bool:
    """Whether progress bars can redraw in place (stderr is a terminal; ``STEREO_LIT_PROGRESS`` wins)."""
    mode = os.environ.get("STEREO_LIT_PROGRESS", "").strip().lower()
    if mode in ("bars", "bar", "tty"):
        return True
    if mode in ("plain", "lines", "none"):
        return False
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


class PlainProgress:
    """tqdm's small interface (iterate, ``update``, ``close``, ``set_postfix``) logging one line at the end."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str | None = None,
                 unit: str = "it", level: int = logging.INFO, disable: bool = False) -> None:
        self.iterable, self.total, self.desc, self.unit, self.level = iterable, total, desc or "", unit, level
        self.n, self.disable, self._start, self._closed = 0, disable, time.perf_counter(), False

    def __iter__(self) -> Iterator:
        for item in () if self.iterable is None else self.iterable:
            yield item
            self.n += 1
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self._closed or self.disable:
            return
        self._closed = True
        total = f"/{self.total}" if self.total else ""
        log.log(self.level, "%s: %d%s %ss in %.1f s", self.desc, self.n, total, self.unit, time.perf_counter() - self._start)


def stage_progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
                   disable: bool = False, leave: bool = True, plain_level: int = logging.INFO) -> Any:
    """A tqdm bar on a terminal, else a :class:`PlainProgress` (one log line at ``plain_level`` when done)."""
    if is_terminal():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, level=plain_level, disable=disable)
