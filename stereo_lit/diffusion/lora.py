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
- :func:`load_adapters`: several saved adapters with weights through diffusers' multi-adapter
  API (``load_lora_weights(..., adapter_name=...)`` each, then ``set_adapters(names, weights)``),
  e.g. a public step-distillation LoRA plus a stereo LoRA; each is checked to fit the transformer.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from stereo_lit.diffusion.options import LoRAAdapter

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


def mark_lora_trainable(transformer: torch.nn.Module, adapter_name: str = ADAPTER_NAME) -> list[torch.nn.Parameter]:
    """Make exactly the LoRA parameters of ``adapter_name`` trainable, in float32 (base weights and
    any other adapter stay frozen); return them."""
    params = []
    for name, param in transformer.named_parameters():
        is_lora = _is_lora_param(name, adapter_name)
        param.requires_grad_(is_lora)
        if is_lora:
            if param.dtype != torch.float32:
                param.data = param.data.float()
            params.append(param)
    return params


def lora_parameters(transformer: torch.nn.Module, adapter_name: str | None = ADAPTER_NAME) -> list[torch.nn.Parameter]:
    """The LoRA parameters (``lora_A`` / ``lora_B`` weights) of ``adapter_name`` (None: of every
    adapter) in ``transformer``, in module order."""
    return [p for name, p in transformer.named_parameters() if _is_lora_param(name, adapter_name)]


def _is_lora_param(name: str, adapter_name: str | None) -> bool:
    """``blocks.0.attn1.to_q.lora_A.default.weight`` is a parameter of adapter ``default``."""
    return "lora_" in name and (adapter_name is None or f".{adapter_name}." in name)


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
    """Load one saved adapter into ``pipe.transformer`` as :data:`ADAPTER_NAME` (in place).

    Args:
        pipe: a ``WanPipeline`` (anything with ``WanLoraLoaderMixin``).
        folder: a folder holding ``pytorch_lora_weights.safetensors`` (or that file itself).
        trainable: make the loaded LoRA weights trainable (float32) to resume fine-tuning.

    Returns:
        ``pipe``.
    """
    if has_lora(pipe.transformer):
        raise ValueError(f"the transformer already has a LoRA adapter named {ADAPTER_NAME!r}; load into a fresh pipeline")
    load_adapters(pipe, [LoRAAdapter(str(folder), name=ADAPTER_NAME)], trainable=ADAPTER_NAME if trainable else None)
    return pipe


def lora_file(path: str | Path) -> tuple[Path, str | None]:
    """``(folder, weight_name)`` for ``load_lora_weights``: a folder holding :data:`LORA_WEIGHT_NAME`
    (``weight_name`` None), or a ``.safetensors`` file (its folder and name).

    Raises:
        FileNotFoundError: naming the path, when it does not exist or the folder has no adapter file.
    """
    from stereo_lit.io.hub import parse_id, resolve

    file = resolve(path, option="lora.path") if parse_id(str(path)) is not None else Path(path).expanduser()
    if file.is_file():
        return file.parent, file.name
    if file.is_dir():
        if (file / LORA_WEIGHT_NAME).is_file():
            return file, None
        raise FileNotFoundError(
            f"LoRA folder {str(file)!r} has no {LORA_WEIGHT_NAME}; expected a folder written by "
            "stereo_lit.diffusion.lora.save_lora (or WanPipeline.save_lora_weights), or the path of a .safetensors LoRA file"
        )
    raise FileNotFoundError(
        f"LoRA path {str(file)!r} does not exist (expected a folder holding {LORA_WEIGHT_NAME} or a .safetensors file)"
    )


def adapter_names(adapters: Sequence[LoRAAdapter]) -> list[str]:
    """The name each adapter loads under: its ``name``; unnamed, :data:`ADAPTER_NAME` when it is the only
    adapter, else ``adapter{i}`` (its position). Raises ValueError on a duplicate or malformed name."""
    names = []
    for i, adapter in enumerate(adapters):
        name = adapter.name if adapter.name is not None else (ADAPTER_NAME if len(adapters) == 1 else f"adapter{i}")
        if not isinstance(name, str) or not name or "." in name or any(c.isspace() for c in name):
            raise ValueError(f"lora.path[{i}].name must be a non-empty name without dots or spaces, got {name!r}")
        if name in names:
            raise ValueError(
                f"lora.path[{i}] ({adapter.path}): adapter name {name!r} is already used by lora.path[{names.index(name)}]; "
                "give each adapter its own name"
            )
        names.append(name)
    return names


def load_adapters(pipe: Any, adapters: Sequence[LoRAAdapter], *, trainable: str | None = None) -> list[str]:
    """Load ``adapters`` into ``pipe.transformer`` with diffusers' multi-adapter API (in place).

    Each is loaded with ``pipe.load_lora_weights(folder, adapter_name=name)`` and checked to fit
    (every layer it names exists with its shapes), then all are activated together with
    ``pipe.set_adapters(names, weights)``: the transformer computes ``base + sum_i w_i * delta_i``
    on every adapted layer. Every path is checked before anything loads; on an error, the
    adapters loaded by this call are deleted again.

    Args:
        pipe: a pipeline with ``WanLoraLoaderMixin`` (``WanPipeline``, ``WanStereoPipeline``...).
        adapters: ``LoRAAdapter(path, weight, name)`` each (names: :func:`adapter_names`).
        trainable: the name of the adapter whose weights stay trainable (float32, resumed
            fine-tuning); every other LoRA weight, and the base model, is frozen.

    Returns:
        The adapter names, in the order given.

    Raises:
        FileNotFoundError: a path (named) does not exist or holds no adapter file.
        ValueError: a duplicate name, a name the transformer already holds, a weight that is not
            finite, or an adapter that does not fit the transformer (path and cause named).
    """
    names = adapter_names(adapters)
    files = [lora_file(a.path) for a in adapters]
    weights = []
    for i, adapter in enumerate(adapters):
        if isinstance(adapter.weight, bool) or not isinstance(adapter.weight, (int, float)) or not math.isfinite(adapter.weight):
            raise ValueError(f"lora.path[{i}].weight ({adapter.path}) must be a finite number, got {adapter.weight!r}")
        weights.append(float(adapter.weight))
    if trainable is not None and trainable not in names:
        raise ValueError(f"trainable adapter {trainable!r} is not among the adapters to load {names}")
    transformer = pipe.transformer
    present = [n for n in names if n in (getattr(transformer, "peft_config", None) or {})]
    if present:
        raise ValueError(f"the transformer already has LoRA adapter(s) {present}; load into a fresh pipeline")
    loaded: list[str] = []
    try:
        for name, (folder, weight_name) in zip(names, files):
            _load_one(pipe, folder, weight_name, name)
            loaded.append(name)
        pipe.set_adapters(names, adapter_weights=weights)
    except BaseException:
        if loaded:
            pipe.delete_adapters(loaded)
        raise
    # set_adapters marks every active adapter trainable (peft): freeze, then thaw the one to train
    transformer.requires_grad_(False)
    if trainable is not None:
        mark_lora_trainable(transformer, trainable)
    for name, weight, (folder, weight_name) in zip(names, weights, files):
        log.info(
            "LoRA adapter %r (weight %g) from %s: %d layers of the transformer%s", name, weight,
            folder / (weight_name or LORA_WEIGHT_NAME), count_lora_layers(transformer, name),
            " (trainable)" if name == trainable else "",
        )
    return names


def _load_one(pipe: Any, folder: Path, weight_name: str | None, name: str) -> None:
    """``pipe.load_lora_weights`` of one adapter; raises ValueError naming the file when it does not fit."""
    shown = str(folder / (weight_name or LORA_WEIGHT_NAME))
    target = type(pipe.transformer).__name__
    kwargs = {"weight_name": weight_name} if weight_name else {}
    try:
        pipe.load_lora_weights(str(folder), adapter_name=name, local_files_only=True, **kwargs)
    except torch.OutOfMemoryError:
        raise
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:  # size mismatch, no matching module, not a LoRA
        raise ValueError(f"LoRA adapter {name!r} ({shown}) does not fit the {target}: {_summary(exc)}") from exc
    expected = expected_lora_layers(pipe, folder, weight_name)
    have = lora_layer_names(pipe.transformer, name)
    missing = sorted(expected - have)
    if missing or not have:
        if name in (getattr(pipe.transformer, "peft_config", None) or {}):
            pipe.delete_adapters(name)
        detail = (f"{len(missing)} of its {len(expected)} layers are not in the model (e.g. {', '.join(missing[:3])})"
                  if missing else "none of its layers is in the model")
        raise ValueError(
            f"LoRA adapter {name!r} ({shown}) does not fit the {target}: {detail}; "
            "was it made for another model (size, Wan version, I2V/T2V)?"
        )


def _summary(exc: BaseException) -> str:
    """The first line of an error (with the next one when the first ends with ``:``), and how many lines follow."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    head = lines[0] + (" " + lines[1] if lines[0].endswith(":") and len(lines) > 1 else "")
    rest = len(lines) - (2 if head != lines[0] else 1)
    return head + (f" (and {rest} more lines)" if rest > 0 else "")


def expected_lora_layers(pipe: Any, folder: Path, weight_name: str | None) -> set[str]:
    """The transformer modules an adapter file names (``blocks.0.attn1.to_q``...), after diffusers'
    key conversion. Diffusers-format ``.safetensors`` files are read from their header only."""
    file = folder / (weight_name or LORA_WEIGHT_NAME)
    keys: list[str] | None = None
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            keys = list(handle.keys())
        if not any(k.startswith("transformer.") for k in keys):
            keys = None  # another format: let diffusers convert it
    if keys is None:
        kwargs = {"weight_name": weight_name} if weight_name else {}
        keys = list(type(pipe).lora_state_dict(str(folder), local_files_only=True, **kwargs))
    prefix = "transformer."
    return {k[len(prefix):k.index(".lora_A.")] for k in keys if k.startswith(prefix) and ".lora_A." in k}


def count_lora_layers(transformer: torch.nn.Module, adapter_name: str = ADAPTER_NAME) -> int:
    """How many layers of ``transformer`` carry the adapter (peft tuner layers with ``adapter_name``)."""
    return len(lora_layer_names(transformer, adapter_name))


def lora_layer_names(transformer: torch.nn.Module, adapter_name: str) -> set[str]:
    """Names of the modules carrying ``adapter_name`` (``blocks.0.attn1.to_q``...)."""
    return {name for name, m in transformer.named_modules() if adapter_name in (getattr(m, "lora_A", None) or {})}


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
