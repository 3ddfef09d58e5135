"""The generator interface every right-view method implements.

A generator takes the left video and its disparity (DESIGN.md conventions) and
returns the right video. Methods: copy-left, warp without fill, warp + classical
fill (:mod:`stereo_lit.generators.geometric`), and the training-free Wan2.1
sampler (:mod:`stereo_lit.diffusion`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch


@dataclass
class StereoOutput:
    """What a generator returns.

    Attributes:
        right: right video ``[B, 3, T, H, W]`` in [0, 1], same size as the left input.
        known_mask: ``[B, 1, T, H, W]``, 1 where the right view came from the warp of the
            left view (visible), 0 where it was generated / filled (disoccluded, frame edge).
        extras: optional method-specific tensors (e.g. ``cycle_error``, ``warped``).
    """

    right: torch.Tensor
    known_mask: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class StereoGenerator(ABC):
    """Left video + left-frame disparity -> right video.

    Subclasses keep their constructor arguments simple (numbers, strings, paths) so
    they can be chosen and configured from YAML through LightningCLI.
    """

    #: short name used in metric tables and output folders
    name: str = "generator"

    @abstractmethod
    def generate(
        self,
        left: torch.Tensor,
        disparity_px: torch.Tensor,
        *,
        prompt: str | None = None,
    ) -> StereoOutput:
        """Make the right view.

        Args:
            left: ``[B, 3, T, H, W]`` in [0, 1].
            disparity_px: ``[B, 1, T, H, W]``, pixels, >= 0, in the left view's frame
                (left column x is seen at ``x - d`` in the right view).
            prompt: optional text describing the video (used by diffusion generators).
        """

    def to(self, device: torch.device | str) -> "StereoGenerator":
        """Move any models to ``device`` (no-op for model-free generators)."""
        return self
