"""Batching helpers shared by the datamodules: collate, error policy, ordered streaming.

- :func:`collate_samples`: ``default_collate`` that drops ``None`` samples (skipped on
  error) and keys missing from some samples (e.g. ``depth`` for one video only).
- :class:`OrderedVideoStream`: an ``IterableDataset`` over a map-style dataset of windows
  that yields each video's windows in order, gives each DDP rank and each dataloader
  worker a disjoint set of *whole videos*, and (``on_error="skip"``) drops the rest of a
  video whose window fails, logging a warning that names the file. Prediction needs this:
  Lightning's distributed sampler would interleave one video's windows across ranks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info
from torch.utils.data._utils.collate import default_collate

from stereo_lit.data.skips import SKIPPED_KEY, is_skip_marker, skip_marker

log = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"data.on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error


def collate_samples(samples: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Collate sample dicts; ``None`` samples are dropped, keys not in every sample too.

    Skip markers (:func:`stereo_lit.data.skips.skip_marker`, items dropped under
    ``on_error="skip"``) are gathered into ``batch["skipped"]`` = ``[(name, reason), ...]``;
    a batch of markers only is ``{"skipped": [...]}``. Samples of different sizes are an
    error that says to use ``batch_size: 1``.
    """
    skipped = [s[SKIPPED_KEY] for s in samples if is_skip_marker(s)]
    kept = [s for s in samples if s is not None and not is_skip_marker(s)]
    if not kept:
        return {SKIPPED_KEY: skipped} if skipped else None
    keys = set(kept[0])
    for sample in kept[1:]:
        keys &= set(sample)
    dropped = set().union(*(set(s) for s in kept)) - keys
    if dropped:
        log.warning("batch mixes samples with and without %s; those keys are dropped (use batch_size 1)", sorted(dropped))
    _check_same_sizes(kept, keys)
    if len(kept) == 1:  # one sample: its tensors gain a batch axis as views (a streamed chunk keeps its layout)
        tensors = {k for k in keys if isinstance(kept[0][k], torch.Tensor)}
        batch = default_collate([{k: kept[0][k] for k in keys - tensors}])
        batch.update({k: kept[0][k].unsqueeze(0) for k in tensors})
    else:
        batch = default_collate([{k: s[k] for k in keys} for s in kept])
    if skipped:
        batch[SKIPPED_KEY] = skipped
    return batch


def _check_same_sizes(samples: list[dict[str, Any]], keys: set[str]) -> None:
    """Tensors of one key must share a shape across the batch; name the videos when not."""
    for key in sorted(keys):
        shapes = [tuple(s[key].shape) for s in samples if isinstance(s[key], torch.Tensor)]
        if len(set(shapes)) > 1:
            names = [str(s.get("video_path", s.get("sample_id", "?"))) for s in samples]
            raise ValueError(
                f"cannot batch videos of different sizes ({key}: {shapes}; {names}): mixed sizes need "
                "batch_size: 1, or give the datamodule a common `size` so every video is resized to it"
            )


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of torch.distributed, ``(0, 1)`` when not initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard_of(items: Sequence[Any]) -> list[Any]:
    """The share of ``items`` for this (rank, dataloader worker): round-robin, disjoint."""
    rank, world = rank_and_world()
    worker = get_worker_info()
    wid, nworkers = (0, 1) if worker is None else (worker.id, worker.num_workers)
    return list(items)[rank::world][wid::nworkers]


class OrderedVideoStream(IterableDataset):
    """Windows of each video in order; whole videos per rank/worker.

    Args:
        dataset: map-style dataset whose item ``i`` is one window; its ``load(i)`` is used
            when it has one (a load that raises, never one that substitutes another item).
        video_of: ``video_of[i]`` = key of the video item ``i`` belongs to; items of one
            video must be listed in order.
        on_error: ``"raise"`` or ``"skip"`` (warn naming the video, drop its remaining windows).
    """

    def __init__(self, dataset: Dataset, video_of: Sequence[str], on_error: str = "raise") -> None:
        self.dataset = dataset
        self.on_error = check_on_error(on_error)
        self.groups: dict[str, list[int]] = {}
        for index, key in enumerate(video_of):
            self.groups.setdefault(key, []).append(index)

    def _my_groups(self) -> list[list[int]]:
        return shard_of(list(self.groups.values()))

    def __len__(self) -> int:
        rank, world = rank_and_world()
        return sum(len(g) for g in list(self.groups.values())[rank::world])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        load = getattr(self.dataset, "load", self.dataset.__getitem__)
        for group in self._my_groups():
            for index in group:
                try:
                    sample = load(index)
                except Exception as exc:  # noqa: BLE001 - policy decides
                    if self.on_error == "raise":
                        raise
                    log.warning("skipping the rest of %s after an error: %s", self._name(group), exc)
                    yield skip_marker(self._name(group), exc)  # the model counts it in the run summary
                    break
                if sample is None:
                    break
                yield sample

    def _name(self, group: list[int]) -> str:
        for key, members in self.groups.items():
            if members is group:
                return key
        return "?"


def guarded_getitem(
    load: Callable[[int], dict[str, Any]], index: int, size: int, on_error: str, name: Callable[[int], str],
    substitute: bool = False,
) -> dict[str, Any]:
    """``load(index)``; with ``on_error="skip"`` a failure logs a warning naming the file.

    Evaluation and predict (``substitute=False``): the item is dropped and a skip marker
    returned in its place (never another item: that would score a clip twice). Training
    (``substitute=True``): the next item is tried (up to 10), so an epoch keeps its size.
    """
    if on_error == "raise":
        return load(index)
    if not substitute:
        try:
            return load(index)
        except Exception as exc:  # noqa: BLE001 - policy decides
            log.warning("skipping %s: %s", name(index), exc)
            return skip_marker(name(index), exc)
    last: Exception | None = None
    for attempt in range(min(10, size)):
        i = (index + attempt) % size
        try:
            return load(i)
        except Exception as exc:  # noqa: BLE001 - policy decides
            log.warning("skipping %s: %s", name(i), exc)
            last = exc
    return skip_marker(name(index), last or "unreadable")
