"""Loading official Video-Depth-Anything checkpoints (strict key match, ``weights_only=True``).

File names carry the variant: ``video_depth_anything_{vits,vitb,vitl}.pth`` (relative inverse depth)
and ``metric_video_depth_anything_{vits,vitb,vitl}.pth`` (metres). ``_tiny`` is the test model.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .model import VDA_CONFIGS, VideoDepthAnything

OFFICIAL_NAMES = (
    "video_depth_anything_vits.pth, video_depth_anything_vitb.pth, video_depth_anything_vitl.pth, "
    "metric_video_depth_anything_{vits,vitb,vitl}.pth"
)
_ENCODER_IN_NAME = re.compile(r"(?:^|[_\-.])(vits|vitb|vitl|tiny)(?:[_\-.]|$)")
_MAX_LISTED = 20


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes do not match the model it is meant for."""


def parse_checkpoint_name(path: str | Path) -> tuple[str | None, bool]:
    """``(encoder or None, metric)`` from a file name such as ``metric_video_depth_anything_vitl.pth``."""
    name = Path(path).name.lower()
    match = _ENCODER_IN_NAME.search(Path(name).stem)
    return (match.group(1) if match else None), name.startswith("metric")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors`` file, on CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Video-Depth-Anything checkpoint not found: {path.resolve()} (expected an official file such as "
            f"{OFFICIAL_NAMES}; see checkpoints/README.md, or write a tiny one with "
            "`python data_prep/make_tiny_checkpoints.py --out checkpoints/tiny`)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle with code objects, truncated file, ...
            raise ValueError(f"cannot read {path} as a weights-only PyTorch checkpoint: {exc}") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and set(state) == {wrapper} and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a flat state dict of tensors")
    return state


def infer_encoder(state: dict[str, torch.Tensor]) -> str | None:
    """Encoder whose ViT width and depth match the state dict, or None."""
    cls = state.get("pretrained.cls_token")
    if cls is None:
        return None
    n_blocks = len({k.split(".")[2] for k in state if k.startswith("pretrained.blocks.")})
    for name, cfg in VDA_CONFIGS.items():
        if cfg.embed_dim == cls.shape[-1] and cfg.depth == n_blocks:
            return name
    return None


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise :class:`CheckpointMismatchError` listing missing, unexpected and wrongly shaped keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:
        parts = [f"checkpoint {source} does not match the Video-Depth-Anything model"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {_listing(shapes)}")
        raise CheckpointMismatchError("\n  ".join(parts))


def load_vda(
    checkpoint: str | Path, encoder: str | None = None, metric: bool | None = None
) -> VideoDepthAnything:
    """Build the model for ``checkpoint`` and load it strictly (eval mode, float32, CPU).

    ``encoder``/``metric`` default to what the file name says; the encoder falls back to the
    state dict's ViT width and depth.
    """
    name_encoder, name_metric = parse_checkpoint_name(checkpoint)
    state = read_state_dict(checkpoint)
    encoder = encoder or name_encoder or infer_encoder(state)
    if encoder is None:
        raise ValueError(
            f"cannot tell the encoder of {checkpoint}: name it like {OFFICIAL_NAMES} or pass encoder="
            f"{sorted(VDA_CONFIGS)}"
        )
    model = VideoDepthAnything(encoder, metric=name_metric if metric is None else metric)
    check_state_dict(model, state, str(Path(checkpoint).resolve()))
    model.load_state_dict(state, strict=True)
    return model.eval()
