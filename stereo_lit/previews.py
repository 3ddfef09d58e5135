"""Preview videos in TensorBoard: an animated GIF per evaluated clip, no extra dependency.

TensorBoard shows a video as an image summary holding an animated GIF (what
``SummaryWriter.add_video`` writes, but that needs moviepy). The GIF is made with Pillow.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

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
