"""The shipped configs (package data ``stereo_lit/configs``): found by name, listed one line each.

    stereo-lit configs                         # name and what it does, one line each
    stereo-lit predict -c predict_wild ...     # a bare name (or NAME.yaml) finds the shipped file

A path that exists always wins over a shipped name. Light module: no torch, no Lightning.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

CONFIG_FLAGS = ("-c", "--config")


def configs_dir() -> Path | None:
    """The shipped configs folder; None if the install lacks it."""
    folder = Path(__file__).resolve().parents[1] / "configs"
    return folder if folder.is_dir() and any(folder.glob("*.yaml")) else None


def summary(text: str) -> str:
    """The first sentence of the first comment block of a YAML file's ``text`` (whole, never cut).

    Comment lines are joined until a line ends a sentence (``.``) or the next one is an
    indented example (``#   stereo-lit ...``); then the text is cut after its first ``. ``.
    """
    parts: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            if parts:
                break
            continue
        body = line.lstrip("#")
        if parts and (body.startswith("   ") or not body.strip()):
            break
        parts.append(body.strip())
        if body.rstrip().endswith("."):
            break
    joined = " ".join(parts)
    end = joined.find(". ")
    return joined[: end + 1] if end >= 0 else joined


def config_summaries(folder: Path | None = None) -> list[tuple[str, str]]:
    """``(file name, summary)`` of every ``*.yaml`` in ``folder`` (default :func:`configs_dir`)."""
    folder = configs_dir() if folder is None else folder
    if folder is None:
        return []
    rows = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            rows.append((path.name, summary(path.read_text(encoding="utf-8"))))
        except OSError:
            rows.append((path.name, ""))
    return rows


def format_rows(rows: list[tuple[str, str]], indent: int = 2, name_width: int = 24, width: int = 100) -> list[str]:
    """One entry per config, its summary wrapped (not cut) under a hanging indent."""
    lines = []
    for name, text in rows:
        head = " " * indent + f"{name:<{name_width}} "
        lines += textwrap.wrap(text or "-", width=width, break_on_hyphens=False, initial_indent=head, subsequent_indent=" " * len(head)) or [head]
    return lines


def shipped_config(name: str) -> Path | None:
    """The shipped config ``name`` (``predict_wild`` or ``predict_wild.yaml``), or None."""
    folder = configs_dir()
    if folder is None or not name or "/" in name or "\\" in name:
        return None
    for candidate in (folder / name, folder / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    return None


def resolve_config_args(args: list[str]) -> list[str]:
    """``args`` with every ``-c NAME`` / ``--config NAME`` / ``--config=NAME`` that is not an
    existing file replaced by the shipped config of that name (unknown names are left for the
    parser, whose error names them)."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg in CONFIG_FLAGS and i + 1 < len(out):
            value, set_value = out[i + 1], (lambda v, i=i: out.__setitem__(i + 1, v))
        elif arg.startswith("--config="):
            value, set_value = arg.split("=", 1)[1], (lambda v, i=i: out.__setitem__(i, f"--config={v}"))
        else:
            continue
        if Path(value).expanduser().exists():
            continue
        found = shipped_config(value)
        if found is not None:
            set_value(str(found))
    return out


def main(argv: list[str] | None = None) -> int:
    """``stereo-lit configs``: each shipped config and what it does."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print("usage: stereo-lit configs\n\nLists the shipped configs; use one by name: stereo-lit predict -c predict_wild")
        return 0
    folder = configs_dir()
    if folder is None:
        print("stereo-lit configs: this install has no shipped configs (stereo_lit/configs is missing)", file=sys.stderr)
        return 1
    print(f"shipped configs ({folder}); use by name: stereo-lit predict -c predict_wild")
    for name, text in config_summaries(folder):
        print(f"  {Path(name).stem:<20} {text}")
    return 0
