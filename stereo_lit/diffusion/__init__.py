"""The training-free warped sampler on Wan2.1 (diffusers).

- :mod:`~stereo_lit.diffusion.loading`: local Wan2.1 Diffusers folder -> models; schedulers.
- :mod:`~stereo_lit.diffusion.flow`: flow-matching math (pure functions).
- :mod:`~stereo_lit.diffusion.guidance`: stereo strategies ``x0_blend``, ``repaint``, ``latent_shift``.
- :mod:`~stereo_lit.diffusion.sampler`: the denoising loop (no Lightning).
- :mod:`~stereo_lit.diffusion.pipeline`: :class:`WanStereoPipeline` (one window as a diffusers ``DiffusionPipeline``).
- :mod:`~stereo_lit.diffusion.generator`: :class:`WanStereoGenerator` (video-to-stereo, windows, carry).
- :mod:`~stereo_lit.diffusion.text_to_stereo`: :class:`TextToStereo` (prompt -> left, right, depth).
- :mod:`~stereo_lit.diffusion.tiny`: a tiny random Wan2.1 folder for tests.

Imports are lazy so that ``import stereo_lit.diffusion`` does not import diffusers.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "WanStereoGenerator": "stereo_lit.diffusion.generator",
    "WanStereoPipeline": "stereo_lit.diffusion.pipeline",
    "WanStereoPipelineOutput": "stereo_lit.diffusion.pipeline",
    "TextToStereo": "stereo_lit.diffusion.text_to_stereo",
    "TextToStereoResult": "stereo_lit.diffusion.text_to_stereo",
    "load_wan": "stereo_lit.diffusion.loading",
    "make_scheduler": "stereo_lit.diffusion.loading",
    "denoise": "stereo_lit.diffusion.sampler",
    "write_tiny_wan": "stereo_lit.diffusion.tiny",
    "cycle_error": "stereo_lit.diffusion.cycle",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stereo_lit.diffusion' has no attribute {name!r}")
