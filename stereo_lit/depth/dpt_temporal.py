"""DPT head with temporal attention modules (Video-Depth-Anything), written with torch SDPA.

Parameter names follow the official checkpoints (prefix ``head.``): ``projects``, ``resize_layers``,
``scratch.{layerN_rn, refinenetN, output_conv1, output_conv2}``, ``motion_modules.N.temporal_transformer.*``.
Tensors inside are frame-major: ``[(B*T), C, h, w]`` with ``T`` frames per clip.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TEMPORAL_HEADS = 8
TEMPORAL_GROUPS = 32


# ---------------------------------------------------------------- temporal modules
class SinusoidalPositions(nn.Module):
    """Adds the stored ``pe [1, max_len, C]`` (a checkpoint buffer) to ``x [N, T, C]``."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * div_term)
        pe[0, :, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f"{x.shape[1]} frames exceed the temporal module's maximum of {self.pe.shape[1]}")
        return x + self.pe[:, : x.shape[1]].to(x.dtype)


class TemporalAttention(nn.Module):
    """Self-attention across frames at each spatial position: ``[(B*T), P, C] -> [(B*T), P, C]``."""

    def __init__(self, dim: int, heads: int, max_len: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.pos_encoder = SinusoidalPositions(dim, max_len)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bt, positions, dim = x.shape
        b = bt // num_frames
        # [(b t), p, c] -> [(b p), t, c]
        seq = x.reshape(b, num_frames, positions, dim).transpose(1, 2).reshape(b * positions, num_frames, dim)
        seq = self.pos_encoder(seq)
        n = seq.shape[0]

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(n, num_frames, self.heads, dim // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.to_q(seq)), heads(self.to_k(seq)), heads(self.to_v(seq)))
        out = self.to_out[0](out.transpose(1, 2).reshape(n, num_frames, dim))
        return out.reshape(b, positions, num_frames, dim).transpose(1, 2).reshape(bt, positions, dim)


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, max_len: int, num_attention_blocks: int = 2) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [TemporalAttention(dim, heads, max_len) for _ in range(num_attention_blocks)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(num_attention_blocks)])
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x), num_frames) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, max_len: int, num_layers: int = 1) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(TEMPORAL_GROUPS, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(channels, heads, max_len) for _ in range(num_layers)]
        )
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bt, c, h, w = x.shape
        hidden = self.norm(x).permute(0, 2, 3, 1).reshape(bt, h * w, c)
        hidden = self.proj_in(hidden)
        for block in self.transformer_blocks:
            hidden = block(hidden, num_frames)
        hidden = self.proj_out(hidden).reshape(bt, h, w, c).permute(0, 3, 1, 2)
        return hidden + x


class TemporalModule(nn.Module):
    """Residual temporal transformer over ``[(B*T), C, h, w]`` feature maps."""

    def __init__(self, channels: int, max_len: int = 32) -> None:
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, TEMPORAL_HEADS, max_len)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.temporal_transformer(x, num_frames)


# ---------------------------------------------------------------- DPT fusion
class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    """Fuse a coarser path with a skip feature, then upsample (bilinear, align_corners) to ``size`` or 2x."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x.contiguous(), scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x.contiguous(), size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHeadTemporal(nn.Module):
    """Four ViT feature maps -> depth ``[(B*T), 1, 14*ph, 14*pw]`` with temporal attention at the coarse levels."""

    def __init__(self, in_channels: int, features: int, out_channels: tuple[int, ...], num_frames: int = 32) -> None:
        super().__init__()
        self.projects = nn.ModuleList([nn.Conv2d(in_channels, c, kernel_size=1) for c in out_channels])
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        scratch = nn.Module()
        for i, c in enumerate(out_channels, start=1):
            setattr(scratch, f"layer{i}_rn", nn.Conv2d(c, features, kernel_size=3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(scratch, f"refinenet{i}", FeatureFusionBlock(features))
        scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, kernel_size=3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(32, 1, kernel_size=1),
            nn.ReLU(True),
            nn.Identity(),
        )
        self.scratch = scratch
        self.motion_modules = nn.ModuleList(
            [
                TemporalModule(out_channels[2], num_frames),
                TemporalModule(out_channels[3], num_frames),
                TemporalModule(features, num_frames),
                TemporalModule(features, num_frames),
            ]
        )

    def forward(
        self,
        features: list[tuple[torch.Tensor, torch.Tensor]],
        patch_h: int,
        patch_w: int,
        num_frames: int,
        micro_batch_size: int = 4,
    ) -> torch.Tensor:
        """features: per level ``(tokens [(B*T), ph*pw, C], cls)`` -> depth ``[(B*T), 1, 14*ph, 14*pw]``.

        The two finest levels run ``micro_batch_size`` frames at a time (bounded memory, same result).
        """
        layers = []
        for i, (tokens, _cls) in enumerate(features):
            x = tokens.permute(0, 2, 1).reshape(tokens.shape[0], tokens.shape[-1], patch_h, patch_w).contiguous()
            layers.append(self.resize_layers[i](self.projects[i](x)))
        layer_1, layer_2, layer_3, layer_4 = layers
        s = self.scratch
        layer_3 = self.motion_modules[0](layer_3, num_frames)
        layer_4 = self.motion_modules[1](layer_4, num_frames)
        layer_1_rn = s.layer1_rn(layer_1)
        layer_2_rn = s.layer2_rn(layer_2)
        layer_3_rn = s.layer3_rn(layer_3)
        layer_4_rn = s.layer4_rn(layer_4)

        path_4 = s.refinenet4(layer_4_rn, size=layer_3_rn.shape[2:])
        path_4 = self.motion_modules[2](path_4, num_frames)
        path_3 = s.refinenet3(path_4, layer_3_rn, size=layer_2_rn.shape[2:])
        path_3 = self.motion_modules[3](path_3, num_frames)

        out_size = (int(patch_h * 14), int(patch_w * 14))
        outputs = []
        for i in range(0, path_3.shape[0], max(1, micro_batch_size)):
            j = i + max(1, micro_batch_size)
            path_2 = s.refinenet2(path_3[i:j], layer_2_rn[i:j], size=layer_1_rn.shape[2:])
            path_1 = s.refinenet1(path_2, layer_1_rn[i:j])
            out = F.interpolate(s.output_conv1(path_1), out_size, mode="bilinear", align_corners=True)
            dtype = out.dtype
            with torch.autocast(device_type=out.device.type, enabled=False):
                out = s.output_conv2(out.float())  # the official head runs this last part in fp32
            outputs.append(out.to(dtype))
        return torch.cat(outputs, dim=0)
