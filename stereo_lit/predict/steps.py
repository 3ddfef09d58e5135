"""The predict half of the model: depth -> disparity -> generator -> the frames a window produces.

:class:`PredictSteps` is a mixin without Lightning. :class:`~stereo_lit.module.StereoLitModule`
(a LightningModule) and the converter's direct run (:class:`~stereo_lit.predict.direct.StereoConverter`)
both route their predict batches through it, so the two paths make the same pixels. What it
reads of a trainer (``datamodule``, ``callbacks``, ``world_size``, ``is_global_zero``) the
direct run provides without Lightning.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from stereo_lit.data.skips import SKIPPED_KEY, RunFailures
from stereo_lit.depth.estimator import DepthEstimator
from stereo_lit.depth.source import WindowDepth, align_inverse_depth, batch_padding
from stereo_lit.evaluation.predict_cost import PredictCost
from stereo_lit.generators.base import StereoGenerator, check_carry_window
from stereo_lit.generators.geometric import WarpFill
from stereo_lit.metrics.cost import StageTimes, call_cost, measure_call
from stereo_lit.options import DisparityOptions, OutputOptions
from stereo_lit.stereo.disparity import DisparityPolicy
from stereo_lit.stereo.padding import Padding, produced_frames

log = logging.getLogger("stereo_lit.module")  # the name predict's log lines always had


class PredictSteps:
    """Predict for a module that holds a generator, a depth source and the output options.

    Call :meth:`_init_predict` from the constructor (after ``torch.nn.Module.__init__``).
    """

    def _init_predict(
        self, generator: StereoGenerator | None, baselines: list[StereoGenerator] | None, depth: DepthEstimator | None,
        disparity: DisparityOptions, output: OutputOptions, wan_checkpoint: str | None = None,
        vace_checkpoint: str | None = None, align_estimated_depth: bool = False,
    ) -> None:
        """The generator (default: model-free :class:`WarpFill`), baselines, depth and options;
        equal Wan set-ups share one load (see :class:`~stereo_lit.module.StereoLitModule`)."""
        self.generator = generator if generator is not None else WarpFill()
        self.baselines = list(baselines or [])
        self.wan_checkpoint, self.vace_checkpoint = wan_checkpoint, vace_checkpoint
        _share_wan_models(self.methods, wan_checkpoint, vace_checkpoint)
        self.depth = depth
        self._window_depth = WindowDepth(depth, shot_aware=disparity.shot_aware) if depth is not None else None
        self.policy = DisparityPolicy(
            max_disparity_pct=disparity.max_disparity_pct, convergence=disparity.convergence,
            shot_aware=disparity.shot_aware, range_smoothing=disparity.range_smoothing,
        )
        self.edges = disparity.edges
        self.output_dir, self.layouts, self.naming = Path(output.dir), output.layouts, output.naming
        self.encoder, self.vr180, self.skip_finished = output.encoder, output.vr180, output.skip_finished
        self.align_estimated_depth = align_estimated_depth
        self._carry: dict[tuple[str, ...], Any] = {}  # videos of a batch -> generator state for their next window
        self._carry_warned = False
        self.failures = RunFailures()  # per-video errors under on_error=skip, summarised at the end
        self.predict_cost = PredictCost()  # time / NFE / VAE passes / peak memory of predict's generate() calls
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError(f"every evaluated method needs a distinct name, got {names}")

    @property
    def methods(self) -> list[StereoGenerator]:
        """The generator first, then the baselines."""
        return [self.generator, *self.baselines]

    def writer_options(self) -> dict[str, Any]:
        """The prediction writer's arguments (:class:`~stereo_lit.predict.writer.PredictionFiles`)."""
        return {
            "output_dir": str(self.output_dir), "layouts": self.layouts, "naming": self.naming,
            "encoder": self.encoder, "vr180": self.vr180,
        }

    def check_before_work(self, stage: str) -> None:
        """Fail before any depth or sampling: every checkpoint path of the generator, the
        baselines and the depth estimator (their ``check_paths()``), the output folder
        (a writable directory), and the data window against the generator's window."""
        for part in [*self.methods, self.depth]:
            check = getattr(part, "check_paths", None)
            if check is not None:
                check()
        if stage in ("predict", "test", "validate", "fit"):
            check_output_dir(self.output_dir)
        datamodule = getattr(getattr(self, "_trainer", None), "datamodule", None)
        self._check_frame_sizes(datamodule)
        generator_window = getattr(self.generator, "window", None)
        if stage == "predict" and isinstance(generator_window, int) and datamodule is not None:
            check_carry_window(generator_window, *_predict_overlap(datamodule))

    def _check_frame_sizes(self, datamodule: Any) -> None:
        """Frame sizes the datamodule will produce against each model's positional range."""
        from stereo_lit.diffusion.loading import planned_frame_sizes

        checks = [m.check_frame_size for m in self.methods if hasattr(m, "check_frame_size")]
        for height, width, option in planned_frame_sizes(datamodule) if checks else []:
            for check in checks:
                check(height, width, option=option)

    def on_error_policy(self) -> str:
        """The datamodule's ``on_error`` (``"raise"`` when it has none)."""
        datamodule = getattr(getattr(self, "_trainer", None), "datamodule", None)
        return str(getattr(datamodule, "on_error", "raise"))

    def record_failure(self, videos: list[str], exc: BaseException | str) -> None:
        """Drop ``videos`` for the rest of this run (skip policy) and name them in the summary."""
        for video in videos:
            self.failures.record(video, exc)
        self._carry = {k: v for k, v in self._carry.items() if not set(k) & set(videos)}

    def _take_skipped(self, batch: dict[str, Any] | None) -> dict[str, Any] | None:
        """Record the batch's skip markers; None when nothing else is left in it."""
        if batch is None:
            return None
        for name, reason in batch.pop(SKIPPED_KEY, []) or []:
            self.failures.record(name, reason)
        if "left" not in batch and "prompt" not in batch:
            return None
        return batch

    def _skip_finished_videos(self) -> None:
        """Tell the datamodule which videos to leave out: finished with these settings (their
        manifest matches), or being written by another run (its lock); the writer decides."""
        from stereo_lit.predict.writer import PredictionFiles

        datamodule = getattr(self.trainer, "datamodule", None)
        writers = [cb for cb in self.trainer.callbacks if isinstance(cb, PredictionFiles)]
        if datamodule is not None and hasattr(datamodule, "exclude_videos") and writers:
            datamodule.exclude_videos(writers[0].should_skip)

    # ------------------------------------------------------------------ disparity
    def disparity_for(self, batch: dict[str, Any]) -> tuple[torch.Tensor, list[float]]:
        """Disparity ``[B,1,T,H,W]`` (px, left frame) and the convergence shift (px) per video.

        Depth source, in order: the estimator (``model.depth``) when one is configured
        (whole-video depth for video files, so windows share one scale; aligned to the
        true disparity by least squares when the batch has one and
        ``align_estimated_depth``); else the batch's true disparity (TartanAir); else a
        depth file that came with the video.
        """
        left = batch["left"]
        width = left.shape[-1] - batch_padding(batch).right
        keys = [str(k) for k in batch.get("video_path", batch.get("sample_id", ["video"] * left.shape[0]))]
        if self._window_depth is not None:
            depth, kind, whole = self._window_depth.for_batch(batch)
            if "disparity_left_px" in batch and self.align_estimated_depth and kind == "inverse_relative":
                disparity = align_inverse_depth(depth, batch["disparity_left_px"], batch.get("valid_left"))
            else:
                for key, video in zip(keys, whole or []):  # each video its whole-video (per-shot) range
                    self.policy.fix_video_range(key, video.sample, kind, depth=video.depth, cuts=video.cuts)
                starts = [video.start for video in whole] if whole else None
                disparity = self._policy_disparity(depth, kind, keys, width, starts)
            disparity = self.edges.apply(disparity, self.policy.convergence_px(width))
        elif "disparity_left_px" in batch:  # metric ground truth (TartanAir)
            disparity = batch["disparity_left_px"]
        elif batch.get("depth") is not None:  # depth file next to the video
            kinds = batch.get("depth_kind", ["inverse_relative"] * left.shape[0])
            disparity = self._policy_disparity(batch["depth"], kinds, keys, width)
            disparity = self.edges.apply(disparity, self.policy.convergence_px(width))
        else:
            raise ValueError(
                f"{', '.join(keys)}: no depth file next to the video and the model has no depth estimator: set "
                "`model.depth` (e.g. stereo_lit.depth.VDAEstimator) or put NAME.npy/NAME_depths.npz next to the video"
            )
        dtype = left.dtype if left.is_floating_point() else torch.float32  # a uint8 picture keeps float disparity
        return disparity.to(device=left.device, dtype=dtype), [self.policy.convergence_px(width)] * left.shape[0]

    def _policy_disparity(
        self, depth: torch.Tensor, kinds: str | list[str], keys: list[str], width: int, starts: list[int] | None = None
    ) -> torch.Tensor:
        kinds = [kinds] * depth.shape[0] if isinstance(kinds, str) else list(kinds)
        starts = starts or [None] * depth.shape[0]
        if depth.shape[0] == 1:  # the streamed converter's case: no copy through cat
            return self.policy.from_depth(depth, kinds[0], keys[0], width_px=width, start=starts[0])
        return torch.cat(
            [
                self.policy.from_depth(depth[i : i + 1], kinds[i], keys[i], width_px=width, start=starts[i])
                for i in range(depth.shape[0])
            ]
        )

    @property
    def depth_source(self) -> str:
        """What the disparity comes from, for tables and logs."""
        if self.depth is None:
            return "data (ground truth or depth files)"
        name = type(self.depth).__name__
        checkpoint = getattr(self.depth, "checkpoint", None)
        aligned = ", least-squares aligned to true disparity" if self.align_estimated_depth else ""
        return f"{name}({Path(str(checkpoint)).name if checkpoint else ''}){aligned}"

    # ------------------------------------------------------------------ predict
    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any] | None:
        """One window; under ``on_error="skip"`` any error drops its video (None is returned)."""
        times = self.stage_times
        if times.started is None:
            times.start()
        batch = self._take_skipped(batch)
        if batch is None:
            return None
        for seconds in _as_list((batch.pop("stage_seconds", None) or {}).get("decode", [])):
            times.add("decode", seconds)
        if isinstance(batch.get("left"), torch.Tensor) and batch["left"].dtype == torch.uint8 and not getattr(
            self.generator, "takes_uint8", False
        ):
            batch["left"] = batch["left"].float().div_(255.0)  # streamed windows stay uint8 until a method needs floats
        videos = [str(p) for p in batch.get("video_path", [])]
        self.failures.see(videos)
        if set(videos) & set(self.failures.failed):
            return None  # later windows of a video that already failed
        try:
            return self._predict_window(batch)
        except Exception as exc:  # noqa: BLE001 - policy decides
            if self.on_error_policy() == "raise":
                raise
            self.record_failure(videos, exc)
            return None

    @property
    def stage_times(self) -> StageTimes:
        """Busy time per predict stage (decode, depth, generate, encode, write) and frames made."""
        if "_stage_times" not in self.__dict__:
            self.__dict__["_stage_times"] = StageTimes()
        return self.__dict__["_stage_times"]

    def _prime_depth_range(self, batch: dict[str, Any]) -> None:
        """A streamed video's first chunk carries the depth values of its first data window
        (``depth_range_sample``, :func:`stereo_lit.data.wild.depth_range_sample`): fix its range
        from them, as the whole window did before (the policy keeps the first range it sees)."""
        sample = batch.pop("depth_range_sample", None)
        if sample is None or self._window_depth is not None or "disparity_left_px" in batch:
            return
        kinds = batch.get("depth_kind", ["inverse_relative"] * sample.shape[0])
        width = batch["left"].shape[-1] - batch_padding(batch).right
        for i, key in enumerate(batch["video_path"]):
            self.policy.from_depth(sample[i].reshape(1, 1, -1, 1, 1), kinds[i], str(key), width_px=width)

    def on_predict_end(self) -> None:
        """``predict summary:`` the videos (finished / skipped) and one cost line per method
        (:mod:`stereo_lit.evaluation.predict_cost`; the generator's calls only, depth excluded)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        for name, reason in getattr(datamodule, "skipped", []):
            self.failures.record(name, reason)
        cost_lines = self.predict_cost.summary_lines(self.trainer.world_size)  # a collective under DDP
        if self.stage_times.frames:
            self.stage_times.stop()
            cost_lines.append(self.stage_times.summary_line())
        if self.trainer.is_global_zero and (self.failures.seen or cost_lines) and not self.failures.all_failed:  # all failed: the CLI says so, once
            print("predict summary: " + "\n".join([self.failures.summary("video"), *(f"  {c}" for c in cost_lines)]))

    def _predict_window(self, batch: dict[str, Any]) -> dict[str, Any]:
        if "left" not in batch and "prompt" in batch:
            return self._text_to_stereo(batch)
        left = batch["left"]
        times = self.stage_times
        started = time.perf_counter()
        self._prime_depth_range(batch)
        disparity, convergence_px = self.disparity_for(batch)
        times.add("depth", time.perf_counter() - started)
        captions = batch.get("caption") or [None]
        starts, keeps = _as_list(batch["window_start"]), _as_list(batch["keep_start"])
        if len(set(k - s for s, k in zip(starts, keeps))) != 1:
            raise ValueError("all windows of a batch must have the same overlap; use batch_size 1 for mixed videos")
        first = keeps[0] - starts[0]
        # Seamless windows: the previous window of the same video hands its state on.
        videos = tuple(str(p) for p in batch["video_path"])
        carry = self._carry.pop(videos, None) if first > 0 else None
        if first > 0 and carry is None and self._carry_warned is False:
            log.info("no carried state for %s: its overlap frames are regenerated, not continued", videos)
            self._carry_warned = True
        with measure_call(self.generator, left) as counters:
            out = self.generator.generate(
                left, disparity, prompt=(captions[0] or None), carry=carry, num_overlap=first if carry is not None else 0
            )
        cost = call_cost(self.generator, counters, out)
        times.add("generate", cost.seconds)
        window_stops, totals = _as_list(batch["window_stop"]), _as_list(batch["num_frames"])
        if out.carry is not None and any(stop < total for stop, total in zip(window_stops, totals)):
            self._carry[videos] = out.carry

        # Keep only the frames this window produces, at the source size.
        num_src = min(_as_list(batch["window_stop"])[0] - starts[0], left.shape[2])
        padding = batch_padding(batch)
        self.predict_cost.add(self.generator.name, videos, [max(num_src - first, 0)] * len(videos), cost)
        times.frames += max(num_src - first, 0) * len(videos)

        def trim(x: torch.Tensor) -> torch.Tensor:
            return produced_frames(x, Padding(padding.bottom, padding.right, 0), first, num_src)

        return {
            "video_path": [str(p) for p in batch["video_path"]],
            "fps": [float(f) for f in _as_list(batch["fps"])],
            "num_frames": [int(n) for n in _as_list(batch["num_frames"])],
            "frames_start": keeps,
            "left": trim(left),
            "right": trim(out.right),
            "disparity_px": trim(disparity),
            "convergence_px": convergence_px,
            "cost": [self.predict_cost.video_record(v) for v in videos],  # so far, for the output manifest
        }

    def _text_to_stereo(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A prompt batch (:class:`~stereo_lit.data.prompts.PromptDataModule`): Wan makes both eyes."""
        from stereo_lit.diffusion.text_to_stereo import TextToStereo

        if not hasattr(self.generator, "prompt_embeds"):
            raise ValueError(
                f"text-to-stereo needs the Wan generator (stereo_lit.diffusion.WanStereoGenerator), "
                f"got {type(self.generator).__name__}"
            )
        if self.depth is None:
            raise ValueError("text-to-stereo needs a depth estimator: set `model.depth` (stereo_lit.depth.VDAEstimator)")
        prompt = str(batch["prompt"][0])
        num_frames, height, width = (int(_as_list(batch[k])[0]) for k in ("num_frames", "height", "width"))
        with measure_call(self.generator) as counters:  # both eyes; depth of the left view included
            result = TextToStereo(self.generator, self.depth, self.policy)(
                prompt, num_frames=num_frames, height=height, width=width, seed=int(self.generator.seed)
            )
        video = str(batch["video_path"][0])
        name = f"{self.generator.name} (text-to-stereo: both eyes and the depth of the left)"
        self.predict_cost.add(name, [video], [num_frames], call_cost(self.generator, counters))
        return {
            "video_path": [video],
            "fps": [float(_as_list(batch["fps"])[0])],
            "num_frames": [num_frames],
            "frames_start": [0],
            "left": result.left.clamp(0, 1).float().cpu(),
            "right": result.right.clamp(0, 1).float().cpu(),
            "disparity_px": result.disparity_px.float().cpu(),
            "convergence_px": [self.policy.convergence_px(width)],
            "cost": [self.predict_cost.video_record(video)],
        }


def _share_wan_models(methods: list[StereoGenerator], wan_checkpoint: str | None, vace_checkpoint: str | None) -> None:
    """Fill unset Wan checkpoints (``vace_checkpoint`` for ``backbone: vace``, else ``wan_checkpoint``)
    and let equal Wan set-ups load once."""
    from stereo_lit.diffusion.loading import SharedComponents

    shared = SharedComponents()
    for method in methods:
        folder = vace_checkpoint if getattr(method, "backbone", None) == "vace" else wan_checkpoint
        if folder is not None and hasattr(method, "fill_checkpoint"):
            method.fill_checkpoint(folder)
        if hasattr(method, "share_loads"):
            method.share_loads(shared)


def _predict_overlap(datamodule: Any) -> tuple[int, str]:
    """The largest overlap of any planned predict window (the last window of a video is
    aligned to its end and may overlap more than ``overlap``), and where it comes from."""
    items = getattr(datamodule, "predict_items", None)
    if callable(items):
        worst = max(items(), key=lambda item: item[1].num_overlap, default=None)
        if worst is None:
            return 0, "no window"
        return worst[1].num_overlap, f"{worst[0].info.path} window [{worst[1].start}, {worst[1].stop})"
    window, overlap = getattr(datamodule, "window", None), getattr(datamodule, "overlap", None)
    if not isinstance(window, int):
        return 0, "no window"
    # without the plan: a video's last window may overlap up to window - 1 frames
    return max(int(overlap or 0), window - 1), f"data.window={window} (its last window of a video)"


def check_output_dir(output_dir: Path) -> None:
    """``output_dir`` must be (or become) a writable directory; the error names it."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"model.output.dir {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write_test_{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"model.output.dir {path} is not writable: {exc}") from exc


def _as_list(value: Any) -> list:
    if isinstance(value, torch.Tensor):
        return value.flatten().tolist()
    return list(value)
