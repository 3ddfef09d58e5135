"""The ``stereo-lit`` command: LightningCLI over :class:`StereoLitModule` and any datamodule.

    stereo-lit predict -c configs/predict_wild.yaml --data.init_args.source my_video.mp4
    stereo-lit test    -c configs/eval_tartanair.yaml
    stereo-lit fit     -c configs/lora_tartanair.yaml

The model class is fixed (its generator, depth source and evaluated methods are chosen
in YAML); the datamodule is chosen by ``data.class_path``.
"""

from __future__ import annotations

import os
import sys

from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningCLI

from stereo_lit.module import StereoLitModule


class StereoLitCLI(LightningCLI):
    """LightningCLI with the project's defaults (no checkpointing for inference jobs)."""

    def predict(self, model: object, return_predictions: bool | None = None, **kwargs: object) -> object:
        """``trainer.predict`` keeping no window by default: the writer callback has written
        each one, and Lightning would otherwise hold every window of every video in memory
        (``--return_predictions true`` restores that)."""
        return self.trainer.predict(model, return_predictions=bool(return_predictions), **kwargs)

    # Fail before heavy work (and before any callback touches output_dir): checkpoints and
    # the output folder are checked when the subcommand starts; module.setup checks again
    # with the datamodule attached (data window vs generator window).
    def before_fit(self) -> None:
        self.model.check_before_work("fit")

    def before_validate(self) -> None:
        self.model.check_before_work("validate")

    def before_test(self) -> None:
        self.model.check_before_work("test")

    def before_predict(self) -> None:
        self.model.check_before_work("predict")


def build_cli(args: list[str] | None = None, run: bool = True) -> StereoLitCLI:
    """The CLI object (``args``/``run`` for tests and scripts)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights are always local folders/files
    return StereoLitCLI(
        StereoLitModule,
        LightningDataModule,
        subclass_mode_data=True,
        save_config_callback=None,  # no config.yaml dropped into the working directory
        trainer_defaults={"logger": False, "enable_checkpointing": False},
        args=args,
        run=run,
    )


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``stereo-lit`` console script.

    Exit status: 0 when the run finished (videos skipped under ``on_error: skip`` are named
    in the summary it printed), 1 when every video it attempted failed, or on any error.
    """
    cli = build_cli(args)
    failures = getattr(cli.model, "failures", None)
    if failures is not None and failures.all_failed:
        print(f"stereo-lit: every video failed, nothing was written\n{failures.summary('video')}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
