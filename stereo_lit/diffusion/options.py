"""The option groups of :class:`~stereo_lit.diffusion.generator.WanStereoGenerator`.

A config reads like the method::

    generator:
      class_path: stereo_lit.diffusion.WanStereoGenerator
      init_args:
        strategy: x0_blend
        sampling: {num_inference_steps: 50, guidance_scale: 5.0, scheduler: unipc, flow_shift: 3.0}
        memory: {dtype: bfloat16, offload: null}
        lora: {path: [{path: loras/distill, weight: 1.0}, {path: outputs/lora_mono/lora, weight: 0.8}]}

Each group is a dataclass (LightningCLI parses the nested keys: ``--model.generator.init_args.sampling.num_inference_steps 8``)
and checks its own values on construction, naming the option and what was expected.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stereo_lit.errors import register_hint

SCHEDULERS = ("unipc", "euler", "dpmpp", "lcm")
#: schedulers that take an explicit list of noise levels (``sampling.timesteps``)
CUSTOM_TIMESTEP_SCHEDULERS = ("euler", "lcm")
NOISE_MODES = ("shared", "inverted")
BATCH_MODES = ("separate", "shared")
CYCLE_SPACES = ("latent", "pixel")
SIGMA_SAMPLINGS = ("uniform", "logit_normal")


def _check_choice(group: str, name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{group}.{name} must be one of {allowed}, got {value!r}")


@dataclass
class SamplingOptions:
    """How each window is sampled.

    Args:
        num_inference_steps: denoising steps (Wan: 50; a step-distilled LoRA: 4-8).
        guidance_scale: classifier-free guidance scale; 1 (or less) skips the unconditional
            pass, halving the transformer evaluations.
        guidance_stop: fraction of the steps that are guided by the warp (the rest harmonise seams).
        flow_shift: sigma shift of the schedule (3.0 for 480p, 5.0 for 720p).
        scheduler: ``"unipc"`` (Wan's default), ``"euler"``, ``"dpmpp"`` or ``"lcm"`` (diffusers'
            ``FlowMatchLCMScheduler``: each step jumps to the clean prediction and re-noises it with
            fresh seeded noise, as step-distilled samplers such as lightx2v's do).
        timesteps: explicit noise levels out of 1000 before the shift, one per step (e.g. lightx2v's
            ``[1000, 750, 500, 250]``); ``euler`` and ``lcm`` only; None = the scheduler's own spacing.
        noise: right-view initial noise: ``"shared"`` with the left (the seed's noise) or
            ``"inverted"`` (left latent inverted to noise with the sampler's CFG, shifted to the right view).
        batch_mode: ``"separate"`` transformer calls per prompt (as WanPipeline) or one ``"shared"``
            batch for the conditional and unconditional inputs.
        shift_every: ``latent_shift`` only: shift every k-th step.
        cache: a diffusers cache on the transformer, e.g. ``{kind: first_block, threshold: 0.05}``
            (``first_block`` | ``taylorseer`` | ``mag``; the other keys are the diffusers config's
            fields: :func:`~stereo_lit.diffusion.pipeline.cache_config`); None = no cache.
        conditioning_scale: VACE backbone only: scale of the VACE control (the warped view and hole mask).
    """

    num_inference_steps: int = 50
    guidance_scale: float = 5.0
    guidance_stop: float = 0.8
    flow_shift: float = 3.0
    scheduler: str = "unipc"
    noise: str = "shared"
    batch_mode: str = "separate"
    shift_every: int = 1
    cache: dict[str, Any] | None = None
    conditioning_scale: float = 1.0
    timesteps: list[float] | None = None

    def __post_init__(self) -> None:
        _check_choice("sampling", "scheduler", self.scheduler, SCHEDULERS)
        _check_choice("sampling", "noise", self.noise, NOISE_MODES)
        _check_choice("sampling", "batch_mode", self.batch_mode, BATCH_MODES)
        if self.num_inference_steps < 1:
            raise ValueError(f"sampling.num_inference_steps must be >= 1, got {self.num_inference_steps}")
        if not 0.0 <= self.guidance_stop <= 1.0:
            raise ValueError(f"sampling.guidance_stop must be in [0, 1], got {self.guidance_stop}")
        if self.shift_every < 1:
            raise ValueError(f"sampling.shift_every must be >= 1, got {self.shift_every}")
        if self.cache is not None:
            self.cache = dict(self.cache)
        if self.timesteps is not None:
            self.timesteps = [float(t) for t in self.timesteps]
            if self.scheduler not in CUSTOM_TIMESTEP_SCHEDULERS:
                raise ValueError(
                    f"sampling.timesteps needs a scheduler that takes explicit noise levels {CUSTOM_TIMESTEP_SCHEDULERS}, "
                    f"got scheduler {self.scheduler!r}"
                )
            steps = self.timesteps
            if len(steps) != self.num_inference_steps or any(not 0 < t <= 1000 for t in steps) or any(
                a <= b for a, b in zip(steps, steps[1:])
            ):
                raise ValueError(
                    f"sampling.timesteps must be {self.num_inference_steps} (num_inference_steps) strictly decreasing "
                    f"values in (0, 1000], got {steps}"
                )

    @property
    def sigmas(self) -> list[float] | None:
        """``timesteps / 1000`` (the unshifted sigmas the scheduler's ``set_timesteps`` takes), or None."""
        return None if self.timesteps is None else [t / 1000.0 for t in self.timesteps]

    @property
    def uses_cfg(self) -> bool:
        """True when the unconditional pass runs (``guidance_scale > 1``)."""
        return self.guidance_scale > 1.0


@dataclass
class MemoryOptions:
    """Where and how the models are held.

    Args:
        dtype: transformer / text-encoder dtype (``bfloat16``, ``float16``, ``float32``); the VAE runs in float32.
        device: ``"auto"`` (cuda when available), ``"cuda"``, ``"cpu"``...
        offload: CPU offload: ``"none"``/false, ``"model"``/true (diffusers model offload) or
            ``"sequential"`` (layer by layer: least memory, slowest); None = chosen on CUDA from the
            free GPU memory at the first video (:mod:`~stereo_lit.diffusion.memory_plan`).
        vae_tiling: VAE tiling (None = planned like ``offload``).
        vae_slicing: VAE slicing over the batch.
        attention_backend: diffusers attention backend (``set_attention_backend``, e.g. ``"flash"``,
            ``"sage"``, ``"native"``); None = diffusers' default.
    """

    dtype: str = "bfloat16"
    device: str = "auto"
    offload: bool | str | None = None
    vae_tiling: bool | None = None
    vae_slicing: bool = False
    attention_backend: str | None = None


@dataclass
class LoRAAdapter:
    """One saved adapter to load for inference.

    Args:
        path: a diffusers LoRA folder (``pytorch_lora_weights.safetensors``) or a ``.safetensors`` file.
        weight: its scale (diffusers ``set_adapters`` weight).
        name: adapter name (default: ``adapter0``, ``adapter1``... in the order given; a single
            adapter is ``default``, the name training uses).
    """

    path: str
    weight: float = 1.0
    name: str | None = None


@dataclass
class LoRAOptions:
    """LoRA adapters: loaded for inference and/or trained (``stereo-lit fit``).

    Args:
        rank: rank of a new trainable adapter on the attention projections; 0 = no training.
        alpha: LoRA scale numerator (default: ``rank``, i.e. scale 1).
        dropout: LoRA dropout.
        target_modules: peft target modules (default ``to_q, to_k, to_v, to_out.0``).
        path: saved adapter(s): one folder/file, or a list of ``{path, weight, name}`` loaded through
            diffusers' multi-adapter API (e.g. a step-distillation LoRA plus a stereo LoRA). With
            ``rank > 0`` the adapter named ``default`` (a single unnamed path) resumes training;
            otherwise a fresh ``default`` trains over the frozen loaded ones.
        gradient_checkpointing: recompute transformer blocks in the backward pass (training).
        cycle_weight: weight of the right->left cycle term of the training loss.
        cycle_space: ``"latent"`` (no decode) or ``"pixel"`` (decode with gradients).
        sigma_sampling: training noise levels: ``"logit_normal"`` or ``"uniform"``.
    """

    rank: int = 0
    alpha: float | None = None
    dropout: float = 0.0
    target_modules: list[str] | None = None
    path: str | list[LoRAAdapter] | None = None
    gradient_checkpointing: bool = False
    cycle_weight: float = 0.1
    cycle_space: str = "latent"
    sigma_sampling: str = "logit_normal"

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise ValueError(f"lora.rank must be >= 0 (0 = no training), got {self.rank}")
        _check_choice("lora", "cycle_space", self.cycle_space, CYCLE_SPACES)
        _check_choice("lora", "sigma_sampling", self.sigma_sampling, SIGMA_SAMPLINGS)
        if isinstance(self.path, Path):
            self.path = str(self.path)
        if isinstance(self.path, (list, tuple)):
            self.path = [a if isinstance(a, LoRAAdapter) else LoRAAdapter(**a) if isinstance(a, dict) else LoRAAdapter(str(a))
                         for a in self.path]
            if not self.path:
                self.path = None

    @property
    def adapters(self) -> list[LoRAAdapter]:
        """``path`` as a list of adapters (empty when none)."""
        if self.path is None:
            return []
        if isinstance(self.path, str):
            return [LoRAAdapter(self.path)]
        return list(self.path)


#: the generator's former flat options -> ``(group, key)`` (``scripts/migrate_config.py`` uses it)
FLAT_OPTIONS: dict[str, tuple[str, str]] = {
    **{k: ("sampling", k) for k in ("num_inference_steps", "guidance_scale", "guidance_stop", "flow_shift", "scheduler",
                                     "noise", "batch_mode", "shift_every", "cache", "conditioning_scale")},
    **{k: ("memory", k) for k in ("dtype", "device", "offload", "vae_tiling", "vae_slicing", "attention_backend")},
    "lora_rank": ("lora", "rank"),
    "lora_alpha": ("lora", "alpha"),
    "lora_dropout": ("lora", "dropout"),
    "lora_target_modules": ("lora", "target_modules"),
    "lora_path": ("lora", "path"),
    "gradient_checkpointing": ("lora", "gradient_checkpointing"),
    "cycle_weight": ("lora", "cycle_weight"),
    "cycle_space": ("lora", "cycle_space"),
    "train_sigma_sampling": ("lora", "sigma_sampling"),
}
GROUPS = ("sampling", "memory", "lora")


@register_hint
def flat_key_hint(message: str) -> str | None:
    """For an error refusing a former flat generator key: the key it moved to and the migration script."""
    found = [k for k in re.findall(r"""['"]([A-Za-z_]+)['"] is not (?:accepted|expected)""", message) if k in FLAT_OPTIONS]
    if not found:
        return None
    moves = ", ".join(f"{k} -> {'.'.join(FLAT_OPTIONS[k])}" for k in found)
    return (f"the generator's flat options moved into groups ({moves}, under model.generator.init_args); "
            "python scripts/migrate_config.py CONFIG.yaml rewrites a config")


def group_flat_options(**flat: Any) -> dict[str, Any]:
    """Former flat generator keywords -> the grouped ones (other keys pass through), e.g.
    ``group_flat_options(num_inference_steps=2, dtype="float32", seed=1)`` ->
    ``{"sampling": {"num_inference_steps": 2}, "memory": {"dtype": "float32"}, "seed": 1}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key in FLAT_OPTIONS:
            group, new_key = FLAT_OPTIONS[key]
            out.setdefault(group, {})[new_key] = value
        else:
            out[key] = value
    return out


def as_options(value: Any, cls: type) -> Any:
    """``None`` -> defaults, a dict -> ``cls(**dict)``, an instance -> a copy of it (a default instance in
    a signature is shared: each generator gets its own); other types raise."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return copy.deepcopy(value)
    if isinstance(value, dict):
        try:
            return cls(**value)
        except TypeError as exc:
            raise ValueError(f"{cls.__name__}: {exc}") from exc
    raise TypeError(f"expected {cls.__name__} or a dict of its fields, got {type(value).__name__}")


__all__ = ["CUSTOM_TIMESTEP_SCHEDULERS", "FLAT_OPTIONS", "GROUPS", "LoRAAdapter", "LoRAOptions", "MemoryOptions", "SamplingOptions", "as_options", "group_flat_options"]
