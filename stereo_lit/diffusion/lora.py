"""LoRA adapters (peft) on the Wan transformer's attention projections, in the diffusers format.

- :func:`add_lora`: a fresh trainable adapter named ``"default"`` on ``to_q/to_k/to_v/to_out.0``
  of every self- and cross-attention block; base weights stay frozen; adapter
  parameters are kept in float32 even when the transformer runs in bf16/fp16.
- :func:`save_lora`: ``FOLDER/pytorch_lora_weights.safetensors`` written by
  ``WanPipeline.save_lora_weights`` (keys ``transformer.blocks.N.attn1.to_q.lora_A.weight``...,
  with the adapter's ``LoraConfig`` as safetensors metadata so rank and alpha load back),
  atomically (written in a temporary folder, then renamed into place).
- :func:`load_lora_into`: ``pipe.load_lora_weights(folder)`` (``WanLoraLoaderMixin``), the
  same call any diffusers user makes with the saved folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch

#: Adapter name used throughout (peft's default; ``get_peft_model_state_dict`` reads it).
ADAPTER_NAME = "default"
log = logging.getLogger(__name__)
#: The file ``WanPipeline.save_lora_weights`` writes and ``load_lora_weights`` reads.
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
DEFAULT_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0")


def has_lora(transformer: torch.nn.Module) -> bool:
    """True when ``transformer`` holds the :data:`ADAPTER_NAME` adapter."""
    return ADAPTER_NAME in (getattr(transformer, "peft_config", None) or {})


def add_lora(
    transformer: torch.nn.Module,
    rank: int = 16,
    alpha: float = 16,
    target_modules: Iterable[str] = DEFAULT_TARGET_MODULES,
    dropout: float = 0.0,
    *,
    gradient_checkpointing: bool = False,
) -> torch.nn.Module:
    """Add a trainable LoRA adapter to ``transformer`` (in place) and return it.

    Only the LoRA matrices train: every base parameter gets ``requires_grad=False``.
    ``lora_B`` starts at zero, so the adapted model first computes exactly what the base
    model computes. The update is ``(alpha / rank) * B @ A``.

    Args:
        transformer: a diffusers ``WanTransformer3DModel`` (any ``PeftAdapterMixin`` model).
        rank, alpha: LoRA rank and scale numerator.
        target_modules: module-name suffixes to adapt (peft matching); Wan's attention
            projections are ``to_q``, ``to_k``, ``to_v`` and ``to_out.0`` in ``attn1`` (self)
            and ``attn2`` (cross).
        dropout: LoRA dropout (active only in ``train()`` mode).
        gradient_checkpointing: recompute block activations in the backward pass.
    """
    from peft import LoraConfig

    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    if has_lora(transformer):
        raise ValueError(f"the transformer already has a LoRA adapter named {ADAPTER_NAME!r}")
    targets = list(target_modules)
    if not targets:
        raise ValueError("target_modules is empty: name at least one projection (e.g. 'to_q')")
    transformer.requires_grad_(False)
    config = LoraConfig(
        r=int(rank), lora_alpha=alpha, lora_dropout=dropout, init_lora_weights=True, target_modules=targets
    )
    transformer.add_adapter(config, adapter_name=ADAPTER_NAME)
    params = lora_parameters(transformer)
    if not params:
        raise ValueError(f"target_modules={targets} matched no module of {type(transformer).__name__}")
    mark_lora_trainable(transformer)
    if gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    return transformer


def mark_lora_trainable(transformer: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Make exactly the LoRA parameters trainable, in float32 (base weights stay frozen); return them."""
    params = []
    for name, param in transformer.named_parameters():
        is_lora = "lora_" in name
        param.requires_grad_(is_lora)
        if is_lora:
            if param.dtype != torch.float32:
                param.data = param.data.float()
            params.append(param)
    return params


def lora_parameters(transformer: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The LoRA parameters (``lora_A`` / ``lora_B`` weights) of ``transformer``, in module order."""
    return [p for name, p in transformer.named_parameters() if "lora_" in name]


def lora_state_dict(transformer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's weights with peft's key names (``blocks.0.attn1.to_q.lora_A.weight``...), on CPU."""
    from peft.utils import get_peft_model_state_dict

    if not has_lora(transformer):
        raise ValueError("the transformer has no LoRA adapter (add_lora or load_lora_into first)")
    state = get_peft_model_state_dict(transformer, adapter_name=ADAPTER_NAME)
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_lora(transformer: torch.nn.Module, folder: str | Path) -> Path:
    """Write the adapter as ``folder/pytorch_lora_weights.safetensors`` (diffusers Wan LoRA format).

    Uses ``WanPipeline.save_lora_weights`` with the adapter's ``LoraConfig`` as metadata
    (so a rank/alpha other than 1:1 loads back with the right scale). Atomic: the file is
    written in a temporary folder beside ``folder`` and renamed into place, so a crash
    never leaves a truncated adapter. Returns the file's path.
    """
    from diffusers import WanPipeline

    state = lora_state_dict(transformer)
    metadata = transformer.peft_config[ADAPTER_NAME].to_dict()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".lora-", dir=out))
    try:
        WanPipeline.save_lora_weights(
            tmp, transformer_lora_layers=state, transformer_lora_adapter_metadata=metadata, safe_serialization=True
        )
        written = tmp / LORA_WEIGHT_NAME
        if not written.is_file():
            raise RuntimeError(f"WanPipeline.save_lora_weights wrote no {LORA_WEIGHT_NAME} in {tmp}")
        os.replace(written, out / LORA_WEIGHT_NAME)
        os.chmod(out / LORA_WEIGHT_NAME, 0o666 & ~_umask())  # as any other output, not the temp folder's 0600
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / LORA_WEIGHT_NAME


def load_lora_into(pipe: Any, folder: str | Path, *, trainable: bool = False) -> Any:
    """Load a saved adapter into ``pipe.transformer`` with ``pipe.load_lora_weights`` (in place).

    Args:
        pipe: a ``WanPipeline`` (anything with ``WanLoraLoaderMixin``).
        folder: a folder holding ``pytorch_lora_weights.safetensors`` (or that file itself).
        trainable: make the loaded LoRA weights trainable (float32) to resume fine-tuning.

    Returns:
        ``pipe``.
    """
    path = Path(folder).expanduser()
    weight_name = None
    if path.is_file():
        path, weight_name = path.parent, path.name
    elif not (path / LORA_WEIGHT_NAME).is_file():
        raise FileNotFoundError(
            f"LoRA folder {str(path)!r} has no {LORA_WEIGHT_NAME}; expected a folder written by "
            "stereo_lit.diffusion.lora.save_lora (or WanPipeline.save_lora_weights)"
        )
    if has_lora(pipe.transformer):
        raise ValueError(f"the transformer already has a LoRA adapter named {ADAPTER_NAME!r}; load into a fresh pipeline")
    kwargs = {"weight_name": weight_name} if weight_name else {}
    pipe.load_lora_weights(str(path), adapter_name=ADAPTER_NAME, local_files_only=True, **kwargs)
    if trainable:
        mark_lora_trainable(pipe.transformer)
    else:
        pipe.transformer.requires_grad_(False)
    log.info(
        "LoRA %s: adapter %r on %d layers of the transformer%s",
        Path(path) / (weight_name or LORA_WEIGHT_NAME), ADAPTER_NAME, count_lora_layers(pipe.transformer),
        " (trainable)" if trainable else "",
    )
    return pipe


def count_lora_layers(transformer: torch.nn.Module) -> int:
    """How many layers of ``transformer`` carry the adapter (peft tuner layers with ``ADAPTER_NAME``)."""
    return sum(1 for m in transformer.modules() if ADAPTER_NAME in getattr(m, "lora_A", {}))


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
