"""The generator interface every right-view method implements.

A generator takes the left video and its disparity (DESIGN.md conventions) and
returns the right video. Methods: copy-left, warp without fill, warp + classical
fill (:mod:`stereo_lit.generators.geometric`), and the training-free Wan2.1
sampler (:mod:`stereo_lit.diffusion`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class StereoOutput:
    """What a generator returns.

    Attributes:
        right: right video ``[B, 3, T, H, W]`` in [0, 1] (uint8 0-255 when the left was uint8), same size as the left input.
        known_mask: ``[B, 1, T, H, W]``, 1 where the right view came from the warp of the
            left view (visible), 0 where it was generated / filled (disoccluded, frame edge).
        extras: optional method-specific tensors (e.g. ``cycle_error``, ``warped``).
        carry: opaque state to pass as ``carry=`` to the next call on the *same* video
            when the next window overlaps this one (seamless long videos); None for
            methods that need none. Only the generator that made it reads it.
    """

    right: torch.Tensor
    known_mask: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    carry: Any = None


class StereoGenerator(ABC):
    """Left video + left-frame disparity -> right video.

    Subclasses keep their constructor arguments simple (numbers, strings, paths) so
    they can be chosen and configured from YAML through LightningCLI.
    """

    #: short name used in metric tables and output folders
    name: str = "generator"
    #: True when :meth:`generate` also takes ``left`` as uint8 (0-255) and then returns ``right``
    #: as uint8: predict hands such a method the decoded frames as they are (no float copy).
    #: A subclass that overrides :meth:`generate` without declaring it gets False (floats).
    takes_uint8: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "generate" in cls.__dict__ and "takes_uint8" not in cls.__dict__:
            cls.takes_uint8 = False  # its own generate: floats, unless it says otherwise

    @abstractmethod
    def generate(
        self,
        left: torch.Tensor,
        disparity_px: torch.Tensor,
        *,
        prompt: str | None = None,
        carry: Any = None,
        num_overlap: int = 0,
    ) -> StereoOutput:
        """Make the right view.

        Args:
            left: ``[B, 3, T, H, W]`` in [0, 1] (or uint8 0-255 where :attr:`takes_uint8`).
            disparity_px: ``[B, 1, T, H, W]``, pixels, >= 0, in the left view's frame
                (left column x is seen at ``x - d`` in the right view).
            prompt: optional text describing the video (used by diffusion generators).
            carry: ``StereoOutput.carry`` of the previous window of the same video, or None.
            num_overlap: leading frames of ``left`` that the previous window already
                produced (its last ``num_overlap`` frames); with ``carry`` the generator
                must reproduce them so that there is no seam.
        """

    def check_paths(self) -> None:
        """Raise a clear error now when a checkpoint or other input path is missing.

        Called at setup, before any depth or sampling (no-op for model-free generators).
        """

    def to(self, device: torch.device | str) -> "StereoGenerator":
        """Move any models to ``device`` (no-op for model-free generators)."""
        return self


def check_carry_window(generator_window: int, max_overlap: int, where: str = "") -> None:
    """A generator carries only its last ``generator_window`` frames to the next data window,
    so no data window may overlap its predecessor by more (checked at setup, not after the
    first window). ``where`` names the window that overlaps most."""
    if max_overlap > generator_window:
        raise ValueError(
            f"a data window overlaps the previous one by {max_overlap} frames ({where}) but the generator "
            f"carries only its last window={generator_window} frames: set data.window <= {generator_window} "
            f"(the generator's window) or a generator window >= {max_overlap}"
        )
