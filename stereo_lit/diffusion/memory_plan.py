"""Pick VAE tiling, CPU offload and the sampling window from the free GPU memory.

:func:`plan_memory` is pure: free bytes, the window's size and the user's own settings in,
a :class:`MemoryPlan` out. Settings the user gave (not ``None``) are never changed; the
rest take the cheapest choice whose estimated peak fits in ``USABLE_FRACTION`` of the free
memory, tried in this order (each step is slower, the last ones change the output):

1. no offload, no tiling;  2. no offload, VAE tiling;  3. model offload, no tiling;
4. model offload, tiling;  5. sequential offload, no tiling;  6. sequential, tiling;
7. sequential, tiling and a smaller window (49, 33, 17 frames, each > ``overlap``).

When nothing fits the last candidate is returned and ``reason`` says so. Without CUDA
(``free_bytes=None``) the plan is a no-op: unset settings take their old defaults
(no offload, no tiling, ``default_window``) and ``reason == "cpu"``.

**The numbers are estimates, not measurements** (bytes, 1 GB = 1e9 B), for Wan2.1 in
diffusers with bf16 transformer / text encoder (scaled by ``dtype_bytes / 2``) and a
float32 VAE:

* weights, from the parameter counts: 1.3B transformer ~1.42e9 params -> 2.8 GB; 14B
  ~14.3e9 -> 28.6 GB; UMT5-XXL encoder ~5.7e9 -> 11.4 GB, of which its token embedding
  (256384 x 4096) is 2.1 GB, the largest single layer that sequential offload moves;
  VAE ~127e6 params in float32 -> 0.5 GB. The prompt embeddings are cached, so the text
  encoder runs once per prompt: with model offload it peaks alone on the GPU.
* transformer activations (inference, memory-efficient attention, one CFG branch at a
  time): ~64 KB per token for the 1.3B (dim 1536, FFN 8960: the bf16 FFN intermediate
  twice plus a few float32 copies of the hidden state), ~140 KB for the 14B (dim 5120,
  FFN 13824); tokens = latent frames x (H/16) x (W/16) (81x480x832: 32760 tokens).
* VAE activations: diffusers' ``AutoencoderKLWan`` encodes / decodes latent frame by
  latent frame, so its working set scales with H x W: ~14 KB per pixel (96-384 channels,
  4 frames and a 2-frame causal cache, float32); with tiling the area is one
  256 x 256 tile. The videos themselves scale with frames x H x W: ~4 float32 copies
  (left, warp estimate, decoded right, output) of ``frames x 3 x H x W``.
* tiled decoding (diffusers' ``AutoencoderKLWan.tiled_decode``) decodes every tile over all
  the window's frames and keeps them all before blending, so it holds, besides the decoded
  right counted above, ``TILED_DECODE_COPIES`` = 3.8 float32 copies of the decoded window:
  the tiles (256 px at a 192 px stride: (256/192)^2 = 1.78x the frame area), the rows
  concatenated (1), the rows concatenated into frames (1) and the clamp's input (1).
  At 81 x 1080p that is 7.7 GB (the transformer's activations there: 11 GB).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GB = 1e9
OFFLOAD_MODES = ("none", "model", "sequential")
#: fraction of the free memory a plan may fill (allocator fragmentation, cuDNN workspaces)
USABLE_FRACTION = 0.9
#: windows tried, largest first, once offload and tiling are exhausted
SMALLER_WINDOWS = (49, 33, 17)
VAE_BYTES_PER_PIXEL = 14e3
VAE_TILE_PIXELS = 256 * 256
VIDEO_COPIES = 4
TILED_DECODE_COPIES = (256 / 192) ** 2 + 3  # tiles, row concatenation, frame concatenation, clamp input
TEXT_ENCODE_ACTIVATIONS = 0.2 * GB
SEQUENTIAL_IN_FLIGHT = 0.5 * GB


@dataclass(frozen=True)
class ModelMemory:
    """Estimated sizes of one Wan2.1 model (GB at 2 bytes per weight; see the module doc)."""

    transformer_gb: float
    text_encoder_gb: float = 11.4
    vae_gb: float = 0.5
    largest_layer_gb: float = 2.1
    activation_bytes_per_token: float = 64e3


MODEL_MEMORY = {
    "1.3B": ModelMemory(transformer_gb=2.8, activation_bytes_per_token=64e3),
    "14B": ModelMemory(transformer_gb=28.6, activation_bytes_per_token=140e3),
}


@dataclass(frozen=True)
class MemoryPlan:
    """What to run with: ``offload`` in :data:`OFFLOAD_MODES`, ``window`` frames (``4k+1``),
    ``estimate_bytes`` the estimated peak (None on CPU) and ``reason`` (one line)."""

    vae_tiling: bool
    offload: str
    window: int
    reason: str
    estimate_bytes: float | None = None

    def describe(self) -> str:
        return f"offload={self.offload}, vae_tiling={self.vae_tiling}, window={self.window} ({self.reason})"


def model_size_from_config(transformer_config: dict) -> str:
    """``"14B"`` for a transformer of width >= 3072 (Wan2.1-14B: 5120), else ``"1.3B"`` (1536)."""
    width = int(transformer_config.get("num_attention_heads", 12)) * int(transformer_config.get("attention_head_dim", 128))
    return "14B" if width >= 3072 else "1.3B"


def normalize_offload(offload: bool | str | None) -> str | None:
    """``None`` (unset), ``True`` -> ``"model"``, ``False`` -> ``"none"``, or one of :data:`OFFLOAD_MODES`."""
    if offload is None:
        return None
    if isinstance(offload, bool):
        return "model" if offload else "none"
    value = str(offload).lower()
    if value not in OFFLOAD_MODES:
        raise ValueError(f"offload must be true/false or one of {OFFLOAD_MODES}, got {offload!r}")
    return value


def estimate_peak_bytes(
    frames: int, height: int, width: int, *, offload: str, vae_tiling: bool,
    model: ModelMemory = MODEL_MEMORY["1.3B"], dtype_bytes: int = 2,
) -> float:
    """Estimated peak GPU bytes of sampling one ``frames x height x width`` window (see the module doc)."""
    h, w = -(-height // 16) * 16, -(-width // 16) * 16
    scale = dtype_bytes / 2
    tokens = (1 + (frames - 1) // 4) * (h // 16) * (w // 16)
    transformer_act = tokens * model.activation_bytes_per_token * scale
    frame_bytes = frames * 3 * h * w * 4  # one float32 copy of the window's video
    vae_act = VAE_BYTES_PER_PIXEL * h * w
    if vae_tiling:
        vae_act = VAE_BYTES_PER_PIXEL * min(h * w, VAE_TILE_PIXELS) + TILED_DECODE_COPIES * frame_bytes
    video = VIDEO_COPIES * frame_bytes
    t, e, v = model.transformer_gb * GB * scale, model.text_encoder_gb * GB * scale, model.vae_gb * GB
    if offload == "none":
        return t + e + v + max(transformer_act, vae_act) + video
    if offload == "model":
        return max(e + TEXT_ENCODE_ACTIVATIONS, t + transformer_act + video, v + vae_act + video)
    if offload == "sequential":
        layer = model.largest_layer_gb * GB * scale
        return max(layer + TEXT_ENCODE_ACTIVATIONS, transformer_act + video, vae_act + video) + SEQUENTIAL_IN_FLIGHT
    raise ValueError(f"offload must be one of {OFFLOAD_MODES}, got {offload!r}")


def plan_memory(
    free_bytes: int | float | None,
    frames: int,
    height: int,
    width: int,
    *,
    model_size: str | ModelMemory = "1.3B",
    dtype_bytes: int = 2,
    overlap: int = 0,
    default_window: int = 81,
    vae_tiling: bool | None = None,
    offload: bool | str | None = None,
    window: int | None = None,
) -> MemoryPlan:
    """The cheapest settings whose estimated peak fits in ``free_bytes`` (see the module doc).

    Args:
        free_bytes: free GPU memory (``torch.cuda.mem_get_info()[0]``); None = no CUDA.
        frames, height, width: the video to convert (frames are capped by the window).
        model_size: a key of :data:`MODEL_MEMORY` or a :class:`ModelMemory`.
        dtype_bytes: bytes per transformer / text-encoder weight (bf16/fp16: 2, fp32: 4).
        overlap: frames shared by neighbouring windows (a planned window stays above it).
        default_window: the window when unset and nothing forces a smaller one.
        vae_tiling, offload, window: the user's settings; None = unset (planned).
    """
    offload = normalize_offload(offload)
    if free_bytes is None:
        return MemoryPlan(bool(vae_tiling), offload or "none", window or default_window, "cpu")
    model = MODEL_MEMORY[model_size] if isinstance(model_size, str) else model_size
    base_window = window or default_window
    candidates = [
        (o, tile, base_window)
        for o in OFFLOAD_MODES
        for tile in (False, True)
        if (offload is None or o == offload) and (vae_tiling is None or tile == vae_tiling)
    ]
    if window is None:  # smaller windows only with the most saving offload / tiling allowed
        last_offload, last_tiling = candidates[-1][:2]
        candidates += [(last_offload, last_tiling, w) for w in SMALLER_WINDOWS if overlap < w < base_window]
    usable = USABLE_FRACTION * free_bytes
    for o, tile, win in candidates:
        need = estimate_peak_bytes(min(frames, win), height, width, offload=o, vae_tiling=tile, model=model, dtype_bytes=dtype_bytes)
        if need <= usable:
            return MemoryPlan(tile, o, win, f"fits: estimated {need / GB:.1f} GB of {free_bytes / GB:.1f} GB free", need)
    o, tile, win = candidates[-1]
    need = estimate_peak_bytes(min(frames, win), height, width, offload=o, vae_tiling=tile, model=model, dtype_bytes=dtype_bytes)
    return MemoryPlan(
        tile, o, win, f"may not fit: estimated {need / GB:.1f} GB > {usable / GB:.1f} GB usable of {free_bytes / GB:.1f} GB free", need
    )


def free_gpu_bytes(device: str | torch.device) -> int | None:
    """Free bytes on a CUDA ``device`` (``torch.cuda.mem_get_info``); None for other devices."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return int(torch.cuda.mem_get_info(device)[0])


#: the out-of-memory errors torch raises (``torch.OutOfMemoryError`` since 2.4; an alias of the CUDA one)
OOM_ERRORS: tuple[type[BaseException], ...] = tuple(
    {getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError}
)


class WanOutOfMemoryError(RuntimeError):
    """The GPU ran out of memory while sampling; the message names the settings to change."""


def oom_message(frames: int, height: int, width: int, *, offload: str, vae_tiling: bool, window: int, dtype: str,
                planned: str | None = None) -> str:
    """One line: what ran out of memory, the settings it ran with and which to change (in order)."""
    steps = []
    if not vae_tiling:
        steps.append("vae_tiling: true")
    if offload == "none":
        steps.append("offload: model (or sequential: least memory, slowest)")
    elif offload == "model":
        steps.append("offload: sequential (least memory, slowest)")
    smaller = [w for w in SMALLER_WINDOWS if w < window]
    if smaller:
        steps.append(f"a smaller window (e.g. window: {smaller[0]}, 4k+1 frames, > overlap)")
    if "32" in str(dtype):
        steps.append("dtype: bfloat16")
    steps.append("smaller frames (data.init_args.max_side)")
    plan = f"; memory plan: {planned}" if planned else ""
    return (
        f"the GPU ran out of memory sampling a {frames}x{height}x{width} window with offload={offload}, "
        f"vae_tiling={vae_tiling}, window={window}, dtype={dtype}{plan}. Change, in model.generator.init_args: "
        + "; ".join(steps)
    )
