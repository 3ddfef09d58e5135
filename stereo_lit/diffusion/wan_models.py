"""The Wan models one generator uses: loaded once (or shared), planned for memory, checked early.

:class:`WanModels` is the part of :class:`~stereo_lit.diffusion.generator.WanStereoGenerator`
that is not the method: it loads the :class:`~stereo_lit.diffusion.pipeline.WanStereoPipeline`
on first use (sharing one load between the methods of a module, :class:`SharedComponents`),
applies the LoRA, cache and attention options, settles the memory plan from the free GPU
memory, caches prompt embeddings and fails at setup (missing folder, frames too large for
the positional range) before any depth is estimated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import weakref
from pathlib import Path
from typing import Any

import torch

from stereo_lit.io.hub import resolve
from stereo_lit.diffusion.loading import (
    SharedComponents,
    WanComponents,
    check_positional_range,
    check_wan_folder,
    load_wan,
    make_scheduler,
    parse_dtype,
    positional_range,
)
from stereo_lit.diffusion.memory_plan import (
    MemoryPlan,
    free_gpu_bytes,
    model_size_from_config,
    normalize_offload,
    plan_memory,
)
from stereo_lit.diffusion.options import LoRAOptions, MemoryOptions, SamplingOptions

#: frames per window when ``window`` is unset and the memory plan does not lower it
DEFAULT_WINDOW = 81
BACKBONES = ("auto", "t2v", "vace")
log = logging.getLogger(__name__)
#: prompt embeddings per loaded text encoder (weakly held: freed with the encoder)
_SHARED_EMBEDS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


#: loaded UMT5 text encoders by (weights fingerprint, dtype, device), weakly held: a T2V and a
#: VACE folder with identical text-encoder files hold one copy (~11 GB of RAM at real size)
_TEXT_ENCODERS: "weakref.WeakValueDictionary[tuple, Any]" = weakref.WeakValueDictionary()
_SAMPLE_BLOCKS, _BLOCK = 8, 1 << 20


def text_encoder_fingerprint(folder: Path) -> str:
    """A digest of ``folder/text_encoder``: every file's name and size, its ``config.json`` and each
    weight file's safetensors header (names, dtypes, shapes, offsets) and 8 sampled 1 MiB blocks
    (cheap on 11 GB files; a fine-tune of the same shapes differs in the sampled blocks)."""
    digest = hashlib.sha256()
    for path in sorted((Path(folder) / "text_encoder").iterdir()):
        if not path.is_file():
            continue
        size = path.stat().st_size
        digest.update(f"{path.name}:{size};".encode())
        with open(path, "rb") as handle:
            if path.suffix != ".safetensors" or size <= _SAMPLE_BLOCKS * _BLOCK:
                digest.update(handle.read())  # small files (configs, tiny weights) whole
                continue
            header = int.from_bytes(handle.read(8), "little")
            digest.update(handle.read(min(header, 100 << 20)))
            for k in range(_SAMPLE_BLOCKS):
                handle.seek(k * (size - _BLOCK) // (_SAMPLE_BLOCKS - 1))
                digest.update(handle.read(_BLOCK))
    return digest.hexdigest()


class WanModels:
    """Loading, sharing and memory planning of the Wan models behind a generator.

    Subclasses set ``checkpoint``, ``backbone``, ``sampling``, ``memory``, ``lora``, ``window``,
    ``overlap``, ``prompt``, ``negative_prompt`` and ``max_sequence_length`` before use
    (:meth:`_init_models`).
    """

    checkpoint: Path | None
    sampling: SamplingOptions
    memory: MemoryOptions
    lora: LoRAOptions

    def _init_models(self, window: int | None) -> None:
        memory = self.memory
        # user settings (None = unset: planned); self.window is also the carried frames' count
        self._user_memory = dict(window=window, offload=normalize_offload(memory.offload), vae_tiling=memory.vae_tiling)
        self.window = DEFAULT_WINDOW if window is None else window
        self.sampling_window = self.window  # frames per sampled window (the memory plan may lower it)
        self.memory_plan: MemoryPlan | None = None
        self.dtype = memory.dtype
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if memory.device == "auto" else memory.device
        self.offload = normalize_offload(memory.offload) or "none"  # as settled (planned or given)
        self.vae_tiling = bool(memory.vae_tiling)
        self._components: WanComponents | None = None
        self._shared: SharedComponents | None = None
        self._prompt_cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    # ------------------------------------------------------------------ loading
    @property
    def components(self) -> WanComponents:
        """The loaded Wan parts (loaded on first access)."""
        if self._components is None:
            if self._shared is not None:
                self._components = self._shared.get(self.components_key(), self._load)
            else:
                self._components = self._load()
        return self._components

    @property
    def models_loaded(self) -> bool:
        """True once this generator holds its models (loaded, shared or given)."""
        return self._components is not None

    def load_models(self, video: torch.Tensor | None = None) -> bool:
        """Load the models now, after settling the memory plan for ``video`` (``[B, 3, T, H, W]``,
        the first input; None: no plan), as :meth:`generate` would on first use. Called by
        :func:`~stereo_lit.metrics.cost.measure_call` before its clock starts, so the load is
        timed apart. True when this call read weights; False when the models were already
        held or came from an identical set-up loaded by another generator (:meth:`share_loads`)."""
        if self._components is not None:
            return False
        if video is not None and video.ndim == 5:  # as generate(): the frame-size check, then the plan
            frames, height, width = min(int(video.shape[2]), self.window), int(video.shape[3]), int(video.shape[4])
            self.check_frame_size(height, width, frames, option="the frame size")
            self.plan_memory(frames, height, width)
        loads_before = self._shared.loads if self._shared is not None else None
        self.components  # noqa: B018 (loads)
        return loads_before is None or self._shared.loads > loads_before

    @property
    def pipeline(self) -> Any:
        """The :class:`~stereo_lit.diffusion.pipeline.WanStereoPipeline` holding the models."""
        return self.components.pipe

    def _load(self) -> WanComponents:
        from stereo_lit.diffusion.pipeline import apply_attention_backend, apply_cache
        from stereo_lit.diffusion.training import prepare_lora

        key = None
        if self.offload == "none":  # offload hooks belong to one pipeline: share only models that stay put
            folder = check_wan_folder(self.checkpoint)
            key = (text_encoder_fingerprint(folder), str(parse_dtype(self.dtype)), str(torch.device(self.device)))
        text_encoder = _TEXT_ENCODERS.get(key) if key is not None else None
        if text_encoder is not None:
            log.info("%s: text encoder shared with an already loaded Wan folder (identical weights)", self.checkpoint)
        components = load_wan(
            self.checkpoint, dtype=self.dtype, device=self.device, offload=self.offload,
            vae_tiling=self.vae_tiling, vae_slicing=self.memory.vae_slicing, text_encoder=text_encoder,
        )
        if key is not None:
            _TEXT_ENCODERS[key] = components.pipe.text_encoder
        self._check_backbone(components.transformer)
        prepare_lora(components.pipe, self.lora)
        apply_cache(components.transformer, self.sampling.cache)
        apply_attention_backend(components.transformer, self.memory.attention_backend)
        return components

    def components_key(self) -> tuple:
        """What two generators must agree on to share loaded components (see :class:`SharedComponents`)."""
        folder = str(check_wan_folder(self.checkpoint).resolve())
        lora = json.dumps(dataclasses.asdict(self.lora), sort_keys=True)
        return (folder, str(parse_dtype(self.dtype)), str(torch.device(self.device)), self.offload, self.vae_tiling,
                self.memory.vae_slicing, lora, json.dumps(self.sampling.cache, sort_keys=True), self.memory.attention_backend)

    def share_loads(self, shared: SharedComponents) -> "WanModels":
        """Load through ``shared``: generators with equal :meth:`components_key` get one set of models."""
        self._shared = shared
        return self

    def use_components(self, components: WanComponents) -> "WanModels":
        """Share models already loaded (e.g. by another generator: compare strategies on one GPU)."""
        from stereo_lit.diffusion.training import prepare_lora

        self._components = components
        self._prompt_cache.clear()
        prepare_lora(components.pipe, self.lora)  # no-op when the transformer already holds an adapter
        # this generator's VAE savers reach the shared VAE (switched on, never off: the other users
        # may have asked for them; tiling changes outputs only near tile seams, slicing not at all)
        if self.vae_tiling and not components.vae.use_tiling:
            components.vae.enable_tiling()
        if self.memory.vae_slicing and not components.vae.use_slicing:
            components.vae.enable_slicing()
        return self

    def to(self, device: torch.device | str) -> "WanModels":
        self.device = str(device)
        if self._components is not None and self.offload == "none":
            self._components.pipe.to(device)
            self._prompt_cache.clear()
        return self

    @property
    def execution_device(self) -> torch.device:
        return self.components.execution_device

    def new_scheduler(self) -> Any:
        """A fresh scheduler of ``sampling.scheduler`` with ``sampling.flow_shift`` (schedulers hold per-run state)."""
        return make_scheduler(self.sampling.scheduler, self.sampling.flow_shift, self.components.scheduler_config)

    # ------------------------------------------------------------------ prompts and noise
    @torch.no_grad()
    def prompt_embeds(self, prompt: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(prompt_embeds, negative_prompt_embeds)`` ``[1, L, D]``, cached per prompt (the text encoder is large)."""
        text = self.prompt if prompt is None else prompt
        if text not in self._prompt_cache:
            use_cfg = self.sampling.uses_cfg
            # shared by every generator on this text encoder (the rows of an evaluation): one encode per prompt
            shared = _SHARED_EMBEDS.setdefault(self.pipeline.text_encoder, {})
            key = (text, self.negative_prompt if use_cfg else None, use_cfg, self.max_sequence_length,
                   str(self.execution_device))
            if key not in shared:
                shared[key] = self.pipeline.encode_prompt(
                    text, self.negative_prompt if use_cfg else None, do_classifier_free_guidance=use_cfg,
                    max_sequence_length=self.max_sequence_length, device=self.execution_device,
                )
            self._prompt_cache[text] = shared[key]
        return self._prompt_cache[text]

    def cache_prompt_embeds(self, prompt: str, prompt_embeds: torch.Tensor, negative_prompt_embeds: torch.Tensor | None) -> None:
        """Use precomputed embeddings for ``prompt`` (e.g. computed once, then the text encoder freed)."""
        self._prompt_cache[prompt] = (prompt_embeds, negative_prompt_embeds)

    def initial_noise(self, shape: tuple[int, ...], seed: int) -> torch.Tensor:
        """Seeded Gaussian latents, drawn exactly as ``WanPipeline.prepare_latents`` draws them."""
        from diffusers.utils.torch_utils import randn_tensor

        return randn_tensor(shape, generator=torch.Generator(device="cpu").manual_seed(seed),
                            device=self.execution_device, dtype=torch.float32)

    # ------------------------------------------------------------------ memory plan
    def plan_memory(self, frames: int, height: int, width: int) -> MemoryPlan:
        """Settle the unset ``offload`` / ``vae_tiling`` / ``window`` from the free GPU memory
        (:func:`~stereo_lit.diffusion.memory_plan.plan_memory`; a no-op off CUDA), once, before
        the models load, and log the choice. Generators sharing loads reuse the first plan."""
        if self.memory_plan is not None:
            return self.memory_plan
        user = dict(self._user_memory)
        if self._components is not None:  # already loaded: its offload is fixed
            user["offload"] = self.offload
        free = free_gpu_bytes(self.device)
        key = None
        if self._shared is not None and self.checkpoint is not None:
            key = (str(self.checkpoint), self.dtype, self.device, tuple(sorted(user.items())))
        plan = self._shared.memory_plans.get(key) if key is not None else None
        if plan is None:
            size = self._model_size() if free is not None else "1.3B"
            plan = plan_memory(free, frames, height, width, model_size=size, dtype_bytes=parse_dtype(self.dtype).itemsize,
                               overlap=self.overlap, default_window=self.window, **user)
            if key is not None:
                self._shared.memory_plans[key] = plan
        self.offload, self.sampling_window = plan.offload, plan.window
        if plan.vae_tiling and not self.vae_tiling and self._components is not None:
            self._components.vae.enable_tiling()
        self.vae_tiling = plan.vae_tiling
        self.memory_plan = plan
        log.log(logging.INFO if free is not None else logging.DEBUG, "Wan memory plan: %s", plan.describe())
        return plan

    def _model_size(self) -> str:
        """``"1.3B"`` or ``"14B"``, from the transformer's config (loaded, or the folder's config.json)."""
        if self._components is not None:
            return model_size_from_config(dict(self._components.transformer.config))
        config = check_wan_folder(self.checkpoint) / "transformer" / "config.json"
        return model_size_from_config(json.loads(config.read_text()))

    # ------------------------------------------------------------------ early checks
    def fill_checkpoint(self, checkpoint: str | Path) -> None:
        """Use ``checkpoint`` when none was given (the module's ``wan_checkpoint``)."""
        if self.checkpoint is None:
            self.checkpoint = Path(checkpoint)

    def check_frame_size(self, height: int, width: int, num_frames: int | None = None, option: str | None = None) -> None:
        """Raise before any work when ``height x width`` px (or ``num_frames``) exceeds the
        transformer's positional range (:func:`~stereo_lit.diffusion.loading.check_positional_range`)."""
        if self._components is not None:  # models given or loaded: their own configs
            limits = positional_range(dict(self._components.transformer.config), dict(self._components.vae.config))
        else:
            limits = positional_range(self.checkpoint if self.checkpoint is not None else check_wan_folder(None))
        check_positional_range(limits, height, width, num_frames, option=option)

    def check_paths(self) -> None:
        """Fail at setup, before any depth or sampling: the checkpoint folder (and its backbone) or a LoRA is missing."""
        if self._components is None:
            folder = check_wan_folder(self.checkpoint)
            self._check_backbone(folder)
        for i, adapter in enumerate(self.lora.adapters):
            resolve(adapter.path, option=f"generator lora.path[{i}]")  # a local path, or a hub id fetched now

    def _check_backbone(self, source: Any) -> str:
        """The backbone of ``source`` (a folder or a loaded transformer); raises when ``backbone`` asks for another."""
        from stereo_lit.diffusion.vace import backbone_of

        found = backbone_of(source)
        if self.backbone not in ("auto", found):
            where = source if isinstance(source, (str, Path)) else type(source).__name__
            raise ValueError(
                f"generator backbone={self.backbone!r} but {where} is a {found!r} model "
                f"(Wan2.1 T2V folders: model_index.json WanPipeline; VACE: WanVACEPipeline); use backbone: auto or the other folder"
            )
        return found
