"""Quiet by default: the known harmless warnings of Lightning and friends, filtered in one place.

Each filter names a message that does not apply to this package's runs:

- the ``litlogger`` / ``litmodels`` tips: advertisements, not about the run;
- ``isinstance(treespec, LeafSpec)``: a torch deprecation inside Lightning's own pytree code;
- ``IterableDataset has __len__``: the package's iterable datasets split their work per
  worker and per rank themselves, so the announced length is right;
- ``Couldn't infer the batch indices``: the prediction writer names outputs from the
  batch's own video paths and frame indices, never from Lightning's batch indices;
- ``Precision ... not supported by the model summary``: the size estimate is cosmetic;
- ``module(s) in eval mode``: the frozen base models (Wan, depth) are kept in eval on purpose;
- ``LightningCLI's args parameter``: :func:`stereo_lit.cli.main` passes the command line it
  has read (``-v`` removed) as ``args``.

``stereo-lit -v`` (or ``STEREO_LIT_LOG_LEVEL=DEBUG``) installs none of them and logs at DEBUG.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings

LOG_LEVEL_ENV = "STEREO_LIT_LOG_LEVEL"

# (warnings.filterwarnings message regex, category); matched from the start of the message
HARMLESS_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", Warning),
    (r"Your `IterableDataset` has `__len__` defined", Warning),
    (r"Couldn't infer the batch indices fetched from your dataloader", Warning),
    (r"Precision .* is not supported by the model summary", Warning),
    (r"Found \d+ module\(s\) in eval mode at the start of training", Warning),
    (r"LightningCLI's args parameter is intended to run from within Python", Warning),
)
# log records (Lightning's rank_zero_info) left out by default
HARMLESS_LOG_MESSAGES: tuple[str, ...] = (
    r".*try installing \[litlogger\]",
    r".*try installing \[litmodels\]",
)
_LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero", "lightning.pytorch")


class _DropMessages(logging.Filter):
    """Drops log records whose message matches one of ``patterns``."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__("stereo_lit.quiet")
        self._patterns = [re.compile(p, re.DOTALL) for p in patterns]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.match(message) for p in self._patterns)


_FILTER = _DropMessages(HARMLESS_LOG_MESSAGES)


def log_level_from_env(verbose: bool = False) -> int:
    """``logging.DEBUG`` when ``verbose`` or ``STEREO_LIT_LOG_LEVEL`` says so, else that level (INFO default).

    An unknown level name is an error naming the variable and the accepted names.
    """
    if verbose:
        return logging.DEBUG
    name = os.environ.get(LOG_LEVEL_ENV, "INFO").strip().upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        raise ValueError(f"{LOG_LEVEL_ENV}={name!r} is not a log level; use DEBUG, INFO, WARNING or ERROR")
    return level


def install(verbose: bool = False) -> int:
    """Set up the package's logging and, unless verbose / DEBUG, filter the harmless warnings.

    The ``stereo_lit`` logger prints its INFO status lines (VAE, writing, LoRA, timing) to
    stderr (when the root logger has no handler). Returns the log level used.
    """
    level = log_level_from_env(verbose)
    pkg = logging.getLogger("stereo_lit")
    pkg.setLevel(level)
    # a handler of our own only when nobody configured logging (a script or pytest keeps theirs)
    if not logging.getLogger().handlers and not any(getattr(h, "_stereo_lit", False) for h in pkg.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._stereo_lit = True  # type: ignore[attr-defined]
        pkg.addHandler(handler)
    if level <= logging.DEBUG:
        uninstall()
        return level
    for message, category in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    return level


def uninstall() -> None:
    """Show everything again (the log filters; warning filters added by :func:`install` are removed)."""
    for name in _LIGHTNING_LOGGERS:
        logging.getLogger(name).removeFilter(_FILTER)
    ours = {(m, c) for m, c in HARMLESS_WARNINGS}
    warnings.filters[:] = [
        f for f in warnings.filters
        if not (f[0] == "ignore" and f[1] is not None and (f[1].pattern, f[2]) in ours)
    ]
