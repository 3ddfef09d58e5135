"""Count transformer evaluations (NFE) from outside the sampler, with forward hooks.

    with count_nfe(pipe.transformer) as nfe:
        generator.generate(left, disparity)
    nfe.count   # transformer forward calls (a 50-step CFG window: 100)
    nfe.full    # calls in which the last transformer block ran (a block cache lowers it)

Nothing in the sampler or pipeline changes: a ``forward_pre_hook`` on the transformer
counts its calls, a pre-hook on the children of its last block counts the calls in
which the whole stack was evaluated (diffusers' ``FirstBlockCacheConfig`` /
``MagCacheConfig`` skip the remaining blocks by replacing their ``forward``, so their
children are not called). Hooks are removed on exit, also on error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

#: Names of the ``ModuleList`` of transformer blocks in diffusers' models (Wan: ``blocks``).
BLOCK_LIST_NAMES = ("blocks", "transformer_blocks", "single_transformer_blocks", "layers")


@dataclass
class NFECount:
    """Counters filled while :func:`count_nfe` is active.

    Attributes:
        count: transformer forward calls (NFE; a CFG step makes 2 with ``batch_mode="separate"``,
            1 with ``"shared"``).
        samples: sum of the batch sizes of those calls (a shared CFG batch of 2 counts 2).
        full: calls in which the last block ran, i.e. full evaluations (``count`` minus the calls
            a block cache cut short); equal to ``count`` when the model has no block list.
    """

    count: int = 0
    samples: int = 0
    full: int = 0

    @property
    def skipped(self) -> int:
        """Calls in which a cache skipped the tail blocks."""
        return self.count - self.full


def last_block(transformer: torch.nn.Module) -> torch.nn.Module | None:
    """The last block of the transformer's block list (:data:`BLOCK_LIST_NAMES`), or None."""
    found = None
    for name, child in transformer.named_children():
        if name in BLOCK_LIST_NAMES and isinstance(child, torch.nn.ModuleList) and len(child) > 0:
            found = child[-1]
    return found


def _batch_size(args: tuple, kwargs: dict) -> int:
    x = kwargs.get("hidden_states", args[0] if args else None)
    return int(x.shape[0]) if isinstance(x, torch.Tensor) and x.ndim > 0 else 1


@contextmanager
def count_nfe(transformer: Any) -> Iterator[NFECount]:
    """Count the forward calls of ``transformer`` (an ``nn.Module``) inside the block.

    Works with diffusers' CPU offload and cache hooks (they keep ``nn.Module.__call__``,
    where torch runs the forward hooks). Nested counters on one model count independently.

    Raises:
        TypeError: ``transformer`` is not a ``torch.nn.Module``.
    """
    if not isinstance(transformer, torch.nn.Module):
        raise TypeError(f"count_nfe(transformer) needs a torch.nn.Module, got {type(transformer).__name__}")
    counter = NFECount()
    tail = last_block(transformer)
    state = {"tail_ran": False}

    def before(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        counter.count += 1
        counter.samples += _batch_size(args, kwargs)
        state["tail_ran"] = tail is None

    def after(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        counter.full += int(state["tail_ran"])

    def tail_ran(module: torch.nn.Module, args: tuple) -> None:
        state["tail_ran"] = True

    handles = [
        transformer.register_forward_pre_hook(before, with_kwargs=True),
        transformer.register_forward_hook(after, with_kwargs=True),
    ]
    children = list(tail.children()) if tail is not None else []
    if not children:  # nothing inside the block to watch: every call counts as full
        tail = None
    handles += [child.register_forward_pre_hook(tail_ran) for child in children]
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()


__all__ = ["BLOCK_LIST_NAMES", "NFECount", "count_nfe", "last_block"]


@dataclass
class VAECount:
    """VAE passes counted by :func:`count_vae_passes`: whole-video ``encode`` / ``decode`` calls."""

    encodes: int = 0
    decodes: int = 0

    @property
    def passes(self) -> int:
        return self.encodes + self.decodes


@contextmanager
def count_vae_passes(vae: Any) -> Iterator[VAECount]:
    """Count ``vae.encode`` and ``vae.decode`` calls inside the block (one call = one pass over a
    video, whatever the VAE's internal frame chunks or tiles). The methods are wrapped on the
    instance and restored on exit, also on error; nested counters count independently."""
    counter = VAECount()
    saved = {name: vae.__dict__.get(name) for name in ("encode", "decode")}
    inner = {name: getattr(vae, name) for name in ("encode", "decode")}

    def wrap(name: str, attr: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            setattr(counter, attr, getattr(counter, attr) + 1)
            return inner[name](*args, **kwargs)

        return call

    vae.encode, vae.decode = wrap("encode", "encodes"), wrap("decode", "decodes")
    try:
        yield counter
    finally:
        for name, value in saved.items():
            if value is None:
                vae.__dict__.pop(name, None)
            else:
                vae.__dict__[name] = value


__all__ += ["VAECount", "count_vae_passes"]
