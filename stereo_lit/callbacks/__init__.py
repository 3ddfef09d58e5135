"""Lightning callbacks: the prediction writer, its skip-policy variant, TensorBoard previews, LoRA saving."""

from stereo_lit.callbacks.lora_saver import LoRAAdapterSaver
from stereo_lit.callbacks.prediction_writer import StereoPredictionWriter, output_folder, outputs_complete
from stereo_lit.callbacks.skipping import SkippingPredictionWriter
from stereo_lit.callbacks.tensorboard_previews import TensorBoardPreviews

__all__ = [
    "LoRAAdapterSaver", "SkippingPredictionWriter", "StereoPredictionWriter", "TensorBoardPreviews",
    "output_folder", "outputs_complete",
]
