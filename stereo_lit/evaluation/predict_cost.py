"""What ``predict`` cost: per method and per video, from the measured ``generate()`` calls.

:class:`PredictCost` adds up the :class:`~stereo_lit.metrics.cost.CallCost` of every window
(wall seconds, NFE, VAE passes, peak memory; :func:`~stereo_lit.metrics.cost.measure_call`)
against the frames that window *produced* for its video (carried overlap frames cost time but
are not produced again; padding never counts), so a whole video's ``sec_per_81f`` is its
generation time per 81 output frames. Depth estimation and writing are not included.

At the end of ``predict`` the module prints, per method, one line of
:meth:`PredictCost.summary_lines`, e.g.::

    cost of wan: 9 frames in 2 windows: 0.812 s per 81 frames, NFE 36 per 81 frames (4 per window),
    VAE passes 36 per 81 frames (2 encodes + 2 decodes), peak 1.21 GiB (process peak RSS (VmHWM), reset per call)

Under DDP :meth:`PredictCost.gathered` pools every rank's totals (seconds and frames summed:
one process's time per 81 frames; the peak is the largest of any rank). Each video's totals
(:meth:`PredictCost.video_record`) go into ``prediction["cost"]``, for the output manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from stereo_lit.metrics.cost import FRAMES_PER_CLIP, GIB, MEMORY_LABELS, CallCost


@dataclass
class CostTotals:
    """Sums over calls (``None``: some call did not report that number).

    Attributes:
        calls: ``generate()`` calls (windows or window batches).
        frames: frames produced (source frames, without padding or re-made overlap).
        seconds: wall seconds of the calls.
        nfe, nfe_full, vae_encodes, vae_decodes: sums of the calls' counts.
        peak_bytes: the largest peak of one call, of kind ``memory`` (``"cuda"`` / ``"rss"``).
    """

    calls: int = 0
    frames: int = 0
    seconds: float = 0.0
    nfe: int | None = 0
    nfe_full: int | None = 0
    vae_encodes: int | None = 0
    vae_decodes: int | None = 0
    peak_bytes: int | None = None
    memory: str | None = None
    load_seconds: float = 0.0  # loading the models (first call), apart from ``seconds``
    load_peak_bytes: int | None = None

    def add(self, cost: CallCost, frames: int, seconds: float | None = None) -> None:
        """One call that produced ``frames`` frames; ``seconds``: its share of the call's time (default all)."""
        if frames < 0:
            raise ValueError(f"frames must be >= 0, got {frames}")
        self.calls += 1
        self.frames += int(frames)
        self.seconds += float(cost.seconds if seconds is None else seconds)
        for name in ("nfe", "nfe_full", "vae_encodes", "vae_decodes"):
            mine, theirs = getattr(self, name), getattr(cost, name)
            setattr(self, name, None if mine is None or theirs is None else mine + int(theirs))
        self._add_peak(cost.peak_bytes, cost.memory)
        self._add_load(getattr(cost, "load_seconds", 0.0), getattr(cost, "load_peak_bytes", None))

    def _add_load(self, seconds: float, peak: int | None) -> None:
        self.load_seconds += float(seconds or 0.0)
        if peak is not None and (self.load_peak_bytes is None or peak > self.load_peak_bytes):
            self.load_peak_bytes = int(peak)

    def _add_peak(self, peak: int | None, memory: str | None) -> None:
        if peak is None:
            return
        if self.peak_bytes is None or peak > self.peak_bytes:
            self.peak_bytes, self.memory = int(peak), memory

    def merge(self, other: "CostTotals") -> "CostTotals":
        """Totals of both (another rank's, for instance)."""
        out = CostTotals(**asdict(self))
        out.calls, out.frames, out.seconds = self.calls + other.calls, self.frames + other.frames, self.seconds + other.seconds
        for name in ("nfe", "nfe_full", "vae_encodes", "vae_decodes"):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(out, name, None if mine is None or theirs is None else mine + theirs)
        out._add_peak(other.peak_bytes, other.memory)
        out.load_seconds = self.load_seconds
        out._add_load(other.load_seconds, other.load_peak_bytes)
        return out

    @property
    def vae_passes(self) -> int | None:
        return None if self.vae_encodes is None or self.vae_decodes is None else self.vae_encodes + self.vae_decodes

    def per_81f(self, value: float | None) -> float | None:
        """``value`` per 81 produced frames (None when unknown or no frames)."""
        return None if value is None or self.frames == 0 else value * FRAMES_PER_CLIP / self.frames

    def record(self) -> dict[str, Any]:
        """JSON-ready totals and their per-81-frame rates (the manifest's ``cost`` field)."""
        return {
            **asdict(self),
            "vae_passes": self.vae_passes,
            "sec_per_81f": self.per_81f(self.seconds),
            "nfe_per_81f": self.per_81f(self.nfe),
            "vae_passes_per_81f": self.per_81f(self.vae_passes),
            "peak_gib": None if self.peak_bytes is None else self.peak_bytes / GIB,
            "memory_measured": MEMORY_LABELS.get(self.memory) if self.memory else None,
        }

    def line(self, name: str) -> str:
        """One human line: frames, windows, s / NFE / VAE passes per 81 frames, peak memory."""
        if self.frames == 0:
            return f"cost of {name}: no frames produced ({self.calls} calls)"

        def number(value: float | None, fmt: str) -> str:
            return "n/a" if value is None else format(value, fmt)

        per_call = "n/a" if self.nfe is None else format(self.nfe / self.calls, "g")
        full = "" if self.nfe_full is None or self.nfe_full == self.nfe else f", {self.nfe_full} full of {self.nfe}"
        vae = ("n/a" if self.vae_passes is None else
               f"{number(self.per_81f(self.vae_passes), '.4g')} per 81 frames ({self.vae_encodes} encodes + "
               f"{self.vae_decodes} decodes)")
        peak = ("peak n/a (not measurable here)" if self.peak_bytes is None else
                f"peak {self.peak_bytes / GIB:.3g} GiB ({MEMORY_LABELS.get(self.memory, self.memory)})")
        load = ""
        if self.load_seconds > 0:
            load_peak = "" if self.load_peak_bytes is None else f", peak {self.load_peak_bytes / GIB:.3g} GiB"
            load = f"; loading the models (not in the above): {self.load_seconds:.3g} s{load_peak}"
        return (
            f"cost of {name}: {self.frames} frames in {self.calls} window{'' if self.calls == 1 else 's'}: "
            f"{number(self.per_81f(self.seconds), '.4g')} s per 81 frames, "
            f"NFE {number(self.per_81f(self.nfe), '.4g')} per 81 frames ({per_call} per window{full}), "
            f"VAE passes {vae}, {peak}{load}"
        )


class PredictCost:
    """Cost bookkeeping of one ``predict`` run: totals per method and per (method, video)."""

    def __init__(self) -> None:
        self.methods: dict[str, CostTotals] = {}
        self.videos: dict[str, CostTotals] = {}

    def add(self, method: str, videos: list[str], frames: list[int], cost: CallCost) -> None:
        """One call of ``method`` that produced ``frames[i]`` frames of ``videos[i]``. Each video gets
        its share of the seconds (by frames) and the call's counts (its windows saw those evaluations)."""
        if len(videos) != len(frames):
            raise ValueError(f"videos ({len(videos)}) and frames ({len(frames)}) must pair up")
        self.methods.setdefault(method, CostTotals()).add(cost, sum(frames))
        total = sum(frames)
        for video, n in zip(videos, frames):
            share = cost.seconds * n / total if total else cost.seconds / len(videos)
            self.videos.setdefault(video, CostTotals()).add(cost, n, seconds=share)

    def video_record(self, video: str) -> dict[str, Any] | None:
        """The totals of ``video`` so far (:meth:`CostTotals.record`), None before its first window."""
        totals = self.videos.get(video)
        return None if totals is None else totals.record()

    def gathered(self, world_size: int = 1) -> dict[str, CostTotals]:
        """Per-method totals of every process (this process's alone outside DDP)."""
        import torch.distributed as dist

        if world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
            return dict(self.methods)
        parts: list[dict[str, dict] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, {k: asdict(v) for k, v in self.methods.items()})
        merged: dict[str, CostTotals] = {}
        for part in parts:
            for name, values in (part or {}).items():
                totals = CostTotals(**values)
                merged[name] = merged[name].merge(totals) if name in merged else totals
        return merged

    def summary_lines(self, world_size: int = 1) -> list[str]:
        """One :meth:`CostTotals.line` per method (a collective under DDP: call it on every rank)."""
        return [totals.line(name) for name, totals in self.gathered(world_size).items()]


__all__ = ["CostTotals", "PredictCost"]
