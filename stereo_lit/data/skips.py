"""The per-video error policy of a run (``on_error: skip``) and its end-of-run summary.

A per-video error can be raised anywhere: while probing or decoding (datamodule),
estimating depth, generating (model) or writing (prediction writer). With the
datamodule's ``on_error="skip"`` every such error is caught, the video is named in a
warning and dropped (never replaced by another item), and the run ends with a summary
that counts and names every skipped video. With ``"raise"`` the first error stops the
run. Exit status (:func:`stereo_lit.cli.main`): non-zero when every attempted video
failed, 0 when at least one finished (the summary names the others).

Errors raised inside dataloader workers travel to the model as *skip markers*:
samples ``{SKIPPED_KEY: (name, reason)}`` that :func:`stereo_lit.data.collate.collate_samples`
gathers into ``batch[SKIPPED_KEY]`` (a list of ``(name, reason)``).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

SKIPPED_KEY = "skipped"


def skip_marker(name: str, exc: BaseException | str) -> dict[str, Any]:
    """A sample that stands for a dropped item: ``{SKIPPED_KEY: (name, reason)}``."""
    return {SKIPPED_KEY: (str(name), describe(exc))}


def is_skip_marker(sample: Any) -> bool:
    return isinstance(sample, dict) and set(sample) == {SKIPPED_KEY}


def describe(exc: BaseException | str) -> str:
    """``"ValueError: message"`` (one line)."""
    if isinstance(exc, str):
        return exc
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RunFailures:
    """Videos (or clips) seen and failed in one run, for the summary and the exit status."""

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}  # name -> first reason
        self.seen: set[str] = set()

    def record(self, name: str, reason: BaseException | str) -> None:
        name = str(name)
        self.seen.add(name)
        if name not in self.failed:
            self.failed[name] = describe(reason)
            log.warning("skipping %s: %s", name, self.failed[name])

    def see(self, names: list[str]) -> None:
        self.seen.update(str(n) for n in names)

    @property
    def all_failed(self) -> bool:
        """True when something failed and nothing else was attempted."""
        return bool(self.failed) and self.seen <= set(self.failed)

    def summary(self, what: str = "video") -> str:
        """``"3 videos: 2 finished, 1 skipped"`` and one line per skipped item."""
        done = len(self.seen - set(self.failed))
        lines = [f"{len(self.seen)} {what}(s): {done} finished, {len(self.failed)} skipped"]
        lines += [f"  skipped {name}: {reason}" for name, reason in self.failed.items()]
        return "\n".join(lines)
