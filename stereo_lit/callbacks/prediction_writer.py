"""The stereo prediction writer as a Lightning callback: :class:`~stereo_lit.predict.writer.PredictionFiles`
(predictions -> files, resume, locks; see that module) on Lightning's ``BasePredictionWriter``."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter

from stereo_lit.io.layouts import VR180Options
from stereo_lit.predict.writer import (
    PredictionFiles, expected_outputs, layout_filenames, output_folder, output_settings, outputs_complete,
    public_options,
)
from stereo_lit.io.video_writer import EncoderOptions


class StereoPredictionWriter(PredictionFiles, BasePredictionWriter):
    __doc__ = PredictionFiles.__doc__

    def __init__(
        self, output_dir: str = "outputs", layouts: list[str] | None = None, naming: str = "plain",
        encoder: EncoderOptions | dict | None = None, vr180: VR180Options | dict | None = None,
    ) -> None:
        BasePredictionWriter.__init__(self, write_interval="batch")
        PredictionFiles.__init__(self, output_dir, layouts, naming, encoder, vr180)

    def write_on_batch_end(
        self, trainer: Any, pl_module: Any, prediction: dict[str, Any], batch_indices: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        self.write_prediction(pl_module, prediction)


__all__ = [
    "StereoPredictionWriter", "expected_outputs", "layout_filenames", "output_folder", "output_settings",
    "outputs_complete", "public_options",
]
