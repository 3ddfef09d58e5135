"""Preview videos in TensorBoard: an animated GIF per evaluated clip, no extra dependency.

:class:`TensorBoardPreviews` is the callback; the functions build and log the GIFs.

TensorBoard shows a video as an image summary holding an animated GIF (what
``SummaryWriter.add_video`` writes, but that needs moviepy). The GIF is made with Pillow.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image

from stereo_lit.io.frames import to_uint8_frames

from stereo_lit.io.layouts import side_by_side


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """uint8 ``[T, H, W, 3]`` -> an animated GIF (looping)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=max(1, int(round(1000 / fps))), loop=0
    )
    return buffer.getvalue()


def preview_strip(left: np.ndarray, right: np.ndarray, right_true: np.ndarray | None = None) -> np.ndarray:
    """``left | produced right [| true right]`` side by side, uint8 ``[T, H, kW, 3]``."""
    strip = side_by_side(left, right)
    return strip if right_true is None else np.concatenate([strip, right_true], axis=2)


def log_gif(experiment: object, tag: str, frames: np.ndarray, fps: float, step: int) -> None:
    """Write ``frames`` as an animated image summary to a TensorBoard ``SummaryWriter``."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    height, width = frames.shape[1:3]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
    experiment.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


class TensorBoardPreviews(Callback):
    """Side-by-side preview GIFs (left | produced right | true right) of evaluated clips.

    Logs the first ``max_clips`` batches of validation/test per method, when the trainer's
    logger is a TensorBoard logger; does nothing otherwise. Frames are subsampled to at
    most ``max_frames`` and the width to at most ``max_width`` pixels per view.
    """

    def __init__(self, max_clips: int = 2, max_frames: int = 33, max_width: int = 320, fps: float = 8.0) -> None:
        self.max_clips, self.max_frames, self.max_width, self.fps = max_clips, max_frames, max_width, fps

    def _log(self, trainer: Any, outputs: Any, batch_idx: int, stage: str) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        if batch_idx >= self.max_clips or not trainer.is_global_zero or not isinstance(outputs, dict):
            return
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers:
            return
        step_t = max(1, -(-outputs["left"].shape[2] // self.max_frames))
        step_x = max(1, -(-outputs["left"].shape[-1] // self.max_width))

        def frames(video: torch.Tensor | None) -> np.ndarray | None:
            return None if video is None else to_uint8_frames(video[0, :, ::step_t, ::step_x, ::step_x])

        left, truth = frames(outputs["left"]), frames(outputs.get("right_true"))
        for method, right in outputs["right"].items():
            strip = preview_strip(left, frames(right), truth)
            for logger in loggers:
                log_gif(logger.experiment, f"{stage}_preview/{method}/clip{batch_idx}", strip, self.fps, trainer.global_step)

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._log(trainer, outputs, batch_idx, "validate")

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._log(trainer, outputs, batch_idx, "test")
