"""Tiny random Video-Depth-Anything checkpoint (official key naming, reduced width) for tests/CI/demo."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .model import VideoDepthAnything

TINY_VDA_NAME = "video_depth_anything_tiny.pth"


def tiny_vda_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic weights for the ``tiny`` architecture; the output bias keeps the final ReLU open."""
    torch.manual_seed(seed)
    model = VideoDepthAnything("tiny")
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(".pe"):  # sinusoidal positions, as in the official files
            state[key] = value.clone()
            continue
        noise = torch.randn(value.shape, generator=generator)
        if value.ndim >= 2:
            fan_in = max(1, value[0].numel())
            tensor = noise / fan_in**0.5
        elif key.endswith("weight") and ("norm" in key or "ls" in key):
            tensor = 1.0 + 0.02 * noise
        elif key.endswith("gamma"):
            tensor = 1.0 + 0.02 * noise
        else:
            tensor = 0.02 * noise
        if key.endswith("output_conv2.2.bias"):
            tensor = tensor + 1.0
        state[key] = tensor.contiguous()
    return state


def write_tiny_vda(out_dir: Path, seed: int = 0) -> Path:
    """Write ``out_dir/video_depth_anything_tiny.pth`` (skipped if present and loadable); returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TINY_VDA_NAME
    if path.is_file():
        try:
            from .checkpoint import load_vda

            load_vda(path)
            return path
        except Exception:
            pass  # incomplete or stale: rewrite
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(tiny_vda_state_dict(seed), tmp)
    os.replace(tmp, path)
    return path
