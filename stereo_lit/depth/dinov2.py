"""DINOv2 ViT encoder as used by Video-Depth-Anything, written with torch SDPA.

Parameter names follow the official checkpoints (prefix ``pretrained.`` in the full model):
``cls_token``, ``pos_embed``, ``mask_token``, ``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv,
attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}``, ``norm``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PATCH_SIZE = 14
PRETRAIN_IMAGE_SIZE = 518  # pos_embed holds a 37x37 grid (+ class token)
INTERPOLATE_OFFSET = 0.1  # DINOv2's work-around offset for the bicubic pos-embed resize


class PatchEmbed(nn.Module):
    """[N,3,H,W] -> [N,(H/14)*(W/14),C] by a stride-14 convolution."""

    def __init__(self, embed_dim: int, patch_size: int = PATCH_SIZE, in_chans: int = 3) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with layer scale (DINOv2, eval mode: no drop path)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT with 14-px patches; returns normalised tokens of selected blocks."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_size = PATCH_SIZE
        self.patch_embed = PatchEmbed(embed_dim)
        grid = PRETRAIN_IMAGE_SIZE // PATCH_SIZE
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))  # unused at inference; kept for the key set
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def interpolate_pos_encoding(self, num_tokens: int, height: int, width: int) -> torch.Tensor:
        """Positional embedding ``[1, 1+(H/14)*(W/14), C]`` for an ``height`` x ``width`` image.

        Bicubic resize of the 37x37 grid by *scale factor* ``(H/14 + 0.1)/37`` (the official rule; the
        scale, not the output size, sets the sampling positions).
        """
        n_pretrain = self.pos_embed.shape[1] - 1
        if num_tokens - 1 == n_pretrain and height == width:
            return self.pos_embed
        dtype = self.pos_embed.dtype
        pos_embed = self.pos_embed.float()
        dim = pos_embed.shape[-1]
        grid_h = height // self.patch_size + INTERPOLATE_OFFSET
        grid_w = width // self.patch_size + INTERPOLATE_OFFSET
        side = math.sqrt(n_pretrain)
        patch_pos = F.interpolate(
            pos_embed[:, 1:].reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2),
            scale_factor=(float(grid_h) / side, float(grid_w) / side),
            mode="bicubic",
            antialias=False,
        )
        if patch_pos.shape[-2:] != (int(grid_h), int(grid_w)):
            raise RuntimeError(f"pos-embed resize gave {tuple(patch_pos.shape[-2:])}, expected {(int(grid_h), int(grid_w))}")
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((pos_embed[:, :1], patch_pos), dim=1).to(dtype)

    def get_intermediate_layers(
        self, x: torch.Tensor, layer_ids: tuple[int, ...] | list[int]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """x ``[N,3,H,W]`` (normalised) -> per selected block ``(patch_tokens [N,L,C], cls [N,C])``, after ``norm``."""
        height, width = x.shape[-2:]
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(tokens.shape[1], height, width).to(tokens.dtype)
        wanted = set(layer_ids)
        outputs = []
        for i, block in enumerate(self.blocks[: max(layer_ids) + 1]):
            tokens = block(tokens)
            if i in wanted:
                normed = self.norm(tokens)
                outputs.append((normed[:, 1:], normed[:, 0]))
        return outputs
