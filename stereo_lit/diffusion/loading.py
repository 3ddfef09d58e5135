"""Load a local Wan2.1 Diffusers folder (T2V 1.3B / 14B, ``model_index.json`` layout).

Everything goes through diffusers' ``from_pretrained(..., local_files_only=True)``: the
same code reads the real checkpoints and the tiny random folder of
:mod:`stereo_lit.diffusion.tiny`. The VAE stays in float32 by default (as Wan's own
examples do; it is small and bf16 decoding bands), the transformer and text encoder take
``dtype``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from stereo_lit.diffusion.options import SCHEDULERS  # one list of scheduler names

#: Files a Wan2.1 Diffusers folder must have (``*/`` entries: any weights file in it).
REQUIRED_FILES = (
    "model_index.json",
    "vae/config.json",
    "transformer/config.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
)
REQUIRED_WEIGHTS = ("vae", "transformer", "text_encoder")

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"``/``"bf16"``/``"float16"``/``"float32"`` (or a torch dtype) -> torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(set(_DTYPES))}, got {dtype!r}")
    return _DTYPES[key]


def resolve_wan(folder: str | Path) -> Path:
    """A local Wan folder for ``folder``: the path, or a hub id's cached (or downloaded) snapshot."""
    from stereo_lit.io.hub import resolve

    return resolve(folder, option="Wan2.1 checkpoint (model.wan_checkpoint / vace_checkpoint / generator checkpoint)")


def check_wan_folder(folder: str | Path | None) -> Path:
    """Raise a clear error unless ``folder`` (a path or hub id) is a complete Wan2.1 Diffusers folder; return the local folder."""
    if folder is None:
        raise ValueError(
            "no Wan2.1 checkpoint folder given: set model.wan_checkpoint (fills every Wan method; model.vace_checkpoint those with backbone: vace) "
            "or the generator's init_args.checkpoint"
        )
    path = resolve_wan(folder)
    if not path.is_dir():
        raise FileNotFoundError(
            f"Wan2.1 checkpoint folder {str(folder)!r} is not a folder (tried {path.resolve()}); give a Diffusers "
            "folder, a hub id such as Wan-AI/Wan2.1-T2V-1.3B-Diffusers, or `python data_prep/make_tiny_checkpoints.py "
            "--out checkpoints/tiny` for a tiny random one (checkpoints/tiny/Wan2.1-T2V-tiny-Diffusers)"
        )
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    for sub in REQUIRED_WEIGHTS:
        folder_path = path / sub
        if folder_path.is_dir() and not any(
            f.suffix in (".safetensors", ".bin") or f.name.endswith(".index.json") for f in folder_path.iterdir()
        ):
            missing.append(f"{sub}/*.safetensors")
    tok = path / "tokenizer"
    if not tok.is_dir() or not any(tok.iterdir()):
        missing.append("tokenizer/ (tokenizer.json or spiece.model)")
    if missing:
        raise FileNotFoundError(
            f"Wan2.1 checkpoint folder {str(path)!r} is incomplete: missing {', '.join(missing)}"
        )
    index = json.loads((path / "model_index.json").read_text())
    if not str(index.get("_class_name", "")).startswith("Wan"):
        raise ValueError(
            f"{path / 'model_index.json'} describes {index.get('_class_name')!r}, expected a Wan pipeline (WanPipeline)"
        )
    return path


def make_scheduler(name: str, flow_shift: float = 3.0, base_config: dict | None = None) -> Any:
    """A fresh flow-matching scheduler (schedulers hold per-run state: make one per sampling run).

    Args:
        name: ``"unipc"`` (Wan's default, multistep), ``"euler"`` (first order),
            ``"dpmpp"`` (DPM-Solver++ 2M, multistep) or ``"lcm"`` (clean prediction re-noised with
            fresh noise each step: pass a ``generator`` to its ``step``).
        flow_shift: sigma shift (3.0 for 480p, 5.0 for 720p).
        base_config: a scheduler config to start from (the checkpoint's), else defaults.
    """
    from diffusers import (
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
        FlowMatchLCMScheduler,
        UniPCMultistepScheduler,
    )

    base = dict(base_config or {})
    num_train = int(base.get("num_train_timesteps", 1000))
    if name == "unipc":
        keep = {k: v for k, v in base.items() if not k.startswith("_")} if base.get("_class_name") == "UniPCMultistepScheduler" else {}
        keep.update(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=flow_shift, num_train_timesteps=num_train)
        return UniPCMultistepScheduler.from_config(keep)
    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train, shift=flow_shift)
    if name == "lcm":
        return FlowMatchLCMScheduler(num_train_timesteps=num_train, shift=flow_shift)
    if name == "dpmpp":
        return DPMSolverMultistepScheduler(
            num_train_timesteps=num_train,
            prediction_type="flow_prediction",
            use_flow_sigmas=True,
            flow_shift=flow_shift,
            algorithm_type="dpmsolver++",
            solver_order=2,
        )
    raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {name!r}")


class SharedComponents:
    """Loads each distinct Wan set-up once for every generator it is handed to.

    :class:`~stereo_lit.module.StereoLitModule` gives one to all its Wan methods, so that an
    evaluation comparing strategies holds one text encoder, transformer and VAE. ``key``
    is what must agree for two generators to share (resolved folder, dtypes, device,
    offload, VAE savers, LoRA settings); ``loads`` counts the loads made.
    """

    def __init__(self) -> None:
        self._loaded: dict[tuple, "WanComponents"] = {}
        self.loads = 0
        self.memory_plans: dict[tuple, Any] = {}  # the first memory plan per model set-up, reused

    def get(self, key: tuple, load: "Callable[[], WanComponents]") -> "WanComponents":
        if key not in self._loaded:
            self._loaded[key] = load()
            self.loads += 1
        return self._loaded[key]


@dataclass
class WanComponents:
    """The loaded model parts. ``pipe`` is the :class:`~stereo_lit.diffusion.pipeline.WanStereoPipeline`
    holding them (prompt encoding, offload, LoRA loading, one stereo window per call)."""

    pipe: Any
    folder: Path

    @property
    def vae(self):
        return self.pipe.vae

    @property
    def transformer(self):
        return self.pipe.transformer

    @property
    def scheduler_config(self) -> dict:
        return dict(self.pipe.scheduler.config)

    @property
    def execution_device(self) -> torch.device:
        """Where tensors must live (the GPU even when the models are offloaded to CPU)."""
        return self.pipe._execution_device


def load_wan(
    checkpoint: str | Path,
    *,
    dtype: str | torch.dtype = "bfloat16",
    vae_dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cuda",
    offload: bool | str = False,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
    text_encoder: Any = None,
) -> WanComponents:
    """Load a local Wan2.1 Diffusers folder (T2V or VACE) as a :class:`~stereo_lit.diffusion.pipeline.WanStereoPipeline`.

    Args:
        checkpoint: folder with ``model_index.json`` (never downloaded), unchanged: its
            components load as they are (a VACE folder gives a ``WanVACETransformer3DModel``).
        dtype: transformer and text-encoder dtype.
        vae_dtype: VAE dtype (float32 recommended).
        device: compute device; with ``offload`` the models live on CPU and each moves
            to ``device`` while it runs: ``True``/``"model"`` (diffusers model CPU offload) or
            ``"sequential"`` (layer by layer: least memory, slowest); ``False``/``"none"``.
        vae_tiling, vae_slicing: VAE memory savers for consumer GPUs.
        text_encoder: an already loaded UMT5 encoder with the same weights to use instead of
            loading the folder's (:mod:`stereo_lit.diffusion.wan_models` shares it between T2V
            and VACE folders).
    """
    from diffusers import AutoencoderKLWan

    from stereo_lit.diffusion.pipeline import WanStereoPipeline

    folder = check_wan_folder(checkpoint)
    with warnings.catch_warnings():  # newer diffusers renamed torch_dtype; older ones only know it
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=parse_dtype(vae_dtype), local_files_only=True)
        given = {"text_encoder": text_encoder} if text_encoder is not None else {}
        pipe = WanStereoPipeline.from_pretrained(
            folder, vae=vae, torch_dtype=parse_dtype(dtype), local_files_only=True, **given
        )
    pipe.set_progress_bar_config(disable=True)
    device = torch.device(device)
    offload = ("model" if offload else "none") if isinstance(offload, bool) else str(offload)
    if offload not in ("none", "model", "sequential"):
        raise ValueError(f"offload must be true/false, 'none', 'model' or 'sequential', got {offload!r}")
    if offload != "none":
        if device.type == "cpu":
            raise ValueError(f"offload={offload!r} needs an accelerator device (e.g. 'cuda'), got device='cpu'")
        if offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if vae_tiling:
        pipe.vae.enable_tiling()
    if vae_slicing:
        pipe.vae.enable_slicing()
    return WanComponents(pipe=pipe, folder=folder)


# ---------------------------------------------------------------------------- positional range
@dataclass(frozen=True)
class PositionalRange:
    """How large a video a Wan transformer can place: its RoPE table covers ``rope_max_seq_len``
    patches per axis, i.e. ``max_side_px`` pixels per side and ``max_frames`` frames."""

    rope_max_seq_len: int
    max_side_px: int
    max_frames: int
    config_path: Path


def positional_range(checkpoint: str | Path | dict, vae_config: dict | None = None) -> PositionalRange:
    """A Wan model's positional range, from its folder (``transformer/config.json`` and
    ``vae/config.json``: cheap, no weights) or from loaded configs (``checkpoint`` = the
    transformer's config dict, ``vae_config`` the VAE's).

    Per axis the transformer sees ``size / (vae x patch)`` positions; diffusers'
    ``WanRotaryPosEmbed`` has ``rope_max_seq_len`` of them (Wan2.1: 1024, i.e. 16384 px
    with patch 2 and the 8x VAE).
    """
    if isinstance(checkpoint, dict):
        config, vae_config, config_path = checkpoint, vae_config or {}, Path("transformer config")
    else:
        folder = resolve_wan(checkpoint)
        config_path = folder / "transformer" / "config.json"
        if not config_path.is_file():
            check_wan_folder(folder)  # raises the folder's own, clearer error
        config = json.loads(config_path.read_text())
        vae_config_path = folder / "vae" / "config.json"
        vae_config = json.loads(vae_config_path.read_text()) if vae_config_path.is_file() else {}
    downsample = vae_config.get("temperal_downsample", [False, True, True])
    spatial, temporal = 2 ** len(downsample), 2 ** sum(bool(d) for d in downsample)
    patch_t, patch_h, _ = config.get("patch_size", [1, 2, 2])
    rope = int(config.get("rope_max_seq_len", 1024))
    return PositionalRange(
        rope_max_seq_len=rope,
        max_side_px=rope * patch_h * spatial,
        max_frames=temporal * (rope * patch_t - 1) + 1,
        config_path=config_path,
    )


def check_positional_range(
    limits: PositionalRange | str | Path, height: int, width: int, num_frames: int | None = None, *,
    option: str | None = None,
) -> None:
    """Raise ``ValueError`` when ``height x width`` (px, before padding to 16) or ``num_frames``
    exceeds a transformer's positional range (``limits``, or a checkpoint folder to read it
    from); the message names the size, the limit and ``option`` (the setting to change,
    e.g. ``data.init_args.size``)."""
    if not isinstance(limits, PositionalRange):
        limits = positional_range(limits)
    change = f"lower {option}" if option else "use smaller frames"
    hint = (
        f"{change}, or use a checkpoint with a larger rope_max_seq_len (Wan2.1's own: 1024; re-create old tiny "
        "checkpoints with `python data_prep/make_tiny_checkpoints.py --out DIR`)"
    )
    padded = max(-(-height // 16) * 16, -(-width // 16) * 16)
    if padded > limits.max_side_px:
        raise ValueError(
            f"frames of {height}x{width} px (padded to multiples of 16) exceed the Wan transformer's positional range "
            f"of {limits.max_side_px} px per side (rope_max_seq_len={limits.rope_max_seq_len} in {limits.config_path}): {hint}"
        )
    if num_frames is not None and num_frames > limits.max_frames:
        raise ValueError(
            f"{num_frames} frames exceed the Wan transformer's positional range of {limits.max_frames} frames "
            f"(rope_max_seq_len={limits.rope_max_seq_len} in {limits.config_path}): use a shorter window, or {hint}"
        )


def planned_frame_sizes(datamodule: Any) -> list[tuple[int, int, str]]:
    """``(height, width, option)`` of the frames a (set-up) datamodule will produce, as far as it
    says before any frame is decoded: probed videos (``videos``), a fixed ``size`` or a prompt
    datamodule's ``height``/``width``. ``option`` names the setting that changes the size."""
    out: list[tuple[int, int, str]] = []
    if datamodule is None:
        return out
    videos = getattr(datamodule, "videos", None)
    if videos:
        for video in videos:
            size = getattr(video, "size", None)
            info = getattr(video, "info", None)
            if size is None and info is not None:
                size = (info.height, info.width)
            if size is not None:
                out.append((int(size[0]), int(size[1]), "data.init_args.max_side (or data.init_args.size)"))
        return out
    size = getattr(datamodule, "size", None)
    if size is not None:
        out.append((int(size[0]), int(size[1]), "data.init_args.size"))
    height, width = getattr(datamodule, "height", None), getattr(datamodule, "width", None)
    if isinstance(height, int) and isinstance(width, int):
        out.append((height, width, "data.init_args.height / data.init_args.width"))
    return out
