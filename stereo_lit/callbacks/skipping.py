"""The prediction writer under the per-video skip policy (``on_error: skip``)."""

from __future__ import annotations

from typing import Any

from stereo_lit.callbacks.prediction_writer import StereoPredictionWriter
from stereo_lit.predict.writer import write_or_skip


class SkippingPredictionWriter(StereoPredictionWriter):
    """The prediction writer under the skip policy: a write error drops that video only.

    ``None`` predictions (windows of a video that already failed) are ignored. With the
    datamodule's ``on_error="raise"`` errors propagate as before
    (:func:`~stereo_lit.predict.writer.write_or_skip`).
    """

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, *args: Any, **kwargs: Any) -> None:
        write_or_skip(self, pl_module, prediction)
