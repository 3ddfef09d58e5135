"""The pooled generation cost of a method: a torchmetrics ``Metric`` over :class:`~stereo_lit.metrics.cost.CallCost`.

Apart from :mod:`stereo_lit.metrics.cost` so that timing a call (the converter's stage times,
``measure_call``) never imports torchmetrics.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric

from stereo_lit.metrics.cost import FRAMES_PER_CLIP, GIB, LOAD_MEMORY_COLUMNS, MEMORY_COLUMNS, CallCost


class GenerationCost(Metric):
    """Sum states of seconds, frames, NFE and VAE passes, a max state of peak memory; loading apart.

    ``update(seconds, frames, nfe, vae_passes, peak_bytes, memory, load_seconds, load_peak_bytes,
    load_memory)``: one call that produced ``frames`` source (unpadded) frames, and the load it
    triggered before its clock started. ``compute()``: ``sec_per_81f``, ``nfe_per_81f``,
    ``vae_passes_per_81f``, the peak column of the kind measured (:data:`MEMORY_COLUMNS`; absent
    when no call measured one: n/a), ``load_s`` (0: loaded nothing, or shared an identical set-up
    another row loaded; under DDP the slowest process's) and the load's peak
    (:data:`LOAD_MEMORY_COLUMNS`; absent without a load).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, prefix: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix
        for name in ("seconds", "frames", "nfe", "vae", "calls", "calls_without_nfe", "calls_without_vae",
                     "calls_without_peak"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("peak_bytes", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="max")
        # loading: this process's sum, the slowest process's under DDP; the load's peak
        self.add_state("load_seconds", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="max")
        self.add_state("load_peak_bytes", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="max")
        self.memory: str | None = None  # the kind of the peaks seen (one per run)
        self.load_memory: str | None = None  # the kind of the load peaks seen

    def update(
        self, seconds: float, frames: int, nfe: int | None = None, vae_passes: int | None = None,
        peak_bytes: int | None = None, memory: str | None = None,
        load_seconds: float = 0.0, load_peak_bytes: int | None = None, load_memory: str | None = None,
    ) -> None:
        if seconds < 0 or frames < 0 or load_seconds < 0:
            raise ValueError(f"seconds ({seconds}), frames ({frames}) and load_seconds ({load_seconds}) must be >= 0")
        if peak_bytes is not None and memory not in MEMORY_COLUMNS:
            raise ValueError(f"memory must be one of {tuple(MEMORY_COLUMNS)} with peak_bytes, got {memory!r}")
        if load_peak_bytes is not None and load_memory not in LOAD_MEMORY_COLUMNS:
            raise ValueError(f"load_memory must be one of {tuple(LOAD_MEMORY_COLUMNS)} with load_peak_bytes, got {load_memory!r}")
        self._update_load(float(load_seconds), load_peak_bytes, load_memory)
        self.seconds += float(seconds)
        self.frames += float(frames)
        self.calls += 1.0
        for value, total, missing in ((nfe, "nfe", "calls_without_nfe"), (vae_passes, "vae", "calls_without_vae")):
            if value is None:
                setattr(self, missing, getattr(self, missing) + 1.0)
            else:
                setattr(self, total, getattr(self, total) + float(value))
        if peak_bytes is None:
            self.calls_without_peak += 1.0
        else:
            if self.memory is not None and memory != self.memory:
                raise ValueError(f"peak memory of kind {memory!r} after {self.memory!r}: one kind per metric")
            self.memory = memory
            self.peak_bytes = torch.maximum(self.peak_bytes, torch.tensor(float(peak_bytes), dtype=torch.float64))

    def _update_load(self, seconds: float, peak_bytes: int | None, memory: str | None) -> None:
        self.load_seconds += seconds
        if peak_bytes is not None:
            if self.load_memory is not None and memory != self.load_memory:
                raise ValueError(f"load peak of kind {memory!r} after {self.load_memory!r}: one kind per metric")
            self.load_memory = memory
            self.load_peak_bytes = torch.maximum(self.load_peak_bytes, torch.tensor(float(peak_bytes), dtype=torch.float64))

    def update_call(self, cost: CallCost, frames: int) -> None:
        """``update`` from a :class:`CallCost` of a call that produced ``frames`` source frames
        (its load, when it triggered one, goes to the load columns)."""
        self.update(cost.seconds, frames, cost.nfe, cost.vae_passes, cost.peak_bytes, cost.memory,
                    cost.load_seconds, cost.load_peak_bytes, cost.load_memory)

    def compute(self) -> dict[str, torch.Tensor]:
        frames = float(self.frames)
        per = FRAMES_PER_CLIP / frames if frames > 0 else math.nan

        def per_81(total: torch.Tensor, missing: torch.Tensor) -> float:
            return float(total) * per if float(missing) == 0 else math.nan

        out = {
            "sec_per_81f": float(self.seconds) * per,
            "nfe_per_81f": per_81(self.nfe, self.calls_without_nfe),
            "vae_passes_per_81f": per_81(self.vae, self.calls_without_vae),
        }
        if self.memory is not None:  # some call measured a peak (a row without one has no peak column: n/a)
            out[MEMORY_COLUMNS[self.memory]] = float(self.peak_bytes) / GIB
        out["load_s"] = float(self.load_seconds)
        if self.load_memory is not None:  # this method's models were loaded (not shared, not given)
            out[LOAD_MEMORY_COLUMNS[self.load_memory]] = float(self.load_peak_bytes) / GIB
        return {f"{self.prefix}{k}": torch.tensor(v, dtype=torch.float64) for k, v in out.items()}
