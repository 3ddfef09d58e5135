"""Real stereo videos (3D films, VR180 clips, stereo rigs) as evaluation sets.

Sources and file discovery: :mod:`stereo_lit.data.stereo_sources` (a file, a folder, a
``.txt`` list or a ``datasets`` collection, as the wild-video datamodule takes). Layouts
(``layout=``): ``sbs``, ``sbs_half``, ``tb``, ``tb_half`` (half layouts un-squeezed),
``vr180_sbs`` (each eye an equirect 180 half-frame, re-projected to a rectified pinhole
view with :func:`stereo_lit.stereo.projection.equirect_to_pinhole`, the same rotation for both
eyes, so the pair is a parallel rig), ``separate`` (``NAME_L.*``/``NAME_R.*`` files or
``left/``+``right/`` folders; found automatically) or ``auto`` (separate files when found,
else :func:`stereo_lit.data.stereo_frames.detect_layout`, the decision logged).

Every sample (one window of one clip; windows from :func:`stereo_lit.stereo.windows.plan_windows`,
each frame produced once) carries the keys TartanAir evaluation batches carry:

- ``left`` (the input) and ``right`` (the reference) float ``[3, T, H, W]`` in [0, 1],
  padded at the bottom/right to multiples of 16 and at the end to ``4k+1`` frames (never
  cropped); ``padding`` = ``{"bottom", "right", "frames"}``;
- ``valid_left``, ``valid_right`` ``[1, T, H, W]``: 1 on real content, 0 on padding
  (with ``reference_disparity=True`` ``valid_left`` also excludes pixels that failed the
  matcher's left-right check);
- ``video_path`` (the packed file or the left eye), ``right_path`` ("" for packed),
  ``sample_id``, ``caption``, ``fps``, ``num_frames``, ``first_frame``, ``window_start``,
  ``window_stop``, ``keep_start``, ``layout``, ``rig`` (``parallel`` for VR180, else the
  ``rig`` option, default ``unknown``);
- VR180 only: ``intrinsics`` ``[5]`` = (fx, fy, cx, cy, baseline_m) of the pinhole view;
- with ``reference_disparity=True``: ``disparity_left_px`` ``[1, T, H, W]`` from a stereo
  matcher on the true pair (:mod:`stereo_lit.metrics.reference_disparity`), ``reference_failed_px``
  (pixels excluded) and ``disparity_source`` = ``"matched"``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from stereo_lit.data.collate import check_on_error, guarded_getitem
from stereo_lit.data.stereo_frames import LAYOUTS, FrameSource, detect_layout, eye_size, open_frames, split_packed
from stereo_lit.data.stereo_sources import StereoEntry, resolve_stereo
from stereo_lit.data.wild_videos import output_size
from stereo_lit.data.windowed import EvalDataloaders, WindowedData, check_pad_mode, check_window
from stereo_lit.stereo.padding import pad_video, padding_for
from stereo_lit.stereo.projection import default_pinhole_size, equirect_to_pinhole, pinhole_intrinsics, rotation_yaw_pitch
from stereo_lit.stereo.windows import Window, is_wan_length, next_wan_length, plan_windows

log = logging.getLogger(__name__)

RIGS = ("unknown", "parallel", "converged")


def to_video(frames) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` (numpy) -> float ``[3, T, H, W]`` in [0, 1]."""
    return torch.from_numpy(frames).permute(3, 0, 1, 2).float().div_(255.0)


def resize_video(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[C, T, H, W]`` bilinear (antialiased when shrinking) to ``size``."""
    if tuple(video.shape[-2:]) == tuple(size):
        return video
    out = F.interpolate(video.permute(1, 0, 2, 3), size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(0, 1).permute(1, 0, 2, 3).contiguous()


def build_stereo_sample(
    left: torch.Tensor,
    right: torch.Tensor,
    target_frames: int,
    pad_mode: str = "replicate",
    disparity_left_px: torch.Tensor | None = None,
    disparity_valid: torch.Tensor | None = None,
    name: str = "clip",
) -> dict[str, Any]:
    """Pad a true pair into a sample: ``left``, ``right``, ``valid_left``, ``valid_right``,
    ``padding`` (and ``disparity_left_px`` when given).

    Args:
        left, right: ``[3, T, H, W]`` in [0, 1], the same size (else an error naming ``name``).
        target_frames: ``4k+1 >= T``; frames are padded by repeating the last one.
        disparity_left_px, disparity_valid: ``[1, T, H, W]`` px and mask, optional.
    """
    if left.shape != right.shape:
        raise ValueError(f"{name}: left eye is {tuple(left.shape)} but right eye is {tuple(right.shape)}")
    _, num, height, width = left.shape
    padding = padding_for(height, width)
    padding = type(padding)(padding.bottom, padding.right, target_frames - num)
    if padding.frames < 0 or not is_wan_length(target_frames):
        raise ValueError(f"{name}: {num} frames cannot be padded to {target_frames} (need 4k+1 >= {num})")

    def pad(x: torch.Tensor, mode: str) -> torch.Tensor:
        return pad_video(x[None], padding, mode)[0]

    def pad_mask(mask: torch.Tensor) -> torch.Tensor:
        return F.pad(mask, (0, padding.right, 0, padding.bottom, 0, padding.frames), value=0.0)

    content = torch.ones(1, num, height, width)
    sample: dict[str, Any] = {
        "left": pad(left, pad_mode), "right": pad(right, pad_mode),
        "valid_left": pad_mask(content if disparity_valid is None else content * disparity_valid.float()),
        "valid_right": pad_mask(content),
        "padding": {"bottom": padding.bottom, "right": padding.right, "frames": padding.frames},
    }
    if disparity_left_px is not None:
        sample["disparity_left_px"] = pad(torch.nan_to_num(disparity_left_px.float(), nan=0.0), "replicate")
    return sample


@dataclass(frozen=True)
class StereoClip:
    """A probed clip: its entry, layout, frame sources and sizes."""

    entry: StereoEntry
    layout: str
    left: FrameSource
    right: FrameSource | None  # separate eyes only
    eye_hw: tuple[int, int]  # after splitting / un-squeezing / projection
    size: tuple[int, int] | None  # resize target or None
    num_frames: int
    fps: float


@dataclass(frozen=True)
class ProjectionSpec:
    """VR180 re-projection: horizontal FOV, output size (None: density-matched square), view rotation."""

    hfov_deg: float = 90.0
    size: tuple[int, int] | None = None
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    baseline_m: float = 0.064


def probe_clip(
    entry: StereoEntry, layout: str, fps: float | None, image_fps: float, projection: ProjectionSpec,
    size: tuple[int, int] | None, max_side: int | None,
) -> StereoClip:
    """Open the clip's frame sources, resolve its layout, check the eyes agree."""
    left = open_frames(entry.path, fps, image_fps)
    right = None
    if entry.separate:
        if layout not in ("auto", "separate"):
            raise ValueError(f"{entry.path}: separate eye files ({entry.right_path}) but layout={layout!r} was declared")
        right = open_frames(entry.right_path, fps, image_fps)
        if (left.height, left.width) != (right.height, right.width):
            raise ValueError(
                f"eyes of different sizes: {left.path} is {left.height}x{left.width}, {right.path} is {right.height}x{right.width}"
            )
        if abs(left.fps - right.fps) > 1e-3 * max(left.fps, right.fps):
            raise ValueError(f"eyes at different frame rates: {left.path} at {left.fps:g} fps, {right.path} at {right.fps:g} fps")
        if left.num_frames != right.num_frames:
            raise ValueError(f"eyes of different lengths: {left.path} has {left.num_frames} frames, {right.path} has {right.num_frames}")
        resolved, hw = "separate", (left.height, left.width)
    else:
        if layout == "separate":
            raise ValueError(f"{entry.path}: layout='separate' but no NAME_L/NAME_R partner or left/ and right/ folders were found")
        resolved = layout
        if layout == "auto":
            resolved, reason = detect_layout(left.read(0, 1)[0], Path(entry.path).name)
            log.info("%s: layout %s (%s)", entry.path, resolved, reason)
        hw = eye_size(left.height, left.width, resolved)
        if resolved == "vr180_sbs":
            hw = projection.size or default_pinhole_size(hw[0], hw[1], projection.hfov_deg)
    return StereoClip(entry, resolved, left, right, tuple(hw), output_size(hw[0], hw[1], size, max_side), left.num_frames, left.fps)


class StereoVideoWindows(Dataset):
    """Map-style: item ``i`` is window ``items[i] = (clip, Window)``."""

    def __init__(
        self, items: list[tuple[StereoClip, Window]], projection: ProjectionSpec, pad_mode: str = "replicate",
        rig: str = "unknown", reference_disparity: bool = False, on_error: str = "raise",
        reference_max_disparity_pct: float = 10.0,
    ) -> None:
        self.items, self.projection, self.pad_mode, self.rig = items, projection, pad_mode, rig
        self.reference_disparity, self.reference_max_disparity_pct = reference_disparity, reference_max_disparity_pct
        self.on_error = check_on_error(on_error)

    def __len__(self) -> int:
        return len(self.items)

    def eyes(self, clip: StereoClip, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
        """The (left, right) ``[3, T, H, W]`` of one window, before padding."""
        name = clip.entry.path
        if clip.right is not None:
            left, right = to_video(clip.left.read(window.start, window.stop)), to_video(clip.right.read(window.start, window.stop))
            if left.shape != right.shape:
                raise ValueError(f"eyes of different sizes: {clip.left.path} {tuple(left.shape)}, {clip.right.path} {tuple(right.shape)}")
        else:
            left, right = split_packed(to_video(clip.left.read(window.start, window.stop)), clip.layout, name)
            if clip.layout == "vr180_sbs":
                p = self.projection
                rotation = rotation_yaw_pitch(p.yaw_deg, p.pitch_deg)
                left, right = (
                    equirect_to_pinhole(eye.permute(1, 0, 2, 3), clip.eye_hw, p.hfov_deg, rotation).permute(1, 0, 2, 3).clamp_(0, 1)
                    for eye in (left, right)
                )
        if clip.size is not None:
            left, right = resize_video(left, clip.size), resize_video(right, clip.size)
        return left.contiguous(), right.contiguous()

    def load(self, index: int) -> dict[str, Any]:
        clip, window = self.items[index]
        left, right = self.eyes(clip, window)
        disparity = valid = None
        failed = 0
        if self.reference_disparity:
            from stereo_lit.metrics.reference_disparity import reference_disparity_video

            parallel = clip.layout == "vr180_sbs" or self.rig == "parallel"
            # converged (or unknown) footage has disparities of both signs: search both
            low = 0.0 if parallel else -self.reference_max_disparity_pct
            disparity, valid, failed = reference_disparity_video(left, right, low, self.reference_max_disparity_pct)
        sample = build_stereo_sample(left, right, next_wan_length(window.num_frames), self.pad_mode, disparity, valid, clip.entry.path)
        height, width = left.shape[-2:]
        sample.update(
            video_path=clip.entry.path, right_path=clip.entry.right_path or "",
            sample_id=f"{clip.entry.name or Path(clip.entry.path).stem}:{window.start:06d}-{window.stop:06d}",
            caption=clip.entry.caption, fps=float(clip.fps), num_frames=int(clip.num_frames),
            first_frame=int(window.start), window_start=int(window.start), window_stop=int(window.stop),
            keep_start=int(window.keep_start), layout=clip.layout, rig="parallel" if clip.layout == "vr180_sbs" else self.rig,
        )
        if clip.layout == "vr180_sbs":
            fx, fy, cx, cy = pinhole_intrinsics(height, width, self.projection.hfov_deg)
            sample["intrinsics"] = torch.tensor([fx, fy, cx, cy, self.projection.baseline_m], dtype=torch.float32)
        if self.reference_disparity:
            sample.update(reference_failed_px=int(failed), disparity_source="matched")
        return sample

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        return guarded_getitem(self.load, index, len(self), self.on_error, lambda i: self.items[i][0].entry.path)


class StereoVideoDataModule(EvalDataloaders, WindowedData, LightningDataModule):
    """Stereo videos (packed, separate eyes, VR180) for ``validate`` / ``test`` / ``predict``.

    Args:
        source: a file, a folder, a ``.txt`` list, a ``datasets`` folder or table, or a list
            (see :mod:`stereo_lit.data.stereo_sources`).
        layout: ``auto``, ``sbs``, ``sbs_half``, ``tb``, ``tb_half``, ``vr180_sbs`` or
            ``separate`` (declared for every packed file; separate eye files are always read
            as such).
        window, overlap: windows of ``4k+1`` frames sharing ``overlap`` (``4m+1`` or 0) frames.
        fps: resample to this frame rate; image_fps: frame rate of image-frame folders.
        size / max_side: resize each eye (after un-squeeze / projection); padded to 16 either way.
        vr180_hfov_deg, vr180_size, vr180_yaw_deg, vr180_pitch_deg, vr180_baseline_m: the
            pinhole view of VR180 clips (:class:`ProjectionSpec`).
        rig: ``unknown``, ``parallel`` or ``converged`` for non-VR180 clips (the ``rig`` key).
        reference_disparity: add SGBM disparity of the true pair (slow; for evaluation),
            searched over ``[0, max]`` for parallel clips (VR180, ``rig="parallel"``) and
            ``[-max, max]`` otherwise, ``max`` = ``reference_max_disparity_pct`` % of the width.
        on_error: ``"raise"`` or ``"skip"`` (log a warning naming the file and go on).
    """

    def __init__(
        self,
        source: str | list[str],
        layout: str = "auto",
        window: int = 33,
        overlap: int = 9,
        fps: float | None = None,
        image_fps: float = 24.0,
        size: tuple[int, int] | None = None,
        max_side: int | None = None,
        pad_mode: str = "replicate",
        vr180_hfov_deg: float = 90.0,
        vr180_size: tuple[int, int] | None = None,
        vr180_yaw_deg: float = 0.0,
        vr180_pitch_deg: float = 0.0,
        vr180_baseline_m: float = 0.064,
        rig: str = "unknown",
        reference_disparity: bool = False,
        reference_max_disparity_pct: float = 10.0,
        path_column: str | None = None,
        caption_column: str | None = None,
        split: str | None = None,
        batch_size: int = 1,
        num_workers: int = 0,
        on_error: str = "raise",
    ) -> None:
        super().__init__(batch_size, num_workers, on_error)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        check_window(window, overlap)
        check_pad_mode(pad_mode)
        if rig not in RIGS:
            raise ValueError(f"rig must be one of {RIGS}, got {rig!r}")
        if not 0 < vr180_hfov_deg < 180:
            raise ValueError(f"vr180_hfov_deg must be in (0, 180), got {vr180_hfov_deg}")
        self.source, self.layout, self.window, self.overlap = source, layout, window, overlap
        self.fps, self.image_fps = fps, image_fps
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.max_side, self.pad_mode, self.rig = max_side, pad_mode, rig
        self.projection = ProjectionSpec(
            vr180_hfov_deg, None if vr180_size is None else (int(vr180_size[0]), int(vr180_size[1])),
            vr180_yaw_deg, vr180_pitch_deg, vr180_baseline_m,
        )
        self.reference_disparity, self.reference_max_disparity_pct = reference_disparity, float(reference_max_disparity_pct)
        self.path_column, self.caption_column, self.split = path_column, caption_column, split
        self.clips: list[StereoClip] | None = None

    def _probe(self, entry: StereoEntry) -> StereoClip:
        return probe_clip(entry, self.layout, self.fps, self.image_fps, self.projection, self.size, self.max_side)

    def setup(self, stage: str | None = None) -> None:
        if self.clips is None:
            entries = resolve_stereo(self.source, self.path_column, self.caption_column, self.split)
            self.clips = self._probe_sources(entries, self._probe, "stereo clip")

    def _active(self) -> list[StereoClip]:
        """Probed clips whose ``video_path`` is not excluded (:meth:`exclude_videos`)."""
        self.setup()
        return self._kept(self.clips, lambda c: c.entry.path)

    def items(self) -> list[tuple[StereoClip, Window]]:
        """Every window of every (not excluded) clip, clips in order, windows in order."""
        return [(c, w) for c in self._active() for w in plan_windows(c.num_frames, self.window, self.overlap)]

    def dataset(self) -> StereoVideoWindows:
        return StereoVideoWindows(
            self.items(), self.projection, self.pad_mode, self.rig, self.reference_disparity, self.on_error,
            self.reference_max_disparity_pct,
        )

    def _loader(self) -> DataLoader:
        data = self.dataset()
        return self._ordered_loader(data, [c.entry.path for c, _ in data.items])
