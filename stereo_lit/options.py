"""The option groups of :class:`~stereo_lit.module.StereoLitModule`, and where the old flat keys went.

A config reads by job, as the generator's groups do (:mod:`stereo_lit.diffusion.options`)::

    model:
      disparity: {max_disparity_pct: 2.0, convergence: 0.5, edges: {dilate_px: [1, 0]}}
      output: {dir: outputs/wild, layouts: [right, sbs, anaglyph], naming: plain}
      evaluation: {protocol: aligned}
      fit: {learning_rate: 1.0e-4, lora_every_n_steps: 500}

Each group is a dataclass (LightningCLI parses the nested keys: ``--model.output.layouts [sbs]``),
accepts a plain dict from Python, and checks its values on construction, naming the key, the value
and what was expected. Keys of the flat layout before December 2026 (``model.layouts``,
``model.num_inference_steps`` of the generator...) are refused by :func:`refuse_moved_keys`, which
names their new place and ``scripts/migrate_config.py``, the script that rewrites a config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from stereo_lit.diffusion.options import FLAT_OPTIONS, as_options
from stereo_lit.io.layouts import LAYOUTS, NAMINGS, VR180Options
from stereo_lit.io.video_writer import EncoderOptions, as_encoder_options
from stereo_lit.stereo.edges import EdgeOptions

MIGRATE_COMMAND = "python scripts/migrate_config.py FILE"
#: the real-footage evaluation protocols (:mod:`stereo_lit.evaluation.real_footage`)
PROTOCOLS = ("aligned", "blind", "both")

#: the module's former flat keys -> their place in the groups (``model.layouts`` -> ``model.output.layouts``)
MOVED_MODULE_KEYS: dict[str, str] = {
    "max_disparity_pct": "disparity.max_disparity_pct",
    "convergence": "disparity.convergence",
    "shot_aware": "disparity.shot_aware",
    "range_smoothing": "disparity.range_smoothing",
    "edges": "disparity.edges",
    "output_dir": "output.dir",
    "layouts": "output.layouts",
    "naming": "output.naming",
    "encoder": "output.encoder",
    "vr180": "output.vr180",
    "skip_finished": "output.skip_finished",
    "eval_protocol": "evaluation.protocol",
    "align_estimated_depth": "evaluation.align_estimated_depth",
    "eval_methods_on_val": "evaluation.methods_on_val",
    "learning_rate": "fit.learning_rate",
    "weight_decay": "fit.weight_decay",
    "lora_every_n_steps": "fit.lora_every_n_steps",
}
MODULE_GROUPS = ("disparity", "output", "evaluation", "fit")


def _fail(key: str, expected: str, value: Any) -> None:
    raise ValueError(f"model.{key} must be {expected}, got {value!r}")


@dataclass
class DisparityOptions:
    """Depth -> disparity (``model.disparity``).

    Args:
        max_disparity_pct: 3D strength for relative depth: the strongest disparity in % of the frame
            width (films use about 1-3%), from robust 2-98% depth percentiles of the video or shot.
            Metric depth (TartanAir) uses the true ``f * B / Z`` instead.
        convergence: the zero-parallax (screen) plane as a fraction of the maximum disparity: 0 = screen
            at infinity (everything pops out), 1 = screen at the nearest surface (everything behind it).
        shot_aware: for video files with an estimator, detect shot cuts, restart the depth windows at
            them and take the relative-depth range per shot (README, 3D control).
        range_smoothing: None: one range per shot; ``tau`` frames: the range follows the content inside
            a shot (look-ahead mean + EMA, :mod:`stereo_lit.stereo.shots`).
        edges: :class:`~stereo_lit.stereo.edges.EdgeOptions` (``dilate_px``, ``antialias``,
            ``foreground_scale``), applied to disparity made from depth (never to a true disparity).
    """

    max_disparity_pct: float = 2.0
    convergence: float = 0.5
    shot_aware: bool = True
    range_smoothing: float | None = None
    edges: EdgeOptions = field(default_factory=EdgeOptions)

    def __post_init__(self) -> None:
        if not 0.0 < float(self.max_disparity_pct) <= 20.0:
            _fail("disparity.max_disparity_pct", "in (0, 20] % of the width", self.max_disparity_pct)
        if not 0.0 <= float(self.convergence) <= 1.0:
            _fail("disparity.convergence", "in [0, 1] (0 = screen at infinity, 1 = at the nearest surface)", self.convergence)
        if self.range_smoothing is not None and float(self.range_smoothing) < 0:
            _fail("disparity.range_smoothing", "null or >= 0 frames", self.range_smoothing)
        if not isinstance(self.edges, EdgeOptions):
            self.edges = _nested(self.edges, EdgeOptions, "disparity.edges")


@dataclass
class OutputOptions:
    """What predict writes, and where (``model.output``).

    Args:
        dir: predictions go to ``dir/<video>/``; evaluation tables to ``dir/eval``; LoRA adapters of
            ``fit`` to ``dir/lora``.
        layouts: outputs written per video (``right``, ``sbs``, ``sbs_half``, ``tb``, ``tb_half``,
            ``anaglyph``, ``vr180``, ``depth``); None: ``[right, sbs, anaglyph]``.
        naming: output file names: ``plain`` (``sbs.mp4``) or ``player`` (``NAME_LRF_Full_SBS.mp4``,
            ``NAME_180x180_3dh_LR.mp4``, ...; README, Outputs).
        encoder: :class:`~stereo_lit.io.video_writer.EncoderOptions` (``codec`` h264|h265, ``crf``,
            ``bit_depth`` 8|10, ``preset``, ``hardware``).
        vr180: :class:`~stereo_lit.io.layouts.VR180Options` (``hfov_deg`` of the source camera,
            ``eye_size``) of the ``vr180`` layout.
        skip_finished: predict skips videos whose outputs are all complete and were made with the same
            settings (resume); ``false`` redoes every video.
    """

    dir: str = "outputs"
    layouts: list[str] | None = None
    naming: str = "plain"
    encoder: EncoderOptions | None = None
    vr180: VR180Options | None = None
    skip_finished: bool = True

    def __post_init__(self) -> None:
        self.dir = str(self.dir)
        if not self.dir:
            _fail("output.dir", "a folder", self.dir)
        self.layouts = list(self.layouts) if self.layouts else ["right", "sbs", "anaglyph"]
        unknown = [layout for layout in self.layouts if layout not in LAYOUTS]
        if unknown:
            _fail("output.layouts", f"a list of {list(LAYOUTS)}", unknown)
        if self.naming not in NAMINGS:
            _fail("output.naming", f"one of {list(NAMINGS)}", self.naming)
        if self.encoder is not None:
            self.encoder = as_encoder_options(self.encoder)
        if self.vr180 is not None and not isinstance(self.vr180, VR180Options):
            self.vr180 = _nested(self.vr180, VR180Options, "output.vr180")


@dataclass
class EvaluationOptions:
    """``validate`` / ``test`` (``model.evaluation``).

    Args:
        protocol: real footage (stereo videos / images): ``aligned`` (estimated depth fitted to the
            reference disparity), ``blind`` (the strength and convergence of ``model.disparity``) or
            ``both`` (rows ``NAME:aligned``, ``NAME:blind``); :mod:`stereo_lit.evaluation.real_footage`.
        align_estimated_depth: with an estimator, fit the estimated relative depth to the true disparity
            (scale and shift) before generating, the usual protocol for scoring relative depth.
        methods_on_val: run the baselines in validation too (else only the generator).
    """

    protocol: str = "aligned"
    align_estimated_depth: bool = True
    methods_on_val: bool = False

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            _fail("evaluation.protocol", f"one of {list(PROTOCOLS)}", self.protocol)


@dataclass
class FitOptions:
    """LoRA fine-tuning, ``stereo-lit fit`` (``model.fit``).

    Args:
        learning_rate: AdamW learning rate (LoRA parameters only), > 0.
        weight_decay: AdamW weight decay (LoRA parameters only), >= 0.
        lora_every_n_steps: save the LoRA adapter to ``output.dir/lora/step_N`` every N steps (0: only
            at the end, to ``output.dir/lora/final``), in the diffusers format that
            ``WanPipeline.load_lora_weights`` and ``generator.lora.path`` read.
    """

    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    lora_every_n_steps: int = 0

    def __post_init__(self) -> None:
        if not float(self.learning_rate) > 0:
            _fail("fit.learning_rate", "> 0", self.learning_rate)
        if not float(self.weight_decay) >= 0:
            _fail("fit.weight_decay", ">= 0", self.weight_decay)
        if int(self.lora_every_n_steps) != self.lora_every_n_steps or self.lora_every_n_steps < 0:
            _fail("fit.lora_every_n_steps", "a whole number of steps >= 0", self.lora_every_n_steps)


def _nested(value: Any, cls: type, key: str) -> Any:
    """A nested option (``edges``, ``vr180``) from a dict; the error names ``model.KEY``."""
    try:
        return as_options(value, cls)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model.{key}: {exc}") from exc


def option_group(value: Any, cls: type, group: str) -> Any:
    """``model.GROUP`` as ``cls``: from an instance (copied), a dict of its fields or None (defaults).

    An unknown key in a dict is named with the group's fields; a key that moved elsewhere with its new place.
    """
    if isinstance(value, dict):
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in value if k not in fields]
        if unknown:
            raise ValueError(f"model.{group} has no key {unknown[0]!r}; its keys: {fields}")
    try:
        return as_options(value, cls)
    except TypeError as exc:
        raise TypeError(f"model.{group}: {exc}") from exc


def moved_key_messages(config: dict[str, Any]) -> list[str]:
    """The old flat keys in a parsed ``model:`` mapping, one line each with its new place.

    Covers the module's keys (:data:`MOVED_MODULE_KEYS`) and the generator's
    (:data:`~stereo_lit.diffusion.options.FLAT_OPTIONS`) in ``generator`` and ``baselines``.
    """
    lines = [_moved_line(f"model.{k}", f"model.{MOVED_MODULE_KEYS[k]}") for k in config if k in MOVED_MODULE_KEYS]
    baselines = config.get("baselines")
    methods = [("model.generator", config.get("generator"))]
    methods += [(f"model.baselines[{i}]", m) for i, m in enumerate(baselines if isinstance(baselines, list) else [])]
    for where, method in methods:
        init_args = method.get("init_args") if isinstance(method, dict) else None
        if not isinstance(init_args, dict) or "WanStereoGenerator" not in str(method.get("class_path", "")):
            continue
        for key in (k for k in init_args if k in FLAT_OPTIONS):
            group, new = FLAT_OPTIONS[key]
            lines.append(_moved_line(f"{where}.init_args.{key}", f"{where}.init_args.{group}.{new}"))
    return lines


def _moved_line(old: str, new: str) -> str:
    return f"{old} moved to {new} (run: {MIGRATE_COMMAND})"


def moved_keys_in_args(args: list[str] | dict[str, Any]) -> list[str]:
    """The old flat keys in command-line ``args`` (``--model.layouts``, and any ``model:`` of a
    ``-c``/``--config`` file or YAML string), or in a config dict; one line each (:func:`moved_key_messages`)."""
    if isinstance(args, dict):
        return _moved_in_config(args)
    lines: list[str] = []
    for i, arg in enumerate(args):
        key = arg.split("=", 1)[0]
        if key.startswith("--model.") and key.split(".")[1] in MOVED_MODULE_KEYS:
            old = key.split(".")[1]
            lines.append(_moved_line(f"model.{old}", f"model.{MOVED_MODULE_KEYS[old]}"))
        elif key in ("-c", "--config"):
            value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            lines += _moved_in_config(_load_config(value))
    return lines


def _load_config(value: str) -> Any:
    """A ``-c`` value: a YAML file, or a YAML mapping given inline; None when it is neither (the parser says why)."""
    import yaml
    from pathlib import Path

    try:
        text = Path(value).read_text(encoding="utf-8") if Path(value).is_file() else value
        return yaml.safe_load(text) if Path(value).is_file() or value.lstrip().startswith("{") else None
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _moved_in_config(config: Any) -> list[str]:
    """``model:`` of a config, or of each subcommand's section (``predict: {model: ...}``)."""
    if not isinstance(config, dict):
        return []
    sections = [config, *(v for k, v in config.items() if k in ("fit", "validate", "test", "predict"))]
    return [line for s in sections if isinstance(s, dict) and isinstance(s.get("model"), dict)
            for line in moved_key_messages(s["model"])]


def refuse_moved_keys(moved: dict[str, Any]) -> None:
    """``StereoLitModule(layouts=...)`` from Python: a TypeError naming each key's new place."""
    if moved:
        lines = [_moved_line(k, MOVED_MODULE_KEYS[k]) if k in MOVED_MODULE_KEYS else f"unknown option {k!r}" for k in moved]
        raise TypeError("StereoLitModule: " + "; ".join(lines))


__all__ = [
    "MIGRATE_COMMAND", "MODULE_GROUPS", "MOVED_MODULE_KEYS", "DisparityOptions", "EvaluationOptions", "FitOptions",
    "OutputOptions", "moved_key_messages", "moved_keys_in_args", "option_group", "refuse_moved_keys",
]
