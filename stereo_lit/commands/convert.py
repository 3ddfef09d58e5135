"""``stereo-lit convert INPUT... [-o OUT]``: the converter command, on predict's code path.

    stereo-lit convert my_video.mp4                      # -> outputs/my_video/{right,sbs,anaglyph}.mp4
    stereo-lit convert clips/ "more/*.mkv" -o out/ --method fast --strength 3 --layout sbs,anaglyph
    stereo-lit convert my_video.mp4 --print_config > my.yaml   # the same job as a predict config

It builds the LightningCLI arguments of ``stereo-lit predict -c predict_wild`` (``predict_few_step``
for ``--method wan-fast``) with the flags below as overrides, and runs that job: ``--print_config``
prints the resulting config, so a user can move to a YAML file later. The model-free fill
(``--method fast``) runs the same config without importing Lightning
(:mod:`stereo_lit.predict.direct`: seconds less start-up, the same files). The config keys it emits are
in :data:`KEYS` (one place to rename them).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path
from typing import Any

from stereo_lit.commands.configs import shipped_config

#: the predict config keys the flags set (rename here only)
KEYS = {
    "strength": "--model.disparity.max_disparity_pct",
    "convergence": "--model.disparity.convergence",
    "layouts": "--model.output.layouts",
    "output_dir": "--model.output.dir",
    "generator": "--model.generator",
    "backbone": "--model.generator.init_args.backbone",
    "wan_checkpoint": "--model.wan_checkpoint",
    "vace_checkpoint": "--model.vace_checkpoint",
    "depth": "--model.depth",
    "depth_checkpoint": "--model.depth.init_args.checkpoint",
    "source": "--data.init_args.source",
    "start": "--data.init_args.start_time",
    "end": "--data.init_args.end_time",
    "max_fps": "--data.init_args.max_fps",
}
METHODS = {
    "auto": "the Wan2.1 fill on a CUDA GPU with Wan2.1 cached or downloadable, else fast",
    "fast": "the model-free fill (forward warp + background fill; no diffusion model, seconds per clip)",
    "wan": "the Wan2.1-T2V-1.3B fill (predict_wild: 50 steps; a GPU with ~24 GB, minutes per clip)",
    "wan-fast": "the few-step preset (predict_few_step: Wan2.1-T2V-14B + the lightx2v LoRA, 4 steps)",
    "vace": "the Wan2.1-VACE-1.3B fill (masked video-to-video)",
}
BASE_CONFIG = {"wan-fast": "predict_few_step"}  # every other method starts from predict_wild
DEPTH_NAMES = ("vda-s", "vda-b", "vda-l", "vda-metric-s", "vda-metric-b", "vda-metric-l")
LAYOUTS = ("right", "sbs", "sbs_half", "tb", "tb_half", "anaglyph", "vr180")
DEPTH_FILE_SUFFIXES = (".npy", ".npz")
WARP_FILL = {"class_path": "stereo_lit.generators.geometric.WarpFill", "init_args": {"fill": "background"}}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stereo-lit convert", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert videos (files, folders, globs) to stereo: depth -> disparity -> warp -> fill.\n"
        "Writes OUT/<video>/{right,sbs,anaglyph}.mp4 (with the source's audio). Weights are fetched on\n"
        "first use (or beforehand: stereo-lit download vda-s wan-1.3b).",
        epilog="methods:\n" + "\n".join(f"  {k:<9} {v}" for k, v in METHODS.items())
        + "\n\nthe same job as a config: add --print_config; then stereo-lit predict -c FILE\n"
        "any predict option after --: stereo-lit convert v.mp4 -- --model.depth.init_args.input_size 364",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders of videos, or globs (\"clips/*.mp4\")")
    p.add_argument("-o", "--output", default="outputs", help="output folder (default: outputs/)")
    p.add_argument("--method", default="auto", choices=list(METHODS), help="how the right view is filled (default: auto)")
    p.add_argument("--depth", default="vda-s", metavar="vda-s|vda-b|vda-l|FILE",
                   help="depth model short name (vda-b/vda-l: CC-BY-NC-4.0), a hub id, a VDA .pth, or a depth .npy/.npz "
                   "for a single input (default: vda-s, Apache-2.0)")
    p.add_argument("--strength", type=float, default=None, metavar="PCT", help="3D strength: largest disparity in %% of the width (default 2)")
    p.add_argument("--convergence", type=float, default=None, metavar="F",
                   help="screen plane: 0 = at infinity (everything pops out), 1 = at the nearest surface (default 0.5)")
    p.add_argument("--layout", default=None, metavar="L1,L2", help=f"outputs, comma-separated: {','.join(LAYOUTS)} (default right,sbs,anaglyph)")
    p.add_argument("--start", type=float, default=None, metavar="S", help="start time in seconds")
    p.add_argument("--end", type=float, default=None, metavar="S", help="end time in seconds")
    p.add_argument("--max-fps", type=float, default=None, metavar="F", help="drop frames above this rate")
    p.add_argument("--print_config", action="store_true", help="print the predict config this builds and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="every library warning and debug message")
    return p


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files and folders as given; globs expanded (sorted). Raises naming an input that matches nothing."""
    found: list[str] = []
    for item in inputs:
        if Path(item).expanduser().exists():
            found.append(str(Path(item).expanduser()))
        elif any(c in item for c in "*?["):
            matches = sorted(glob.glob(str(Path(item).expanduser()), recursive=True))
            if not matches:
                raise SystemExit(f"stereo-lit convert: {item!r} matches no file")
            found += matches
        else:
            raise SystemExit(f"stereo-lit convert: input {item!r} does not exist (tried {Path(item).expanduser().resolve()})")
    return found


def choose_method(method: str, cuda: bool | None = None) -> tuple[str, str]:
    """``(method, why)``: ``auto`` becomes ``wan`` on a CUDA GPU with Wan2.1 cached or downloadable, else ``fast``."""
    if method != "auto":
        return method, "asked for"
    from stereo_lit.io.hub import MODELS, is_cached, is_offline

    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if not cuda:
        return "fast", "no CUDA GPU here, so the model-free fill (--method wan forces Wan2.1)"
    if is_cached("wan-1.3b"):
        return "wan", "a CUDA GPU and Wan2.1-T2V-1.3B in the Hugging Face cache"
    if not is_offline():
        return "wan", f"a CUDA GPU; Wan2.1-T2V-1.3B will be downloaded ({MODELS['wan-1.3b'].size}, Apache-2.0)"
    return "fast", "Wan2.1 is not in the cache and HF_HUB_OFFLINE is set (stereo-lit download wan-1.3b), so the model-free fill"


def depth_overrides(depth: str, n_inputs: int) -> list[tuple[str, Any]]:
    """The depth overrides: a VDA checkpoint (short name, hub id, .pth) or a precomputed depth file."""
    if depth.lower().endswith(DEPTH_FILE_SUFFIXES):
        if not Path(depth).expanduser().is_file():
            raise SystemExit(f"stereo-lit convert: --depth {depth}: no such depth file (tried {Path(depth).expanduser().resolve()})")
        if n_inputs != 1:
            raise SystemExit(f"stereo-lit convert: --depth {depth} is one video's depth, but {n_inputs} inputs were given")
        spec = {"class_path": "stereo_lit.depth.PrecomputedDepth", "init_args": {"path": str(Path(depth).expanduser())}}
        return [(KEYS["depth"], spec)]
    from stereo_lit.io.hub import MODELS

    model = MODELS.get(depth.lower())
    return [(KEYS["depth_checkpoint"], model.repo if model is not None and model.file else depth)]


def build_overrides(opts: argparse.Namespace, method: str, sources: list[str]) -> list[tuple[str, Any]]:
    """The ``(predict config key, value)`` pairs this conversion sets on its base config."""
    overrides: list[tuple[str, Any]] = [
        (KEYS["output_dir"], opts.output), (KEYS["source"], sources[0] if len(sources) == 1 else list(sources)),
    ]
    if method == "fast":
        overrides.append((KEYS["generator"], WARP_FILL))
    elif method == "vace":
        overrides += [(KEYS["backbone"], "vace"), (KEYS["vace_checkpoint"], "wan-vace-1.3b")]
    overrides += depth_overrides(opts.depth, len(sources))
    if opts.strength is not None:
        overrides.append((KEYS["strength"], float(opts.strength)))
    if opts.convergence is not None:
        overrides.append((KEYS["convergence"], float(opts.convergence)))
    if opts.layout:
        layouts = [x.strip() for x in opts.layout.split(",") if x.strip()]
        bad = [x for x in layouts if x not in LAYOUTS]
        if bad:
            raise SystemExit(f"stereo-lit convert: --layout {opts.layout}: unknown {', '.join(bad)}; expected some of {','.join(LAYOUTS)}")
        overrides.append((KEYS["layouts"], layouts))
    for flag, key in (("start", "start"), ("end", "end"), ("max_fps", "max_fps")):
        value = getattr(opts, flag)
        if value is not None:
            overrides.append((KEYS[key], float(value)))
    return overrides


def base_config(method: str) -> Path:
    """The shipped config a method starts from."""
    base = shipped_config(BASE_CONFIG.get(method, "predict_wild"))
    if base is None:
        raise SystemExit("stereo-lit convert: this install lacks the shipped configs (stereo_lit/configs)")
    return Path(base)


def build_args(opts: argparse.Namespace, method: str, sources: list[str], extra: list[str] = ()) -> list[str]:
    """The ``stereo-lit predict`` arguments of this conversion."""
    import json

    args = ["predict", "-c", str(base_config(method))]
    for key, value in build_overrides(opts, method, sources):
        args += [key, json.dumps(value) if isinstance(value, (dict, list)) else str(value)]
    args += list(extra)
    if opts.print_config:
        args.append("--print_config")
    return args


def runs_direct(method: str, extra: list[str], print_config: bool) -> bool:
    """Whether this conversion runs without Lightning (:mod:`stereo_lit.predict.direct`): the
    model-free fill with only this command's flags (``--`` predict options and ``--print_config``
    go through ``stereo-lit predict``; ``STEREO_LIT_DIRECT=0`` forces that path too)."""
    return method == "fast" and not extra and not print_config and os.environ.get("STEREO_LIT_DIRECT", "1") != "0"


def start_cut_detection(sources: list[str], opts: argparse.Namespace) -> None:
    """Start the shot-cut pass of the first video in a background thread
    (:func:`stereo_lit.io.cut_scan.prefetch`), on the timeline and at the size the converter's
    datamodule will ask for: the source's own (no ``--start``/``--end``/``--max-fps``; with those
    the depth source runs its own pass). Its decoder runs on the second core while Python imports
    torch on the first; anything unusual (a photo, an unreadable file) is left to the normal path."""
    if opts.start is not None or opts.end is not None or opts.max_fps is not None or not sources:
        return
    from stereo_lit.io.image_reader import is_image_file
    from stereo_lit.io.video_reader import probe_video
    from stereo_lit.io.cut_scan import prefetch

    path = sources[0]
    if is_image_file(path) or not Path(path).is_file():
        return
    try:
        info = probe_video(path)
    except Exception:  # noqa: BLE001 - the datamodule reports it, by name
        return
    prefetch(path, info.fps, (info.height, info.width))


#: BLAS thread pools that the model-free run keeps at one thread (unless the user sets them)
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS",)


def limit_blas_threads() -> None:
    """One OpenBLAS thread for the direct (model-free) run, unless the variable is set already.

    Nothing it computes goes through BLAS, but NumPy's and SciPy's OpenBLAS (SciPy's loaded by
    numba) each start a pool of threads that spin after loading: 0.6% of a 1080p convert's CPU
    in ``perf`` (``blas_thread_server``); CPU 36.0 -> 35.3 s, speed 0.777 -> 0.786 against the
    floor (medians of 4 interleaved rounds). Takes effect only before NumPy is imported."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def main(argv: list[str] | None = None) -> int:
    """``stereo-lit convert``; anything after ``--`` is passed to predict as it is (e.g.
    ``-- --model.depth.init_args.input_size 364``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    opts = parser().parse_args(argv)
    from stereo_lit import quiet

    quiet.install(opts.verbose)
    sources = expand_inputs(opts.inputs)
    method, why = choose_method(opts.method)
    args = build_args(opts, method, sources, extra)
    if runs_direct(method, extra, opts.print_config):
        limit_blas_threads()  # before NumPy is imported
        start_cut_detection(sources, opts)  # before torch is imported: decoding overlaps the imports
    if not opts.print_config:
        print(f"stereo-lit convert: method {method} ({why})", file=sys.stderr)
        from stereo_lit.commands.estimate import print_estimate

        print_estimate(sources, method, opts, file=sys.stderr)
    if runs_direct(method, extra, opts.print_config):  # the same job without importing Lightning
        from stereo_lit.predict.direct import apply_overrides, load_config, run_config

        config = apply_overrides(load_config(base_config(method)), build_overrides(opts, method, sources))
        return run_config(config)
    from stereo_lit.commands.jobs import run_job

    run_job(args)
    return 0
