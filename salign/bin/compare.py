"""Put several trained systems side by side in one Markdown table (the comparison recipe's ``COMPARE.md``).

Usage::

    python -m salign.bin.compare --exp exp --out COMPARE.md \
        --methods "baseline contrastive adversarial ot stock_espnet" --command "cd egs/mini_mustc && ./compare.sh" \
        [--mt_exp exp/mt_train_mt_compare] [--lm_exp exp/mt_train_lm_compare] [--title ...] \
        [--note "a paragraph for the header" ...]

For each method TAG it reads ``EXP/st_TAG/decode_<task>_<set>/score/result.json``, ``EXP/st_TAG/gap/gap.json`` and
``EXP/st_TAG/train.log`` and writes one row (columns and rules: :mod:`salign.analysis.compare`). The file is written
atomically and also printed.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Optional, Sequence

from salign.analysis.compare import write_comparison
from salign.utils.io import run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options of compare."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", type=Path, default=Path("exp"), help="experiment dir holding st_<method>/")
    p.add_argument("--out", type=Path, default=Path("COMPARE.md"), help="Markdown file to write")
    p.add_argument("--methods", required=True, help="method tags (st_<tag> dirs), space- or comma-separated, "
                                                    "in row order")
    p.add_argument("--command", required=True, help="reproduce command printed under the table")
    p.add_argument("--title", default="Alignment methods side by side", help="document title")
    p.add_argument("--note", action="append", default=[], help="a paragraph for the header (repeatable)")
    p.add_argument("--test_set", default="tst-COMMON", help="test set of the BLEU/WER columns")
    p.add_argument("--train_set", default="train_subset", help="training-subset decode (\"is it learning?\")")
    p.add_argument("--mt_exp", type=Path, default=None, help="shared MT pre-training dir (its time is reported)")
    p.add_argument("--lm_exp", type=Path, default=None,
                   help="shared LM pre-training dir of the speech-LLM rows (its time is reported)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Optional[int]:
    """Entry point: write and print the comparison."""
    args = get_parser().parse_args(argv)
    methods = [m for m in re.split(r"[\s,]+", args.methods) if m]
    print(write_comparison(args.out, args.exp, methods, args.command, args.title, args.note, args.test_set,
                           args.train_set, args.mt_exp, args.lm_exp), end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
