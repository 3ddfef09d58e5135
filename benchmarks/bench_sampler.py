#!/usr/bin/env python
"""What stereo sampling costs, measured side by side in one run: NFE, VAE passes, wall time, peak memory.

    python benchmarks/bench_sampler.py                    # CPU defaults: mid-size random transformer, 9x96x160,
                                                          # 50/8 steps, 5 repeats: about 4 min of CPU time (one
                                                          # torch thread; wall time is longer on a busy machine)
    python benchmarks/bench_sampler.py --no-cost-table --repeats 11   # only stereo vs plain, tighter spread
    python benchmarks/bench_sampler.py --profile          # + where the stereo window's time goes (one extra run)
    python benchmarks/bench_sampler.py --repeats 3 --steps 4 --fast-steps 2   # a quick check (under a minute)
    python benchmarks/bench_sampler.py --real-size        # CUDA only: Wan2.1-T2V-1.3B architecture, 81x480x832

Every loop uses the same random models, size and precomputed prompt embeddings, and all of
them run in ONE interleaved group: each loop is warmed up (``--warmup``), then repeat ``r``
runs every loop once, the order rotated by ``r``, so a change of the machine's load hits all
loops alike. Ratios are taken per repeat (loops of the same round) and summarised by their
median and inter-quartile range (IQR, inclusive quartiles) with min and max; ratios are
printed rounded *up* (never in the stereo side's favour). The load average is printed at the
start and the end: on a shared machine it says how much to trust the wall times; on CPU the
process CPU-time ratio (less disturbed by other processes) is printed as well.

The loops (``S`` = ``--steps``, ``F`` = ``--fast-steps``):

- ``plain``: diffusers' ``WanPipeline.__call__``, ``S`` steps with CFG (noise -> latents -> video);
- ``stereo``: :meth:`WanStereoGenerator.generate` with ``--strategy`` (default ``x0_blend``), same
  steps, scheduler, CFG and NFE (warp + VAE encode of the warp + guided denoising + decode +
  cycle error), one window of all frames;
- ``stereo + inversion``: the same with ``sampling.noise: inverted`` (the left latent is inverted
  first with the sampler's CFG: 2x the NFE, one more VAE encode);
- ``stereo CFG-free``: ``F`` steps, ``guidance_scale`` 1 (no unconditional pass);
- ``stereo CFG-free + first_block cache``: the same with diffusers' ``FirstBlockCacheConfig``
  (``--cache-threshold``) on a copy of the transformer (full evaluations drop; NFE does not). With
  random weights the first block's residual changes a lot between steps: at threshold 0.1 the
  mid-size model never skips, at the default 0.2 it runs 3 of 8 calls in full. The row measures
  the saving of the skipped blocks, not the quality of a cache on trained weights.

Printed: (1) stereo vs plain (issue 13, item 5: target median ratio <= 1.05): the wall-time (and
CPU-time) ratio per repeat, then the same split at the transformer: both loops make the same
transformer calls (same shapes, NFE checked equal), so the ratio of their transformer time is the
machine's noise alone (on a shared 2-core machine it spreads by +-10 %), while the seconds outside
the transformer hold the stereo overhead (warp, VAE encode of the warp, strategy edits, cycle
error, bookkeeping). ``(plain + (stereo - plain outside the transformer)) / plain`` per repeat is
the ratio with that noise taken out: the figure to read on a busy machine. (2) the cost
table (item 4): steps, NFE, full evaluations (calls whose last block ran), VAE passes (encode +
decode calls), NFE / full / wall-time ratios to the ``S``-step CFG stereo row, median and IQR of
the seconds and the peak memory of one run (CUDA: ``torch.cuda.max_memory_allocated`` reset per
run; CPU: process peak RSS, Linux ``VmHWM`` reset per run, weights included). NFE and VAE passes
are counted with hooks (:func:`stereo_lit.diffusion.nfe.count_nfe`,
:func:`~stereo_lit.diffusion.nfe.count_vae_passes`), nothing in the sampler changes.

``--profile`` times the pieces of one stereo and one plain run (warp, VAE encode/decode,
transformer calls, the strategy's per-step edit, scheduler steps, cycle error, the rest) by
wrapping them, after the measured repeats; the wrapped run itself is not part of any ratio.

``--real-size`` builds the true Wan2.1-T2V-1.3B transformer and VAE (random weights, bfloat16
transformer; timing only) and reports seconds per 81-frame clip and peak GPU memory of plain and
stereo sampling without offload, then of stereo sampling with diffusers' model CPU offload
(``enable_model_cpu_offload``: measured after the others, in its own group). It needs CUDA and
exits with an error naming the problem without it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stereo_lit.diffusion.nfe import count_nfe, count_vae_passes
from stereo_lit.metrics.cost import GIB, MEMORY_LABELS, peak_memory


# ---------------------------------------------------------------------- models
def build_parts(real_size: bool, dtype: torch.dtype, device: str) -> dict[str, Any]:
    """Random Wan components: ``transformer, vae, scheduler, text_encoder, tokenizer`` on ``device``
    (tiny text encoder: the prompt embeddings are given, never encoded)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from stereo_lit.diffusion.tiny import tiny_wan_components

    parts = tiny_wan_components(seed=0)
    torch.manual_seed(0)
    if real_size:  # Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json and vae/config.json
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
            text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
        )
        vae = AutoencoderKLWan(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True])
    else:  # the mid-size random transformer: 4 layers of width 256 (transformer time dominates, as on a GPU)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=64, in_channels=16, out_channels=16,
            text_dim=parts["text_encoder"].config.d_model, freq_dim=64, ffn_dim=1024, num_layers=4,
            cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=64,
        )
        vae = parts["vae"]
    parts["vae"] = vae.eval().float().to(device)
    parts["transformer"] = cast_like_from_pretrained(transformer.eval(), dtype).to(device)
    parts["text_encoder"] = parts["text_encoder"].to(device)
    return parts


def cast_like_from_pretrained(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast to ``dtype`` but keep the model's ``_keep_in_fp32_modules`` in float32, as ``from_pretrained`` does."""
    if dtype == torch.float32:
        return model
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, param in model.named_parameters():
        if not keep.intersection(name.split(".")):
            param.data = param.data.to(dtype)
    return model


def scene(frames: int, height: int, width: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random texture, far plane with a near box: a realistic warp with holes."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, frames, max(height // 8, 1), max(width // 8, 1), generator=g)
    left = torch.nn.functional.interpolate(coarse, size=(frames, height, width), mode="trilinear")
    disparity = torch.full((1, 1, frames, height, width), 0.01 * width)
    disparity[..., height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 0.03 * width
    return left.to(device), disparity.to(device)


# ---------------------------------------------------------------------- measuring
@dataclass
class Loop:
    """One thing to time: ``fn()`` runs it once on ``transformer`` / ``vae`` (counted there)."""

    label: str
    fn: Callable[[], None]
    steps: int
    transformer: torch.nn.Module
    vae: Any
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    nfe: list[int] = field(default_factory=list)
    full: list[int] = field(default_factory=list)
    vae_passes: list[int] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    memory: str | None = None
    transformer_seconds: list[float] = field(default_factory=list)

    def outside_transformer(self) -> list[float]:
        """Per run: wall seconds not spent in transformer forward calls."""
        return [total - inner for total, inner in zip(self.seconds, self.transformer_seconds)]


def summary(values: list[float]) -> dict[str, float]:
    """Median, min, max and quartiles (``q1``/``q3``, inclusive method) of ``values``."""
    if not values:
        raise ValueError("summary() needs at least one value")
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else (values[0],) * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "q1": q1, "q3": q3}


def up(value: float, digits: int = 3) -> str:
    """``value`` rounded *up* to ``digits`` decimals (a ratio is never printed in the stereo side's favour)."""
    if not math.isfinite(value):
        return str(value)
    scale = 10**digits
    return f"{math.ceil(value * scale - 1e-9) / scale:.{digits}f}"


def run_once(loop: Loop, device: str) -> None:
    """One timed run of ``loop``: wall and CPU seconds, NFE, full evaluations, VAE passes, peak memory,
    and the wall seconds inside transformer forward calls (hooks; CUDA synchronised around each call)."""
    cuda = device.startswith("cuda")
    gc.collect()
    if cuda:
        torch.cuda.synchronize()
    inside: dict[str, list[float]] = {}
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with count_nfe(loop.transformer) as nfe, count_vae_passes(loop.vae) as vae, peak_memory(device) as peak, \
            transformer_timer(loop.transformer, inside, sync):
        start, start_cpu = time.perf_counter(), time.process_time()
        loop.fn()
        if cuda:
            torch.cuda.synchronize()
        loop.seconds.append(time.perf_counter() - start)
        loop.cpu_seconds.append(time.process_time() - start_cpu)
    loop.nfe.append(nfe.count)
    loop.full.append(nfe.full)
    loop.transformer_seconds.append(inside.get("transformer forward", [0.0, 0])[0])
    loop.vae_passes.append(vae.passes)
    if peak.peak_bytes is not None:
        loop.peaks.append(peak.peak_bytes)
        loop.memory = peak.memory


def measure(loops: list[Loop], device: str, repeats: int, warmup: int = 1) -> None:
    """Warm every loop up ``warmup`` times, then run them ``repeats`` times interleaved.

    Repeat ``r`` runs the loops rotated by ``r`` (A B C, B C A, C A B, ...), so slow drift of the
    machine's load hits every loop alike. Fills each loop's lists (one entry per timed run).
    """
    for _ in range(warmup):
        for loop in loops:
            loop.fn()
    for r in range(repeats):
        k = r % len(loops)
        for loop in loops[k:] + loops[:k]:
            run_once(loop, device)


def constant(loop: Loop, what: str) -> int:
    """The loop's NFE / full / VAE passes; raises when the repeats disagree (a non-deterministic cache)."""
    values = set(getattr(loop, what))
    if len(values) != 1:
        raise RuntimeError(f"{loop.label}: {what} differs between repeats: {sorted(values)}")
    return values.pop()


def ratios(a: list[float], b: list[float]) -> list[float]:
    """Per-repeat ratios ``a[r] / b[r]`` (runs of the same round)."""
    return [x / y for x, y in zip(a, b)]


def peak_text(loop: Loop) -> str:
    return "n/a" if not loop.peaks else f"{max(loop.peaks) / GIB:.3f}"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # not available on this platform
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} CPUs)"


# ---------------------------------------------------------------------- printing
def print_ratio(name: str, values: list[float], target: float | None = None) -> None:
    r = summary(values)
    print(f"{name} per repeat: {' '.join(up(x) for x in values)}")
    verdict = ""
    if target is not None:
        verdict = f"  (target median <= {target}: {'met' if r['median'] <= target else 'NOT met'})"
    print(f"{name}: median {up(r['median'])}  IQR {up(r['q1'])}-{up(r['q3'])}  min {up(r['min'])}  "
          f"max {up(r['max'])}{verdict}")


def print_comparison(plain: Loop, stereo: Loop, strategy: str, cpu: bool) -> None:
    print(f"\n(1) stereo {strategy} vs plain WanPipeline: same steps, scheduler, CFG and NFE")
    print(f"{'loop':<34} {'NFE':>5} {'VAE':>4} {'median s':>9} {'IQR s':>17} {'min s':>8} {'max s':>8} {'peak GiB':>9}")
    for loop in (plain, stereo):
        t = summary(loop.seconds)
        print(f"{loop.label:<34} {constant(loop, 'nfe'):>5} {constant(loop, 'vae_passes'):>4} {t['median']:>9.3f} "
              f"{t['q1']:>8.3f}-{t['q3']:<8.3f} {t['min']:>8.3f} {t['max']:>8.3f} {peak_text(loop):>9}")
    print_ratio("wall-time ratio stereo/plain", ratios(stereo.seconds, plain.seconds), target=1.05)
    if cpu:
        print_ratio("CPU-time ratio stereo/plain", ratios(stereo.cpu_seconds, plain.cpu_seconds), target=1.05)
    # the same transformer work in both: its time shows the machine's noise; the time outside it is the overhead
    print_ratio("transformer-time ratio stereo/plain (same calls)",
                ratios(stereo.transformer_seconds, plain.transformer_seconds))
    extra = [s - p for s, p in zip(stereo.outside_transformer(), plain.outside_transformer())]
    t_out, p_out = summary(stereo.outside_transformer()), summary(plain.outside_transformer())
    print(f"outside the transformer: plain median {p_out['median']:.3f} s, stereo median {t_out['median']:.3f} s; "
          f"stereo - plain per repeat: median {summary(extra)['median']:.3f} s "
          f"IQR {summary(extra)['q1']:.3f}-{summary(extra)['q3']:.3f} s")
    print_ratio("ratio with the transformer time equalised, (plain + extra) / plain",
                [(p + e) / p for p, e in zip(plain.seconds, extra)], target=1.05)
    if constant(plain, "nfe") != constant(stereo, "nfe"):
        print(f"WARNING: NFE differ (plain {constant(plain, 'nfe')}, stereo {constant(stereo, 'nfe')}): unequal work")


def print_cost_table(rows: list[Loop]) -> None:
    base = rows[0]
    base_nfe, base_full = constant(base, "nfe"), constant(base, "full")
    print(f"\n(2) cost table: ratios to '{base.label}' (time x: median [IQR] of the per-repeat ratios)")
    print(f"{'preset':<40} {'steps':>5} {'NFE':>5} {'full':>5} {'VAE':>4} {'NFE x':>6} {'full x':>6} "
          f"{'median s':>9} {'IQR s':>17} {'time x':>7} {'time x IQR':>13} {'peak GiB':>9}")
    for row in rows:
        t = summary(row.seconds)
        x = summary(ratios(row.seconds, base.seconds))
        nfe, full = constant(row, "nfe"), constant(row, "full")
        print(f"{row.label:<40} {row.steps:>5} {nfe:>5} {full:>5} {constant(row, 'vae_passes'):>4} "
              f"{up(nfe / base_nfe):>6} {up(full / base_full):>6} {t['median']:>9.3f} {t['q1']:>8.3f}-{t['q3']:<8.3f} "
              f"{up(x['median']):>7} {up(x['q1']):>6}-{up(x['q3']):<6} {peak_text(row):>9}")
    memory = next((row.memory for row in rows if row.memory), None)
    print("NFE: transformer calls; full: calls whose last block ran (a block cache skips the rest); VAE: encode + "
          f"decode calls; peak: {MEMORY_LABELS.get(memory, 'not measured')}, largest of the repeats")


# ---------------------------------------------------------------------- profile
@contextlib.contextmanager
def timing_wrappers(targets: list[tuple[Any, str, str]], totals: dict[str, list[float]], sync: Callable[[], None]) -> Iterator[None]:
    """Replace each ``(owner, attribute, label)`` by a wrapper adding its wall seconds to ``totals[label]``."""
    saved = []
    for owner, attr, label in targets:
        original = owner.__dict__.get(attr, None) if isinstance(owner, type) else getattr(owner, attr)
        if original is None:
            continue
        inner = original.__func__ if isinstance(original, staticmethod) else original

        def wrapped(*args: Any, _inner: Any = inner, _label: str = label, **kwargs: Any) -> Any:
            sync()
            start = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                sync()
                entry = totals.setdefault(_label, [0.0, 0])
                entry[0] += time.perf_counter() - start
                entry[1] += 1

        setattr(owner, attr, staticmethod(wrapped) if isinstance(original, staticmethod) else wrapped)
        saved.append((owner, attr, original))
    try:
        yield
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


@contextlib.contextmanager
def transformer_timer(transformer: torch.nn.Module, totals: dict[str, list[float]], sync: Callable[[], None]) -> Iterator[None]:
    starts: list[float] = []

    def before(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        sync()
        starts.append(time.perf_counter())

    def after(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        sync()
        entry = totals.setdefault("transformer forward", [0.0, 0])
        entry[0] += time.perf_counter() - starts.pop()
        entry[1] += 1

    handles = [transformer.register_forward_pre_hook(before, with_kwargs=True),
               transformer.register_forward_hook(after, with_kwargs=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


#: pieces of a stereo window that plain sampling does not run (its overhead)
STEREO_ONLY = ("warp (WarpFill) of the left view", "VAE encode (stereo)", "masks to the latent grid",
               "disparity to the latent grid", "X0Blend.edit_velocity (per step)", "cycle error (generate's extras)")


def profile_run(label: str, fn: Callable[[], None], transformer: torch.nn.Module, device: str) -> float:
    """One run of ``fn`` with its pieces timed (wrappers add a little time of their own); prints the
    pieces and returns the share of the run spent in :data:`STEREO_ONLY` pieces."""
    import diffusers

    import stereo_lit.diffusion.generator as generator_module
    import stereo_lit.diffusion.guidance as guidance_module
    import stereo_lit.diffusion.pipeline as pipeline_module

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    totals: dict[str, list[float]] = {}
    targets = [
        (pipeline_module.WanStereoPipeline, "right_estimate", "warp (WarpFill) of the left view"),
        (pipeline_module, "encode_video", "VAE encode (stereo)"),
        (pipeline_module, "decode_latents", "VAE decode (stereo)"),
        (pipeline_module, "mask_to_latent_grid", "masks to the latent grid"),
        (pipeline_module, "disparity_to_latent_grid", "disparity to the latent grid"),
        (guidance_module.X0Blend, "edit_velocity", "X0Blend.edit_velocity (per step)"),
        (generator_module, "cycle_error", "cycle error (generate's extras)"),
        (diffusers.AutoencoderKLWan, "decode", "AutoencoderKLWan.decode"),
        (diffusers.UniPCMultistepScheduler, "step", "scheduler.step (UniPC)"),
        (diffusers.FlowMatchEulerDiscreteScheduler, "step", "scheduler.step (Euler)"),
        (diffusers.DPMSolverMultistepScheduler, "step", "scheduler.step (DPM++)"),
    ]
    gc.collect()
    with torch.no_grad(), timing_wrappers(targets, totals, sync), transformer_timer(transformer, totals, sync):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        total = time.perf_counter() - start
    print(f"\nprofile of one '{label}' run: {total:.3f} s")
    print(f"  {'piece':<40} {'calls':>6} {'seconds':>9} {'share':>7}")
    counted = 0.0
    nested = {"AutoencoderKLWan.decode"} if "VAE decode (stereo)" in totals else set()  # inside decode_latents
    for piece, (seconds, calls) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        counted += 0.0 if piece in nested else seconds
        print(f"  {piece:<40} {calls:>6} {seconds:>9.4f} {seconds / total:>7.1%}" + (" (inside the VAE decode)" if piece in nested else ""))
    rest = total - counted
    print(f"  {'rest (loop, CFG combine, padding, copies)':<40} {'':>6} {rest:>9.4f} {rest / total:>7.1%}")
    return sum(totals[piece][0] for piece in STEREO_ONLY if piece in totals) / total


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-size", action="store_true", help="Wan2.1-1.3B architecture at 81x480x832 (needs CUDA)")
    parser.add_argument("--frames", type=int, default=None, help="frames (4k+1; default 9 on CPU, 81 real size)")
    parser.add_argument("--height", type=int, default=None, help="multiple of 16 (default 96 on CPU, 480 real size)")
    parser.add_argument("--width", type=int, default=None, help="multiple of 16 (default 160 on CPU, 832 real size)")
    parser.add_argument("--steps", type=int, default=50, help="denoising steps of the CFG loops (default 50)")
    parser.add_argument("--fast-steps", type=int, default=None, help="steps of the CFG-free rows (default min(8, --steps))")
    parser.add_argument("--strategy", default="x0_blend")
    parser.add_argument("--scheduler", default="unipc")
    parser.add_argument("--guidance-scale", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per loop (default 5 CPU, 2 real size)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of every loop first")
    parser.add_argument("--cache-threshold", type=float, default=0.2,
                        help="FirstBlockCacheConfig threshold (default 0.2: random weights never skip at 0.1)")
    parser.add_argument("--cost-table", action=argparse.BooleanOptionalAction, default=None,
                        help="add the inversion / CFG-free / cache loops and print the cost table "
                             "(default: on CPU, off with --real-size)")
    parser.add_argument("--profile", action="store_true", help="time the pieces of one stereo and one plain run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine more threads than free cores make "
                             "wall times erratic; 0 = torch's default); ignored on CUDA")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    args = parser.parse_args(argv)
    if args.steps < 1 or (args.fast_steps is not None and args.fast_steps < 1):
        parser.error(f"--steps ({args.steps}) and --fast-steps ({args.fast_steps}) must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.real_size and not (device.startswith("cuda") and torch.cuda.is_available()):
        raise SystemExit(
            f"--real-size needs a CUDA GPU (device={device!r}, torch.cuda.is_available()={torch.cuda.is_available()}): "
            "the Wan2.1-1.3B architecture at 81x480x832 takes hours on a CPU. Run without --real-size for the CPU "
            "benchmark on the mid-size transformer."
        )
    from diffusers import WanPipeline

    from stereo_lit.diffusion.generator import WanStereoGenerator
    from stereo_lit.diffusion.loading import WanComponents
    from stereo_lit.diffusion.pipeline import WanStereoPipeline, apply_cache

    load_start, wall_start, cpu_start = load_average(), time.perf_counter(), time.process_time()
    if args.real_size:
        frames, height, width = args.frames or 81, args.height or 480, args.width or 832
        repeats, dtype = args.repeats or 2, torch.bfloat16
    else:
        frames, height, width = args.frames or 9, args.height or 96, args.width or 160
        repeats, dtype = args.repeats or 5, torch.float32
    if not device.startswith("cuda") and args.threads > 0:
        torch.set_num_threads(args.threads)
    cost_table = (not args.real_size) if args.cost_table is None else args.cost_table
    fast_steps = args.fast_steps or min(8, args.steps)

    parts = build_parts(args.real_size, dtype, device)
    transformer = parts["transformer"]
    plain_pipe = WanPipeline(**parts)
    stereo_pipe = WanStereoPipeline(**parts)
    for pipe in (plain_pipe, stereo_pipe):
        pipe.set_progress_bar_config(disable=True)
    text_dim = transformer.config.text_dim
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(1, 512, text_dim, generator=g).to(device, dtype)
    uncond = torch.randn(1, 512, text_dim, generator=g).to(device, dtype)
    left, disparity = scene(frames, height, width, device)
    memory = {"device": device, "dtype": str(dtype).removeprefix("torch."), "offload": "none", "vae_tiling": False}

    def generator(pipe: Any, steps: int, guidance_scale: float, **sampling: Any) -> WanStereoGenerator:
        gen = WanStereoGenerator(
            Path("in-memory"), strategy=args.strategy, window=frames, overlap=1 if frames > 1 else 0, progress=False,
            sampling={"scheduler": args.scheduler, "num_inference_steps": steps, "guidance_scale": guidance_scale,
                      **sampling},
            memory=memory,
        ).use_components(WanComponents(pipe=pipe, folder=Path("in-memory")))
        gen.cache_prompt_embeds(gen.prompt, cond, uncond if guidance_scale > 1 else None)
        return gen

    stereo_gen = generator(stereo_pipe, args.steps, args.guidance_scale)

    def plain() -> None:
        plain_pipe.scheduler = stereo_gen.new_scheduler()
        plain_pipe(
            prompt_embeds=cond, negative_prompt_embeds=uncond, height=height, width=width, num_frames=frames,
            num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
            generator=torch.Generator().manual_seed(0), output_type="pt",
        )

    def stereo_run(gen: WanStereoGenerator) -> Callable[[], None]:
        return lambda: gen.generate(left, disparity)

    print(f"device={device} size={frames}x{height}x{width} steps={args.steps} fast_steps={fast_steps} "
          f"cfg={args.guidance_scale} strategy={args.strategy} scheduler={args.scheduler} repeats={repeats} "
          f"warmup={args.warmup} torch_threads={torch.get_num_threads()} transformer_params="
          f"{sum(p.numel() for p in transformer.parameters()) / 1e6:.1f}M dtype={dtype}")
    print(f"load average at start: {load_start}")
    vae = parts["vae"]
    cfg = f"{args.steps}-step CFG {args.guidance_scale:g}"
    plain_loop = Loop(f"plain WanPipeline {cfg}", plain, args.steps, transformer, vae)
    stereo_loop = Loop(f"stereo {cfg}", stereo_run(stereo_gen), args.steps, transformer, vae)
    loops = [plain_loop, stereo_loop]
    cached_transformer = None
    if cost_table:
        inverted = generator(stereo_pipe, args.steps, args.guidance_scale, noise="inverted")
        free = generator(stereo_pipe, fast_steps, 1.0)
        loops += [
            Loop(f"stereo {cfg} + inversion", stereo_run(inverted), args.steps, transformer, vae),
            Loop(f"stereo {fast_steps}-step CFG-free", stereo_run(free), fast_steps, transformer, vae),
        ]
        if hasattr(transformer, "enable_cache"):
            cached_transformer = copy.deepcopy(transformer)  # its own copy: the cache hooks never touch the others
            apply_cache(cached_transformer, {"kind": "first_block", "threshold": args.cache_threshold})
            cached_pipe = WanStereoPipeline(**{**parts, "transformer": cached_transformer})
            cached_pipe.set_progress_bar_config(disable=True)
            cached = generator(cached_pipe, fast_steps, 1.0)
            loops.append(Loop(f"stereo {fast_steps}-step CFG-free + first_block {args.cache_threshold:g}",
                              stereo_run(cached), fast_steps, cached_transformer, vae))
        else:
            print("(this diffusers has no transformer.enable_cache: no cache row)")
    with torch.no_grad():  # one interleaved group: every ratio compares runs of the same rounds
        measure(loops, device, repeats, args.warmup)
    print_comparison(plain_loop, stereo_loop, args.strategy, cpu=not device.startswith("cuda"))
    if cost_table:
        print_cost_table(loops[1:] + loops[:1])
    if args.real_size:
        real_size_offload(stereo_pipe, generator, stereo_loop, left, disparity, device, repeats, args)
    if args.profile:
        share = profile_run(stereo_loop.label, stereo_loop.fn, transformer, device)
        profile_run(plain_loop.label, plain_loop.fn, transformer, device)
        print(f"\nstereo-only pieces ({', '.join(STEREO_ONLY)}): {share:.2%} of the stereo run; if the shared "
              f"pieces cost the same in both loops, stereo/plain = 1 / (1 - {share:.4f}) = {up(1 / (1 - share))} "
              "(one run each: read it beside the ratios above, not instead of them)")
    print(f"\nload average at end: {load_average()}")
    print(f"benchmark took {time.perf_counter() - wall_start:.0f} s wall, {time.process_time() - cpu_start:.0f} s CPU")


def real_size_offload(pipe: Any, generator: Callable[..., Any], no_offload: Loop, left: torch.Tensor,
                      disparity: torch.Tensor, device: str, repeats: int, args: argparse.Namespace) -> None:
    """Seconds per clip and peak GPU memory of stereo sampling with model CPU offload, after the rest
    (the offload hooks stay on the pipeline), beside the same loop without offload."""
    pipe.enable_model_cpu_offload(device=device)
    gen = generator(pipe, args.steps, args.guidance_scale)
    offloaded = Loop(f"{no_offload.label} + model CPU offload", lambda: gen.generate(left, disparity), args.steps,
                     pipe.transformer, pipe.vae)
    with torch.no_grad():
        measure([offloaded], device, repeats, args.warmup)
    frames = left.shape[2]
    print(f"\n(3) real size, {frames}x{left.shape[3]}x{left.shape[4]}: seconds per 81-frame clip and peak GPU memory")
    for loop in (no_offload, offloaded):
        t = summary(loop.seconds)
        per_clip = t["median"] * 81 / frames
        print(f"{loop.label:<58} {per_clip:>9.2f} s/clip (median of {len(loop.seconds)}; IQR {t['q1']:.2f}-{t['q3']:.2f} s)"
              f"  peak {peak_text(loop)} GiB")


if __name__ == "__main__":
    main()
