"""Test helper: a diffusers pipeline class loaded from a local (tiny) folder, float32, no progress bars."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch


def load_pipeline(cls: Any, folder: Path) -> Any:
    """``cls.from_pretrained(folder)`` in float32, local files only, progress bars off."""
    with warnings.catch_warnings():  # diffusers 0.42 renamed torch_dtype to dtype; both work
        warnings.simplefilter("ignore", FutureWarning)
        pipe = cls.from_pretrained(folder, torch_dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe
