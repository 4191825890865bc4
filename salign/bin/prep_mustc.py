"""Stage 1: validate a MuST-C corpus and write Kaldi data dirs ``<out>/<split>/``.

Usage::

    python -m salign.bin.prep_mustc --mustc_root ROOT --src en --tgt de \\
        [--splits train,dev,tst-COMMON,tst-HE] [--out data] [--version auto|v1|v2]

``ROOT`` (or env ``MUSTC_ROOT``) contains ``en-de/data/<split>/{wav,txt}`` or is the ``en-de`` dir itself.
Writes ``wav.scp segments utt2spk spk2utt utt2dur text.<src> text.<src>.tc text.<tgt>``; every split is validated
before anything is written, and a re-run with identical inputs is skipped.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Optional, Sequence

from salign.data.mustc import prepare
from salign.utils.io import InputError, run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--mustc_root", default=None, help="MuST-C root (default: env MUSTC_ROOT)")
    p.add_argument("--src", default="en", help="source language")
    p.add_argument("--tgt", required=True, help="target language, e.g. de")
    p.add_argument("--splits", default="train,dev,tst-COMMON,tst-HE", help="comma-separated splits")
    p.add_argument("--out", default="data", help="output dir; one Kaldi data dir per split")
    p.add_argument("--version", default="auto", choices=["auto", "v1", "v2"], help="MuST-C release")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run data preparation; return 0 on success (bad input raises InputError)."""
    args = get_parser().parse_args(argv)
    root = args.mustc_root or os.environ.get("MUSTC_ROOT")
    if not root:
        raise InputError("no MuST-C location given", fix="pass --mustc_root DIR or set MUSTC_ROOT")
    start = time.time()
    splits = [s.strip() for s in args.splits.split(",")]
    counts = prepare(root, args.src, args.tgt, splits, args.out, args.version)
    print(f"prep_mustc: {sum(counts.values())} segments written in {len(counts)} split(s), "
          f"{len(splits) - len(counts)} up to date, {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    run_cli(main)
