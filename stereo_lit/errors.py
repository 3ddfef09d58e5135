"""Short answers to mistakes a user can fix: a few lines naming the key, the value and what is expected.

:class:`UserError` is the exception for such a mistake (message only). :func:`run_with_short_errors`
runs a command and turns a user's mistake (a :class:`UserError`, a failed option validation
raised by this package, a config the parser refuses, a missing file) into at most
:data:`MAX_LINES` lines on stderr and exit status 2, without a traceback unless ``verbose``
(``-v``). Anything else (a bug) keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

MAX_LINES = 8  #: the most lines a short error prints (message, hint and the -v line together)
_PACKAGE = str(Path(__file__).resolve().parent)
_USER_TYPES = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError, PermissionError)
_NOISE = re.compile(r"^\s*(Does not validate against any of the Union subtypes|Given value|Subtypes:|Errors:|Given value type|- Expected a <class 'NoneType'>|- Not a valid subclass)")


_HINTS: list[Callable[[str], str | None]] = []


def register_hint(hint: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """Add ``hint(message) -> extra line or None`` to every short error (e.g. where an old key
    moved); a subpackage registers its own at import, so this module imports none of them."""
    _HINTS.append(hint)
    return hint


class UserError(Exception):
    """A mistake the user can fix (a wrong option value, a missing file): printed as its message
    alone, without a traceback unless ``-v``."""


class ShortArgumentError(argparse.ArgumentError, UserError):
    """The config parser refused a value (raised instead of jsonargparse's usage + exit; an
    ``ArgumentError``, as jsonargparse raises with ``exit_on_error=False``, so its own handlers still catch it)."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)

    def __str__(self) -> str:
        return self.message


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first (causes, then contexts)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _raised_here(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is this package's code (its own check)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(_PACKAGE)


def user_mistake(exc: BaseException) -> BaseException | None:
    """The exception whose message tells the user what to fix, or None when ``exc`` is a bug.

    A :class:`UserError` anywhere in the chain wins; then the innermost ``ValueError`` / missing-file
    error raised by this package's own checks; then the parser's own refusal.
    """
    chain = _chain(exc)
    for item in reversed(chain):
        if isinstance(item, UserError) and not isinstance(item, ShortArgumentError):
            return item
    for item in reversed(chain):
        if isinstance(item, _USER_TYPES) and _raised_here(item):
            return item
    for item in chain:
        if isinstance(item, ShortArgumentError):
            return item
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)) and getattr(exc, "filename", None):
        return exc  # a file the user named (opened by a library)
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:  # ENOSPC: disk full
        return exc
    return None


def short_message(exc: BaseException, limit: int = MAX_LINES - 1) -> list[str]:
    """The lines to print for ``exc``: the message without the parser's Namespace dumps and
    subtype lists, each line at most 300 characters, at most ``limit`` lines."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and getattr(exc, "filename", None) and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    hints = [h for h in (hint(text) for hint in _HINTS) if h]
    lines: list[str] = []
    for line in text.splitlines():
        if not line.strip() or _NOISE.match(line) or "Namespace(" in line:
            continue
        line = line.strip().removeprefix("- ")
        line = line if len(line) <= 300 else line[:297] + "..."
        if line not in lines:
            lines.append(line)
    lines = lines or [type(exc).__name__]
    room = limit - len(hints)
    if len(lines) > room:
        lines = lines[: room - 1] + [f"... ({len(lines) - room + 1} more lines with -v)"]
    return lines + hints


#: how many :func:`run_with_short_errors` calls are running (the parser patch acts only then)
_SHORT_PARSER_ERRORS = [0]


@contextmanager
def _parser_raises() -> Any:
    """jsonargparse parsers raise :class:`ShortArgumentError` instead of printing usage and exiting.

    jsonargparse is not imported here (about 55 ms of every command's start-up, which
    ``stereo-lit convert``'s direct run never needs): the module that imports it
    (:mod:`stereo_lit.commands.jobs`) calls :func:`patch_parser_errors`; a parser imported before
    this runs is patched now."""
    _SHORT_PARSER_ERRORS[0] += 1
    if "jsonargparse" in sys.modules:
        patch_parser_errors()
    try:
        yield
    finally:
        _SHORT_PARSER_ERRORS[0] -= 1


def patch_parser_errors() -> None:
    """Make jsonargparse's ``ArgumentParser.error`` raise :class:`ShortArgumentError` while a
    :func:`run_with_short_errors` call runs (its usage + exit otherwise). Once per process."""
    from jsonargparse import ArgumentParser

    original = ArgumentParser.error
    if getattr(original, "short_errors", False):
        return

    def error(self: Any, message: str, ex: Exception | None = None) -> None:
        if not _SHORT_PARSER_ERRORS[0] or getattr(self, "exit_on_error", True) is False:  # a caller that catches parse errors itself
            return original(self, message, ex)
        raise ShortArgumentError(message) from ex

    error.short_errors = True  # type: ignore[attr-defined]
    ArgumentParser.error = error  # type: ignore[method-assign]


def run_with_short_errors(fn: Callable[[], Any], verbose: bool = False, stream: TextIO | None = None) -> Any:
    """Run ``fn()``; a user's mistake prints ``stereo-lit: error: ...`` in at most :data:`MAX_LINES`
    lines and exits with status 2 (with ``verbose`` the traceback is raised as usual). Bugs are
    re-raised untouched."""
    stream = stream or sys.stderr
    try:
        with _parser_raises():
            return fn()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - sorted into mistakes and bugs below
        mistake = user_mistake(exc)
        if verbose or mistake is None:
            raise
        lines = short_message(mistake, MAX_LINES - 1)
        lines[0] = f"stereo-lit: error: {lines[0]}"
        lines.append("(run again with -v for the full traceback)")
        stream.write("\n".join(lines) + "\n")
        stream.flush()
        raise SystemExit(2) from None
