"""What a method costs: wall time per 81 frames and transformer evaluations (NFE).

The papers (StereoPilot, M2SVid, StereoCrafter) quote the time per 81-frame clip (Wan's
clip length) and the number of function evaluations of the denoiser. Here:

- ``sec_per_81f`` = (sum of the wall seconds of every ``generate()`` call) / (sum of the
  *source* frames those calls produced) x 81; padding frames cost time but never count
  as frames. Seconds and frames are sum states, so under DDP this is one process's
  (one GPU's) time per 81 frames over the whole set.
- ``nfe_per_81f`` = transformer forward calls per 81 source frames, the same way; nan
  when a call did not report its NFE (see :func:`method_nfe`).

:func:`timed_generate` measures a call (CUDA synchronised before and after).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torchmetrics import Metric

FRAMES_PER_CLIP = 81

#: modules whose generators run no transformer (NFE 0)
TRANSFORMER_FREE_MODULES = ("stereo_lit.generators.geometric",)


@dataclass
class CallCost:
    """One ``generate()`` call: wall seconds and transformer evaluations (None = not reported)."""

    seconds: float
    nfe: int | None


def method_nfe(method: Any, out: Any = None) -> int | None:
    """Transformer evaluations of the last call of ``method``, or None when it does not say.

    Read, in order, from ``out.extras["nfe"]`` (int or 0-d tensor), the method's
    ``last_nfe`` or ``nfe`` attribute (an int, or an object with an int ``count`` /
    ``total``, as :class:`stereo_lit.diffusion.nfe.NFECount`), and 0 for the
    transformer-free methods of :data:`TRANSFORMER_FREE_MODULES`.
    """
    nfe = _reported_nfe(method, out)
    if nfe is None and type(method).__module__ in TRANSFORMER_FREE_MODULES:
        return 0
    return nfe


def _reported_nfe(method: Any, out: Any) -> int | None:
    extras = getattr(out, "extras", None) or {}
    candidates = [extras.get("nfe"), getattr(method, "last_nfe", None), getattr(method, "nfe", None)]
    for value in candidates:
        for attr in ("count", "total"):
            if value is not None and not isinstance(value, (int, float, torch.Tensor)) and hasattr(value, attr):
                value = getattr(value, attr)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return int(value.item())
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return int(value)
    return None


def _synchronize(*tensors: Any) -> None:
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_cuda:
            torch.cuda.synchronize(t.device)
            return


def method_transformer(method: Any) -> torch.nn.Module | None:
    """The denoiser a method runs (``method.components.transformer`` or ``method.transformer``), or None.

    Reading ``components`` of a Wan generator loads its models (once): called before the
    clock starts, so the load never counts as generation time.
    """
    transformer = getattr(getattr(method, "components", None), "transformer", None)
    transformer = transformer if transformer is not None else getattr(method, "transformer", None)
    return transformer if isinstance(transformer, torch.nn.Module) else None


def timed_generate(method: Any, left: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[Any, CallCost]:
    """``(method.generate(left, *args, **kwargs), CallCost)``: wall time (CUDA-synchronised) and NFE.

    NFE: what the method reports (:func:`method_nfe`), else the forward calls of its
    transformer counted with :func:`stereo_lit.diffusion.nfe.count_nfe`, else 0 for the
    transformer-free methods, else None.
    """
    transformer = method_transformer(method)
    counting = contextlib.nullcontext(None)
    if transformer is not None:
        from stereo_lit.diffusion.nfe import count_nfe

        counting = count_nfe(transformer)
    _synchronize(left)
    with counting as counter:
        start = time.perf_counter()
        out = method.generate(left, *args, **kwargs)
        _synchronize(left, getattr(out, "right", None))
        seconds = time.perf_counter() - start
    nfe = _reported_nfe(method, out)
    if nfe is None and counter is not None:
        nfe = int(counter.count)
    return out, CallCost(seconds=seconds, nfe=nfe if nfe is not None else method_nfe(method, out))


class GenerationCost(Metric):
    """Sum states of seconds, frames and NFE; ``compute()`` gives ``sec_per_81f`` and ``nfe_per_81f``.

    ``update(seconds, frames, nfe=None)``: one call that produced ``frames`` source
    (unpadded) frames in ``seconds``, with ``nfe`` transformer evaluations (None: unknown).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, prefix: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix
        for name in ("seconds", "frames", "nfe", "calls", "calls_without_nfe"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, seconds: float, frames: int, nfe: int | None = None) -> None:
        if seconds < 0 or frames < 0:
            raise ValueError(f"seconds ({seconds}) and frames ({frames}) must be >= 0")
        self.seconds += float(seconds)
        self.frames += float(frames)
        self.calls += 1.0
        if nfe is None:
            self.calls_without_nfe += 1.0
        else:
            self.nfe += float(nfe)

    def compute(self) -> dict[str, torch.Tensor]:
        frames = float(self.frames)
        per = FRAMES_PER_CLIP / frames if frames > 0 else math.nan
        nfe = float(self.nfe) * per if float(self.calls_without_nfe) == 0 else math.nan
        return {
            f"{self.prefix}sec_per_81f": torch.tensor(float(self.seconds) * per, dtype=torch.float64),
            f"{self.prefix}nfe_per_81f": torch.tensor(nfe, dtype=torch.float64),
        }


COST_FOOTNOTE = (
    "sec_per_81f: wall seconds of the method's generate() calls per 81 source frames (padding frames "
    "not counted; one process's time, depth excluded); nfe_per_81f: transformer evaluations per 81 "
    "source frames (0 for the geometric methods, n/a when a method does not report them)."
)

__all__ = ["COST_FOOTNOTE", "FRAMES_PER_CLIP", "CallCost", "GenerationCost", "method_nfe", "method_transformer", "timed_generate"]
