"""Predictions -> files: the stereo prediction writer's logic (and its resume helpers).

:class:`PredictionFiles` does not import Lightning: the converter's direct run
(:mod:`stereo_lit.predict.direct`) uses it as it is, and
:class:`stereo_lit.callbacks.StereoPredictionWriter` is it as a Lightning callback.

Contract with :meth:`StereoLitModule.predict_step` (one dict per batch):

``video_path``, ``fps``, ``num_frames`` (frames in the whole video), ``frames_start``
(absolute index of the first frame below): lists of length B; ``left``, ``right``
``[B,3,T,H,W]`` in [0,1] at the source size, only the frames this window produces;
optional ``disparity_px`` ``[B,1,T,H,W]`` and ``convergence_px`` (list).

Windows of a video arrive in order. Outputs go to ``output_dir/<name>/<layout>.mp4`` (or,
with ``naming="player"``, ``output_dir/<name>/<stem>_LRF_Full_SBS.mp4`` and so on,
:func:`stereo_lit.io.layouts.output_filename`), where
``<name>`` is the source's path relative to the input folder without its extension
(:func:`stereo_lit.data.wild_sources.output_name`; two sources with one name are an error
at setup). Each file is written under a temporary name of its own and renamed when the
video's last frame is in; then the manifest (:mod:`stereo_lit.io.output_manifest`) is
written, last: a folder is *finished* only when its manifest matches the source, the
frame count and the settings. A run holds a lock per video folder; a video whose folder
another live run holds is skipped with a warning. ``right.mp4`` is the raw right eye;
the stereo layouts get the convergence shift; the source's audio and colour tags are
copied into every layout except ``depth``; every file is encoded with ``encoder``
(:class:`~stereo_lit.io.video_writer.EncoderOptions`).
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereo_lit.io.layouts import (
    LAYOUTS, NAMINGS, VR180Options, apply_convergence, compose, disparity_to_colormap, output_filename,
)
from stereo_lit.io.output_manifest import (
    MANIFEST_NAME, ROOT_MARKER, OutputLock, manifest_mismatch, remove_stale_partials, replace_output_set,
    source_fingerprint, write_manifest,
)
from stereo_lit.io.eye_frames import EyeFrames, EyeJob, SideBySideJob
from stereo_lit.io.image_reader import is_image_file
from stereo_lit.io.frames import to_uint8_frames
from stereo_lit.io.image_writer import ImageOutputs, image_filenames
from stereo_lit.io.video_writer import (
    BackgroundWriter, EncoderOptions, StreamingVideoWriter, as_encoder_options, partial_path, read_color_metadata,
)

log = logging.getLogger(__name__)

# attributes that do not change the pixels (or change during a run)
_SKIP_OPTIONS = {"device", "cache_dir", "training", "calls", "verbose", "progress", "offload", "windows_per_batch"}


def output_folder(video_path: str | Path, output_dir: str | Path, name: str | None = None) -> Path:
    """``output_dir/<name>``; without a name: the stem of a video file, or the trajectory
    path of a folder."""
    path = Path(video_path)
    if not name:
        name = path.stem if path.suffix else "_".join(path.parts[-3:]).replace(" ", "_")
    return Path(output_dir) / name


def expected_outputs(
    video_path: str | Path, output_dir: str | Path, layouts: list[str], name: str | None = None, naming: str = "plain",
) -> list[Path]:
    folder = output_folder(video_path, output_dir, name)
    return [folder / output_filename(layout, naming, folder.name) for layout in layouts]


def layout_filenames(folder: Path, layouts: list[str], naming: str = "plain") -> dict[str, str]:
    """``{layout: file name}`` in ``folder`` under ``naming`` (``plain`` / ``player``)."""
    return {layout: output_filename(layout, naming, folder.name) for layout in layouts}


def public_options(obj: Any) -> dict[str, Any]:
    """The class and plain public attributes (numbers, strings, paths) of a generator or
    depth estimator: what its output depends on, for the manifest."""
    if obj is None:
        return {}
    plain = (bool, int, float, str, Path, type(None))

    def is_plain(value: Any, depth: int = 0) -> bool:
        if isinstance(value, plain):
            return True
        if depth < 2 and isinstance(value, (tuple, list)):
            return all(is_plain(v, depth + 1) for v in value)
        if depth < 2 and isinstance(value, dict):
            return all(isinstance(k, str) and is_plain(v, depth + 1) for k, v in value.items())
        return False

    options: dict[str, Any] = {"class": f"{type(obj).__module__}.{type(obj).__qualname__}"}
    for key, value in sorted(vars(obj).items()):
        if not key.startswith("_") and key not in _SKIP_OPTIONS and is_plain(value):
            options[key] = value
    return options


def output_settings(pl_module: Any, datamodule: Any) -> dict[str, Any]:
    """The settings that change the pixels of predict outputs (layouts are checked apart)."""
    policy = getattr(pl_module, "policy", None)
    data_keys = (
        "window", "overlap", "fps", "size", "max_side", "pad_mode", "use_depth", "depth_kind", "start_time", "end_time",
        "max_fps",
    )
    return {
        "max_disparity_pct": getattr(policy, "max_disparity_pct", None),
        "convergence": getattr(policy, "convergence", None),
        "generator": public_options(getattr(pl_module, "generator", None)),
        "depth": public_options(getattr(pl_module, "depth", None)) or "data",
        "data": {k: getattr(datamodule, k) for k in data_keys if hasattr(datamodule, k)},
    }


def outputs_complete(
    video_path: str | Path, output_dir: str | Path, layouts: list[str], settings: dict[str, Any] | None = None,
    name: str | None = None, frames: int | None = None, depth_path: str | None = None, naming: str = "plain",
) -> bool:
    """True when ``output_dir/<name>`` holds finished outputs of ``video_path``: a manifest
    that matches the source's fingerprint, ``frames``, the depth file, ``settings`` and
    lists every layout in ``layouts`` (with its size on disk)."""
    folder = output_folder(video_path, output_dir, name)
    reason = manifest_mismatch(
        folder, source=source_fingerprint(video_path),
        depth_file=source_fingerprint(depth_path), frames=frames, layouts=list(layouts), settings=settings or {},
        filenames=layout_filenames(folder, list(layouts), naming),
    )
    return reason is None


class _VideoOutputs:
    """The open writers of one video."""

    def __init__(
        self, video_path: str, folder: Path, layouts: list[str], fps: float, num_frames: int, naming: str = "plain",
        encoder: EncoderOptions | None = None, vr: VR180Options | None = None,
        audio_range: tuple[float, float] | None = None,
    ) -> None:
        self.video_path = video_path
        self.folder = folder
        self.num_frames = num_frames
        self.next_frame = 0
        self.vr = vr
        audio = video_path if Path(video_path).is_file() else None
        color = read_color_metadata(audio)
        names = layout_filenames(folder, layouts, naming)
        self.writers = {  # each layout is encoded in a thread of its own (BackgroundWriter)
            layout: BackgroundWriter(StreamingVideoWriter(
                folder / names[layout], fps, audio_from=None if layout == "depth" else audio, encoder=encoder,
                color=None if layout == "depth" else color, audio_range=audio_range,
            ))
            for layout in layouts
        }
        if not Path(video_path).exists():  # a prompt (text-to-stereo): the generated left view is an output too
            name = "left.mp4" if naming == "plain" else f"{folder.name}_L.mp4"
            self.writers["left"] = BackgroundWriter(StreamingVideoWriter(folder / name, fps, encoder=encoder))
        self.depth_range: tuple[float, float] | None = None

    def write(self, start: int, left: np.ndarray, right: np.ndarray, disparity: np.ndarray | None, shift: float) -> None:
        if start != self.next_frame:
            raise ValueError(
                f"{self.video_path}: windows must arrive in order; expected frame {self.next_frame}, got {start}"
            )
        shifted = apply_convergence(left, right, shift)
        eyes = EyeFrames(*shifted)  # right and sbs share each eye's conversion to the encoders' format
        for layout, writer in self.writers.items():
            if layout == "depth":
                if disparity is None:
                    raise ValueError(f"{self.video_path}: layout 'depth' needs disparity_px in the predictions")
                if self.depth_range is None:  # fixed on the first window: no flicker
                    self.depth_range = tuple(np.percentile(disparity, [2, 98]).tolist())
                writer.write(lambda d=disparity, r=self.depth_range: disparity_to_colormap(d, *r))
            elif layout in ("left", "right"):  # the eyes sbs/tb/anaglyph show (convergence applied)
                writer.write(EyeJob(eyes, layout))
            elif layout == "sbs":
                writer.write(SideBySideJob(eyes))
            else:  # composed in the layout's encoding thread
                writer.write(lambda layout=layout: compose(layout, *shifted, vr=self.vr))
        self.next_frame = start + left.shape[0]

    def seconds(self) -> tuple[float, float]:
        """``(encode, waited)`` seconds of every layout so far: in the encoders, and blocked
        on a full encoding queue."""
        return (
            sum(w.encode_seconds for w in self.writers.values()), sum(w.wait_seconds for w in self.writers.values()),
        )

    @property
    def done(self) -> bool:
        return self.next_frame >= self.num_frames

    def close(self) -> dict[str, dict[str, int]]:
        """Finish every layout under a hidden name, then replace the earlier set whole
        (:func:`~stereo_lit.io.output_manifest.replace_output_set`); ``{layout: {"bytes", "frames", "file"}}``.

        A failure while finishing (disk full while flushing or adding the audio) removes the new
        files and leaves the earlier complete set and its manifest as they were.
        """
        staged: dict[str, tuple[Path, Path]] = {}
        for writer in self.writers.values():  # every layout's encoder flushes in its own thread, at once
            writer.finish()
        try:
            for layout, writer in self.writers.items():
                final = writer.path
                try:  # complete but hidden: renamed below with the others
                    staged[layout] = (writer.close(partial_path(final, "done")), final)
                except OSError as exc:  # e.g. disk full while flushing or adding the audio: name the file
                    raise OSError(exc.errno, f"could not write {final}: {exc.strerror or exc}", str(final)) from exc
        except BaseException:
            for tmp, _ in staged.values():
                tmp.unlink(missing_ok=True)
            if (self.folder / MANIFEST_NAME).exists():
                log.warning("%s: the new outputs could not be finished; the earlier complete set in %s is kept", self.video_path, self.folder)
            raise
        replace_output_set(self.folder, staged)
        return {
            layout: {"bytes": final.stat().st_size, "frames": self.writers[layout].frames_written, "file": final.name}
            for layout, (_, final) in staged.items()
        }

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


class PredictionFiles:
    """Writes the stereo outputs of ``predict`` video by video (see module docstring).

    At setup it learns the output names, the settings and the frame counts from the
    datamodule (``datamodule.videos``, a list of :class:`~stereo_lit.data.wild.WildVideo`)
    and the module; :meth:`should_skip` is the resume/lock predicate the module hands to
    ``datamodule.exclude_videos``.

    Args:
        output_dir, layouts: where, and which layouts (:data:`~stereo_lit.io.layouts.LAYOUTS`).
        naming: ``plain`` (``sbs.mp4``) or ``player`` (``<name>_LRF_Full_SBS.mp4``, README).
        encoder: :class:`~stereo_lit.io.video_writer.EncoderOptions` (or a dict of its fields).
        vr180: :class:`~stereo_lit.io.layouts.VR180Options` of the ``vr180`` layout.
    """

    def __init__(
        self, output_dir: str = "outputs", layouts: list[str] | None = None, naming: str = "plain",
        encoder: EncoderOptions | dict | None = None, vr180: VR180Options | dict | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.layouts = list(layouts) if layouts else ["right", "sbs", "anaglyph"]
        unknown = set(self.layouts) - set(LAYOUTS)
        if unknown:
            raise ValueError(f"model.output.layouts: unknown layouts {sorted(unknown)}; choose from {LAYOUTS}")
        if naming not in NAMINGS:
            raise ValueError(f"model.output.naming must be one of {NAMINGS}, got {naming!r}")
        self.naming = naming
        self.encoder = as_encoder_options(encoder)
        self.vr180 = vr180 if isinstance(vr180, VR180Options) else VR180Options(**(vr180 or {}))
        self._open: dict[str, _VideoOutputs] = {}
        self.finished: list[Path] = []
        self.settings: dict[str, Any] = {}
        self.names: dict[str, str] = {}  # video path -> output name
        self.frames: dict[str, int] = {}  # video path -> expected frames
        self.depth_files: dict[str, str | None] = {}
        self.audio_ranges: dict[str, tuple[float, float] | None] = {}  # video path -> audio seconds kept
        self.token = uuid.uuid4().hex
        self._locks: dict[str, OutputLock] = {}
        self._decisions: dict[str, bool] = {}
        self._ignored: set[str] = set()
        self._world_size = 1
        self._stage_seconds: dict[str, float] = {}  # encode seconds of videos finished in this batch

    # ------------------------------------------------------------------ set-up
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "predict":
            return
        self._world_size = getattr(trainer, "world_size", 1)
        strategy = getattr(trainer, "strategy", None)
        if strategy is not None:  # the ranks of one run share their locks
            self.token = strategy.broadcast(self.token)
        datamodule = getattr(trainer, "datamodule", None)
        self.settings = {**output_settings(pl_module, datamodule), **self.writer_settings()}
        videos = [v for v in getattr(datamodule, "videos", None) or [] if hasattr(v, "info") and hasattr(v, "entry")]
        self.names = {v.info.path: v.entry.name for v in videos if getattr(v.entry, "name", "")}
        self.frames = {v.info.path: int(v.num_frames) for v in videos}
        self.depth_files = {v.info.path: v.depth_path for v in videos}
        self.audio_ranges = {v.info.path: getattr(v, "audio_range", None) for v in videos}  # start/end_time cuts
        from stereo_lit.data.wild_sources import check_output_names

        check_output_names({p: self.names.get(p) or output_folder(p, ".").name for p in self.frames})
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / ROOT_MARKER).touch()

    def writer_settings(self) -> dict[str, Any]:
        """The output options that differ from the defaults (``encoder``, ``naming``, and
        ``vr180`` when that layout is made), for the manifest: a change redoes the video,
        and outputs made before these options existed stay finished."""
        out: dict[str, Any] = {}
        if self.encoder != EncoderOptions():
            out["encoder"] = self.encoder.settings()
        if self.naming != "plain":
            out["naming"] = self.naming
        if "vr180" in self.layouts:
            out["vr180"] = self.vr180.settings()
        return out

    def folder_for(self, video_path: str) -> Path:
        return output_folder(video_path, self.output_dir, self.names.get(video_path))

    def mismatch(self, video_path: str) -> str | None:
        """Why ``video_path`` is not finished with the current settings (None: it is)."""
        return manifest_mismatch(
            self.folder_for(video_path), source=source_fingerprint(video_path),
            depth_file=source_fingerprint(self.depth_files.get(video_path)), frames=self.frames.get(video_path),
            layouts=self.layouts, settings=self.settings,
            filenames=self.filenames_for(video_path),
        )

    def filenames_for(self, video_path: str) -> dict[str, str]:
        """``{layout: file name}`` of one source: videos ``.mp4``, photos their own format."""
        if is_image_file(video_path):
            return image_filenames(video_path, self.folder_for(video_path), self.layouts, self.naming)
        return layout_filenames(self.folder_for(video_path), self.layouts, self.naming)

    def _lock(self, video_path: str) -> bool:
        lock = self._locks.get(video_path) or OutputLock(self.folder_for(video_path), self.token)
        if lock.acquire():
            self._locks[video_path] = lock
            return True
        log.warning(
            "skipping %s: another stereo-lit run (%s) is writing %s; if no run is active, delete %s",
            video_path, lock.describe_holder(), lock.folder, lock.path,
        )
        return False

    def should_skip(self, video_path: str) -> bool:
        """Resume predicate: True for finished videos (manifest matches) and for videos
        another live run is writing; otherwise the folder is locked for this run."""
        if video_path not in self._decisions:
            reason = self.mismatch(video_path)
            if reason is None:
                log.info("skipping %s: finished (%s)", video_path, self.folder_for(video_path) / MANIFEST_NAME)
                self._decisions[video_path] = True
            else:
                if reason != "not started":
                    log.warning("redoing %s: %s", video_path, reason)
                self._decisions[video_path] = not self._lock(video_path)
        return self._decisions[video_path]

    # ------------------------------------------------------------------ writing
    def _start(self, video_path: str, fps: float, num_frames: int) -> _VideoOutputs | None:
        if video_path not in self._locks and not self._lock(video_path):
            self._ignored.add(video_path)
            return None
        folder = self.folder_for(video_path)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(folder)
        if is_image_file(video_path):  # a photo: stereo images (stereo_lit.io.image_writer)
            outputs = ImageOutputs(video_path, folder, self.layouts, fps, num_frames, naming=self.naming, vr=self.vr180)
        else:
            outputs = _VideoOutputs(
                video_path, folder, self.layouts, fps, num_frames, naming=self.naming, encoder=self.encoder,
                vr=self.vr180,
                audio_range=self.audio_ranges.get(video_path),
            )
        self._open[video_path] = outputs
        return outputs

    def _finish(self, outputs: _VideoOutputs, cost: dict[str, Any] | None = None) -> None:
        video_path = outputs.video_path
        files = outputs.close()
        record = {
            "video": video_path, "source": source_fingerprint(video_path),
            "depth_file": source_fingerprint(self.depth_files.get(video_path)),
            "frames": outputs.next_frame, "layouts": files, "settings": self.settings,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        if cost is not None:  # what generating this video cost (stereo_lit.evaluation.predict_cost); not compared on resume
            record["cost"] = cost
        write_manifest(outputs.folder, record)
        self.finished.extend(outputs.folder / entry["file"] for entry in files.values())
        self._release(video_path)

    def _release(self, video_path: str) -> None:
        lock = self._locks.pop(video_path, None)
        if lock is not None:
            lock.release()

    def write_prediction(self, pl_module: Any, prediction: dict[str, Any]) -> None:
        """Hand one prediction of ``pl_module.predict_step`` to its videos' writers (its time
        goes to ``pl_module.stage_times``)."""
        started = time.perf_counter()
        waited = self._write_batch(prediction)
        times = getattr(pl_module, "stage_times", None)
        if times is not None:  # predict summary: the writer's own time; encode time comes at _finish
            times.add("write", time.perf_counter() - started - waited)
            for stage, seconds in self._stage_seconds.items():
                times.add(stage, seconds)
        self._stage_seconds = {}

    def _write_batch(self, prediction: dict[str, Any]) -> float:
        """Hand one prediction to the videos' writers; returns the seconds spent waiting on full encoding queues."""
        waited = 0.0
        shifts = prediction.get("convergence_px") or [0.0] * len(prediction["video_path"])
        costs = prediction.get("cost") or [None] * len(prediction["video_path"])  # each video's totals so far
        for i, video_path in enumerate(prediction["video_path"]):
            if video_path in self._ignored:
                continue
            outputs = self._open.get(video_path) or self._start(
                video_path, prediction["fps"][i], prediction["num_frames"][i]
            )
            if outputs is None:
                continue
            disparity = prediction.get("disparity_px")
            before = outputs.seconds()[1] if hasattr(outputs, "seconds") else 0.0
            try:
                outputs.write(
                    int(prediction["frames_start"][i]),
                    to_uint8_frames(prediction["left"][i]),
                    to_uint8_frames(prediction["right"][i]),
                    None if disparity is None else disparity[i, 0].float().cpu().numpy(),
                    float(shifts[i]),
                )
                if outputs.done:
                    del self._open[video_path]
                    self._finish(outputs, cost=costs[i])
                    if hasattr(outputs, "seconds"):
                        self._stage_seconds["encode"] = self._stage_seconds.get("encode", 0.0) + outputs.seconds()[0]
                if hasattr(outputs, "seconds"):
                    waited += outputs.seconds()[1] - before
            except Exception:
                outputs.abort()
                self._open.pop(video_path, None)
                self._release(video_path)
                raise
        return waited

    def _abort_open(self) -> None:
        for video_path, outputs in self._open.items():  # incomplete videos: nothing that looks finished
            outputs.abort()
            self._release(video_path)
        self._open.clear()
        if self._world_size == 1:  # under DDP another rank may still write a video this rank locked
            for video_path in list(self._locks):
                self._release(video_path)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self._abort_open()
        finished = _gather_lists([str(p) for p in self.finished], trainer.world_size)  # every rank's outputs
        if trainer.is_global_zero and finished:
            print("stereo outputs:\n" + "\n".join(f"  {p}" for p in finished))

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._abort_open()


def write_or_skip(files: PredictionFiles, pl_module: Any, prediction: dict[str, Any] | None) -> None:
    """``files.write_prediction`` under the module's ``on_error`` policy: with ``skip`` a write
    error drops that video only (``pl_module.record_failure``); None predictions (windows of a
    video that already failed) are ignored."""
    if prediction is None:
        return
    try:
        files.write_prediction(pl_module, prediction)
    except Exception as exc:  # noqa: BLE001 - policy decides
        record = getattr(pl_module, "record_failure", None)
        if record is None or pl_module.on_error_policy() == "raise":
            raise
        record([str(p) for p in prediction["video_path"]], exc)


def _gather_lists(items: list[str], world_size: int) -> list[str]:
    """``items`` of every process (rank order) under DDP; ``items`` itself in one process."""
    import torch.distributed as dist

    if world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return list(items)
    gathered: list[list[str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, list(items))
    return [item for part in gathered for item in (part or [])]
