"""Progress bars that tell the truth: ``fit`` counts optimizer steps out of ``trainer.max_steps``.

Lightning's bar counts the batches of the current epoch; with ``max_steps`` and no epoch
limit (every LoRA config) it read ``Epoch 2/-2 ... 2/1``. :class:`StepProgressBar` shows
``fit: 7/2000 steps`` instead (resumed runs start at their step), and keeps Lightning's
behaviour when no ``max_steps`` is set. Validate, test and predict bars are Lightning's.
:class:`VideoTiming` logs each predicted video's wall time (:class:`~stereo_lit.predict.timing.VideoClock`).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar

from stereo_lit.predict.timing import VideoClock


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


class VideoTiming(VideoClock, Callback):
    __doc__ = VideoClock.__doc__
