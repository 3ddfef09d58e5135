#!/usr/bin/env python
"""Rewrite a stereo-lit config from the flat options to the grouped ones (module and generator).

    python scripts/migrate_config.py my_predict.yaml [more.yaml ...]   # in place, a .bak copy kept
    python scripts/migrate_config.py --check my.yaml                   # only report; exit 1 if one needs it

Until December 2026 ``model:`` took flat keys (``output_dir``, ``layouts``, ``max_disparity_pct``...)
and ``WanStereoGenerator`` about 30 more (``num_inference_steps``, ``lora_rank``...). Both are grouped now:
``model.disparity/output/evaluation/fit`` (``stereo_lit/options.py``, :data:`MOVED_MODULE_KEYS`) and the
generator's ``sampling/memory/lora`` (``stereo_lit/diffusion/options.py``, ``FLAT_OPTIONS``). Each flat key
of the ``model:`` block and of every ``WanStereoGenerator`` ``init_args`` block moves, with its value, its
comments and the lines below it, into a block of its group; the rest of the file stays as it is. Running
it again changes nothing. Flow-style mappings (``model: {layouts: [sbs]}``) are not rewritten: the script
names what is left to move by hand.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

import yaml

from stereo_lit.diffusion.options import FLAT_OPTIONS
from stereo_lit.options import MOVED_MODULE_KEYS, moved_keys_in_args

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?:\s+(?P<value>.*?))?\s*$")
MODULE_MOVES = {old: tuple(new.split(".", 1)) for old, new in MOVED_MODULE_KEYS.items()}
SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _is_code(line: str) -> bool:
    return bool(line.strip()) and not line.strip().startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _regroup(body: list[str], moves: dict[str, tuple[str, str]], where: str) -> tuple[list[str], int]:
    """The lines of one mapping's body with each key of ``moves`` under its group, the group placed where its
    first moved key stood (or at the end of the group when the file has it already); (lines, keys moved)."""
    code = [i for i, line in enumerate(body) if _is_code(line)]
    if not code:
        return body, 0
    base = _indent(body[code[0]])
    starts = [i for i in code if _indent(body[i]) == base and _KEY.match(body[i])]
    # items: the comment lines just above a key (at its indent) go with it; the lines below it until the next item are its value
    bounds = []
    for n, start in enumerate(starts):
        lead = start
        while lead > (starts[n - 1] if n else 0) and body[lead - 1].strip().startswith("#") and _indent(body[lead - 1]) == base:
            lead -= 1
        bounds.append(lead)
    items = [body[b: (bounds[n + 1] if n + 1 < len(bounds) else len(body))] for n, b in enumerate(bounds)]
    head = body[: bounds[0]] if bounds else body
    keys = [_KEY.match(body[s])["key"] for s in starts]
    groups: dict[str, list[str]] = {}
    for key, item in zip(keys, items):
        if key not in moves:
            continue
        group, new = moves[key]
        moved = []
        for line in _strip_tail(item):
            match = _KEY.match(line)
            if match and _indent(line) == base and match["key"] == key:
                line = f"{match['indent']}{new}:{line[len(match['indent']) + len(key) + 1:]}"
            moved.append("  " + line if line.strip() else line)
        groups.setdefault(group, []).extend(moved)
    if not groups:
        return body, 0
    pad = " " * base
    out, placed = list(head), set()
    for key, item in zip(keys, items):
        if key in groups:  # the group is already there, as a block: the moved keys go at its end
            value = _KEY.match(item[[i for i, line in enumerate(item) if _is_code(line)][0]])["value"]
            if value and not value.startswith("#"):
                names = [k for k in keys if k in moves and moves[k][0] == key]
                raise ValueError(f"{where}: {key}: {value} is a flow mapping; move {names} into it by hand")
            kept = _strip_tail(item)
            out += kept + groups[key] + item[len(kept):]
            placed.add(key)
        elif key in moves:
            group = moves[key][0]
            if group not in placed and group not in keys:
                out += [f"{pad}{group}:\n", *groups[group]]
                placed.add(group)
            out += item[len(_strip_tail(item)):]  # blank lines after a moved key stay where they were
        else:
            out += item
    return out, sum(1 for key in keys if key in moves)


def _strip_tail(item: list[str]) -> list[str]:
    """``item`` without its trailing blank lines."""
    end = len(item)
    while end > 1 and not item[end - 1].strip():
        end -= 1
    return item[:end]


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The first line after ``start`` that is code at ``indent`` or less (the end of a block's body)."""
    end = start + 1
    while end < len(lines) and not (_is_code(lines[end]) and _indent(lines[end]) <= indent):
        end += 1
    while end > start + 1 and not _is_code(lines[end - 1]) and _indent(lines[end - 1]) <= indent and lines[end - 1].strip():
        end -= 1  # a comment at the parent's indent belongs to what follows
    return end


def migrate_text(text: str, name: str = "<config>") -> tuple[str, int]:
    """``(new text, number of keys moved)``: flat module keys of each ``model:`` block, then the flat
    keys of each ``WanStereoGenerator`` ``init_args`` block, moved into their groups."""
    text, moved = _migrate_blocks(text, name, MODULE_MOVES, _is_model_block)
    text, generator_moved = _migrate_blocks(text, name, FLAT_OPTIONS, _is_generator_block)
    return text, moved + generator_moved


def _is_model_block(line: str, key: str, state: dict) -> bool:
    """``model:`` at the top, or in a subcommand's section (``predict:\n  model:``)."""
    if _indent(line) == 0:
        state["parent"] = key
    return key == "model" and (_indent(line) == 0 or state.get("parent") in SUBCOMMANDS)


def _is_generator_block(line: str, key: str, state: dict) -> bool:
    """The ``init_args:`` that follows a ``WanStereoGenerator`` class path."""
    if "WanStereoGenerator" in line:
        state["generator"] = True
    if key == "init_args" and state.get("generator"):
        state["generator"] = False
        return True
    return False


def _migrate_blocks(text: str, name: str, moves: dict, opens: Callable[[str, str, dict], bool]) -> tuple[str, int]:
    """Every block that ``opens(line, key, state)`` accepts, regrouped by :func:`_regroup`."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    moved, i, state = 0, 0, {}
    while i < len(lines):
        line, match = lines[i], _KEY.match(lines[i])
        if _is_code(line) and match and opens(line, match["key"], state) and not (match["value"] or "").split("#")[0].strip():
            end = _block_end(lines, i, _indent(line))
            body, n = _regroup(lines[i + 1: end], moves, f"{name}:{i + 1}")
            out += [line, *body]
            moved, i = moved + n, end
            continue
        if _is_code(line) and "WanStereoGenerator" in line and not match:
            opens(line, "", state)  # a `- class_path: ...` list item
        out.append(line)
        i += 1
    return "".join(out), moved


def left_by_hand(text: str) -> list[str]:
    """Old keys a rewritten text still holds (flow style), as the CLI would name them."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    return moved_keys_in_args(config) if isinstance(config, dict) else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", type=Path, help="YAML files to rewrite in place (a .bak copy is kept)")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 when a file needs migrating")
    args = parser.parse_args(argv)
    needs = failed = 0
    for path in args.configs:
        if not path.is_file():
            parser.error(f"{path}: no such file")
        try:
            new, moved = migrate_text(path.read_text(encoding="utf-8"), str(path))
        except ValueError as exc:
            print(f"{exc}", file=sys.stderr)
            failed += 1
            continue
        left = left_by_hand(new)
        if moved and not args.check:
            shutil.copy2(path, path.with_suffix(path.suffix + ".bak"))
            path.write_text(new, encoding="utf-8")
            print(f"{path}: moved {moved} option(s) into their groups (old file kept as {path.name}.bak)")
        elif moved:
            print(f"{path}: {moved} flat option(s) to move into their groups")
        needs += bool(moved)
        failed += bool(left)
        for line in left:
            print(f"{path}: in flow style, move by hand: {line.split(' (run')[0]}")
        if not moved and not left:
            print(f"{path}: up to date")
    return 1 if failed or (args.check and needs) else 0


if __name__ == "__main__":
    sys.exit(main())
