"""No block of 10 or more lines stands twice inside ``stereo_lit/``, word for word or in the same shape with
other names, strings and numbers (issue 19, item 3).

The check is a small token-shape comparison (``tokenize``) so that it runs wherever the tests run; it
follows the ``duplicates`` command of the developers' machines: blank lines, comments, imports and lines
of lone punctuation do not count, and every name, string and number is one placeholder. When that
command is on PATH, a second test runs it too.
"""

from __future__ import annotations

import io
import keyword
import shutil
import subprocess
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stereo_lit"
MIN_LINES = 10
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def shape_lines(source: str) -> list[tuple[int, str]]:
    """``(line number, shape)`` of each line that counts: names -> ``N``, strings -> ``S``, numbers -> ``0``,
    keywords and operators kept; a line holds the tokens that start on it."""
    shapes: dict[int, list[str]] = {}
    statement: list[int] = []  # the lines of the current logical line
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NEWLINE:
            if statement and shapes.get(statement[0], [""])[0] in ("import", "from"):
                for line in statement:  # a whole (parenthesised) import
                    shapes.pop(line, None)
            statement = []
        if tok.type in _SKIP:
            continue
        if tok.start[0] not in statement:
            statement.append(tok.start[0])
        if tok.type == tokenize.NAME:
            text = tok.string if keyword.iskeyword(tok.string) or tok.string in ("self", "cls") else "N"
        elif tok.type == tokenize.STRING or tok.type >= getattr(tokenize, "FSTRING_START", 10**6):
            text = "S"
        elif tok.type == tokenize.NUMBER:
            text = "0"
        else:
            text = tok.string
        shapes.setdefault(tok.start[0], []).append(text)
    out = []
    for line, toks in sorted(shapes.items()):
        if toks[0] in ("import", "from") or all(t in ")]}:,([{S0-." for t in toks):
            continue  # imports, lone punctuation, docstrings and lines of data (literals only)
        out.append((line, " ".join(_merge_strings(toks))))
    return out


def _merge_strings(toks: list[str]) -> list[str]:
    """f-string pieces and implicit concatenation -> one ``S``."""
    merged: list[str] = []
    for tok in toks:
        if tok == "S" and merged[-1:] == ["S"]:
            continue
        merged.append(tok)
    return merged


def repeated_blocks(files: dict[str, str], min_lines: int = MIN_LINES) -> list[str]:
    """``a.py:10-24 ~ b.py:40-54`` for each pair of places sharing ``min_lines`` or more consecutive counted lines."""
    counted = {name: shape_lines(source) for name, source in sorted(files.items())}
    seen: dict[tuple[str, ...], tuple[str, int]] = {}
    runs: dict[tuple[str, str, int], list[int]] = {}  # (file a, file b, offset) -> [first, last] index in b
    for name, lines in counted.items():
        for i in range(len(lines) - min_lines + 1):
            window = tuple(shape for _, shape in lines[i : i + min_lines])
            first, j = seen.setdefault(window, (name, i))
            if (first, j) != (name, i) and not (first == name and j + min_lines > i):  # not an overlapping run
                run = runs.setdefault((first, name, i - j), [i, i])
                run[1] = i
    out = []
    for (a, b, offset), (start, end) in sorted(runs.items()):
        la, lb = counted[a], counted[b]
        out.append(f"{a}:{la[start - offset][0]}-{la[end - offset + min_lines - 1][0]} ~ "
                   f"{b}:{lb[start][0]}-{lb[end + min_lines - 1][0]}")
    return out


def test_the_shape_check_finds_a_renamed_copy() -> None:
    block = "".join(f"    value_{i} = compute(x, {i}, 'a')\n" for i in range(MIN_LINES))
    renamed = block.replace("value_", "other_").replace("compute", "work").replace("'a'", "'b'")
    found = repeated_blocks({"a.py": f"def f(x):\n{block}", "b.py": f"def g(y):\n# a comment\n\n{renamed}"})
    assert found == ["a.py:1-11 ~ b.py:1-13"]
    shorter = "".join(renamed.splitlines(keepends=True)[1:])
    assert repeated_blocks({"a.py": f"def f(x):\n{block}", "b.py": f"def g(y, z=1):\n{shorter}"}) == []


def test_no_block_of_ten_lines_stands_twice_in_the_package() -> None:
    files = {str(p.relative_to(PACKAGE)): p.read_text(encoding="utf-8") for p in sorted(PACKAGE.rglob("*.py"))}
    found = repeated_blocks(files)
    assert not found, "the same block (or shape) stands twice; make one serve both:\n" + "\n".join(found)


@pytest.mark.skipif(shutil.which("duplicates") is None, reason="the duplicates command is not on PATH")
def test_the_duplicates_command_agrees() -> None:
    done = subprocess.run(["duplicates", "--repo", str(PACKAGE), "--min-lines", str(MIN_LINES), "--seconds", "60"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("no duplicates"), done.stdout
