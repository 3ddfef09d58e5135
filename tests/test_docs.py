"""The docs cannot drift from the code (issue 19, item 5).

1. Every ``stereo-lit ...`` command in a fenced code block of README.md or docs/*.md (``.venv/bin/stereo-lit``
   too; ``\\`` line continuations joined; ``# comments`` dropped) goes through the real parser, in-process:

   - ``fit`` / ``validate`` / ``test`` / ``predict`` and ``convert``: ``stereo_lit.cli.main(argv + ["--print_config"])``
     must print a config and exit 0 (``--print_config`` parses and checks every option but opens no data,
     so placeholder paths such as ``my_video.mp4`` are fine; ``convert`` checks that its inputs exist, so it
     runs in a scratch folder holding empty files of the names the command gives);
   - ``preview`` and ``ui``: their own argparse ``parse_args`` (choices and types checked, nothing run);
   - any other subcommand (``download``, ``configs``): it must exist, and every ``--flag`` and every bare
     word after it must appear in its ``--help`` (for ``download``, or in ``download --list``: the model names).

   A command is skipped only when its line, or the line above it, carries ``# needs: REASON`` or
   ``# docs-test: skip REASON``, or when ``<!-- docs-test: skip REASON -->`` stands right above its code
   block; each skip is a pytest skip with the reason (``pytest -rs`` lists them), so they are counted.
2. The layout map of docs/development.md (between ``<!-- layout-map -->`` and ``<!-- /layout-map -->``)
   names exactly the subpackages of ``stereo_lit/`` (folders with ``__init__.py``) and its top-level modules.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import re
import shlex
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PACKAGE = REPO / "stereo_lit"

LIGHTNING_JOBS = {"fit", "validate", "test", "predict"}
#: subcommands whose ``--print_config`` parses everything and runs nothing
PRINT_CONFIG_COMMANDS = LIGHTNING_JOBS | {"convert"}
#: subcommands whose names are listed by a flag that does nothing else (checked besides ``--help``)
LISTING = {"download": "--list"}
#: subcommands with an argparse ``parse_args(argv)`` that parses without running
PARSE_ARGS = {"preview": "stereo_lit.commands.preview", "ui": "stereo_lit.ui.app"}

FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "zsh"}
COMMAND_START = re.compile(r"^(?:\$\s+)?(?:\S*/)?stereo-lit(?:\s|$)")
SKIP_LINE = re.compile(r"#\s*(?:needs:|docs-test:\s*skip)\s*(?P<reason>.*\S)")
SKIP_BLOCK = re.compile(r"<!--\s*docs-test:\s*skip\s+(?P<reason>.*?)\s*-->")


@dataclass(frozen=True)
class DocCommand:
    """One ``stereo-lit`` command line of the docs: where it is, its arguments, and why it is skipped (if so)."""

    file: str
    line: int
    argv: tuple[str, ...]  # after ``stereo-lit``
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}:{' '.join(self.argv[:2])}"


def _logical_lines(block: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """``(first line number, joined text, the physical line above it)`` with ``\\`` continuations joined."""
    out: list[tuple[int, str, str]] = []
    above, start, parts = "", None, []
    previous = ""
    for number, text in block:
        if start is None:
            start, above = number, previous
        stripped = text.rstrip()
        if stripped.endswith("\\"):
            parts.append(stripped[:-1])
        else:
            parts.append(stripped)
            out.append((start, " ".join(p.strip() for p in parts), above))
            start, parts = None, []
        previous = text
    if parts:
        out.append((start or 0, " ".join(p.strip() for p in parts), above))
    return out


def extract_commands(path: Path) -> list[DocCommand]:
    """Every ``stereo-lit`` command in the shell code blocks of the markdown file ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name
    commands: list[DocCommand] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match.group(1), match.group(2).lower()
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        block_skip = SKIP_BLOCK.search(before)
        block: list[tuple[int, str]] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence[:3]):
            block.append((i + 1, lines[i]))
            i += 1
        i += 1  # the closing fence
        if lang not in SHELL_LANGS:
            continue
        for number, text, above in _logical_lines(block):
            body = text.strip()
            if not COMMAND_START.match(body):
                continue
            skip = SKIP_LINE.search(body) or (SKIP_LINE.search(above) if above.strip().startswith("#") else None)
            reason = skip.group("reason") if skip else (block_skip.group("reason") if block_skip else None)
            tokens = shlex.split(body.removeprefix("$ "), comments=True)
            commands.append(DocCommand(name, number, tuple(tokens[1:]), reason))
    return commands


ALL_COMMANDS = [c for path in DOC_FILES for c in extract_commands(path)]


@contextlib.contextmanager
def _isolated_cli():
    """Run ``stereo_lit.cli.main`` in-process without leaving its logging / warning filters behind."""
    pkg_logger = logging.getLogger("stereo_lit")
    level, handlers = pkg_logger.level, list(pkg_logger.handlers)
    with warnings.catch_warnings():
        try:
            yield
        finally:
            from stereo_lit import quiet

            quiet.uninstall()
            pkg_logger.setLevel(level)
            pkg_logger.handlers[:] = handlers


def run_main(argv: list[str]) -> tuple[int | str | None, str]:
    """``(exit code, stdout)`` of ``stereo_lit.cli.main(argv)`` run in this process; a nonzero exit
    code comes with the last lines the parser wrote to stderr (why it refused)."""
    from stereo_lit.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with _isolated_cli(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exc:
            code = exc.code
    if code not in (0, None):
        code = f"{code}: " + " | ".join(err.getvalue().strip().splitlines()[-3:])
    return code, out.getvalue()


#: what a placeholder input of a doc command looks like (a video, photo, depth file or list; or a folder ``x/``)
PLACEHOLDER_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".jpg", ".jpeg", ".png", ".webp", ".npy", ".npz", ".txt")


def placeholder_paths(args: list[str] | tuple[str, ...]) -> list[str]:
    """The relative paths among ``args`` that name an input file (by suffix) or a folder (``name/``)."""
    return [
        a for a in args
        if not a.startswith(("-", "/", "~")) and (a.lower().endswith(PLACEHOLDER_SUFFIXES) or a.endswith("/"))
    ]


@contextlib.contextmanager
def placeholder_inputs(args: list[str]):
    """A scratch working folder holding an empty file (or folder) for every input path ``args`` name."""
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
        for path in placeholder_paths(args):
            if path.endswith("/"):
                Path(path).mkdir(parents=True, exist_ok=True)
            else:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).touch()
        yield


def check_print_config(args: list[str]) -> None:
    """``stereo-lit *args --print_config`` exits 0 and prints a YAML config (a help request: prints and exits 0)."""
    help_request = any(a in ("-h", "--help") or a.endswith(".help") for a in args)
    given = args if help_request or "--print_config" in args else [*args, "--print_config"]
    code, text = run_main(given)
    assert code in (0, None), f"`stereo-lit {' '.join(given)}` exited {code}"
    assert text.strip(), f"`stereo-lit {' '.join(given)}` printed nothing"
    if not help_request:
        assert isinstance(yaml.safe_load(text), dict), f"`stereo-lit {' '.join(given)}` printed no YAML config"


def check_command(argv: tuple[str, ...]) -> None:
    """Raise AssertionError (or the parser's error) when ``stereo-lit *argv`` does not parse."""
    args = [a for a in argv if a not in ("-v", "--verbose")]
    assert args, "a bare `stereo-lit`: write `stereo-lit --help`"
    sub = args[0]
    if sub in ("-h", "--help"):
        code, text = run_main(["--help"])
        assert code in (0, None) and "predict" in text, f"`stereo-lit --help` exited {code}"
    elif sub == "convert":  # it checks that its inputs exist: empty files of those names, in a scratch folder
        with placeholder_inputs(args[1:]):
            check_print_config(args)
    elif sub in PRINT_CONFIG_COMMANDS:
        check_print_config(args)
    elif sub in PARSE_ARGS and not any(a in ("-h", "--help") for a in args):
        module = importlib.import_module(PARSE_ARGS[sub])
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                module.parse_args(list(args[1:]))
            except SystemExit as exc:
                raise AssertionError(f"`stereo-lit {' '.join(args)}` does not parse: {err.getvalue().strip()}") from exc
    else:
        code, text = run_main([sub, "--help"])
        assert code in (0, None) and text.strip(), f"`stereo-lit {sub} --help` exited {code}: is `{sub}` a subcommand?"
        words = re.findall(r"[\w.-]+", text)
        if sub in LISTING:  # the names a command takes, listed without doing anything (download --list)
            code, listed = run_main([sub, LISTING[sub]])
            words += re.findall(r"[\w.-]+", listed) if code in (0, None) else []
        missing = [a.split("=")[0] for a in args[1:]]
        missing = [a for a in missing if a not in ("-h", "--help") and a not in words]
        assert not missing, f"`stereo-lit {sub} --help` does not mention {missing}"


def test_the_docs_hold_commands() -> None:
    """The extraction finds the README's commands (an empty list would make every other test pass)."""
    readme = [c for c in ALL_COMMANDS if c.file == "README.md"]
    assert len(readme) >= 6, f"found only {len(readme)} stereo-lit commands in README.md"
    assert {c.argv[0] for c in ALL_COMMANDS} >= {"convert", "predict", "test", "fit", "ui"}


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: c.id)
def test_doc_command_parses(command: DocCommand) -> None:
    if command.skip is not None:
        pytest.skip(f"marked in {command.file}:{command.line}: {command.skip}")
    check_command(command.argv)


def test_extraction_joins_continuations_and_reads_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text `stereo-lit inline` is not a command\n"
        "```bash\n"
        "# comment\n"
        ".venv/bin/stereo-lit predict -c a.yaml \\\n"
        "  --data.source 'my video.mp4'   # trailing comment\n"
        "stereo-lit fit -c b.yaml  # needs: a GPU\n"
        "# docs-test: skip needs weights\n"
        "stereo-lit test -c c.yaml\n"
        "```\n"
        "<!-- docs-test: skip a block -->\n"
        "```\n"
        "stereo-lit ui\n"
        "```\n"
        "```python\n"
        "stereo-lit predict  # not shell\n"
        "```\n"
    )
    found = extract_commands(page)
    assert [(c.line, c.argv, c.skip) for c in found] == [
        (4, ("predict", "-c", "a.yaml", "--data.source", "my video.mp4"), None),
        (6, ("fit", "-c", "b.yaml"), "a GPU"),
        (8, ("test", "-c", "c.yaml"), "needs weights"),
        (12, ("ui",), "a block"),
    ]


def test_a_broken_command_fails() -> None:
    """The check is not a rubber stamp: an unknown option of a real job is refused."""
    with pytest.raises((AssertionError, SystemExit)):
        check_command(("predict", "-c", "stereo_lit/configs/predict_wild.yaml", "--model.no_such_option", "1"))
    with pytest.raises((AssertionError, SystemExit)):
        check_command(("preview", "clip.mp4", "--layout", "no_such_layout"))
    # the --help check (used for subcommands without a dry run): known flags pass, an unknown one fails
    check_command(("preview", "--help", "--strengths", "--depth-checkpoint"))
    with pytest.raises(AssertionError, match="does not mention"):
        check_command(("preview", "--help", "--no-such-flag"))


# ----------------------------------------------------------------------------- layout map

LAYOUT_START, LAYOUT_END = "<!-- layout-map -->", "<!-- /layout-map -->"
MAP_ENTRY = re.compile(r"^[-*]\s+`(?P<name>[\w.]+/?)`")  # top-level list items only


def layout_map_names(text: str) -> list[str]:
    """The names of the layout map's top-level list items (``- `io/` ...``, ``- `cli.py` ...``), in order;
    indented items (a subpackage's files) are detail, not entries."""
    if LAYOUT_START not in text or LAYOUT_END not in text:
        raise AssertionError(f"docs/development.md has no {LAYOUT_START} ... {LAYOUT_END} section")
    section = text.split(LAYOUT_START, 1)[1].split(LAYOUT_END, 1)[0]
    return [m.group("name") for line in section.splitlines() if (m := MAP_ENTRY.match(line))]


def package_units(package: Path = PACKAGE) -> set[str]:
    """``name/`` for every subpackage (a folder with ``__init__.py``), ``name.py`` for every top-level module."""
    subpackages = {f"{p.name}/" for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    return subpackages | modules


def test_layout_map_names_exactly_the_package() -> None:
    names = layout_map_names((REPO / "docs" / "development.md").read_text(encoding="utf-8"))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"docs/development.md's layout map lists {duplicates} twice"
    actual = package_units()
    assert set(names) == actual, (
        f"docs/development.md's layout map and stereo_lit/ differ: missing from the map {sorted(actual - set(names))}, "
        f"in the map but not in the package {sorted(set(names) - actual)}"
    )


def test_layout_map_reader_sees_a_change(tmp_path: Path) -> None:
    """A new subpackage or module shows up in :func:`package_units`; the map reader reads only its section."""
    (tmp_path / "stereo").mkdir()
    (tmp_path / "stereo" / "__init__.py").write_text("")
    (tmp_path / "assets").mkdir()  # no __init__.py: not a subpackage
    (tmp_path / "cli.py").write_text("")
    (tmp_path / "__init__.py").write_text("")
    assert package_units(tmp_path) == {"stereo/", "cli.py"}
    text = f"- `outside/` no\n{LAYOUT_START}\n- `stereo/` math\n  - `geometry.py` a file: detail\n* `cli.py` cli\n{LAYOUT_END}\n"
    assert layout_map_names(text) == ["stereo/", "cli.py"]


# ----------------------------------------------------------------------------- links

LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces -> ``-``."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {heading_anchor(line.lstrip("#")) for line in lines if re.match(r"^#{1,6} ", line)}


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path: Path) -> None:
    """Every relative link of a doc page names a file that exists, and a heading of it when it has ``#anchor``."""
    broken = []
    for match in LINK.finditer(path.read_text(encoding="utf-8")):
        target = match.group("target")
        if re.match(r"^[a-z]+:", target):  # http(s):, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        file = (path.parent / file_part).resolve() if file_part else path
        if not file.exists():
            broken.append(f"{target} (no file {file})")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no heading #{anchor} in {file.name})")
    assert not broken, f"{path.relative_to(REPO)}: broken links {broken}"


def test_heading_anchor_is_githubs() -> None:
    assert heading_anchor(" A web page instead of the terminal: `stereo-lit ui`") == "a-web-page-instead-of-the-terminal-stereo-lit-ui"
    assert heading_anchor("Fine-tuning (LoRA)") == "fine-tuning-lora"


def test_readme_is_a_first_screen_not_the_reference() -> None:
    """Issue 19 item 4: at most 250 lines, one picture (small), `convert` before the research commands."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250, f"README.md has {len(text.splitlines())} lines; move reference text to docs/"
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(pictures) == 1, f"README.md should show one picture, found {pictures}"
    assert (REPO / pictures[0]).stat().st_size <= 300 * 1024, f"{pictures[0]} is over 300 KiB"
    first = [c.argv[0] for c in ALL_COMMANDS if c.file == "README.md"][0]
    assert first == "convert", f"the README's first command is `stereo-lit {first}`, expected `stereo-lit convert`"
