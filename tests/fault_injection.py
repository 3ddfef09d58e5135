"""Generators that fail on purpose, for the fault tests (imported by class path from YAML/CLI)."""

from __future__ import annotations

import os
import signal
from typing import Any

import torch

from stereo_lit.generators.base import StereoOutput
from stereo_lit.generators.geometric import WarpFill


class KillOnCall(WarpFill):
    """WarpFill that SIGKILLs its own process on the ``kill_at``-th call (a crash mid-video).

    It keeps the data windows (not predict's streamed chunks), so ``kill_at`` counts windows."""

    frame_independent = False

    def __init__(self, kill_at: int = 2) -> None:
        super().__init__()
        self.kill_at, self.calls = kill_at, 0

    def generate(self, left: torch.Tensor, disparity_px: torch.Tensor, **kwargs: Any) -> StereoOutput:
        self.calls += 1
        if self.calls == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().generate(left, disparity_px, **kwargs)


def disk_full(monkeypatch: Any, owner: Any, name: str, when: Any = lambda *a, **k: True) -> list[str]:
    """Make ``owner.name`` raise ``OSError(ENOSPC)`` (disk full) whenever ``when(*args, **kwargs)``
    is true, calling through otherwise; returns a list that records each injected failure."""
    import errno

    original = getattr(owner, name)
    failures: list[str] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            failures.append(repr(args[:2]))
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, failing)
    return failures
