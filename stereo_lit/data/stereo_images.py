"""Stereo image pairs (Middlebury, KITTI) as one-frame evaluation clips.

Layouts found under ``source`` (a folder, searched recursively, or a list of folders):

- **Middlebury** scene folders: ``im0.png`` (left), ``im1.png`` (right), optional
  ``disp0.pfm`` (left disparity, px; ``inf`` = unknown) and ``calib.txt`` (``cam0=[f 0 cx;
  0 f cy; 0 0 1]``, ``doffs``, ``baseline`` in mm, ...). Depth is
  ``baseline * f / (d + doffs)``; our disparity is Middlebury's ``d`` (``x_R = x_L - d``).
- **KITTI** folders: ``image_2/`` (left) and ``image_3/`` (right) with matching names,
  optional ``disp_occ_0/`` (16-bit PNG, disparity = value / 256, 0 = unknown).

Each sample has the keys of :mod:`stereo_lit.data.stereo_video` samples with ``T = 1``:
``left``, ``right`` ``[3, 1, H, W]`` (padded to multiples of 16), ``valid_left``,
``valid_right``, ``padding``; with a true disparity ``disparity_left_px`` ``[1, 1, H, W]``,
``valid_left`` = known disparity and ``disparity_source = "ground_truth"``; with
``reference_disparity=True`` and no true disparity, the matched one
(``disparity_source = "matched"``); Middlebury with ``calib.txt``: ``intrinsics``
``[5]`` = (fx, fy, cx, cy, baseline_m) and ``doffs_px``. ``max_side`` downscales large
pairs (area filter for images, nearest for disparity, scaled by the width factor).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from stereo_lit.data.collate import check_on_error, collate_samples, guarded_getitem, rank_and_world
from stereo_lit.data.pfm import read_pfm
from stereo_lit.data.stereo_frames import image_files, read_image_rgb
from stereo_lit.data.stereo_video import build_stereo_sample, resize_video, to_video
from stereo_lit.data.windowed import EvalDataloaders, check_pad_mode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StereoPair:
    """One image pair: the files, its dataset kind and an id."""

    left: str
    right: str
    disparity: str | None
    calib: str | None
    kind: str  # "middlebury" or "kitti"
    name: str


def parse_middlebury_calib(path: str | Path) -> dict[str, Any]:
    """``calib.txt`` -> ``{"fx", "fy", "cx", "cy", "doffs", "baseline_m", ...}`` (other keys as floats)."""
    path = Path(path)
    values: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if value.startswith("["):
            numbers = [float(v) for v in re.split(r"[\s;\[\]]+", value) if v]
            if len(numbers) != 9:
                raise ValueError(f"{path}: {key} must be a 3x3 matrix, got {value!r}")
            values[key] = np.array(numbers).reshape(3, 3)
        else:
            try:
                values[key] = float(value)
            except ValueError:
                values[key] = value
    if "cam0" not in values:
        raise ValueError(f"{path}: no cam0=[...] line")
    k = values["cam0"]
    values.update(fx=float(k[0, 0]), fy=float(k[1, 1]), cx=float(k[0, 2]), cy=float(k[1, 2]))
    values["doffs"] = float(values.get("doffs", 0.0))
    values["baseline_m"] = float(values["baseline"]) / 1000.0 if "baseline" in values else float("nan")
    return values


def read_kitti_disparity(path: str | Path) -> np.ndarray:
    """KITTI 16-bit disparity PNG -> float32 px, NaN where unknown (value 0)."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as image:
            raw = np.asarray(image, dtype=np.uint16 if image.mode.startswith("I") else None)
    except Exception as exc:  # noqa: BLE001 - name the file
        raise ValueError(f"{path}: not a readable KITTI disparity PNG: {exc}") from exc
    if raw.ndim != 2 or raw.dtype not in (np.uint16, np.int32, np.uint8):
        raise ValueError(f"{path}: KITTI disparity must be a 16-bit single-channel PNG, got {raw.dtype} {raw.shape}")
    out = raw.astype(np.float32) / 256.0
    out[raw == 0] = np.nan
    return out


def write_kitti_disparity(path: str | Path, disparity_px: np.ndarray) -> Path:
    """Write float px (NaN/inf/<= 0 = unknown) as a KITTI 16-bit PNG (value = round(256 d))."""
    from PIL import Image

    d = np.asarray(disparity_px, dtype=np.float64)
    ok = np.isfinite(d) & (d > 0)
    raw = np.where(ok, np.clip(np.rint(d * 256.0), 1, 65535), 0).astype(np.uint16)
    Image.fromarray(raw).save(path)
    return Path(path)


def _kitti_pairs(folder: Path) -> list[StereoPair]:
    lefts = image_files(folder / "image_2")
    pairs = []
    for left in lefts:
        right = folder / "image_3" / left.name
        if not right.is_file():
            raise ValueError(f"{left}: no right image {right}")
        disp = folder / "disp_occ_0" / left.name
        pairs.append(StereoPair(str(left), str(right), str(disp) if disp.is_file() else None, None, "kitti", f"{folder.name}/{left.stem}"))
    if not pairs:
        raise ValueError(f"{folder / 'image_2'}: holds no images")
    return pairs


def find_pairs(source: str | Path | list) -> list[StereoPair]:
    """Middlebury scenes and KITTI pairs under ``source`` (sorted), see the module docstring."""
    if isinstance(source, (list, tuple)):
        return [p for s in source for p in find_pairs(s)]
    root = Path(str(source)).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"stereo image source {root} is not a folder")
    pairs: list[StereoPair] = []
    folders = [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
    for folder in folders:
        if (folder / "im0.png").is_file():
            right = folder / "im1.png"
            if not right.is_file():
                raise ValueError(f"{folder / 'im0.png'}: no right image {right}")
            disp, calib = folder / "disp0.pfm", folder / "calib.txt"
            pairs.append(StereoPair(
                str(folder / "im0.png"), str(right), str(disp) if disp.is_file() else None,
                str(calib) if calib.is_file() else None, "middlebury", folder.name,
            ))
        elif (folder / "image_2").is_dir() and (folder / "image_3").is_dir():
            pairs.extend(_kitti_pairs(folder))
    if not pairs:
        raise ValueError(f"{root}: no Middlebury (im0.png/im1.png) or KITTI (image_2/, image_3/) pairs found")
    return pairs


def _resize_disparity(disparity: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[1, T, H, W]`` nearest, values scaled by the width factor (NaN stays NaN)."""
    scale = size[1] / disparity.shape[-1]
    out = F.interpolate(disparity.permute(1, 0, 2, 3), size=size, mode="nearest-exact").permute(1, 0, 2, 3)
    return out * scale


class StereoImagePairs(Dataset):
    """Map-style: item ``i`` is the one-frame clip of ``pairs[i]``."""

    def __init__(
        self, pairs: list[StereoPair], max_side: int | None = None, pad_mode: str = "replicate",
        reference_disparity: bool = False, on_error: str = "raise",
    ) -> None:
        self.pairs, self.max_side, self.pad_mode = pairs, max_side, pad_mode
        self.reference_disparity = reference_disparity
        self.on_error = check_on_error(on_error)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        left_np, right_np = read_image_rgb(pair.left), read_image_rgb(pair.right)
        if left_np.shape != right_np.shape:
            raise ValueError(f"eyes of different sizes: {pair.left} is {left_np.shape[:2]}, {pair.right} is {right_np.shape[:2]}")
        left, right = to_video(left_np[None]), to_video(right_np[None])
        disparity = None
        if pair.disparity is not None:
            d = read_pfm(pair.disparity) if pair.kind == "middlebury" else read_kitti_disparity(pair.disparity)
            if d.ndim != 2 or d.shape != left_np.shape[:2]:
                raise ValueError(f"{pair.disparity}: disparity is {d.shape} but {pair.left} is {left_np.shape[:2]}")
            disparity = torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32))[None, None]
        height, width = left_np.shape[:2]
        scale = 1.0
        if self.max_side is not None and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            size = (max(2, int(round(height * scale))), max(2, int(round(width * scale))))
            left, right = resize_video(left, size), resize_video(right, size)
            if disparity is not None:
                disparity = _resize_disparity(disparity, size)
        valid = None
        source = "none"
        if disparity is not None:
            valid = (torch.isfinite(disparity) & (disparity >= 0)).float()
            source = "ground_truth"
        elif self.reference_disparity:
            from stereo_lit.metrics.reference_disparity import reference_disparity_video

            disparity, valid, _ = reference_disparity_video(left, right)
            source = "matched"
        sample = build_stereo_sample(left, right, 1, self.pad_mode, disparity, valid, pair.left)
        sample.update(
            video_path=str(Path(pair.left).parent if pair.kind == "middlebury" else pair.left), right_path=pair.right,
            sample_id=f"{pair.kind}:{pair.name}", caption="", fps=1.0, num_frames=1, first_frame=0,
            window_start=0, window_stop=1, keep_start=0, layout="separate", rig="parallel", dataset=pair.kind,
            disparity_source=source,
        )
        if pair.calib is not None:
            calib = parse_middlebury_calib(pair.calib)
            sx = left.shape[-1] / width
            sample["intrinsics"] = torch.tensor(
                [calib["fx"] * sx, calib["fy"] * sx, calib["cx"] * sx, calib["cy"] * sx, calib["baseline_m"]], dtype=torch.float32
            )
            sample["doffs_px"] = float(calib["doffs"] * sx)
        return sample

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        return guarded_getitem(self.load, index, len(self), self.on_error, lambda i: self.pairs[i].left)


class StereoImagesDataModule(EvalDataloaders, LightningDataModule):
    """Middlebury / KITTI stereo pairs as one-frame clips for ``validate`` / ``test`` / ``predict``.

    Args:
        source: a folder (searched recursively) or a list of folders.
        max_side: downscale pairs whose longer side exceeds this (disparity scaled too).
        pad_mode: ``replicate`` or ``reflect``; reference_disparity: match pairs without a
            true disparity; on_error: ``raise`` or ``skip``.
    """

    def __init__(
        self, source: str | list[str], max_side: int | None = None, pad_mode: str = "replicate",
        reference_disparity: bool = False, batch_size: int = 1, num_workers: int = 0, on_error: str = "raise",
    ) -> None:
        super().__init__()
        check_pad_mode(pad_mode)
        self.source, self.max_side, self.pad_mode = source, max_side, pad_mode
        self.reference_disparity = reference_disparity
        self.batch_size, self.num_workers = batch_size, num_workers
        self.on_error = check_on_error(on_error)
        self.pairs: list[StereoPair] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.pairs is None:
            self.pairs = find_pairs(self.source)

    def dataset(self) -> StereoImagePairs:
        self.setup()
        return StereoImagePairs(self.pairs, self.max_side, self.pad_mode, self.reference_disparity, self.on_error)

    def _loader(self) -> DataLoader:
        data = self.dataset()
        _, world = rank_and_world()
        sampler = UnrepeatedDistributedSampler(data, shuffle=False) if world > 1 else None
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers, collate_fn=collate_samples)

    def total_frames(self) -> int:
        self.setup()
        return len(self.pairs)
