"""Progress bars that tell the truth: ``fit`` counts optimizer steps out of ``trainer.max_steps``.

Lightning's bar counts the batches of the current epoch; with ``max_steps`` and no epoch
limit (every LoRA config) it read ``Epoch 2/-2 ... 2/1``. :class:`StepProgressBar` shows
``fit: 7/2000 steps`` instead (resumed runs start at their step), and keeps Lightning's
behaviour when no ``max_steps`` is set. Validate, test and predict bars are Lightning's.
:class:`VideoTiming` logs each predicted video's wall time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar

log = logging.getLogger(__name__)


def counts_steps(trainer: Trainer) -> bool:
    """True when ``fit`` is bounded by ``max_steps`` (> 0): the bar then counts optimizer steps."""
    return int(getattr(trainer, "max_steps", -1) or -1) > 0


class StepProgressBar(TQDMProgressBar):
    """:class:`TQDMProgressBar` whose ``fit`` bar is ``global_step / max_steps`` (see module doc)."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if counts_steps(trainer):
            bar = self.train_progress_bar
            bar.reset(total=trainer.max_steps)
            bar.initial = 0
            bar.n = trainer.global_step
            bar.set_description("fit (steps)")
            bar.refresh()

    def on_train_epoch_start(self, trainer: Trainer, *args: Any) -> None:
        if not counts_steps(trainer):
            super().on_train_epoch_start(trainer, *args)
            return
        if self._leave:  # a new bar per epoch was asked for: keep counting steps on it
            self.train_progress_bar = self.init_train_tqdm()
            self.train_progress_bar.reset(total=trainer.max_steps)
            self.train_progress_bar.n = trainer.global_step
        self.train_progress_bar.set_description("fit (steps)")

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not counts_steps(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        bar = self.train_progress_bar
        step = min(trainer.global_step, trainer.max_steps)
        if bar is not None and not bar.disable and step != bar.n and self._should_update(step, trainer.max_steps):
            bar.n = step
            bar.set_postfix({"epoch": trainer.current_epoch, **self.get_metrics(trainer, pl_module)})
            bar.refresh()


class VideoTiming(Callback):
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

    def on_predict_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, *args: Any) -> None:
        self._batch_start = time.perf_counter()
        names = self._names(batch)
        for name in [n for n in self._current if n not in names]:
            self._finish(name)
        for name in names:
            self._current.setdefault(name, (self._batch_start, 0))

    def on_predict_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, *args: Any) -> None:
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

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
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
