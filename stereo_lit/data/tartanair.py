"""TartanAir stereo clips (folders or webdataset shards) for fit / validate / test / predict.

Each sample (see :func:`stereo_lit.data.tartanair_sample.build_sample`): ``left``,
``right`` ``[3,T,H,W]`` in [0,1]; ``depth_left_m``, ``depth_right_m``,
``disparity_left_px``, ``disparity_right_px``, ``valid_left``, ``valid_right``
``[1,T,H,W]``; ``intrinsics`` ``[5]`` = (fx, fy, cx, cy, baseline_m) at the output size;
``padding``; ids ``env``, ``difficulty``, ``trajectory``, ``first_frame``, ``sample_id``,
``video_path`` (the trajectory folder); ``fps``, ``num_frames``, ``window_start``,
``window_stop``, ``keep_start``, ``caption`` ("").

Splits are lists of trajectory patterns relative to the root (``ENV``, ``ENV/Easy``,
``ENV/Easy/P000``, globs). A split left as None takes every trajectory not named by
the others (train: not in val/test; val/test/predict: not in train), so everything is
used when no list is given (e.g. ``root`` = one trajectory folder). Train must not share
a trajectory with val or test.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, IterableDataset

from stereo_lit.data.collate import OrderedVideoStream, check_on_error, collate_samples, guarded_getitem, rank_and_world, shard_of
from stereo_lit.data.skips import skip_marker
from stereo_lit.data.shards import iter_trajectory_frames, load_manifest, manifest_path
from stereo_lit.data.tartanair_layout import Trajectory, find_trajectories, open_trajectory, read_depth, read_image
from stereo_lit.data.tartanair_sample import ClipSpec, build_sample, plan_clips, plan_predict
from stereo_lit.stereo.windows import is_wan_length, next_wan_length

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test", "predict")
_MODALITIES = ("left", "right", "depth_left", "depth_right")


def trajectory_ids(traj: Trajectory, frame_step: int = 1) -> dict[str, Any]:
    """The id fields every sample of ``traj`` carries."""
    return {
        "video_path": str(traj.path), "env": traj.env, "difficulty": traj.difficulty, "trajectory": traj.name,
        "fps": float(traj.fps) / frame_step, "num_frames": traj.num_frames, "caption": "",
    }


def manifest_ids(entry: dict[str, Any], frame_step: int = 1) -> dict[str, Any]:
    return {
        "video_path": entry["source_path"], "env": entry["env"], "difficulty": entry["difficulty"],
        "trajectory": entry["trajectory"], "fps": float(entry["fps"]) / frame_step,
        "num_frames": int(entry["num_frames"]), "caption": "",
    }


def _sample_id(traj_id: str, spec: ClipSpec) -> str:
    return f"{traj_id}:{spec.indices[0]:06d}"


# ----------------------------------------------------------------------------- folder
class TartanAirClips(Dataset):
    """Map-style: item ``i`` is clip ``items[i] = (trajectory, spec)`` read from its folder."""

    def __init__(
        self, items: list[tuple[Trajectory, ClipSpec]], frame_step: int = 1, size: tuple[int, int] | None = None,
        pad_mode: str = "replicate", invalid_depth: str = "raise", on_error: str = "raise", substitute: bool = False,
    ) -> None:
        self.items, self.frame_step, self.size = items, frame_step, size
        self.pad_mode, self.invalid_depth, self.on_error = pad_mode, invalid_depth, check_on_error(on_error)
        self.substitute = substitute  # on_error=skip: try the next clip (training) or drop it (val/test)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> dict[str, Any]:
        traj, spec = self.items[index]
        frames: dict[str, np.ndarray] = {}
        for modality in _MODALITIES:
            if modality in traj.files:
                read = read_image if modality in ("left", "right") else read_depth
                arrays = [read(traj.files[modality][k]) for k in spec.indices]
                shapes = {a.shape[:2] for a in arrays}
                if len(shapes) != 1 or (traj.height, traj.width) not in shapes:
                    raise ValueError(f"{traj.path / traj.layout.dirs()[modality]}: frame sizes {sorted(shapes)} differ from {traj.height}x{traj.width}")
                frames[modality] = np.stack(arrays)
        ids = dict(trajectory_ids(traj, self.frame_step), sample_id=_sample_id(traj.traj_id, spec))
        return build_sample(spec, frames, traj.intrinsics, ids, self.size, self.pad_mode, self.invalid_depth)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        return guarded_getitem(self.load, index, len(self), self.on_error, self.clip_name, self.substitute)

    def clip_name(self, index: int) -> str:
        """``<trajectory folder> (clip at frame N)``, for warnings and the skipped-clips summary."""
        traj, spec = self.items[index]
        return f"{traj.path} (clip at frame {spec.indices[0]})"



# ----------------------------------------------------------------------------- shards
class TartanAirShardClips(IterableDataset):
    """Clips streamed from webdataset shards; disjoint trajectories per rank and worker.

    Args:
        folder: the shard folder (holds ``manifest.json``); manifest: its content.
        plans: trajectory id -> its clips (in frame order).
        shuffle: shuffle the trajectory order each epoch (same on every rank) and the
            clips through a buffer of ``shuffle_buffer``.
    """

    def __init__(
        self, folder: Path, manifest: dict[str, Any], plans: dict[str, list[ClipSpec]], frame_step: int = 1,
        size: tuple[int, int] | None = None, pad_mode: str = "replicate", invalid_depth: str = "raise",
        on_error: str = "raise", shuffle: bool = False, shuffle_buffer: int = 16, seed: int = 0,
    ) -> None:
        self.folder, self.manifest, self.plans = folder, manifest, plans
        self.frame_step, self.size, self.pad_mode, self.invalid_depth = frame_step, size, pad_mode, invalid_depth
        self.on_error = check_on_error(on_error)
        self.shuffle, self.shuffle_buffer, self.seed, self.epoch = shuffle, shuffle_buffer, seed, 0

    def __len__(self) -> int:
        rank, world = rank_and_world()
        return sum(len(self.plans[t]) for t in list(self.plans)[rank::world])

    def _clips_of(self, traj_id: str) -> Iterator[dict[str, Any]]:
        entry = self.manifest["trajectories"][traj_id]
        specs = list(self.plans[traj_id])
        ids = manifest_ids(entry, self.frame_step)
        intrinsics = tuple(float(v) for v in entry["intrinsics"])
        buffer: dict[int, dict[str, Any]] = {}
        pending = 0
        last_needed = specs[-1].indices[-1]
        for frame in iter_trajectory_frames(self.folder, self.manifest, traj_id):
            k = frame["frame"]
            buffer[k] = frame
            while pending < len(specs) and specs[pending].indices[-1] <= k:
                spec = specs[pending]
                frames = {m: np.stack([buffer[i][m] for i in spec.indices]) for m in _MODALITIES if m in frame}
                sample_ids = dict(ids, sample_id=_sample_id(traj_id, spec))
                yield build_sample(spec, frames, intrinsics, sample_ids, self.size, self.pad_mode, self.invalid_depth)
                pending += 1
            oldest = specs[pending].indices[0] if pending < len(specs) else k + 1
            for i in [i for i in buffer if i < oldest]:
                del buffer[i]
            if k >= last_needed:
                break

    def _ordered(self) -> Iterator[dict[str, Any]]:
        order = list(self.plans)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        self.epoch += 1
        for traj_id in shard_of(order):
            try:
                yield from self._clips_of(traj_id)
            except Exception as exc:  # noqa: BLE001 - policy decides
                if self.on_error == "raise":
                    raise
                log.warning("skipping the rest of trajectory %s (shards in %s): %s", traj_id, self.folder, exc)
                yield skip_marker(f"{traj_id} (shards in {self.folder})", exc)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.shuffle or self.shuffle_buffer <= 1:
            yield from self._ordered()
            return
        rng = random.Random(self.seed + 7919 * self.epoch)
        pool: list[dict[str, Any]] = []
        for sample in self._ordered():
            pool.append(sample)
            if len(pool) >= self.shuffle_buffer:
                yield pool.pop(rng.randrange(len(pool)))
        rng.shuffle(pool)
        yield from pool


# ----------------------------------------------------------------------------- splits
def _matches(traj_id: str, pattern: str) -> bool:
    pattern = pattern.strip("/")
    return fnmatch.fnmatch(traj_id, pattern) or fnmatch.fnmatch(traj_id, pattern + "/*") or fnmatch.fnmatch(traj_id, pattern + "/*/*")


def resolve_splits(available: list[str], lists: dict[str, list[str] | None], where: str) -> dict[str, list[str]]:
    """Stage -> trajectory ids, by the rules in the module docstring."""
    chosen: dict[str, set[str]] = {}
    for stage, patterns in lists.items():
        if patterns is None:
            continue
        ids: set[str] = set()
        for pattern in patterns:
            hit = {t for t in available if _matches(t, pattern)}
            if not hit:
                raise ValueError(f"{where}: the {stage} pattern {pattern!r} matches no trajectory (have e.g. {available[:5]})")
            ids |= hit
        chosen[stage] = ids
    held_out = chosen.get("val", set()) | chosen.get("test", set())
    overlap = chosen.get("train", set()) & held_out
    if overlap:
        raise ValueError(f"{where}: train shares trajectories with val/test: {sorted(overlap)[:10]}")
    everything = set(available)
    result = {}
    for stage in STAGES:
        if stage in chosen:
            ids = chosen[stage]
        elif stage == "train":
            ids = everything - held_out if held_out else everything
        else:
            ids = everything - chosen["train"] if chosen.get("train") and everything - chosen["train"] else everything
        result[stage] = sorted(ids)
    return result


# ----------------------------------------------------------------------------- datamodule
class TartanAirDataModule(LightningDataModule):
    """TartanAir (v1 or v2 layout, or converted shards) for every Lightning stage.

    Args:
        root: TartanAir tree, or one trajectory folder (holds ``image_left/``).
        train, val, test, predict: trajectory patterns per stage (see module docstring).
        clip_frames: frames per clip, ``4k+1``; stride: source frames between clip starts
            (default ``clip_frames``); eval_stride: the same for val/test (default stride);
            frame_step: take every n-th source frame within a clip.
        size: output ``(H, W)``, multiples of 16 (None: native size, padded to 16).
        window, overlap: predict windows (every frame, each produced once).
        source: ``"folder"`` or ``"shards"``; shards: shard folder (or its manifest.json).
        pad_mode: spatial padding of images (``replicate``/``reflect``).
        invalid_depth: ``"raise"`` on NaN/inf/<=0 depth, or ``"mask"`` it (valid = 0).
        on_error: ``"raise"`` or ``"skip"`` (log a warning naming the file and continue).
    """

    def __init__(
        self,
        root: str | None = None,
        train: list[str] | None = None,
        val: list[str] | None = None,
        test: list[str] | None = None,
        predict: list[str] | None = None,
        clip_frames: int = 33,
        stride: int | None = None,
        eval_stride: int | None = None,
        frame_step: int = 1,
        size: tuple[int, int] | None = None,
        window: int = 33,
        overlap: int = 9,
        batch_size: int = 1,
        num_workers: int = 0,
        source: str = "folder",
        shards: str | None = None,
        pad_mode: str = "replicate",
        invalid_depth: str = "raise",
        on_error: str = "raise",
        shuffle_buffer: int = 16,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not is_wan_length(clip_frames) or not is_wan_length(window):
            raise ValueError(f"clip_frames and window must be 4k+1 (e.g. 17, 33, 81), got {clip_frames}, {window}")
        if size is not None and (len(size) != 2 or any(int(s) <= 0 or int(s) % 16 for s in size)):
            raise ValueError(f"size must be (H, W) with both multiples of 16 (Wan needs it), got {size}")
        if source not in ("folder", "shards"):
            raise ValueError(f"source must be 'folder' or 'shards', got {source!r}")
        if source == "folder" and root is None:
            raise ValueError("source='folder' needs `root` (a TartanAir tree or one trajectory folder)")
        if source == "shards" and shards is None:
            raise ValueError("source='shards' needs `shards` (the folder written by data_prep/tartanair_to_wds.py)")
        if invalid_depth not in ("raise", "mask"):
            raise ValueError(f"invalid_depth must be 'raise' or 'mask', got {invalid_depth!r}")
        self.root, self.lists = root, {"train": train, "val": val, "test": test, "predict": predict}
        self.clip_frames, self.stride = clip_frames, stride or clip_frames
        self._short_warned: set[str] = set()  # trajectories shorter than one clip, warned once
        self.eval_stride, self.frame_step = eval_stride or self.stride, frame_step
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.window, self.overlap = window, overlap
        self.batch_size, self.num_workers = batch_size, num_workers
        self.source, self.shards = source, shards
        self.pad_mode, self.invalid_depth = pad_mode, invalid_depth
        self.on_error = check_on_error(on_error)
        self.shuffle_buffer, self.seed = shuffle_buffer, seed
        self.splits: dict[str, list[str]] | None = None
        self._trajectories: dict[str, Trajectory] = {}
        self._manifest: dict[str, Any] | None = None
        self._exclude: list[Callable[[str], bool]] = []
        self.skipped: list[tuple[str, str]] = []  # (trajectory, reason) dropped before loading

    # ------------------------------------------------------------------ set-up
    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        if self.source == "shards":
            self._manifest = load_manifest(self.shards)
            available = sorted(self._manifest["trajectories"])
            self.splits = resolve_splits(available, self.lists, str(manifest_path(self.shards)))
            return
        root = Path(self.root)
        folders = find_trajectories(root)
        for folder in folders:
            try:
                traj = open_trajectory(folder, root)
            except Exception as exc:  # noqa: BLE001 - policy decides
                if self.on_error == "raise":
                    raise
                log.warning("skipping trajectory %s: %s", folder, exc)
                self.skipped.append((str(folder), str(exc)))
                continue
            self._trajectories[traj.traj_id] = traj
        if not self._trajectories:
            raise ValueError(f"{root}: no readable trajectory")
        self.splits = resolve_splits(sorted(self._trajectories), self.lists, str(root))

    def exclude_videos(self, predicate: Callable[[str], bool]) -> None:
        """Leave out trajectories whose ``video_path`` satisfies ``predicate`` (resume)."""
        self._exclude.append(predicate)

    def _ids_for(self, stage: str) -> list[str]:
        self.setup()
        ids = self.splits[stage]
        if stage == "predict" and self._exclude:
            path_of = (lambda t: self._manifest["trajectories"][t]["source_path"]) if self._manifest else (lambda t: str(self._trajectories[t].path))
            ids = [t for t in ids if not any(p(path_of(t)) for p in self._exclude)]
        return ids

    def _num_frames(self, traj_id: str) -> int:
        if self._manifest is not None:
            return int(self._manifest["trajectories"][traj_id]["num_frames"])
        return self._trajectories[traj_id].num_frames

    def plans(self, stage: str) -> dict[str, list[ClipSpec]]:
        """Trajectory id -> its clips for ``stage`` (``train``/``val``/``test``/``predict``)."""
        plans = {}
        for traj_id in self._ids_for(stage):
            n = self._num_frames(traj_id)
            if stage == "predict":
                plans[traj_id] = plan_predict(n, self.window, self.overlap)
            else:
                stride = self.stride if stage == "train" else self.eval_stride
                plans[traj_id] = self._clips_of(traj_id, n, stride)
        return plans

    def _clips_of(self, traj_id: str, num_frames: int, stride: int) -> list[ClipSpec]:
        """:func:`plan_clips`; a trajectory shorter than one clip gives one clip of its own length
        (padded in time only to the next ``4k+1``), with a warning naming both lengths."""
        clips = plan_clips(num_frames, self.clip_frames, stride, self.frame_step)
        span = (self.clip_frames - 1) * self.frame_step + 1
        if num_frames >= span:
            return clips
        own = next_wan_length(len(clips[0].indices))
        if traj_id not in self._short_warned:
            self._short_warned.add(traj_id)
            log.warning(
                "%s: clip_frames=%d (frame_step %d: %d source frames) is longer than its %d frames; using one clip "
                "of its %d frames (padded to %d); lower data.clip_frames to silence this",
                traj_id, self.clip_frames, self.frame_step, span, num_frames, len(clips[0].indices), own,
            )
        return [dataclasses.replace(c, target_frames=own) for c in clips]

    def dataset(self, stage: str) -> Dataset:
        """The dataset of ``stage`` (map-style for folders, iterable for shards and predict)."""
        plans = self.plans(stage)
        step = 1 if stage == "predict" else self.frame_step
        if self._manifest is not None:
            return TartanAirShardClips(
                Path(manifest_path(self.shards)).parent, self._manifest, plans, step, self.size, self.pad_mode,
                self.invalid_depth, self.on_error, shuffle=stage == "train", shuffle_buffer=self.shuffle_buffer, seed=self.seed,
            )
        if stage in ("val", "test"):
            plans = self._with_right_view(plans)
        items = [(self._trajectories[t], spec) for t, specs in plans.items() for spec in specs]
        clips = TartanAirClips(
            items, step, self.size, self.pad_mode, self.invalid_depth, self.on_error, substitute=stage == "train"
        )
        if stage == "predict":
            return OrderedVideoStream(clips, [str(traj.path) for traj, _ in items], self.on_error)
        return clips

    def _with_right_view(self, plans: dict[str, list[ClipSpec]]) -> dict[str, list[ClipSpec]]:
        """Val/test score against the true right view: trajectories without one are an error
        (``on_error="skip"``: dropped, named in :attr:`skipped`)."""
        missing = [t for t in plans if "right" not in self._trajectories[t].files]
        if not missing:
            return plans
        folders = [str(self._trajectories[t].path) for t in missing]
        message = (
            "no right view (image_right/) to score against: validate/test need stereo trajectories "
            "(use `predict` for a left view only)"
        )
        if self.on_error == "raise":
            raise ValueError(f"{', '.join(folders)}: {message}")
        for folder in folders:
            log.warning("skipping trajectory %s: %s", folder, message)
            self.skipped.append((folder, message))
        return {t: specs for t, specs in plans.items() if t not in missing}

    def _loader(self, stage: str) -> DataLoader:
        data = self.dataset(stage)
        shuffle = stage == "train" and not isinstance(data, IterableDataset)
        sampler = None
        _, world = rank_and_world()
        if stage in ("val", "test") and world > 1 and not isinstance(data, IterableDataset):
            # Lightning's default DistributedSampler repeats clips to even out the ranks, which
            # would count them twice in the metrics; this one gives each clip to exactly one rank.
            sampler = UnrepeatedDistributedSampler(data, shuffle=False)
        return DataLoader(
            data, batch_size=self.batch_size, shuffle=shuffle, sampler=sampler, num_workers=self.num_workers,
            collate_fn=collate_samples, persistent_workers=stage == "train" and self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
