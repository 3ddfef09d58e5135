"""Video-Depth-Anything: DINOv2 encoder + temporal DPT head, parametrised by a named config."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .dinov2 import PATCH_SIZE, DinoVisionTransformer
from .dpt_temporal import DPTHeadTemporal


@dataclass(frozen=True)
class VDAConfig:
    """Architecture of one Video-Depth-Anything size (the official ``model_configs``)."""

    encoder: str
    embed_dim: int
    depth: int
    num_heads: int
    layer_ids: tuple[int, ...]
    features: int
    out_channels: tuple[int, int, int, int]
    num_frames: int = 32  # temporal positional-embedding length (the inference window)


VDA_CONFIGS: dict[str, VDAConfig] = {
    "vits": VDAConfig("vits", 384, 12, 6, (2, 5, 8, 11), 64, (48, 96, 192, 384)),
    "vitb": VDAConfig("vitb", 768, 12, 12, (2, 5, 8, 11), 128, (96, 192, 384, 768)),
    "vitl": VDAConfig("vitl", 1024, 24, 16, (4, 11, 17, 23), 256, (256, 512, 1024, 1024)),
    # reduced width/depth for tests, CI and the demo; same key naming as the official files
    "tiny": VDAConfig("tiny", 64, 4, 4, (0, 1, 2, 3), 32, (32, 32, 64, 64)),
}


def vda_config(encoder: str) -> VDAConfig:
    if encoder not in VDA_CONFIGS:
        raise ValueError(f"unknown Video-Depth-Anything encoder {encoder!r}; expected one of {sorted(VDA_CONFIGS)}")
    return VDA_CONFIGS[encoder]


class VideoDepthAnything(nn.Module):
    """Clip of frames -> depth of the same size.

    ``metric=False``: relative inverse depth (larger = nearer); ``metric=True``: depth in metres.
    The flag only changes windowed inference (no scale/shift alignment for metric models).
    """

    def __init__(self, encoder: str | VDAConfig = "vitl", metric: bool = False) -> None:
        super().__init__()
        self.config = encoder if isinstance(encoder, VDAConfig) else vda_config(encoder)
        self.metric = bool(metric)
        c = self.config
        self.pretrained = DinoVisionTransformer(c.embed_dim, c.depth, c.num_heads)
        self.head = DPTHeadTemporal(c.embed_dim, c.features, c.out_channels, c.num_frames)

    @property
    def encoder(self) -> str:
        return self.config.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[B,T,3,H,W]`` ImageNet-normalised, H and W multiples of 14 -> depth ``[B,T,H,W]`` (>= 0)."""
        b, t, _, h, w = x.shape
        patch_h, patch_w = h // PATCH_SIZE, w // PATCH_SIZE
        features = self.pretrained.get_intermediate_layers(x.flatten(0, 1), self.config.layer_ids)
        depth = self.head(features, patch_h, patch_w, t)
        depth = F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=True)
        return F.relu(depth).squeeze(1).unflatten(0, (b, t))
