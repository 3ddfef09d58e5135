#!/usr/bin/env python
"""Cost of stereo sampling, measured: stereo vs plain Wan sampling, and a table of sampling presets.

    python benchmarks/bench_sampler.py                           # CPU, mid-size random transformer
    python benchmarks/bench_sampler.py --repeats 3 --steps 4     # quick CPU run (about a minute of CPU time)
    python benchmarks/bench_sampler.py --real-size               # GPU: Wan2.1-1.3B architecture, 81x480x832

Every side uses the same random model, size and precomputed prompt embeddings.

1. **Stereo vs plain** (same steps, scheduler, CFG and NFE). *Plain* is ``WanPipeline.__call__``
   (noise -> latents -> decoded video); *stereo* is :meth:`WanStereoGenerator.generate`
   (pixel warp + VAE encode of the warp + guided denoising + decode + cycle error). Both loops
   are warmed up, then run ``--repeats`` times *interleaved* (the order alternates), and the
   ratio stereo / plain of each repeat is summarised by its median, min/max and quartiles.
   Target: median <= 1.05 where the transformer dominates the cost.
2. **Cost table** (CPU default; ``--no-cost-table`` skips it): the stereo generator with
   ``--steps``-step CFG, the same with ``noise: inverted``, ``--fast-steps``-step CFG-free
   (guidance 1) and, when diffusers has ``FirstBlockCacheConfig``, CFG-free with that block
   cache, and plain WanPipeline for reference; NFE (transformer calls), full evaluations
   (calls whose last block ran) and median wall time, each as a ratio to the first row. All
   loops of 1 and 2 run in one interleaved group.

NFE is counted with :func:`stereo_lit.diffusion.nfe.count_nfe` (forward hooks, no sampler
change). The load average (``os.getloadavg``) is printed at start and end: a shared or busy
machine makes wall times noisy, and the spread columns show how much. ``--real-size`` builds
the true Wan2.1-T2V-1.3B transformer and VAE (random weights; timing only) and also reports
peak GPU memory.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stereo_lit.diffusion.nfe import count_nfe


def build_pipe(real_size: bool, dtype: torch.dtype, device: str):
    """A ``WanPipeline`` of random weights (tiny text encoder: prompt embeddings are given)."""
    from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel

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
    else:
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=64, in_channels=16, out_channels=16,
            text_dim=parts["text_encoder"].config.d_model, freq_dim=64, ffn_dim=1024, num_layers=4,
            cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=64,
        )
        vae = parts["vae"]
    pipe = WanPipeline(
        tokenizer=parts["tokenizer"], text_encoder=parts["text_encoder"], vae=vae.eval().float(),
        scheduler=parts["scheduler"], transformer=cast_like_from_pretrained(transformer.eval(), dtype),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


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
    coarse = torch.rand(1, 3, frames, height // 8, width // 8, generator=g)
    left = torch.nn.functional.interpolate(coarse, size=(frames, height, width), mode="trilinear")
    disparity = torch.full((1, 1, frames, height, width), 0.01 * width)
    disparity[..., height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 0.03 * width
    return left.to(device), disparity.to(device)


# ---------------------------------------------------------------------- measuring
@dataclass
class Loop:
    """One thing to time: ``fn()`` runs it once; ``steps`` and ``label`` are for the table."""

    label: str
    fn: Callable[[], None]
    steps: int
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    nfe: list[int] = field(default_factory=list)
    full: list[int] = field(default_factory=list)
    peak_gib: float = float("nan")


def summary(values: list[float]) -> dict[str, float]:
    """Median, min, max and quartiles (``q1``/``q3``, inclusive method) of ``values``."""
    if not values:
        raise ValueError("summary() needs at least one value")
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else (values[0],) * 3
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "q1": q1, "q3": q3}


def measure(loops: list[Loop], transformer: torch.nn.Module, device: str, repeats: int, warmup: int = 1) -> None:
    """Warm every loop up ``warmup`` times, then run them ``repeats`` times interleaved.

    Repeat ``r`` runs the loops rotated by ``r`` (A B, B A, A B, ...), so slow drift of the
    machine's load hits every loop alike. Fills each loop's ``seconds``, ``nfe``, ``full``
    (one entry per timed run), ``cpu_seconds`` (this process's CPU time: on CPU it barely
    depends on other processes' load) and ``peak_gib`` (CUDA only).
    """
    cuda = device.startswith("cuda")
    for _ in range(warmup):
        for loop in loops:
            loop.fn()
    for r in range(repeats):
        k = r % len(loops)
        for loop in loops[k:] + loops[:k]:
            gc.collect()
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            with count_nfe(transformer) as nfe:
                start, start_cpu = time.perf_counter(), time.process_time()
                loop.fn()
                if cuda:
                    torch.cuda.synchronize()
                loop.seconds.append(time.perf_counter() - start)
                loop.cpu_seconds.append(time.process_time() - start_cpu)
            loop.nfe.append(nfe.count)
            loop.full.append(nfe.full)
            if cuda:
                peak = torch.cuda.max_memory_allocated() / 2**30
                loop.peak_gib = peak if math.isnan(loop.peak_gib) else max(loop.peak_gib, peak)


def nfe_of(loop: Loop, what: str = "nfe") -> int:
    """The loop's NFE (or full evaluations); raises when the repeats disagree (a non-deterministic cache)."""
    values = set(getattr(loop, what))
    if len(values) != 1:
        raise RuntimeError(f"{loop.label}: {what} differs between repeats: {sorted(values)}")
    return values.pop()


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # not available on this platform
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} CPUs)"


# ---------------------------------------------------------------------- the loops
def cached_call(transformer: torch.nn.Module, threshold: float, fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` run with diffusers' First Block Cache on ``transformer`` (fresh cache state per run).

    The stereo sampler calls the transformer without ``cache_context``; for a CFG-free run
    every call is the conditional one, so one ``cache_context("cond")`` around the run is
    what ``WanPipeline`` sets per call. The cache is removed after the run.
    """
    from diffusers.hooks import FirstBlockCacheConfig

    def run() -> None:
        transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
        try:
            with transformer.cache_context("cond"):
                fn()
        finally:
            transformer.disable_cache()

    return run


def has_first_block_cache(transformer: torch.nn.Module) -> bool:
    try:
        from diffusers.hooks import FirstBlockCacheConfig  # noqa: F401
    except ImportError:
        return False
    return hasattr(transformer, "enable_cache")


def print_ratio(name: str, stereo: list[float], plain: list[float]) -> None:
    ratios = [s / p for s, p in zip(stereo, plain)]
    r = summary(ratios)
    print(f"{name} per repeat: {' '.join(f'{x:.3f}' for x in ratios)}")
    print(f"{name}: median {r['median']:.3f}  min {r['min']:.3f}  max {r['max']:.3f}  "
          f"IQR {r['q1']:.3f}-{r['q3']:.3f}  (target median <= 1.05)")


def print_comparison(plain: Loop, stereo: Loop, strategy: str, cpu: bool) -> None:
    print(f"\n{'loop':<22} {'NFE':>5} {'median s':>9} {'min s':>8} {'max s':>8} {'peak GiB':>9}")
    for label, loop in (("plain WanPipeline", plain), (f"stereo {strategy}", stereo)):
        t = summary(loop.seconds)
        print(f"{label:<22} {nfe_of(loop):>5} {t['median']:>9.3f} {t['min']:>8.3f} {t['max']:>8.3f} {loop.peak_gib:>9.2f}")
    print_ratio("wall-time ratio stereo/plain", stereo.seconds, plain.seconds)
    if cpu:
        print_ratio("CPU-time ratio stereo/plain", stereo.cpu_seconds, plain.cpu_seconds)
    if nfe_of(plain) != nfe_of(stereo):
        print(f"WARNING: NFE differ (plain {nfe_of(plain)}, stereo {nfe_of(stereo)}): the ratio compares unequal work")


def print_cost_table(rows: list[Loop]) -> None:
    base = rows[0]
    base_t, base_nfe, base_full = statistics.median(base.seconds), nfe_of(base), nfe_of(base, "full")
    print(f"\n{'preset':<42} {'steps':>5} {'NFE':>5} {'full':>5} {'NFE x':>6} {'full x':>6} "
          f"{'median s':>9} {'min-max s':>15} {'time x':>7}")
    for row in rows:
        t = summary(row.seconds)
        nfe, full = nfe_of(row), nfe_of(row, "full")
        print(f"{row.label:<42} {row.steps:>5} {nfe:>5} {full:>5} {nfe / base_nfe:>6.3f} {full / base_full:>6.3f} "
              f"{t['median']:>9.3f} {t['min']:>7.3f}-{t['max']:<7.3f} {t['median'] / base_t:>7.3f}")
    print("NFE: transformer calls; full: calls whose last block ran (a block cache skips the rest); "
          "x: ratio to the first row")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-size", action="store_true", help="Wan2.1-1.3B architecture at 81x480x832 (GPU)")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--steps", type=int, default=50, help="denoising steps of the CFG loops (default 50)")
    parser.add_argument("--fast-steps", type=int, default=None, help="steps of the CFG-free rows (default min(8, --steps))")
    parser.add_argument("--strategy", default="x0_blend")
    parser.add_argument("--scheduler", default="unipc")
    parser.add_argument("--guidance-scale", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per loop (default 5 CPU, 2 real size)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of every loop first")
    parser.add_argument("--cache-threshold", type=float, default=0.1, help="FirstBlockCacheConfig threshold")
    parser.add_argument("--cost-table", action=argparse.BooleanOptionalAction, default=None,
                        help="print the preset cost table (default: on CPU, off with --real-size)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine more threads than free cores make "
                             "wall times erratic; 0 = torch's default); ignored on CUDA")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.steps < 1 or (args.fast_steps is not None and args.fast_steps < 1):
        raise SystemExit(f"--steps ({args.steps}) and --fast-steps ({args.fast_steps}) must be >= 1")

    from stereo_lit.diffusion.generator import WanStereoGenerator
    from stereo_lit.diffusion.loading import WanComponents

    load_start = load_average()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.real_size:
        frames, height, width = args.frames or 81, args.height or 480, args.width or 832
        repeats, dtype = args.repeats or 2, torch.bfloat16
        if not device.startswith("cuda"):
            print("warning: --real-size on CPU will take hours; pass a CUDA device")
    else:
        frames, height, width = args.frames or 9, args.height or 128, args.width or 192
        repeats, dtype = args.repeats or 5, torch.float32
    if not device.startswith("cuda") and args.threads > 0:
        torch.set_num_threads(args.threads)
    if repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {repeats}")
    cost_table = (not args.real_size) if args.cost_table is None else args.cost_table
    fast_steps = args.fast_steps or min(8, args.steps)

    pipe = build_pipe(args.real_size, dtype, device)
    transformer = pipe.transformer
    text_dim = transformer.config.text_dim
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(1, 512, text_dim, generator=g).to(device, dtype)
    uncond = torch.randn(1, 512, text_dim, generator=g).to(device, dtype)
    components = WanComponents(pipe=pipe, folder=Path("in-memory"))
    left, disparity = scene(frames, height, width, device)

    def generator(steps: int, guidance_scale: float, **kw) -> WanStereoGenerator:
        gen = WanStereoGenerator(
            Path("in-memory"), strategy=args.strategy, scheduler=args.scheduler, num_inference_steps=steps,
            guidance_scale=guidance_scale, window=frames, overlap=1 if frames > 1 else 0, device=device,
            progress=False, **kw,
        ).use_components(components)
        gen.cache_prompt_embeds(gen.prompt, cond, uncond if guidance_scale > 1 else None)
        return gen

    stereo_gen = generator(args.steps, args.guidance_scale)

    def plain() -> None:
        pipe.scheduler = stereo_gen.new_scheduler()
        pipe(
            prompt_embeds=cond, negative_prompt_embeds=uncond, height=height, width=width, num_frames=frames,
            num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
            generator=torch.Generator().manual_seed(0), output_type="pt",
        )

    print(f"device={device} size={frames}x{height}x{width} steps={args.steps} cfg={args.guidance_scale} "
          f"strategy={args.strategy} scheduler={args.scheduler} repeats={repeats} warmup={args.warmup} "
          f"torch_threads={torch.get_num_threads()} transformer_params="
          f"{sum(p.numel() for p in transformer.parameters()) / 1e6:.1f}M")
    print(f"load average at start: {load_start}")
    plain_loop = Loop(f"plain WanPipeline CFG {args.guidance_scale:g}", plain, args.steps)
    stereo_loop = Loop(f"stereo CFG {args.guidance_scale:g}", lambda: stereo_gen.generate(left, disparity), args.steps)
    loops = [plain_loop, stereo_loop]
    if cost_table:
        inverted = generator(args.steps, args.guidance_scale, noise="inverted")
        free = generator(fast_steps, 1.0)
        loops += [
            Loop(f"stereo CFG {args.guidance_scale:g} + inversion", lambda: inverted.generate(left, disparity), args.steps),
            Loop("stereo CFG-free (guidance 1)", lambda: free.generate(left, disparity), fast_steps),
        ]
        if has_first_block_cache(transformer):
            loops.append(Loop(f"stereo CFG-free + FirstBlockCache {args.cache_threshold:g}", cached_call(
                transformer, args.cache_threshold, lambda: free.generate(left, disparity)), fast_steps))
        else:
            print("(this diffusers has no FirstBlockCacheConfig: no cache row)")
    with torch.no_grad():  # one interleaved group: every ratio compares runs of the same rounds
        measure(loops, transformer, device, repeats, args.warmup)
    print_comparison(plain_loop, stereo_loop, args.strategy, cpu=not device.startswith("cuda"))
    if cost_table:
        print_cost_table(loops[1:] + loops[:1])
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
