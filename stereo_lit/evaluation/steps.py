"""Validate / test steps of :class:`~stereo_lit.module.StereoLitModule`: every method on each batch,
scored side by side into :class:`~stereo_lit.evaluation.suite.EvaluationSuite` tables.

``validation_step`` / ``test_step``: TartanAir clips (or real stereo footage) with a true right
view -> every method (the generator and the baselines, each call measured with
:func:`~stereo_lit.metrics.cost.timed_generate`: wall time, NFE, VAE passes, peak memory) ->
the suite of that stage; at the epoch end each table is computed (reduced across processes),
logged, printed and written to ``output_dir/eval`` (markdown, CSV, JSON, HTML report). Real
footage gets one table per rig kind (:mod:`stereo_lit.evaluation.real_footage`).

:class:`EvaluationSteps` is a mixin: it reads the module's ``methods``, ``generator``,
``depth``, ``real_footage``, ``failures``, ``output_dir``, ``eval_methods_on_val``,
``disparity_for``, ``depth_source`` and ``_take_skipped``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from stereo_lit.depth.source import batch_padding
from stereo_lit.evaluation.real_footage import RIG_KINDS, EvalRun, is_real_footage, is_real_footage_data, translate_output
from stereo_lit.data.skips import RunFailures


class EvaluationSteps:
    """The validate/test hooks of the LightningModule (see the module docstring)."""

    def _suite(self, stage: str, real: bool = False) -> Any:
        """The suite of table ``stage`` (``test``, or ``test_parallel`` / ``test_converged`` for real footage)."""
        if stage not in self._suites:
            from stereo_lit.evaluation.suite import EvaluationSuite

            methods = self.methods if (stage.startswith("test") or self.eval_methods_on_val) else [self.generator]
            names = [m.name for m in methods]
            rows = self.real_footage.row_names(names, self.depth is not None) if real else names
            self._suites[stage] = EvaluationSuite(rows).to(self.device)
        return self._suites[stage]

    def _eval_step(self, batch: dict[str, Any] | None, stage: str) -> dict[str, Any] | None:
        real = is_real_footage_data(getattr(self._trainer, "datamodule", None) if self._trainer else None)
        for key in [f"{stage}_{rig}" for rig in RIG_KINDS] if real else [stage]:
            suite = self._suite(key, real)  # created up front: every rank holds the same suites
            if real:
                self.real_footage.prepare(key, self.device)
        batch = self._take_skipped(batch)
        if batch is None:
            return None
        if "right" not in batch:
            raise ValueError(
                f"{', '.join(str(p) for p in batch.get('video_path', ['?']))}: no true right view (image_right/) to "
                "score against: validate/test need stereo trajectories (use `predict` for a left view only)"
            )
        if is_real_footage(batch):  # matched reference, rig-separated tables, protocols
            key, scored, runs = self.real_footage.plan(self, batch, stage)
            suite = self._suite(key, real=True)
        else:
            scored, runs = batch, [EvalRun("", self.disparity_for(batch)[0], 0.0)]
        from stereo_lit.metrics.cost import timed_generate

        width = batch["left"].shape[-1] - batch_padding(batch).right
        outputs: dict[str, torch.Tensor] = {}
        for method in self.methods:
            for run in runs:
                name = method.name + run.suffix
                if name not in suite.method_names:
                    continue
                prompt = (batch.get("caption") or [None])[0]
                out, cost = timed_generate(method, batch["left"], run.disparity, prompt=prompt)  # + wall time, NFE
                out = translate_output(out, run.translate_px, width)  # blind convergence on converged footage
                suite.update(name, scored, out, cost=cost)
                outputs[name] = out.right
        return {"left": batch["left"], "right_true": scored.get("right"), "right": outputs}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "validate")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step(batch, "test")

    def _eval_epoch_end(self, stage: str) -> None:
        suite = self._suites.pop(stage, None)
        if suite is None:
            return
        table = suite.compute()  # torchmetrics reduces across processes here
        if self.trainer.is_global_zero and self.logger is not None:
            # straight to the logger (TensorBoard): the table below is the console summary
            scalars = {f"{stage}/{m}/{k}": float(v) for m, row in table.items() for k, v in row.items()}
            self.logger.log_metrics({k: v for k, v in scalars.items() if math.isfinite(v)}, step=self.global_step)
        if self.trainer.is_global_zero:
            depth_source = self.depth_source
            notes = self.real_footage.notes(stage, self) if stage in self.real_footage.tallies else []
            if notes:  # real footage: the protocol line says where the methods' disparity came from
                depth_source = "model.depth (see the protocol below)" if self.depth is not None else "the reference disparity"
            suite.notes = [*getattr(suite, "notes", []), *notes]  # real footage: reference, shifts, protocol
            datamodule = getattr(self.trainer, "datamodule", None)
            skipped = [*getattr(datamodule, "skipped", []), *self.failures.failed.items()]
            self.failures = RunFailures()
            paths = suite.write_table(table, self.output_dir / "eval", stage=stage, depth_source=depth_source, skipped=skipped)
            paths.append(suite.write_report(table, self.output_dir / "eval", stage, depth_source, skipped))
            print(suite.format_table(table, depth_source=depth_source, skipped=skipped))
            print(f"tables written: {', '.join(str(p) for p in paths)}")

    def _eval_tables_end(self, stage: str) -> None:
        """Every table of ``stage``: ``stage`` itself, or one per rig kind for real footage (empty ones dropped)."""
        for key in [k for k in list(self._suites) if k == stage or k.startswith(f"{stage}_")]:
            if key != stage and self.real_footage.finish(key)["windows"] == 0:  # (a collective: all ranks)
                self._suites.pop(key)
                continue
            self._eval_epoch_end(key)
            self.real_footage.reset(key)

    def on_validation_epoch_end(self) -> None:
        self._eval_tables_end("validate")

    def on_test_epoch_end(self) -> None:
        self._eval_tables_end("test")
