"""A Lightning callback that reports predict progress to a small JSON file.

``stereo-lit ui`` runs the real ``stereo-lit predict`` in a subprocess and adds this
observer with ``--trainer.callbacks``; the page polls the file to draw a progress bar.
It only reads counters: the predict path itself is unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback


def write_progress(path: str | Path, done: int, total: int) -> None:
    """Atomically write ``{"done": done, "total": total}`` (windows) to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"done": int(done), "total": int(total)}))
    os.replace(tmp, path)


def read_progress(path: str | Path) -> tuple[int, int] | None:
    """``(done, total)`` windows from a progress file, or None when absent/unreadable."""
    try:
        data = json.loads(Path(path).read_text())
        return int(data["done"]), int(data["total"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class ProgressFile(Callback):
    """Writes ``done/total`` predict batches (windows) to ``path`` after every batch.

    Args:
        path: the JSON file to (re)write; its folder must exist.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def _total(self, trainer: Any, dataloader_idx: int) -> int:
        try:
            total = trainer.num_predict_batches[dataloader_idx]
            return int(total) if total != float("inf") else 0
        except (AttributeError, IndexError, TypeError, ValueError):
            return 0

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        write_progress(self.path, 0, self._total(trainer, 0))

    def on_predict_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        write_progress(self.path, batch_idx + 1, self._total(trainer, dataloader_idx))
