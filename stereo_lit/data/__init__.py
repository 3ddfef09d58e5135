"""Datamodules and readers; heavy imports happen on first use (``from stereo_lit.data import X``)."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "StereoVideoDataModule": "stereo_lit.data.stereo_video",
    "StereoImagesDataModule": "stereo_lit.data.stereo_images",
    "read_pfm": "stereo_lit.data.pfm",
    "write_pfm": "stereo_lit.data.pfm",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stereo_lit.data' has no attribute {name!r}")


__all__ = sorted(_LAZY)
