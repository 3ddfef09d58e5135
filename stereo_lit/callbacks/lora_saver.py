"""Saving the LoRA adapter during ``fit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback


class LoRAAdapterSaver(Callback):
    """Saves the generator's LoRA adapter during ``fit`` (diffusers format, atomic).

    ``folder/step_N`` every ``every_n_steps`` optimizer steps (0: never) and
    ``folder/final`` when training ends; each loads with ``WanPipeline.load_lora_weights``
    or ``WanStereoGenerator(lora={"path": ...})``. Only rank 0 writes.
    """

    def __init__(self, folder: str | Path, every_n_steps: int = 0) -> None:
        self.folder, self.every_n_steps = Path(folder), every_n_steps
        self.saved: list[Path] = []
        self._last_step = -1

    def _save(self, trainer: Any, pl_module: Any, name: str) -> None:
        save = getattr(pl_module.generator, "save_lora", None)
        if save is None or not trainer.is_global_zero:
            return
        self.saved.append(save(self.folder / name))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step  # optimizer steps (gradient accumulation repeats a step)
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self._last_step = step
            self._save(trainer, pl_module, f"step_{step}")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._save(trainer, pl_module, "final")
        if trainer.is_global_zero and self.saved:
            print(f"LoRA adapter saved: {self.saved[-1]}")
