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
from typing import Any

import torch

#: Files a Wan2.1 Diffusers folder must have (``*/`` entries: any weights file in it).
REQUIRED_FILES = (
    "model_index.json",
    "vae/config.json",
    "transformer/config.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
)
REQUIRED_WEIGHTS = ("vae", "transformer", "text_encoder")
SCHEDULERS = ("unipc", "euler", "dpmpp")

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


def check_wan_folder(folder: str | Path) -> Path:
    """Raise a clear error unless ``folder`` is a complete Wan2.1 Diffusers folder; return it."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"Wan2.1 checkpoint folder {str(path)!r} does not exist; expected a Diffusers folder such as "
            "checkpoints/Wan2.1-T2V-1.3B-Diffusers (see checkpoints/README.md), or run "
            "`python data_prep/make_tiny_checkpoints.py --out checkpoints` for a tiny random one"
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
        name: ``"unipc"`` (Wan's default, multistep), ``"euler"`` (first order) or
            ``"dpmpp"`` (DPM-Solver++ 2M, multistep).
        flow_shift: sigma shift (3.0 for 480p, 5.0 for 720p).
        base_config: a scheduler config to start from (the checkpoint's), else defaults.
    """
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    base = dict(base_config or {})
    num_train = int(base.get("num_train_timesteps", 1000))
    if name == "unipc":
        keep = {k: v for k, v in base.items() if not k.startswith("_")} if base.get("_class_name") == "UniPCMultistepScheduler" else {}
        keep.update(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=flow_shift, num_train_timesteps=num_train)
        return UniPCMultistepScheduler.from_config(keep)
    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train, shift=flow_shift)
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


@dataclass
class WanComponents:
    """The loaded model parts. ``pipe`` is the ``WanPipeline`` holding them (prompt encoding, offload)."""

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
    offload: bool = False,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
) -> WanComponents:
    """Load a local Wan2.1 Diffusers folder.

    Args:
        checkpoint: folder with ``model_index.json`` (never downloaded).
        dtype: transformer and text-encoder dtype.
        vae_dtype: VAE dtype (float32 recommended).
        device: compute device; with ``offload`` the models live on CPU and each moves
            to ``device`` while it runs (diffusers model CPU offload).
        vae_tiling, vae_slicing: VAE memory savers for consumer GPUs.
    """
    from diffusers import AutoencoderKLWan, WanPipeline

    folder = check_wan_folder(checkpoint)
    with warnings.catch_warnings():  # newer diffusers renamed torch_dtype; older ones only know it
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=parse_dtype(vae_dtype), local_files_only=True)
        pipe = WanPipeline.from_pretrained(folder, vae=vae, torch_dtype=parse_dtype(dtype), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    device = torch.device(device)
    if offload:
        if device.type == "cpu":
            raise ValueError("offload=True needs an accelerator device (e.g. 'cuda'), got device='cpu'")
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if vae_tiling:
        pipe.vae.enable_tiling()
    if vae_slicing:
        pipe.vae.enable_slicing()
    return WanComponents(pipe=pipe, folder=folder)
