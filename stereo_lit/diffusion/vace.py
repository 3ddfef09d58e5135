"""Wan2.1-VACE conditioning for the stereo fill: the warped right view and its disocclusion mask.

VACE (``WanVACETransformer3DModel``, ``WanVACEPipeline`` in diffusers) is Wan2.1 trained for masked
video-to-video: besides the noisy latents its transformer takes *control latents* ``[B, 96, f, h, w]``
built from a video and a mask (1 = generate). For stereo the video is the pixel warp of the left
view and the mask its disocclusions (``1 - known_mask``); :func:`vace_conditioning` builds the
control latents exactly as ``WanVACEPipeline.prepare_video_latents`` + ``prepare_masks`` do (no
reference images), so the model sees the inputs it was trained on. Pure functions, no pipeline state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

#: What :func:`backbone_of` returns.
BACKBONES = ("t2v", "vace")
#: ``model_index.json`` pipeline / transformer class names -> backbone.
_PIPELINES = {"WanPipeline": "t2v", "WanVACEPipeline": "vace"}
_TRANSFORMERS = {"WanTransformer3DModel": "t2v", "WanVACETransformer3DModel": "vace"}
#: The value VACE users put in the regions to generate (grey: 0 in [-1, 1]); see :func:`grey_holes`.
HOLE_VALUE = 0.5
#: Control channels: 2 x 16 latent channels (inactive, reactive) + 8 x 8 pixel-unshuffled mask.
VACE_IN_CHANNELS = 96


def backbone_of(source: str | Path | Any) -> str:
    """``"t2v"`` or ``"vace"``: which Wan2.1 model a Diffusers folder or a loaded model is.

    Args:
        source: a Diffusers folder (its ``model_index.json``: ``_class_name`` must be ``WanPipeline`` or
            ``WanVACEPipeline``; the ``transformer`` entry's class decides, as it is what loads), a loaded
            transformer (its class), or a pipeline (its ``transformer``).

    Raises:
        FileNotFoundError: a folder without ``model_index.json``.
        ValueError: a Wan model that is neither (e.g. image-to-video).
    """
    if isinstance(source, (str, Path)):
        index_path = Path(source).expanduser() / "model_index.json"
        if not index_path.is_file():
            raise FileNotFoundError(f"backbone_of: {str(index_path)!r} does not exist; expected a Wan2.1 Diffusers folder")
        index = json.loads(index_path.read_text())
        pipeline_class = index.get("_class_name")
        entry = index.get("transformer")
        transformer_class = entry[1] if isinstance(entry, (list, tuple)) and len(entry) == 2 else None
        if pipeline_class not in _PIPELINES:
            raise ValueError(
                f"backbone_of: {index_path} describes {pipeline_class!r} (transformer {transformer_class!r}); expected "
                f"a Wan2.1 text-to-video (WanPipeline) or VACE (WanVACEPipeline) folder"
            )
        # the transformer entry is the class from_pretrained loads; the pipeline name is the fallback
        return _TRANSFORMERS.get(transformer_class, _PIPELINES[pipeline_class])
    model = getattr(source, "transformer", None) if not isinstance(source, torch.nn.Module) else source
    model = getattr(model, "_orig_mod", model)  # torch.compile wraps the module
    for cls in type(model).__mro__:
        if cls.__name__ in _TRANSFORMERS:
            return _TRANSFORMERS[cls.__name__]
    raise ValueError(
        f"backbone_of: {type(source).__name__} is not a Wan2.1 transformer (WanTransformer3DModel or "
        f"WanVACETransformer3DModel), nor a pipeline holding one"
    )


def grey_holes(video_01: torch.Tensor, regenerate_mask: torch.Tensor) -> torch.Tensor:
    """The VACE input video: ``video_01`` with the regions to generate set to grey (0.5 in [0, 1]).

    What ``WanVACEPipeline`` users put there (its own example: RGB 128 frames; the original VACE
    pre-processing: 127.5), so the reactive stream carries no made-up content.
    """
    return torch.where(regenerate_mask > 0.5, torch.full_like(video_01, HOLE_VALUE), video_01)


def _check(video_01: torch.Tensor, regenerate_mask: torch.Tensor) -> None:
    if video_01.ndim != 5 or video_01.shape[1] != 3:
        raise ValueError(f"vace_conditioning: video_01 must be [B, 3, T, H, W] in [0, 1], got {tuple(video_01.shape)}")
    b, _, t, h, w = video_01.shape
    if tuple(regenerate_mask.shape) != (b, 1, t, h, w):
        raise ValueError(
            f"vace_conditioning: regenerate_mask must be [B, 1, T, H, W] = {(b, 1, t, h, w)} (1 = generate), "
            f"got {tuple(regenerate_mask.shape)}"
        )


def _check_size(video_01: torch.Tensor, base: int) -> None:
    h, w = video_01.shape[-2:]
    if h % base or w % base:
        raise ValueError(f"vace_conditioning: H and W must be multiples of {base} (VAE x patch), got {h}x{w}")


@torch.no_grad()
def vace_conditioning(
    vae: Any, video_01: torch.Tensor, regenerate_mask: torch.Tensor, patch_size: int | Sequence[int] = 2,
) -> torch.Tensor:
    """VACE control latents ``[B, 96, f, h, w]`` float32 for a video and the mask of what to generate.

    As ``WanVACEPipeline`` builds them (``preprocess_conditions`` -> ``prepare_video_latents`` ->
    ``prepare_masks``, no reference images): pixels to [-1, 1]; ``m = mask > 0.5``;
    ``inactive = video * (1 - m)`` and ``reactive = video * m`` each VAE-encoded (posterior mode)
    and normalised with the VAE's latent statistics (channels 0-15, 16-31); then the raw mask,
    8 x 8 pixel-unshuffled to 64 channels and resized to the latent frames (nearest-exact).

    Args:
        vae: ``AutoencoderKLWan`` (any dtype; offload hooks are fine).
        video_01: ``[B, 3, T, H, W]`` in [0, 1]; for stereo the warped right view with grey holes
            (:func:`grey_holes`).
        regenerate_mask: ``[B, 1, T, H, W]``, 1 = to generate (the disocclusions, ``1 - known_mask``).
        patch_size: the transformer's spatial patch (``transformer.config.patch_size``, or its ``[1]``).

    Returns:
        ``[B, 96, 1 + (T-1)//4, H/8, W/8]`` float32 on ``video_01``'s device (cast it to the
        transformer's dtype, as the pipeline does).
    """
    from diffusers.utils.torch_utils import get_module_execution_device

    _check(video_01, regenerate_mask)
    patch = int(patch_size[1] if isinstance(patch_size, Sequence) else patch_size)
    scale_t = 2 ** sum(vae.temperal_downsample)  # as WanVACEPipeline derives its factors
    scale_s = 2 ** len(vae.temperal_downsample)
    _check_size(video_01, scale_s * patch)
    out_device = video_01.device
    device, vae_dtype = get_module_execution_device(vae), vae.dtype
    z_dim = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, device=device, dtype=torch.float32).view(1, z_dim, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std, device=device, dtype=torch.float32).view(1, z_dim, 1, 1, 1)

    # prepare_video_latents (VaeImageProcessor.normalize: 2x - 1; its mask round trip returns the mask)
    video = (video_01.to(device, torch.float32) * 2.0 - 1.0).to(vae_dtype)
    mask = regenerate_mask.to(device, torch.float32).clamp(0.0, 1.0)
    binary = torch.where(mask > 0.5, 1.0, 0.0).to(vae_dtype)
    streams = []
    for part in (video * (1 - binary), video * binary):  # inactive (kept), reactive (to generate)
        z = vae.encode(part).latent_dist.mode()
        streams.append(((z.float() - mean) * inv_std).to(vae_dtype))

    # prepare_masks: [T, H, W] -> [64, T, h, w] (8 x 8 pixel unshuffle) -> [64, f, h, w]
    b, _, t, h, w = mask.shape
    frames = (t + scale_t - 1) // scale_t
    rows, cols = h // (scale_s * patch) * patch, w // (scale_s * patch) * patch
    unshuffled = mask[:, 0].reshape(b, t, rows, scale_s, cols, scale_s).permute(0, 3, 5, 1, 2, 4)
    unshuffled = unshuffled.flatten(1, 2)  # [B, 64, T, h, w]
    mask_latent = F.interpolate(unshuffled, size=(frames, rows, cols), mode="nearest-exact")
    return torch.cat([*streams, mask_latent], dim=1).float().to(out_device)


def conditioning_scales(conditioning_scale: float | Sequence[float] | torch.Tensor, vace_layers: Sequence[int]) -> torch.Tensor:
    """``control_hidden_states_scale`` ``[len(vace_layers)]`` float32 from a float (every VACE layer)
    or one value per VACE layer, as ``WanVACEPipeline.__call__`` expands ``conditioning_scale``."""
    n = len(vace_layers)
    if isinstance(conditioning_scale, (int, float)):
        return torch.full((n,), float(conditioning_scale))
    scales = torch.as_tensor(conditioning_scale, dtype=torch.float32).flatten()
    if scales.numel() != n:
        raise ValueError(
            f"conditioning_scale must be a float or one value per VACE layer ({n}: {list(vace_layers)}), "
            f"got {scales.numel()} values"
        )
    return scales


__all__ = ["BACKBONES", "HOLE_VALUE", "VACE_IN_CHANNELS", "backbone_of", "conditioning_scales", "grey_holes", "vace_conditioning"]
