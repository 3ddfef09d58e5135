"""Lightning callbacks: the stereo prediction writer (and its resume helpers).

Contract with :meth:`StereoLitModule.predict_step` (one dict per batch):

``video_path``, ``fps``, ``num_frames`` (frames in the whole video), ``frames_start``
(absolute index of the first frame below): lists of length B; ``left``, ``right``
``[B,3,T,H,W]`` in [0,1] at the source size, only the frames this window produces;
optional ``disparity_px`` ``[B,1,T,H,W]`` and ``convergence_px`` (list).

Windows of a video arrive in order. Outputs go to ``output_dir/<video stem>/<layout>.mp4``;
each is written under a temporary name and renamed when the video's last frame is in.
``right.mp4`` is the raw right eye; the stereo layouts get the convergence shift; the
source's audio is copied into every layout except ``depth``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback

from stereo_lit.io.layouts import LAYOUTS, apply_convergence, compose, disparity_to_colormap
from stereo_lit.io.video_writer import StreamingVideoWriter, partial_path


def output_folder(video_path: str | Path, output_dir: str | Path) -> Path:
    """``output_dir/<name>``: the stem of a video file, or the trajectory path of a folder."""
    path = Path(video_path)
    name = path.stem if path.suffix else "_".join(path.parts[-3:]).replace(" ", "_")
    return Path(output_dir) / name


def expected_outputs(video_path: str | Path, output_dir: str | Path, layouts: list[str]) -> list[Path]:
    folder = output_folder(video_path, output_dir)
    return [folder / f"{layout}.mp4" for layout in layouts]


def outputs_complete(video_path: str | Path, output_dir: str | Path, layouts: list[str]) -> bool:
    """True when every final output of ``video_path`` exists (temporary files don't count)."""
    return all(p.is_file() for p in expected_outputs(video_path, output_dir, layouts))


def cleanup_partials(output_dir: str | Path) -> int:
    """Remove stale temporary files under ``output_dir``; returns how many."""
    removed = 0
    for path in Path(output_dir).rglob(".*.partial*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """``[3, T, H, W]`` float [0,1] -> uint8 ``[T, H, W, 3]``."""
    return (video.detach().float().clamp(0, 1).permute(1, 2, 3, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


class _VideoOutputs:
    """The open writers of one video."""

    def __init__(self, video_path: str, output_dir: Path, layouts: list[str], fps: float, num_frames: int) -> None:
        self.video_path = video_path
        self.num_frames = num_frames
        self.next_frame = 0
        audio = video_path if Path(video_path).is_file() else None
        folder = output_folder(video_path, output_dir)
        self.writers = {
            layout: StreamingVideoWriter(folder / f"{layout}.mp4", fps, audio_from=None if layout == "depth" else audio)
            for layout in layouts
        }
        self.depth_range: tuple[float, float] | None = None

    def write(self, start: int, left: np.ndarray, right: np.ndarray, disparity: np.ndarray | None, shift: float) -> None:
        if start != self.next_frame:
            raise ValueError(
                f"{self.video_path}: windows must arrive in order; expected frame {self.next_frame}, got {start}"
            )
        shifted = apply_convergence(left, right, shift)
        for layout, writer in self.writers.items():
            if layout == "depth":
                if disparity is None:
                    raise ValueError(f"{self.video_path}: layout 'depth' needs disparity_px in the predictions")
                if self.depth_range is None:  # fixed on the first window: no flicker
                    self.depth_range = tuple(np.percentile(disparity, [2, 98]).tolist())
                writer.write(disparity_to_colormap(disparity, *self.depth_range))
            elif layout == "right":
                writer.write(right)
            else:
                writer.write(compose(layout, *shifted))
        self.next_frame = start + left.shape[0]

    @property
    def done(self) -> bool:
        return self.next_frame >= self.num_frames

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


class StereoPredictionWriter(BasePredictionWriter):
    """Writes the stereo outputs of ``predict`` video by video (see module docstring)."""

    def __init__(self, output_dir: str = "outputs", layouts: list[str] | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.layouts = list(layouts) if layouts else ["right", "sbs", "anaglyph"]
        unknown = set(self.layouts) - set(LAYOUTS)
        if unknown:
            raise ValueError(f"unknown layouts {sorted(unknown)}; choose from {LAYOUTS}")
        self._open: dict[str, _VideoOutputs] = {}
        self.finished: list[Path] = []

    def write_on_batch_end(
        self, trainer: Any, pl_module: Any, prediction: dict[str, Any], batch_indices: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        shifts = prediction.get("convergence_px") or [0.0] * len(prediction["video_path"])
        for i, video_path in enumerate(prediction["video_path"]):
            outputs = self._open.get(video_path)
            if outputs is None:
                outputs = _VideoOutputs(
                    video_path, self.output_dir, self.layouts, prediction["fps"][i], prediction["num_frames"][i]
                )
                self._open[video_path] = outputs
            disparity = prediction.get("disparity_px")
            try:
                outputs.write(
                    int(prediction["frames_start"][i]),
                    to_uint8_frames(prediction["left"][i]),
                    to_uint8_frames(prediction["right"][i]),
                    None if disparity is None else disparity[i, 0].float().cpu().numpy(),
                    float(shifts[i]),
                )
                if outputs.done:
                    outputs.close()
                    self.finished.extend(expected_outputs(video_path, self.output_dir, self.layouts))
                    del self._open[video_path]
            except Exception:
                outputs.abort()
                self._open.pop(video_path, None)
                raise

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        for outputs in self._open.values():  # incomplete videos: nothing that looks finished
            outputs.abort()
        self._open.clear()
        if trainer.is_global_zero and self.finished:
            print("stereo outputs:\n" + "\n".join(f"  {p}" for p in self.finished))

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        for outputs in self._open.values():
            outputs.abort()
        self._open.clear()


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

        from stereo_lit.previews import log_gif, preview_strip

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


class LoRAAdapterSaver(Callback):
    """Saves the generator's LoRA adapter during ``fit`` (diffusers format, atomic).

    ``folder/step_N`` every ``every_n_steps`` optimizer steps (0: never) and
    ``folder/final`` when training ends; each loads with ``WanPipeline.load_lora_weights``
    or ``WanStereoGenerator(lora_path=...)``. Only rank 0 writes.
    """

    def __init__(self, folder: str | Path, every_n_steps: int = 0) -> None:
        self.folder, self.every_n_steps = Path(folder), every_n_steps
        self.saved: list[Path] = []
        self._last_step = -1

    def _save(self, trainer: Any, pl_module: Any, name: str) -> None:
        save = getattr(pl_module.generator, "save_lora", None)
        if save is None or not trainer.is_global_zero:
            return
        self.saved.append(save(self.folder / name))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step  # optimizer steps (gradient accumulation repeats a step)
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0 and step != self._last_step:
            self._last_step = step
            self._save(trainer, pl_module, f"step_{step}")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._save(trainer, pl_module, "final")
        if trainer.is_global_zero and self.saved:
            print(f"LoRA adapter saved: {self.saved[-1]}")
