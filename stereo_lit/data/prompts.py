"""Prompts for text-to-stereo: one sample per prompt, no video.

Each sample holds ``prompt`` (str), ``sample_id`` (``prompt_000_a_cat_surfing``, also the
output folder name), ``video_path`` (the same id: there is no source file, so no audio),
``fps``, ``num_frames``, ``height`` and ``width`` of the video to generate. The
LightningModule sends such batches to the generator's ``text_to_stereo``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from stereo_lit.stereo.windows import is_wan_length


def prompt_id(index: int, prompt: str, max_words: int = 6) -> str:
    """A file-system safe id: ``prompt_<index>_<first words>``."""
    words = re.findall(r"[a-z0-9]+", prompt.lower())[:max_words]
    return f"prompt_{index:03d}_" + ("_".join(words) or "empty")


def read_prompts(prompts: list[str] | None, prompts_file: str | None) -> list[str]:
    """Prompts from the list and/or a text file (one per line; blank lines and ``#`` comments skipped)."""
    out = [p.strip() for p in (prompts or []) if p.strip()]
    if prompts_file:
        path = Path(prompts_file)
        if not path.is_file():
            raise FileNotFoundError(f"prompts_file {path} does not exist (expected a text file, one prompt a line)")
        out += [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise ValueError("no prompt given: set data.init_args.prompts (a list) or data.init_args.prompts_file")
    return out


class _PromptDataset(Dataset):
    def __init__(self, prompts: list[tuple[int, str]], fps: float, num_frames: int, height: int, width: int) -> None:
        self.prompts, self.fps, self.num_frames, self.height, self.width = prompts, fps, num_frames, height, width

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        number, prompt = self.prompts[index]
        sid = prompt_id(number, prompt)
        return {
            "prompt": prompt,
            "sample_id": sid,
            "video_path": sid,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "height": self.height,
            "width": self.width,
        }


class PromptDataModule(LightningDataModule):
    """Text-to-stereo prompts for ``stereo-lit predict``.

    Args:
        prompts: prompts to render.
        prompts_file: or a text file of prompts, one a line.
        num_frames: frames per video, ``4k+1`` (Wan2.1: 81 at 16 fps).
        height, width: video size, multiples of 16 (Wan2.1-1.3B: 480x832).
        fps: frame rate of the written videos (Wan2.1 generates 16 fps).
    """

    def __init__(
        self,
        prompts: list[str] | None = None,
        prompts_file: str | None = None,
        num_frames: int = 81,
        height: int = 480,
        width: int = 832,
        fps: float = 16.0,
    ) -> None:
        super().__init__()
        if not is_wan_length(num_frames):
            raise ValueError(f"num_frames must be 4k+1 (e.g. 33, 49, 81), got {num_frames}")
        if height % 16 or width % 16 or height <= 0 or width <= 0:
            raise ValueError(f"height and width must be positive multiples of 16, got {height}x{width}")
        self.prompts = read_prompts(prompts, prompts_file)
        self.num_frames, self.height, self.width, self.fps = num_frames, height, width, fps
        self._exclude: set[str] = set()

    def exclude_videos(self, predicate: Any) -> None:
        """Skip prompts whose outputs are already complete (resume)."""
        self._exclude = {prompt_id(i, p) for i, p in enumerate(self.prompts) if predicate(prompt_id(i, p))}

    def predict_dataloader(self) -> DataLoader:
        keep = [(i, p) for i, p in enumerate(self.prompts) if prompt_id(i, p) not in self._exclude]
        dataset = _PromptDataset(keep, self.fps, self.num_frames, self.height, self.width)
        return DataLoader(dataset, batch_size=1, shuffle=False)
