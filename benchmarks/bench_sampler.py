#!/usr/bin/env python
"""Wall time of stereo sampling versus diffusers' plain Wan sampling of one video.

    python benchmarks/bench_sampler.py                 # CPU, mid-size random transformer
    python benchmarks/bench_sampler.py --real-size     # GPU: Wan2.1-1.3B architecture, 81x480x832

Both sides use the same random model, steps, scheduler, CFG and size, and precomputed
prompt embeddings. *Plain* is ``WanPipeline.__call__`` (noise -> latents -> decoded video).
*Stereo* is :meth:`WanStereoGenerator.generate` (pixel warp + VAE encode of the warp +
guided denoising + decode + cycle error). The ratio stereo / plain is printed; the target
is <= 1.05 where the transformer dominates the cost (the default CPU configuration: a
transformer of width 256, 4 layers, with a VAE of base width 3). ``--real-size`` builds the
true Wan2.1-T2V-1.3B transformer and VAE (random weights; timing only) and also reports
peak GPU memory.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


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


def timed(fn, device: str, repeats: int) -> tuple[float, float]:
    """Median wall seconds over ``repeats`` runs (after one warm-up) and peak memory in GiB."""
    fn()
    times = []
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return statistics.median(times), peak


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-size", action="store_true", help="Wan2.1-1.3B architecture at 81x480x832 (GPU)")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 50 real size, 8 CPU)")
    parser.add_argument("--strategy", default="x0_blend")
    parser.add_argument("--scheduler", default="unipc")
    parser.add_argument("--guidance-scale", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    from stereo_lit.diffusion.generator import WanStereoGenerator
    from stereo_lit.diffusion.loading import WanComponents

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.real_size:
        frames, height, width = args.frames or 81, args.height or 480, args.width or 832
        steps, repeats, dtype, text_dim = args.steps or 50, args.repeats or 1, torch.bfloat16, 4096
        if not device.startswith("cuda"):
            print("warning: --real-size on CPU will take hours; pass a CUDA device")
    else:
        frames, height, width = args.frames or 17, args.height or 128, args.width or 192
        steps, repeats, dtype, text_dim = args.steps or 8, args.repeats or 3, torch.float32, None

    pipe = build_pipe(args.real_size, dtype, device)
    text_dim = text_dim or pipe.transformer.config.text_dim
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(1, 512, text_dim, generator=g).to(device, dtype)
    uncond = torch.randn(1, 512, text_dim, generator=g).to(device, dtype)

    gen = WanStereoGenerator(
        Path("in-memory"), strategy=args.strategy, scheduler=args.scheduler, num_inference_steps=steps,
        guidance_scale=args.guidance_scale, window=frames, overlap=1 if frames > 1 else 0, device=device,
    ).use_components(WanComponents(pipe=pipe, folder=Path("in-memory")))
    gen.cache_prompt_embeds(gen.prompt, cond, uncond)
    left, disparity = scene(frames, height, width, device)

    def plain() -> None:
        pipe.scheduler = gen.new_scheduler()
        pipe(
            prompt_embeds=cond, negative_prompt_embeds=uncond, height=height, width=width, num_frames=frames,
            num_inference_steps=steps, guidance_scale=args.guidance_scale,
            generator=torch.Generator().manual_seed(0), output_type="pt",
        )

    def stereo() -> None:
        gen.generate(left, disparity)

    print(f"device={device} size={frames}x{height}x{width} steps={steps} cfg={args.guidance_scale} "
          f"strategy={args.strategy} scheduler={args.scheduler} transformer_params="
          f"{sum(p.numel() for p in pipe.transformer.parameters()) / 1e6:.1f}M")
    with torch.no_grad():
        t_plain, m_plain = timed(plain, device, repeats)
        t_stereo, m_stereo = timed(stereo, device, repeats)
    print(f"plain  WanPipeline : {t_plain:8.2f} s   peak {m_plain:.2f} GiB")
    print(f"stereo {args.strategy:<12}: {t_stereo:8.2f} s   peak {m_stereo:.2f} GiB")
    print(f"ratio stereo/plain : {t_stereo / t_plain:.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
