#!/usr/bin/env python
"""Rewrite a stereo-lit config from the flat WanStereoGenerator options to the grouped ones.

    python scripts/migrate_generator_config.py stereo_lit/configs/my_eval.yaml [more.yaml ...]   # in place, .bak kept
    python scripts/migrate_generator_config.py --check my.yaml                        # exit 1 if it needs migrating

Until December 2026 the generator took about 30 flat options (``num_inference_steps: 50``,
``lora_rank: 16``...). They are now grouped: ``sampling:``, ``memory:`` and ``lora:``
(``stereo_lit/diffusion/options.py``). This script moves each flat key of every
``WanStereoGenerator`` ``init_args`` block into its group (as a flow mapping), keeping the
rest of the file, comments included, as it is. Only block-style YAML is rewritten.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from stereo_lit.diffusion.options import FLAT_OPTIONS as MOVES  # old flat key -> (group, new key)
from stereo_lit.diffusion.options import GROUPS as GROUP_ORDER

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][A-Za-z0-9_]*):\s*(?P<value>.*?)\s*$")


def migrate_text(text: str) -> tuple[str, int]:
    """``(new text, number of keys moved)``: flat generator keys moved into their groups."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    moved = 0
    i = 0
    pending_generator = False
    while i < len(lines):
        line = lines[i]
        out.append(line)
        if "WanStereoGenerator" in line:
            pending_generator = True
        match = _KEY.match(line)
        if pending_generator and match and match["key"] == "init_args" and match["value"] in ("", "{}"):
            pending_generator = False
            body_indent = None
            groups: dict[str, list[str]] = {}
            j = i + 1
            kept: list[str] = []
            while j < len(lines):
                inner = _KEY.match(lines[j])
                stripped = lines[j].strip()
                if stripped and not stripped.startswith("#"):
                    indent = len(lines[j]) - len(lines[j].lstrip())
                    if indent <= len(match["indent"]):
                        break
                    body_indent = indent if body_indent is None else body_indent
                    if inner and indent == body_indent and inner["key"] in MOVES and inner["value"]:
                        value = inner["value"].split(" #")[0].strip()
                        group, new_key = MOVES[inner["key"]]
                        groups.setdefault(group, []).append(f"{new_key}: {value}")
                        moved += 1
                        j += 1
                        continue
                kept.append(lines[j])
                j += 1
            pad = " " * (body_indent if body_indent is not None else len(match["indent"]) + 2)
            # the groups go after the last kept key line of the block (before trailing blank lines / comments)
            last = max((k for k, text_line in enumerate(kept) if text_line.strip() and not text_line.strip().startswith("#")),
                       default=-1)
            grouped = [f"{pad}{g}: {{{', '.join(groups[g])}}}\n" for g in GROUP_ORDER if g in groups]
            out.extend(kept[: last + 1] + grouped + kept[last + 1 :])
            i = j
            continue
        i += 1
    return "".join(out), moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", type=Path, help="YAML files to rewrite in place (a .bak copy is kept)")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 when a file needs migrating")
    args = parser.parse_args(argv)
    needs = 0
    for path in args.configs:
        if not path.is_file():
            parser.error(f"{path}: no such file")
        new, moved = migrate_text(path.read_text())
        if not moved:
            print(f"{path}: up to date")
            continue
        needs += 1
        if args.check:
            print(f"{path}: {moved} flat generator option(s) to move into sampling/memory/lora")
            continue
        shutil.copy2(path, path.with_suffix(path.suffix + ".bak"))
        path.write_text(new)
        print(f"{path}: moved {moved} option(s) (old file kept as {path.name}.bak)")
    return 1 if args.check and needs else 0


if __name__ == "__main__":
    sys.exit(main())
