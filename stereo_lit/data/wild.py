"""The configs' in-the-wild datamodule, ``stereo_lit.data.wild.WildVideoDataModule``.

The reading, windowing and streaming live in :mod:`stereo_lit.data.wild_videos`, which does not
import Lightning (the converter's direct run, :mod:`stereo_lit.predict.direct`, uses them as
they are); this module adds ``LightningDataModule`` for the jobs and re-exports the rest.
"""

from __future__ import annotations

from lightning.pytorch import LightningDataModule

from stereo_lit.data.wild_videos import (
    MIN_SIDE, RANGE_SAMPLE_MAX, WildVideo, WildVideoData, WildVideoWindows, check_depth_values, clip_plan,
    depth_range_sample, effective_fps, output_size, resize_depth, time_range_frames,
)


class WildVideoDataModule(WildVideoData, LightningDataModule):
    __doc__ = WildVideoData.__doc__  # the arguments (the CLI's help reads them from here)


__all__ = [
    "MIN_SIDE", "RANGE_SAMPLE_MAX", "WildVideo", "WildVideoData", "WildVideoDataModule", "WildVideoWindows",
    "check_depth_values", "clip_plan", "depth_range_sample", "effective_fps", "output_size", "resize_depth",
    "time_range_frames",
]
