"""The Lightning jobs of ``stereo-lit`` (fit/validate/test/predict): LightningCLI over
:class:`~stereo_lit.module.StereoLitModule` and any datamodule. Imported only when a job runs
(``stereo-lit --help`` and the light commands never load Lightning)."""

from __future__ import annotations

import importlib
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI

from stereo_lit.commands.configs import resolve_config_args
from stereo_lit.errors import patch_parser_errors
from stereo_lit.io.console import is_terminal
from stereo_lit.module import StereoLitModule
from stereo_lit.options import moved_keys_in_args
from stereo_lit.progress import StepProgressBar, VideoTiming

patch_parser_errors()  # config mistakes: a few lines (stereo_lit.errors), not jsonargparse's usage

log = logging.getLogger(__name__)

# Every generator, depth estimator and datamodule the package ships: imported before the parser
# is built so that ``--help`` lists them as known subclasses and short names resolve
# (``--model.generator WanStereoGenerator``). Each is light (diffusers loads on first use).
SHIPPED_CLASS_MODULES = (
    "stereo_lit.generators.geometric",
    "stereo_lit.diffusion.generator",
    "stereo_lit.depth.estimator",
    "stereo_lit.data.tartanair",
    "stereo_lit.data.wild",
    "stereo_lit.data.prompts",
    "stereo_lit.data.stereo_video",
    "stereo_lit.data.stereo_images",
)


def import_shipped_classes() -> list[str]:
    """Import :data:`SHIPPED_CLASS_MODULES`; returns the ones that could not be imported (logged)."""
    missing = []
    for name in SHIPPED_CLASS_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional dependency missing: the rest still works
            log.debug("stereo-lit --help will not list the classes of %s: %s", name, exc)
            missing.append(name)
    return missing


class _HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's formatter that keeps the description's own line breaks."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


class StereoLitCLI(LightningCLI):
    """LightningCLI with the project's defaults (no checkpointing for inference jobs)."""

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Refuse the keys of before the option groups (``--model.layouts``, a ``-c`` file's flat
        ``model: {output_dir: ...}`` or generator keys), naming each one's new place and the migration script."""
        moved = moved_keys_in_args(sys.argv[1:] if args is None else args)
        if moved:
            print("stereo-lit: error: " + "\n  ".join(moved), file=sys.stderr)
            raise SystemExit(2)
        super().parse_arguments(parser, args)

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
        self._log_config()

    def before_validate(self) -> None:
        self.model.check_before_work("validate")
        self._log_config()

    def before_test(self) -> None:
        self.model.check_before_work("test")
        self._log_config()

    def before_predict(self) -> None:
        self.model.check_before_work("predict")
        self._log_config()

    def _log_config(self) -> None:
        """The logger's ``hparams`` hold the resolved config of this job (model, data, trainer)."""
        logger = self.trainer.logger
        if logger is None or not self.trainer.is_global_zero:
            return
        config = self.config.get(str(self.subcommand), self.config).clone()
        config.pop("config", None)  # the -c file list: its content is already resolved
        logger.log_hyperparams(_plain(config.as_dict()))

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Any:
        """Trainer defaults that depend on the run: a step-counting bar, logging every step of short fits."""
        given = config.get("callbacks") or []
        given = given if isinstance(given, list) else [given]
        if self.subcommand == "predict" and config.get("enable_progress_bar") is None and not is_terminal():
            # a log, not a terminal: no redrawn bar; VideoTiming and the depth stage write plain lines
            config["enable_progress_bar"] = False
        if config.get("enable_progress_bar", True) is not False and not any(isinstance(c, ProgressBar) for c in given):
            callbacks = [*callbacks, StepProgressBar()]
        if self.subcommand == "predict":
            callbacks = [*callbacks, VideoTiming()]
        max_steps = config.get("max_steps") or -1
        if config.get("log_every_n_steps") is None and max_steps > 0:
            config["log_every_n_steps"] = log_every_n_steps(max_steps)
        return super()._instantiate_trainer(config, callbacks)


def log_every_n_steps(max_steps: int) -> int:
    """About 20 logged points per fit, at most every 50 steps: 1 for fits of up to 39 steps."""
    return max(1, min(50, max_steps // 20))


def _plain(value: Any) -> Any:
    """Config values as plain dicts/lists/str/numbers (jsonargparse Path and Namespace objects included)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def build_cli(
    args: list[str] | None = None, run: bool = True, cli_class: type[StereoLitCLI] | None = None, description: str = ""
) -> StereoLitCLI:
    """The CLI object (``args``/``run`` for tests and scripts); ``-c NAME`` finds a shipped config by name."""
    import_shipped_classes()
    if args is not None:
        args = resolve_config_args(list(args))
    return (cli_class or StereoLitCLI)(
        StereoLitModule,
        LightningDataModule,
        subclass_mode_data=True,
        save_config_callback=None,  # no config.yaml dropped into the working directory
        trainer_defaults={"logger": False, "enable_checkpointing": False},
        parser_kwargs={"description": description, "formatter_class": _HelpFormatter},
        args=args,
        run=run,
    )


def remove_empty_log_dir(cli: StereoLitCLI | None) -> Path | None:
    """After a failed run: delete the logger's ``version_N`` folder when nothing was logged in it.

    "Nothing" means no file other than event files without a summary of a step (the header
    and the hparams TensorBoard writes at start) and ``hparams.yaml``. Returns the removed folder.
    """
    trainer = getattr(cli, "trainer", None)
    logger = getattr(trainer, "logger", None)
    log_dir = getattr(logger, "log_dir", None)
    if log_dir is None or not Path(log_dir).is_dir():
        return None
    folder = Path(log_dir)
    for path in folder.rglob("*"):
        if path.is_dir() or path.name == "hparams.yaml":
            continue
        if not path.name.startswith("events.out.tfevents") or _has_logged_steps(path):
            return None
    try:
        logger.experiment.close()  # the open event file (Windows would refuse to delete it)
    except Exception:  # noqa: BLE001 - best effort, the folder goes anyway
        pass
    shutil.rmtree(folder, ignore_errors=True)
    log.info("removed %s: the run failed before logging anything", folder)
    return folder


def _has_logged_steps(event_file: Path) -> bool:
    """Whether a TensorBoard event file holds any summary other than the run's hparams (and the
    ``hp_metric`` placeholder TensorBoardLogger writes with them)."""
    try:
        from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    except ImportError:
        return True  # cannot tell: keep it
    try:
        for event in EventFileLoader(str(event_file)).Load():
            tags = [v.tag for v in event.summary.value] if event.HasField("summary") else []
            if any(not (t.startswith("_hparams_") or t == "hp_metric") for t in tags):
                return True
    except Exception:  # noqa: BLE001 - unreadable: keep it
        return True
    return False


def release_process_group() -> None:
    """Tear down torch.distributed's process group, if a DDP job made one, before Python exits.

    Left to the interpreter's exit, Gloo's worker thread could free the last collective's tensors
    while Python finalised: taking the GIL then ended that thread inside a ``noexcept`` frame and
    the process aborted after its work was done ("terminate called without an active
    exception", exit status -6: 1 run in 16 of a two-rank predict here, in ``Py_FinalizeEx`` and
    ``c10d::ProcessGroupGloo::runLoop`` in the core dump). Destroying the group first joins its
    threads while Python is alive. :func:`run_job` calls it when the job has finished; after an
    error it does not, since joining the threads could then wait on a peer still in a collective."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_job(args: list[str], description: str = "") -> None:
    """A Lightning job (fit/validate/test/predict) with ``args``; a failed run leaves no empty log folder.

    Exit status: 0 when the run finished (videos skipped under ``on_error: skip`` are named
    in the summary it printed), 1 when every video it attempted failed, or on any error.
    """
    started: list[StereoLitCLI] = []

    class _Kept(StereoLitCLI):  # remembers the CLI object so that a failed run can clean its log folder
        def instantiate_trainer(self, **kwargs: Any) -> Any:
            started.append(self)
            return super().instantiate_trainer(**kwargs)

    try:
        cli = build_cli(args, cli_class=_Kept, description=description)
    except BaseException as exc:
        if started and not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            remove_empty_log_dir(started[-1])
        raise
    release_process_group()  # a finished job only: a failed rank's peer may still wait in a collective
    failures = getattr(cli.model, "failures", None)
    if failures is not None and failures.all_failed:
        print(f"stereo-lit: every video failed, nothing was written\n{failures.summary('video')}", file=sys.stderr)
        raise SystemExit(1)
