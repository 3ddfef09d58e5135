"""What the media datamodules share: argument checks, probing sources, resume exclusion, loaders.

:class:`WindowedData` is the base of datamodules whose items are probed media files
cut into windows (:class:`~stereo_lit.data.wild.WildVideoDataModule`,
:class:`~stereo_lit.data.stereo_video.StereoVideoDataModule`): it keeps the DataLoader
settings and the ``on_error`` policy, probes every resolved entry (skipping unreadable ones
under ``on_error="skip"``, recorded in ``skipped``), leaves out videos named by
:meth:`~WindowedData.exclude_videos` (finished on resume) and builds the ordered
predict loader (whole videos per rank/worker, windows in order). :class:`EvalDataloaders`
serves one loader for ``validate``, ``test`` and ``predict`` (evaluation sets).
The subclasses keep their own init arguments (configs and the CLI help read them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from torch.utils.data import DataLoader, Dataset

from stereo_lit.data.collate import OrderedVideoStream, check_on_error, collate_samples
from stereo_lit.stereo.windows import is_wan_length, plan_windows

log = logging.getLogger(__name__)

PAD_MODES = ("replicate", "reflect")

T = TypeVar("T")
E = TypeVar("E")


def check_window(window: int, overlap: int) -> None:
    """``window`` must be ``4k+1`` frames and ``overlap`` ``4m+1`` (or 0) below it, else a ValueError."""
    if not is_wan_length(window):
        raise ValueError(f"data.window must be 4k+1 frames (33, 49, 81, ...), got {window}")
    plan_windows(window + 1, window, overlap)  # validates overlap


def check_pad_mode(pad_mode: str) -> None:
    """``pad_mode`` must be one of :data:`PAD_MODES`, else a ValueError naming it."""
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be 'replicate' or 'reflect', got {pad_mode!r}")


class EvalDataloaders:
    """``val_dataloader``, ``test_dataloader`` and ``predict_dataloader`` all return ``self._loader()``."""

    def _loader(self) -> DataLoader:
        raise NotImplementedError(f"{type(self).__name__} must define _loader()")

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()


class WindowedData:
    """Base of the media datamodules (see the module docstring); Lightning-free, so the converter's
    direct run (:mod:`stereo_lit.predict.direct`) uses it without importing Lightning. The
    datamodules add ``LightningDataModule`` last among their bases.

    Args:
        batch_size, num_workers: DataLoader settings.
        on_error: ``"raise"`` or ``"skip"`` (log a warning naming the file and go on).
    """

    def __init__(self, batch_size: int = 1, num_workers: int = 0, on_error: str = "raise") -> None:
        super().__init__()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.on_error = check_on_error(on_error)
        self.skipped: list[tuple[str, str]] = []  # (file, reason) dropped while probing
        self._exclude: list[Callable[[str], bool]] = []

    def _probe_sources(self, entries: Iterable[E], probe: Callable[[E], T], what: str) -> list[T]:
        """``probe(entry)`` for every entry (each with a ``path``); under ``on_error="skip"`` a
        failing one is logged and recorded in ``skipped``. None readable: a ValueError naming
        ``self.source`` and ``what`` (e.g. "video")."""
        probed = []
        for entry in entries:
            try:
                probed.append(probe(entry))
            except Exception as exc:  # noqa: BLE001 - policy decides
                if self.on_error == "raise":
                    raise
                log.warning("skipping %s: %s", entry.path, exc)
                self.skipped.append((str(entry.path), f"{type(exc).__name__}: {exc}"))
        if not probed:
            raise ValueError(f"no readable {what} in {getattr(self, 'source', None)!r}")
        return probed

    def exclude_videos(self, predicate: Callable[[str], bool]) -> None:
        """Leave out videos whose path satisfies ``predicate`` (e.g. finished on resume)."""
        self._exclude.append(predicate)

    def _kept(self, probed: Sequence[T], path_of: Callable[[T], str]) -> list[T]:
        """``probed`` without the excluded ones (their count logged), in order."""
        kept = [p for p in probed if not any(exclude(path_of(p)) for exclude in self._exclude)]
        if len(kept) < len(probed):
            log.info("skipping %d finished video(s)", len(probed) - len(kept))
        return kept

    def _active(self) -> list[Any]:
        """The probed, not excluded videos (each with ``num_frames``), in order."""
        raise NotImplementedError(f"{type(self).__name__} must define _active()")

    def total_frames(self) -> int:
        """Frames on the output timeline over all (not excluded) videos."""
        return sum(item.num_frames for item in self._active())

    def _ordered_loader(self, dataset: Dataset, paths: list[str]) -> DataLoader:
        """Predict order: item ``i`` of ``dataset`` belongs to the video ``paths[i]``; whole videos
        go to one rank/worker and each video's windows come in order."""
        stream = OrderedVideoStream(dataset, paths, self.on_error)
        return DataLoader(stream, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=collate_samples)
