"""``stereo-lit download NAME...``: prefetch weights into the Hugging Face cache, printing each licence.

    stereo-lit download vda-s wan-1.3b        # short names (stereo-lit download --list)
    stereo-lit download ORG/NAME              # any hub repository (whole snapshot)

Later runs find them by hub id or short name without network (``HF_HUB_OFFLINE=1`` works).
"""

from __future__ import annotations

import argparse
import sys

from stereo_lit.io.hub import MODELS, HubUnavailableError, fetch, parse_id


def listing() -> str:
    """One line per short name: repository (file), licence, size, what it is."""
    rows = []
    for model in MODELS.values():
        where = model.repo + (f" ({model.file})" if model.file else "")
        rows.append(f"  {model.name:<13} {model.licence:<13} {model.size:<10} {where}\n  {'':<13} {model.what}")
    return "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stereo-lit download", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fetch weights into the Hugging Face cache (HF_HOME), printing each licence.",
        epilog="names:\n" + listing(),
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="short name (vda-s, wan-1.3b, ...) or hub repository id ORG/NAME")
    p.add_argument("--list", action="store_true", help="list the short names and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.list or not args.names:
        print("names:\n" + listing())
        return 0 if args.list else 2
    failed = []
    for name in args.names:
        parsed = parse_id(name)
        if parsed is None:
            print(f"stereo-lit download: {name!r} is neither a short name ({', '.join(MODELS)}) nor a hub id ORG/NAME",
                  file=sys.stderr)
            failed.append(name)
            continue
        repo, file, model = parsed
        licence = model.licence if model else "see the model card"
        print(f"{name}: {repo}{f' ({file})' if file else ''} - licence {licence}" + (f", {model.size}" if model else ""))
        try:
            path = fetch(repo, file, model, option=f"download {name}")
        except HubUnavailableError as exc:
            print(str(exc), file=sys.stderr)
            failed.append(name)
            continue
        print(f"  -> {path}")
    if failed:
        print(f"stereo-lit download: not fetched: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
