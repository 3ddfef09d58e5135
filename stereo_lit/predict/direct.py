"""The converter's direct run: ``predict`` of a shipped config without Lightning.

``stereo-lit convert --method fast`` (the model-free fill) spends seconds per clip on the video;
importing Lightning took another 6-8 s of its start-up on a 2-core machine (Lightning pulls in
``torch._dynamo`` and torchmetrics, which pulls in transformers, scipy.signal and matplotlib).
This module runs the same job from the same config without it:

1. the config (a shipped YAML) with the command's overrides (:func:`apply_overrides`);
2. the objects it names (:func:`instantiate`): the model as :class:`StereoConverter` (the predict
   half of :class:`~stereo_lit.module.StereoLitModule`, :class:`~stereo_lit.predict.steps.PredictSteps`),
   the data as :class:`~stereo_lit.data.wild_videos.WildVideoData` (the configs'
   ``WildVideoDataModule`` without its Lightning base);
3. the loop of ``Trainer.predict`` as the predict code sees it (:func:`run`): the same hooks in
   Lightning's order (datamodule, writer and module set-up; per batch the video clock, the step,
   the writer; at the end the clock, the writer, the module's summary), on one process.

The pixels, file names, manifests and summary lines are those of ``stereo-lit predict`` with the
same config (``tests/test_convert_direct.py`` compares them). Jobs that need more than one
process, a logger or trainer options go through Lightning (:mod:`stereo_lit.commands.jobs`).
"""

from __future__ import annotations

import gc
import importlib
import logging
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereo_lit.data.wild_videos import WildVideoData
from stereo_lit.depth.estimator import DepthEstimator
from stereo_lit.generators.base import StereoGenerator
from stereo_lit.io.console import is_terminal
from stereo_lit.io.cut_scan import keep_only
from stereo_lit.predict.writer import PredictionFiles, write_or_skip
from stereo_lit.options import DisparityOptions, OutputOptions, option_group
from stereo_lit.predict.steps import PredictSteps
from stereo_lit.predict.timing import VideoClock

log = logging.getLogger(__name__)

#: the data class of the configs this run takes, and the Lightning-free class it becomes
DATA_CLASSES = {"stereo_lit.data.wild.WildVideoDataModule": WildVideoData}
#: model keys this run takes (the predict half of StereoLitModule's arguments)
MODEL_KEYS = ("generator", "depth", "disparity", "output", "wan_checkpoint", "vace_checkpoint")


class StereoConverter(PredictSteps, torch.nn.Module):
    """The predict half of :class:`~stereo_lit.module.StereoLitModule`, without Lightning.

    Args: as the module's ``generator``, ``depth``, ``disparity``, ``output``, ``wan_checkpoint``
    and ``vace_checkpoint`` (no baselines: predict runs the generator only).
    """

    def __init__(
        self,
        generator: StereoGenerator | None = None,
        depth: DepthEstimator | None = None,
        disparity: DisparityOptions | dict = DisparityOptions(),  # noqa: B008 (copied: see option_group)
        output: OutputOptions | dict = OutputOptions(),  # noqa: B008 (copied: see option_group)
        wan_checkpoint: str | None = None,
        vace_checkpoint: str | None = None,
    ) -> None:
        torch.nn.Module.__init__(self)
        self._init_predict(
            generator, None, depth, option_group(disparity, DisparityOptions, "disparity"),
            option_group(output, OutputOptions, "output"), wan_checkpoint, vace_checkpoint,
        )
        self._trainer: RunState | None = None
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # Lightning's accelerator: auto

    @property
    def trainer(self) -> RunState | None:
        """What the predict code reads of a trainer (:class:`RunState`), once :func:`run` attached it."""
        return self._trainer


@dataclass
class RunState:
    """The trainer attributes the predict code reads, for one process."""

    datamodule: Any
    lightning_module: Any
    callbacks: list = field(default_factory=list)
    world_size: int = 1
    global_rank: int = 0
    is_global_zero: bool = True


def apply_overrides(config: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """``config`` with each ``(key, value)`` set: ``--model.output.dir`` -> ``config["model"]["output"]["dir"]``
    (folders made as needed; a value replaces what was there, a class spec included)."""
    for key, value in overrides:
        parts = key.lstrip("-").split(".")
        node = config
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return config


def instantiate(value: Any) -> Any:
    """``{"class_path": "pkg.mod.Class", "init_args": {...}}`` -> ``Class(**init_args)`` (nested specs
    first); other dicts and lists element-wise; anything else as it is."""
    if isinstance(value, dict) and "class_path" in value:
        module_name, _, name = str(value["class_path"]).rpartition(".")
        cls = getattr(importlib.import_module(module_name), name)
        return cls(**{k: instantiate(v) for k, v in (value.get("init_args") or {}).items()})
    if isinstance(value, dict):
        return {k: instantiate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [instantiate(v) for v in value]
    return value


def build(config: dict[str, Any]) -> tuple[StereoConverter, WildVideoData]:
    """The model and data of a predict config (the shipped ``predict_wild`` with overrides)."""
    model_config = dict(config.get("model") or {})
    unknown = sorted(set(model_config) - set(MODEL_KEYS))
    if unknown:
        raise ValueError(f"the direct run takes model keys {MODEL_KEYS}; this config also sets {unknown}")
    data_config = config.get("data") or {}
    data_class = DATA_CLASSES.get(str(data_config.get("class_path")))
    if data_class is None:
        raise ValueError(f"the direct run reads {sorted(DATA_CLASSES)}, not {data_config.get('class_path')!r}")
    model = StereoConverter(**{k: instantiate(v) for k, v in model_config.items()})
    return model, data_class(**instantiate(data_config.get("init_args") or {}))


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's generators, as Lightning's ``seed_everything`` seeds them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch: Any, device: torch.device) -> Any:
    """Every tensor of a (nested) batch on ``device``, as Lightning's batch transfer moves them."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def run(model: StereoConverter, data: WildVideoData, progress: bool | None = None) -> StereoConverter:
    """Predict every video of ``data`` with ``model``, writing its outputs (see the module docstring)."""
    files = PredictionFiles(**model.writer_options())
    clock = VideoClock()
    state = RunState(datamodule=data, lightning_module=model, callbacks=[files])
    model.check_before_work("predict")  # the CLI's before_predict: checkpoints and the output folder
    model._trainer, data.trainer = state, state
    data.setup("predict")
    files.setup(state, model, "predict")
    model.check_before_work("predict")  # the module's setup: now with the datamodule's windows
    for method in model.methods:
        method.to(model.device)
    if model.skip_finished:
        model._skip_finished_videos()
    keep_only(video.info.path for video, _ in data.predict_items())  # a skipped video's early cut pass stops
    loader = data.predict_dataloader()
    bar = _progress_bar(loader, progress)
    # the objects made so far (modules, models, options) live to the end: the cyclic collector need
    # not walk them again at every full collection of the per-chunk garbage
    gc.freeze()
    try:
        for batch_idx, batch in enumerate(loader):
            clock.on_predict_batch_start(state, model, batch, batch_idx)
            prediction = model.predict_step(to_device(batch, model.device), batch_idx)
            clock.on_predict_batch_end(state, model, prediction, batch, batch_idx)
            write_or_skip(files, model, prediction)
            if bar is not None:
                bar.update(1)
    except BaseException:
        files.on_exception(state, model, sys.exc_info()[1])
        raise
    finally:
        if bar is not None:
            bar.close()
    clock.on_predict_end(state, model)
    files.on_predict_end(state, model)
    model.on_predict_end()
    return model


def _progress_bar(loader: Any, progress: bool | None) -> Any:
    """A tqdm bar over the batches on a terminal (``progress`` None), else None (plain log lines)."""
    if not (is_terminal() if progress is None else progress):
        return None
    from tqdm.auto import tqdm

    try:
        total = len(loader)
    except TypeError:
        total = None
    return tqdm(total=total, desc="Predicting", unit="window", dynamic_ncols=True)


def run_config(config: dict[str, Any]) -> int:
    """Build and run a predict config; the exit status of ``stereo-lit predict`` (1: every video failed)."""
    seed = config.get("seed_everything")
    if isinstance(seed, int) and not isinstance(seed, bool):
        seed_everything(seed)
    model, data = build(config)
    run(model, data)
    if model.failures.all_failed:
        print(f"stereo-lit: every video failed, nothing was written\n{model.failures.summary('video')}", file=sys.stderr)
        return 1
    return 0


def load_config(path: str | Path) -> dict[str, Any]:
    """A YAML config as a dict (the shipped configs are plain YAML)."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}
