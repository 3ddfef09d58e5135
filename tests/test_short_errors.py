"""Short answers to config mistakes (issue 20, item 3): each listed mistake exits non-zero in at
most 8 lines naming the key, the value given and what is expected; no traceback unless ``-v``.

Most cases run in-process through :func:`stereo_lit.errors.run_with_short_errors` (what the
console script does); two go through the real ``stereo-lit`` console script.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stereo_lit.cli import main
from stereo_lit.errors import MAX_LINES, UserError, run_with_short_errors, short_message
from test_video_reader import write_test_clip

REPO = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("stereo-lit")
CONFIGS = REPO / "stereo_lit" / "configs"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    video = tmp_path_factory.mktemp("short") / "clip.mp4"
    write_test_clip(video, num_frames=5, height=32, width=48)
    np.save(video.with_suffix(".npy"), np.ones((5, 32, 48), np.float32))
    return video


def _warp(clip: Path, *extra: str) -> list[str]:
    return ["predict", "-c", str(CONFIGS / "predict_wild.yaml"), "--model.generator", "stereo_lit.generators.geometric.WarpFill",
            "--model.depth", "null", "--data.init_args.source", str(clip), "--model.output.dir", str(clip.parent / "out"),
            "--trainer.accelerator", "cpu", *extra]


def _wan(clip: Path, *extra: str) -> list[str]:
    return ["predict", "-c", str(CONFIGS / "predict_wild.yaml"), "--model.depth", "null", "--data.init_args.source", str(clip),
            "--model.output.dir", str(clip.parent / "out"), "--trainer.accelerator", "cpu", *extra]


CASES = {  # name: (arguments, words the answer must hold: key, value given, what is expected)
    "window": (lambda c: _warp(c, "--data.init_args.window", "10"), ["data.window", "4k+1", "got 10"]),
    "end_time": (lambda c: _warp(c, "--data.init_args.start_time", "2", "--data.init_args.end_time", "1"),
                 ["data.end_time", "data.start_time", "got 1.0"]),
    "crf": (lambda c: _warp(c, "--model.output.encoder.crf", "99"), ["model.output.encoder.crf", "[0, 51]", "got 99"]),
    "scheduler": (lambda c: _wan(c, "--model.generator.init_args.sampling.scheduler", "foo"), ["sampling.scheduler", "unipc", "'foo'"]),
    "lora_rank": (lambda c: _wan(c, "--model.generator.init_args.lora.rank", "-1"), ["lora.rank", ">= 0", "got -1"]),
    "prompts": (lambda c: ["predict", "-c", str(CONFIGS / "text_to_stereo.yaml"), "--data.init_args.prompts", "[]"],
                ["data.init_args.prompts", "no prompt given"]),
    "on_error": (lambda c: _warp(c, "--data.init_args.on_error", "foo"), ["data.on_error", "'skip'", "'foo'"]),
    "layout": (lambda c: _warp(c, "--model.output.layouts", "[foo]"), ["model.output.layouts", "'sbs'", "'foo'"]),
    "dilation": (lambda c: _warp(c, "--model.disparity.edges.dilate_px", "[-1,0]"), ["edges.dilate_px", ">= 0", "(-1, 0)"]),
    "flat_key": (lambda c: _wan(c, "--model.generator.init_args.num_inference_steps", "4"),
                 ["num_inference_steps", "sampling.num_inference_steps", "migrate_config.py"]),
    "vace": (lambda c: _wan(c, "--model.generator.init_args.backbone", "vace"), ["model.vace_checkpoint"]),
}


def _short(args: list[str], verbose: bool = False) -> tuple[int, str]:
    stream = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        run_with_short_errors(lambda: main(args), verbose=verbose, stream=stream)
    return exit_info.value.code, stream.getvalue()


@pytest.mark.parametrize("name", list(CASES))
def test_a_config_mistake_gets_a_short_answer(name: str, clip: Path) -> None:
    args, words = CASES[name]
    code, text = _short(args(clip))
    assert code == 2, text
    assert 1 <= len(text.splitlines()) <= MAX_LINES, text
    assert "Traceback" not in text and "Namespace(" not in text, text
    for word in words:
        assert word in text, (word, text)


def test_verbose_keeps_the_traceback(clip: Path) -> None:
    with pytest.raises(ValueError, match="data.window must be 4k"):
        run_with_short_errors(lambda: main(CASES["window"][0](clip)), verbose=True, stream=io.StringIO())


def test_a_bug_keeps_its_traceback() -> None:
    def bug() -> None:
        raise KeyError("internal")

    with pytest.raises(KeyError):
        run_with_short_errors(bug, stream=io.StringIO())
    with pytest.raises(ZeroDivisionError):
        run_with_short_errors(lambda: 1 / 0, stream=io.StringIO())


def test_a_user_error_prints_its_message_alone() -> None:
    def mistake() -> None:
        raise UserError("model.output.dir out.txt is a file; a folder is needed")

    stream = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        run_with_short_errors(mistake, stream=stream)
    assert exit_info.value.code == 2
    assert stream.getvalue().splitlines()[0] == "stereo-lit: error: model.output.dir out.txt is a file; a folder is needed"
    assert len(short_message(ValueError("\n".join(f"line {i}" for i in range(50))))) <= MAX_LINES - 1


def _console(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]), HF_HUB_OFFLINE="1")
    return subprocess.run([str(EXE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_console_script_answers_in_a_few_lines(clip: Path) -> None:
    done = _console(*CASES["window"][0](clip), cwd=clip.parent)
    text = done.stdout + done.stderr
    assert done.returncode != 0 and len(text.splitlines()) <= MAX_LINES, text
    assert "data.window must be 4k+1" in text and "got 10" in text and "Traceback" not in text
    verbose = _console("-v", *CASES["window"][0](clip), cwd=clip.parent)
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr


def test_a_value_the_config_parser_refuses_gets_a_short_answer_from_the_console_script(clip: Path) -> None:
    """The parser's own refusal (not this package's check), in a fresh process: jsonargparse is
    imported only by the job code, which patches its parser then (:func:`stereo_lit.errors.patch_parser_errors`)."""
    done = _console(*_warp(clip, "--data.init_args.window", "abc"), cwd=clip.parent)
    text = done.stdout + done.stderr
    assert done.returncode == 2 and len(text.splitlines()) <= MAX_LINES, text
    assert text.startswith("stereo-lit: error:") and "window" in text and "abc" in text and "usage:" not in text


@pytest.mark.parametrize("command,flag", [("preview", "--out"), ("ui", "--output-dir")])
def test_preview_and_ui_need_a_folder(command: str, flag: str, clip: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    args = [command, str(clip), flag, str(a_file)] if command == "preview" else [command, flag, str(a_file)]
    stream = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        sys_stderr, sys.stderr = sys.stderr, stream
        try:
            main(args)
        finally:
            sys.stderr = sys_stderr
    text = stream.getvalue()
    assert exit_info.value.code == 2 and "a folder is needed" in text and flag in text and str(a_file) in text
    assert len(text.splitlines()) <= MAX_LINES and "Traceback" not in text
