"""What a method costs: wall time, transformer evaluations (NFE), VAE passes and peak memory.

The papers (StereoPilot, M2SVid, StereoCrafter) quote the time per 81-frame clip (Wan's
clip length) and the number of function evaluations of the denoiser. Here:

- ``sec_per_81f`` = (sum of the wall seconds of every ``generate()`` call) / (sum of the
  *source* frames those calls produced) x 81; padding frames cost time but never count
  as frames. Seconds and frames are sum states, so under DDP this is one process's
  (one GPU's) time per 81 frames over the whole set.
- ``nfe_per_81f`` = transformer forward calls per 81 source frames, the same way; nan
  when a call did not report its NFE (see :func:`method_nfe`).
- ``vae_passes_per_81f`` = VAE ``encode`` + ``decode`` calls (each one pass over a window,
  whatever the VAE's internal chunks) per 81 source frames; nan when unknown.
- peak memory, GiB, the largest of any call (a max state under DDP), in a column that says
  what was measured: ``peak_cuda_gib`` = ``torch.cuda.max_memory_allocated`` with the peak
  reset at the start of each call (tensors of this process: weights on the GPU included,
  the allocator's cache and other processes not); ``peak_rss_gib`` on CPU = the process's
  peak resident set size (Linux ``VmHWM``, reset at the start of each call through
  ``/proc/self/clear_refs``; loaded weights included). Where the CPU peak cannot be reset
  (no ``/proc``) the call's peak is unknown (nan), never the peak since process start.
- ``load_s`` and ``load_peak_{rss,cuda}_gib``: loading the models, in none of the above
  (:func:`load_models`, before the first call's clock starts).

:func:`timed_generate` measures a call (CUDA synchronised before and after);
:func:`measure_call` measures any block of code the same way.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

FRAMES_PER_CLIP = 81
GIB = 2**30

#: modules whose generators run no transformer and no VAE (NFE 0, VAE passes 0)
TRANSFORMER_FREE_MODULES = ("stereo_lit.generators.geometric",)

#: peak-memory kinds -> their table column
MEMORY_COLUMNS = {"cuda": "peak_cuda_gib", "rss": "peak_rss_gib"}
#: peak-memory kinds -> the column of the models' loading (apart from the calls)
LOAD_MEMORY_COLUMNS = {"cuda": "load_peak_cuda_gib", "rss": "load_peak_rss_gib"}
MEMORY_LABELS = {
    "cuda": "CUDA max_memory_allocated, reset per call",
    "rss": "process peak RSS (VmHWM), reset per call",
}


@dataclass
class CallCost:
    """One ``generate()`` call.

    Attributes:
        seconds: wall seconds (CUDA synchronised).
        nfe: transformer forward calls (None = not reported / not countable).
        vae_encodes, vae_decodes: whole-window VAE ``encode`` / ``decode`` calls (None = unknown).
        nfe_full: calls in which the whole block stack ran (a block cache lowers it; None = unknown).
        peak_bytes: peak memory during the call in bytes (None = not measured), of kind ``memory``;
            the models' loading is not in it, nor in ``seconds``.
        load_seconds, load_peak_bytes: the models' loading when this call triggered it (0 / None
            otherwise): wall seconds and peak memory of the load alone, reported apart.
        memory: ``"cuda"`` (max_memory_allocated) or ``"rss"`` (process peak RSS); None with no peak.
        load_memory: the kind of ``load_peak_bytes`` (None with no load peak).
    """

    seconds: float
    nfe: int | None
    vae_encodes: int | None = None
    vae_decodes: int | None = None
    nfe_full: int | None = None
    peak_bytes: int | None = None
    memory: str | None = None
    load_seconds: float = 0.0
    load_peak_bytes: int | None = None
    load_memory: str | None = None

    @property
    def vae_passes(self) -> int | None:
        """``vae_encodes + vae_decodes`` (None when either is unknown)."""
        if self.vae_encodes is None or self.vae_decodes is None:
            return None
        return self.vae_encodes + self.vae_decodes


def method_nfe(method: Any, out: Any = None) -> int | None:
    """Transformer evaluations of the last call of ``method``, or None when it does not say.

    Read, in order, from ``out.extras["nfe"]`` (int or 0-d tensor), the method's
    ``last_nfe`` or ``nfe`` attribute (an int, or an object with an int ``count`` /
    ``total``, as :class:`stereo_lit.diffusion.nfe.NFECount`), and 0 for the
    transformer-free methods of :data:`TRANSFORMER_FREE_MODULES`.
    """
    nfe = _reported_nfe(method, out)
    if nfe is None and _transformer_free(method):
        return 0
    return nfe


def _transformer_free(method: Any) -> bool:
    return type(method).__module__ in TRANSFORMER_FREE_MODULES


def _as_int(value: Any) -> int | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return int(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return int(value)
    return None


def _reported_nfe(method: Any, out: Any) -> int | None:
    extras = getattr(out, "extras", None) or {}
    candidates = [extras.get("nfe"), getattr(method, "last_nfe", None), getattr(method, "nfe", None)]
    for value in candidates:
        for attr in ("count", "total"):
            if value is not None and not isinstance(value, (int, float, torch.Tensor)) and hasattr(value, attr):
                value = getattr(value, attr)
        if _as_int(value) is not None:
            return _as_int(value)
    return None


def _extra(out: Any, key: str) -> int | None:
    return _as_int((getattr(out, "extras", None) or {}).get(key))


def _synchronize(*tensors: Any) -> None:
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_cuda:
            torch.cuda.synchronize(t.device)
            return


def _components(method: Any) -> Any:
    return getattr(method, "components", None)


def method_transformer(method: Any) -> torch.nn.Module | None:
    """The denoiser a method runs (``method.components.transformer`` or ``method.transformer``), or None.

    Reading ``components`` of a Wan generator loads its models (once): :func:`measure_call`
    loads them with :func:`load_models` before its clock starts, so the load never counts as
    generation time.
    """
    transformer = getattr(_components(method), "transformer", None)
    transformer = transformer if transformer is not None else getattr(method, "transformer", None)
    return transformer if isinstance(transformer, torch.nn.Module) else None


def method_vae(method: Any) -> Any:
    """The VAE a method runs (``method.components.vae`` or ``method.vae``; anything with
    ``encode``/``decode``), or None."""
    vae = getattr(_components(method), "vae", None)
    vae = vae if vae is not None else getattr(method, "vae", None)
    return vae if vae is not None and hasattr(vae, "encode") and hasattr(vae, "decode") else None


# ---------------------------------------------------------------------- peak memory
_HWM = re.compile(r"^VmHWM:\s+(\d+)\s+kB", re.MULTILINE)


def _read_rss_peak() -> int | None:
    try:
        match = _HWM.search(Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def reset_rss_peak() -> bool:
    """Reset this process's peak RSS (Linux: ``5`` into ``/proc/self/clear_refs``); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return _read_rss_peak() is not None


@dataclass
class PeakMemory:
    """Filled by :func:`peak_memory` on exit: ``peak_bytes`` of kind ``memory`` (None: not measured)."""

    peak_bytes: int | None = None
    memory: str | None = None


@contextlib.contextmanager
def peak_memory(device: torch.device | str | None) -> Iterator[PeakMemory]:
    """Peak memory of the block: CUDA ``max_memory_allocated`` on a CUDA ``device``, else the
    process peak RSS (both reset on entry). See the module docstring for what each includes."""
    result = PeakMemory()
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        result.peak_bytes, result.memory = int(torch.cuda.max_memory_allocated(device)), "cuda"
        return
    resettable = reset_rss_peak()
    yield result
    if resettable:
        result.peak_bytes, result.memory = _read_rss_peak(), "rss"


def _cuda_device(tensors: list[Any], transformer: torch.nn.Module | None) -> torch.device | None:
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_cuda:
            return t.device
    if transformer is not None:
        for param in transformer.parameters():
            return param.device if param.is_cuda else None
    return None


# ---------------------------------------------------------------------- one call
@dataclass
class _Counters:
    nfe: Any = None
    vae: Any = None
    memory: PeakMemory = field(default_factory=PeakMemory)
    seconds: float = 0.0
    load_seconds: float = 0.0
    load_memory: PeakMemory = field(default_factory=PeakMemory)


def _first_video(tensors: tuple[Any, ...]) -> torch.Tensor | None:
    return next((t for t in tensors if isinstance(t, torch.Tensor) and t.ndim == 5), None)


def _load_device(method: Any, tensors: tuple[Any, ...]) -> torch.device | None:
    """Where the load's peak is measured: the CUDA device of an input or of the method, else None (RSS)."""
    devices = [t.device for t in tensors if isinstance(t, torch.Tensor)] + [torch.device(str(getattr(method, "device", "cpu")))]
    return next((device for device in devices if device.type == "cuda"), None)


def load_models(method: Any, *tensors: Any) -> tuple[float, PeakMemory]:
    """Load ``method``'s models, if it loads them lazily and has not yet: ``(seconds, peak)`` of
    the load (``(0.0, PeakMemory())`` when nothing was read: no loader, already held, or shared
    with an identical set-up loaded by another method).

    A method that loads lazily has ``load_models(video) -> bool`` (True: weights were read
    now) and ``models_loaded`` (:class:`~stereo_lit.diffusion.wan_models.WanModels`);
    ``video`` is the first 5-D tensor of ``tensors`` (its memory plan is settled from it
    before the load). Other methods (geometric, already loaded) cost nothing here.
    """
    loader = getattr(method, "load_models", None)
    if not callable(loader) or getattr(method, "models_loaded", True):
        return 0.0, PeakMemory()
    with peak_memory(_load_device(method, tensors)) as memory:
        start = time.perf_counter()
        loaded = loader(_first_video(tensors))
        seconds = time.perf_counter() - start
    return (seconds, memory) if loaded else (0.0, PeakMemory())


@contextlib.contextmanager
def measure_call(method: Any, *tensors: Any, prepare: Callable[[], Any] | None = None) -> Iterator[_Counters]:
    """Count, time and take the peak memory of the block, a call of ``method`` (its transformer's
    forward calls and its VAE's passes are counted with hooks when it has them). ``tensors``:
    inputs whose device says where to synchronise and measure CUDA memory. Use
    :func:`call_cost` afterwards to combine the counts with what the call reported.

    The models' loading is never in the block's time or peak: a method not loaded yet is
    loaded first (:func:`load_models`), timed and measured on its own (``load_seconds``,
    ``load_memory``). ``prepare`` then runs, measured by neither (work shared by every row)."""
    from stereo_lit.diffusion.nfe import count_nfe, count_vae_passes

    counters = _Counters()
    counters.load_seconds, counters.load_memory = load_models(method, *tensors)
    if prepare is not None:
        prepare()
    transformer, vae = method_transformer(method), method_vae(method)
    with contextlib.ExitStack() as stack:
        if transformer is not None:
            counters.nfe = stack.enter_context(count_nfe(transformer))
        if vae is not None:
            counters.vae = stack.enter_context(count_vae_passes(vae))
        _synchronize(*tensors)
        counters.memory = stack.enter_context(peak_memory(_cuda_device(list(tensors), transformer)))
        start = time.perf_counter()
        yield counters
        _synchronize(*tensors)
        counters.seconds = time.perf_counter() - start


def call_cost(method: Any, counters: _Counters, out: Any = None) -> CallCost:
    """The :class:`CallCost` of a measured call: what ``out.extras`` / the method report, else
    what the hooks counted, else 0 for the transformer-free methods, else None."""
    free = _transformer_free(method)

    def pick(reported: int | None, counted: int | None) -> int | None:
        if reported is not None:
            return reported
        return counted if counted is not None else (0 if free else None)

    nfe_counter, vae_counter = counters.nfe, counters.vae
    return CallCost(
        seconds=counters.seconds,
        nfe=pick(_reported_nfe(method, out), None if nfe_counter is None else int(nfe_counter.count)),
        nfe_full=pick(_extra(out, "nfe_full"), None if nfe_counter is None else int(nfe_counter.full)),
        vae_encodes=pick(_extra(out, "vae_encodes"), None if vae_counter is None else int(vae_counter.encodes)),
        vae_decodes=pick(_extra(out, "vae_decodes"), None if vae_counter is None else int(vae_counter.decodes)),
        peak_bytes=counters.memory.peak_bytes,
        memory=counters.memory.memory,
        load_seconds=counters.load_seconds,
        load_peak_bytes=counters.load_memory.peak_bytes,
        load_memory=counters.load_memory.memory,
    )


def timed_generate(method: Any, left: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[Any, CallCost]:
    """``(method.generate(left, *args, **kwargs), CallCost)``: wall time (CUDA-synchronised), NFE,
    VAE passes and peak memory of the call (see :func:`call_cost` for where each comes from).
    The ``prompt`` (keyword; None: the method's own) is encoded (``method.prompt_embeds``) before
    the clock: every method on that text encoder shares its embeddings, as all share the depth."""
    out = None
    encode = getattr(method, "prompt_embeds", None)
    prepare = (lambda: encode(kwargs.get("prompt"))) if callable(encode) else None
    with measure_call(method, left, prepare=prepare) as counters:
        out = method.generate(left, *args, **kwargs)
        _synchronize(getattr(out, "right", None))
    return out, call_cost(method, counters, out)


COST_FOOTNOTE = (
    "sec_per_81f: wall seconds of the method's generate() calls per 81 source frames (padding frames "
    "not counted; one process's time, depth excluded); nfe_per_81f: transformer evaluations per 81 "
    "source frames; vae_passes_per_81f: VAE encode + decode calls (one pass over a window each) per 81 "
    "source frames (both 0 for the geometric methods, n/a when a method does not report them); "
    "peak_cuda_gib: the largest torch.cuda.max_memory_allocated of one call (reset per call; weights on "
    "the GPU included); peak_rss_gib (CPU runs): the largest process peak resident set size of one call "
    "(Linux VmHWM reset per call; loaded weights and other methods' models in this process included). "
    "None of these include loading the models: load_s is the wall seconds spent loading the method's "
    "models, before its first call's clock started (0: it loaded nothing, having no models or sharing "
    "an identical set-up an earlier row loaded; the largest process's under DDP); load_peak_rss_gib / "
    "load_peak_cuda_gib the peak during that load (n/a without one). Prompts are encoded once per text "
    "encoder before the clock (shared by every row, like the depth)."
)

__all__ = [
    "COST_FOOTNOTE", "FRAMES_PER_CLIP", "LOAD_MEMORY_COLUMNS", "MEMORY_COLUMNS", "MEMORY_LABELS", "CallCost", "GenerationCost", "PeakMemory",
    "call_cost", "load_models", "measure_call", "method_nfe", "method_transformer", "method_vae", "peak_memory", "reset_rss_peak",
    "timed_generate",
]


#: predict stages, in pipeline order (StageTimes)
STAGES = ("decode", "depth", "generate", "encode", "write")


class StageTimes:
    """Busy seconds of each predict stage and the frames made, for the run summary.

    ``decode`` (reading and padding windows, in the reader thread), ``depth`` (depth and
    disparity), ``generate`` (the right view), ``encode`` (the encoders, in their threads)
    and ``write`` (the writer's own work in the main thread: layouts handed over, files
    finished; time blocked on a full encoding queue is left out, it is encode-bound).
    Stages run at the same time, so their sum can exceed the wall time; each stage's
    share is of that sum: the largest share is the bottleneck.
    """

    def __init__(self) -> None:
        self.seconds = {stage: 0.0 for stage in STAGES}
        self.frames = 0
        self.started: float | None = None
        self.stopped: float | None = None

    def start(self) -> None:
        """Mark the start of the run (wall clock)."""
        self.started, self.stopped = time.perf_counter(), None

    def stop(self) -> None:
        self.stopped = time.perf_counter()

    def add(self, stage: str, seconds: float) -> None:
        if stage not in self.seconds:
            raise ValueError(f"unknown predict stage {stage!r}; stages are {STAGES}")
        self.seconds[stage] += max(0.0, float(seconds))

    def shares(self) -> dict[str, float]:
        """``{stage: percent of the summed busy time}`` (sums to 100; all 0 when nothing ran)."""
        total = sum(self.seconds.values())
        return {stage: (100.0 * s / total if total > 0 else 0.0) for stage, s in self.seconds.items()}

    def wall_seconds(self) -> float | None:
        if self.started is None:
            return None
        return (self.stopped or time.perf_counter()) - self.started

    def summary_line(self) -> str:
        """``N frames in T s (F frames/s); busy: decode a s (p%), ...``."""
        wall = self.wall_seconds()
        rate = f"{self.frames / wall:.2f} frames/s" if wall else "frames/s unknown"
        head = f"{self.frames} frames in {wall:.1f} s ({rate})" if wall is not None else f"{self.frames} frames"
        shares = self.shares()
        parts = ", ".join(f"{stage} {self.seconds[stage]:.1f} s ({shares[stage]:.0f}%)" for stage in STAGES)
        return f"{head}; stage busy time (stages overlap): {parts}"
