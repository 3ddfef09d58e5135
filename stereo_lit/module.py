"""The LightningModule: composes a depth source, a right-view generator and evaluation.

No diffusion or geometry code lives here; this module only routes batches:

- ``predict_step``: in-the-wild video windows (or a TartanAir-layout folder) ->
  disparity -> generator -> the frames this window produces, for the
  :class:`~stereo_lit.callbacks.StereoPredictionWriter` it installs
  (:class:`~stereo_lit.predict.steps.PredictSteps`, shared with the converter's direct run);
- ``validation_step`` / ``test_step``: TartanAir clips with a true right view -> every
  method (the generator and the baselines) -> :class:`~stereo_lit.evaluation.suite.EvaluationSuite`
  (:mod:`stereo_lit.evaluation.steps`);
- ``training_step``: the hook the LoRA fine-tuning plugs into (see :meth:`training_step`).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule

from stereo_lit.depth.estimator import DepthEstimator
from stereo_lit.evaluation.real_footage import RealFootageEval
from stereo_lit.evaluation.steps import EvaluationSteps
from stereo_lit.generators.base import StereoGenerator
from stereo_lit.options import DisparityOptions, EvaluationOptions, FitOptions, OutputOptions, option_group, refuse_moved_keys
from stereo_lit.predict.steps import PredictSteps



class StereoLitModule(PredictSteps, EvaluationSteps, LightningModule):
    """Monocular video -> stereo video, and its evaluation.

    Args:
        generator: the right-view method (default: model-free :class:`WarpFill`).
        baselines: further methods evaluated side by side in validate/test (e.g.
            ``CopyLeft``, ``WarpOnly``, ``WarpFill`` with ``fill: telea``).
        depth: depth estimator for batches that carry no depth (in-the-wild video);
            anything with ``estimate(video [B,3,T,H,W]) -> DepthResult``. None: use the
            depth/disparity that comes with the data and fail clearly when there is none.
        disparity: :class:`~stereo_lit.options.DisparityOptions` (strength, convergence, shots, edges).
        output: :class:`~stereo_lit.options.OutputOptions` (folder, layouts, naming, encoder, VR180, resume).
        evaluation: :class:`~stereo_lit.options.EvaluationOptions` (real-footage protocol, depth alignment).
        fit: :class:`~stereo_lit.options.FitOptions` (learning rate, weight decay, LoRA save interval).
        wan_checkpoint: the Wan2.1 Diffusers folder of every Wan method (generator and
            baselines) that names none itself: written once per config, changed for every
            row with ``--model.wan_checkpoint DIR``. Wan methods that agree on folder, dtype,
            device and LoRA settings share one loaded text encoder / transformer / VAE.
        vace_checkpoint: the same for the Wan methods with ``backbone: vace`` (a Wan2.1-VACE folder).

    Each group also takes a dict of its fields. The flat keys of before (``layouts``,
    ``output_dir``...) are refused with their new place (:data:`~stereo_lit.options.MOVED_MODULE_KEYS`).
    """

    def __init__(
        self,
        generator: StereoGenerator | None = None,
        baselines: list[StereoGenerator] | None = None,
        depth: DepthEstimator | None = None,
        disparity: DisparityOptions = DisparityOptions(),  # noqa: B008 (copied: see option_group)
        output: OutputOptions = OutputOptions(),  # noqa: B008 (copied: see option_group)
        evaluation: EvaluationOptions = EvaluationOptions(),  # noqa: B008 (copied: see option_group)
        fit: FitOptions = FitOptions(),  # noqa: B008 (copied: see option_group)
        wan_checkpoint: str | None = None,
        vace_checkpoint: str | None = None,
        **moved: Any,
    ) -> None:
        refuse_moved_keys(moved)
        super().__init__()
        disparity = option_group(disparity, DisparityOptions, "disparity")
        output = option_group(output, OutputOptions, "output")
        evaluation = option_group(evaluation, EvaluationOptions, "evaluation")
        fit = option_group(fit, FitOptions, "fit")
        self._init_predict(
            generator, baselines, depth, disparity, output, wan_checkpoint, vace_checkpoint,
            align_estimated_depth=evaluation.align_estimated_depth,
        )
        self.eval_methods_on_val = evaluation.methods_on_val
        self.learning_rate, self.weight_decay = fit.learning_rate, fit.weight_decay
        self.lora_every_n_steps = fit.lora_every_n_steps
        self.strict_loading = False  # Lightning checkpoints hold only the LoRA weights
        self._suites: dict[str, Any] = {}
        self.real_footage = RealFootageEval(evaluation.protocol)  # rig-separated tables of real stereo footage

    # ------------------------------------------------------------------ set-up
    def configure_callbacks(self) -> list:
        from stereo_lit.callbacks import TensorBoardPreviews
        from stereo_lit.callbacks import SkippingPredictionWriter

        from stereo_lit.callbacks import LoRAAdapterSaver

        return [
            SkippingPredictionWriter(**self.writer_options()),
            TensorBoardPreviews(),
            LoRAAdapterSaver(self.output_dir / "lora", every_n_steps=self.lora_every_n_steps),
            *self._fit_log_callbacks(),
        ]

    def _fit_log_callbacks(self) -> list:
        """``fit`` with a logger: the learning rate per step in TensorBoard (``lr-AdamW``)."""
        from lightning.pytorch.callbacks import LearningRateMonitor
        from lightning.pytorch.trainer.states import TrainerFn

        trainer = self._trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING or not trainer.loggers:
            return []
        return [LearningRateMonitor(logging_interval="step")]

    def setup(self, stage: str) -> None:
        self.check_before_work(stage)
        for method in self.methods:
            method.to(self.device)
        if stage == "fit" and not hasattr(self, "trainable"):
            modules = getattr(self.generator, "trainable_modules", lambda: [])()
            # registered so that Lightning moves them, switches train/eval and finds the LoRA parameters
            self.trainable = torch.nn.ModuleList(modules)
        if stage == "predict" and self.skip_finished:
            self._skip_finished_videos()

    # ------------------------------------------------------------------ fit
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """LoRA fine-tuning: the generator's objective (flow matching + right->left cycle loss).

        Batches with a true right view (TartanAir) carry their disparity; for mono video the
        disparity comes from the depth source, as in predict.
        """
        batch = self._take_skipped(batch)
        if batch is None:
            return None  # every clip of this batch was unreadable (named in the log): no step
        loss_fn = getattr(self.generator, "training_loss", None)
        if loss_fn is None:
            raise ValueError(
                f"`fit` needs a trainable generator (stereo_lit.diffusion.WanStereoGenerator with lora.rank > 0); "
                f"{type(self.generator).__name__} has nothing to train"
            )
        disparity = None if "disparity_left_px" in batch else self.disparity_for(batch)[0]
        losses = loss_fn(batch, disparity_left_px=disparity)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=True, batch_size=batch["left"].shape[0])
        return losses["loss"]

    def on_train_start(self) -> None:
        """Under DDP, give each rank its own noise and sigmas (seed_everything gives them all one seed)."""
        if self.trainer.world_size > 1:
            torch.manual_seed((torch.initial_seed() + 7919 * self.global_rank) % 2**63)

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError(
                "nothing to train: set model.generator.init_args.lora.rank > 0 (LoRA on the Wan transformer)"
            )
        return torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=self.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trainable (LoRA) weights in Lightning checkpoints, not the frozen base model."""
        state = checkpoint.get("state_dict", {})
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in state.items() if k in trainable}
