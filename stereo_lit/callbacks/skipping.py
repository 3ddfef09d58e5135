"""The prediction writer under the per-video skip policy (``on_error: skip``)."""

from __future__ import annotations

from typing import Any

from stereo_lit.callbacks.prediction_writer import StereoPredictionWriter


class SkippingPredictionWriter(StereoPredictionWriter):
    """The prediction writer under the skip policy: a write error drops that video only.

    ``None`` predictions (windows of a video that already failed) are ignored. With the
    datamodule's ``on_error="raise"`` errors propagate as before.
    """

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, *args: Any, **kwargs: Any) -> None:
        if prediction is None:
            return
        try:
            super().write_on_batch_end(trainer, pl_module, prediction, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - policy decides
            record = getattr(pl_module, "record_failure", None)
            if record is None or pl_module.on_error_policy() == "raise":
                raise
            record([str(p) for p in prediction["video_path"]], exc)
