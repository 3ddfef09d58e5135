"""The ``stereo-lit`` command: the Lightning jobs (fit/validate/test/predict) and the light commands.

    stereo-lit convert my_video.mp4                                  # the converter: one command
    stereo-lit predict -c predict_wild --data.init_args.source my_video.mp4
    stereo-lit test    -c eval_tartanair
    stereo-lit fit     -c lora_tartanair
    stereo-lit download vda-s wan-1.3b                               # prefetch weights by short name
    stereo-lit configs                                               # the shipped configs

Imports only what a subcommand needs, when it needs it: ``stereo-lit --help`` and the light
commands never load torch or Lightning (the jobs live in :mod:`stereo_lit.commands.jobs`).
"""

from __future__ import annotations

import importlib.util
import os
import sys

# OpenMP threads (torch's and numba's) sleep between parallel regions instead of spinning: a
# conversion runs decoding, the warp and three encoders at once, and GNU OpenMP's default spin
# took 16 of 82 CPU-seconds of a 70-frame 1080p conversion (48.6 s -> 37.3 s wall, quiet 2-core
# machine). Set before torch is imported; a user's own OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# torch's CPU tensors of 2 MB and more on transparent huge pages: the converter makes and frees
# frame-sized tensors every chunk, and each fresh 4 KB page faulted (1.8 million faults, about
# 2 s of system time in a 70-frame 1080p conversion; 0.8 million with this). Read by torch's
# allocator, so set before torch is imported; a user's own setting wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
from pathlib import Path
from typing import Any

from stereo_lit import quiet
from stereo_lit.commands.configs import config_summaries, format_rows, resolve_config_args
from stereo_lit.commands import configs as _configs

JOBS = {
    "fit": "LoRA fine-tuning of the Wan generator (configs lora_*)",
    "validate": "score every method on a validation split",
    "test": "score every method: TartanAir, stereo video, stereo image pairs (configs eval_*)",
    "predict": "convert your videos (or prompts) to stereo (configs predict_wild, predict_few_step, text_to_stereo)",
}
#: commands that are not Lightning jobs: name -> (module with ``main(argv)``, one line)
COMMANDS = {
    "convert": ("stereo_lit.commands.convert", "your videos to stereo in one command: stereo-lit convert my_video.mp4 [-o outputs/]"),
    "download": ("stereo_lit.commands.download", "prefetch weights by short name (vda-s, wan-1.3b, ...), printing each licence"),
    "configs": ("stereo_lit.commands.configs", "list the shipped configs (use one by name: -c predict_wild)"),
    "ui": ("stereo_lit.ui.app", "a local web page (Gradio) over predict: stereo-lit ui [--port 8000]"),
    "preview": ("stereo_lit.commands.preview", "one frame at several strengths x convergences, a labelled PNG grid"),
}
VERBOSE_FLAGS = ("-v", "--verbose")
#: names forwarded to :mod:`stereo_lit.commands.jobs` on first use (they import Lightning)
_JOB_NAMES = ("StereoLitCLI", "log_every_n_steps", "remove_empty_log_dir", "import_shipped_classes", "SHIPPED_CLASS_MODULES")


def configs_dir() -> Path | None:
    """The shipped configs (package data ``stereo_lit/configs``); None if the install lacks them."""
    return _configs.configs_dir()


def description() -> str:
    """The text of ``stereo-lit --help``: the jobs, the commands, the shipped configs, where to go next."""
    lines = ["Monocular video -> stereo video (depth, disparity warp, Wan2.1 fill), on Lightning.", "", "jobs:"]
    lines += [f"  {name:<9} {text}" for name, text in JOBS.items()]
    lines += ["", "commands:"]
    for name, (module, text) in COMMANDS.items():
        if name != "ui" or importlib.util.find_spec("gradio") is not None:
            lines.append(f"  {name:<9} {text}")
    folder = configs_dir()
    if folder is None:
        lines += ["", "configs: none found here (the repository's stereo_lit/configs/ folder holds one per job)"]
    else:
        lines += ["", f"configs ({folder}; -c NAME finds one by name):"]
        lines += format_rows(config_summaries(folder))
    lines += [
        "",
        "example: stereo-lit convert my_video.mp4   (research: stereo-lit predict -c predict_wild --data.init_args.source my_video.mp4)",
        "options of a job: stereo-lit predict --help; of a class: --model.generator.help WanStereoGenerator",
        "-v / --verbose (or STEREO_LIT_LOG_LEVEL=DEBUG): show every library warning and debug messages",
    ]
    return "\n".join(lines)


def usage() -> str:
    names = ",".join([*JOBS, *COMMANDS])
    return f"usage: stereo-lit [-h] {{{names}}} ...\n\n{description()}"


def build_cli(args: list[str] | None = None, run: bool = True, cli_class: Any = None) -> Any:
    """The LightningCLI object (``args``/``run`` for tests and scripts; ``-c NAME`` finds a shipped config)."""
    from stereo_lit.commands.jobs import build_cli as build

    return build(args, run=run, cli_class=cli_class, description=description())


def __getattr__(name: str) -> Any:  # PEP 562: the job classes load Lightning only when asked for
    if name in _JOB_NAMES:
        from stereo_lit.commands import jobs

        return getattr(jobs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def split_verbose(args: list[str]) -> tuple[list[str], bool]:
    """``args`` without ``-v`` / ``--verbose``, and whether one was there."""
    kept = [a for a in args if a not in VERBOSE_FLAGS]
    return kept, len(kept) != len(args)


def short_errors(run: Any, verbose: bool) -> Any:
    """``run()``, answering the errors a user fixes (weights not at hand) in their few lines, no
    traceback (``-v`` shows it). The one place for such handling (errors.UserError joins here)."""
    from stereo_lit.io.hub import HubUnavailableError

    try:
        return run()
    except HubUnavailableError as exc:
        if verbose:
            raise
        print(f"stereo-lit: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def main(args: list[str] | None = None) -> Any:
    """Entry point of the ``stereo-lit`` console script.

    Called without ``args`` (the console script), a mistake the user can fix is answered in a few
    lines without a traceback (:func:`stereo_lit.errors.run_with_short_errors`; ``-v`` shows it);
    ``main([...])`` raises, for tests and scripts.
    """
    if args is None:
        from stereo_lit.errors import run_with_short_errors

        argv = list(sys.argv[1:])
        return run_with_short_errors(lambda: main(argv), verbose=split_verbose(argv)[1])
    argv = list(args)
    if not argv or argv[0] in ("-h", "--help"):  # answered without importing torch or Lightning
        print(usage())
        raise SystemExit(0 if argv else 2)
    if argv[0] in COMMANDS:  # not a Lightning job: its own module's main(argv)
        module = importlib.import_module(COMMANDS[argv[0]][0])
        code = short_errors(lambda: module.main(argv[1:]), verbose=any(a in VERBOSE_FLAGS for a in argv))
        if isinstance(code, int) and code != 0:
            raise SystemExit(code)
        return None
    args, verbose = split_verbose(argv)
    quiet.install(verbose)
    from stereo_lit.commands.jobs import run_job

    return short_errors(lambda: run_job(resolve_config_args(args), description=description()), verbose)

if __name__ == "__main__":
    main()
