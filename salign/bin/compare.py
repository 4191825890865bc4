"""Put several trained systems side by side in one Markdown table (the comparison recipe's ``COMPARE.md``).

Usage::

    python -m salign.bin.compare --exp exp --out COMPARE.md \
        --methods "baseline contrastive adversarial adversarial_official ot stock_espnet" \
        --command "cd egs/mini_mustc && ./compare.sh" \
        [--test_sets "tst-COMMON tst-HE"] [--n_bootstrap 1000] [--seed 12345] \
        [--mt_exp exp/mt_train_mt_compare] [--asr_exp exp/asr_train_asr_compare] [--lm_exp exp/mt_train_lm_compare] \
        [--title ...] \
        [--note "a paragraph for the header" ...]

For each method TAG it reads ``EXP/st_TAG/decode_<task>_<set>/score/result.json``, ``EXP/st_TAG/gap/gap.json`` and
``EXP/st_TAG/train.log`` and writes one row (columns and rules: :mod:`salign.analysis.compare`): per test set the ST
BLEU with its bootstrap 95% interval and the paired-bootstrap p-value against the row's baseline (computed from the
hypothesis and reference files the result.json names; :mod:`salign.scoring.significance`), MT BLEU and ASR WER.
Dirs ``EXP/st_TAG_seed<N>`` (row TAG trained with another seed) add a mean-over-seeds column. The file is written
atomically and also printed.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Optional, Sequence

from salign.analysis.compare import write_comparison
from salign.scoring.significance import DEFAULT_SAMPLES, DEFAULT_SEED
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
    p.add_argument("--test_sets", "--test_set", dest="test_sets", default="tst-COMMON",
                   help="test sets of the BLEU/WER columns, space- or comma-separated, in column order (the first "
                        "is also the seeds column's)")
    p.add_argument("--train_set", default="train_subset", help="training-subset decode (\"is it learning?\")")
    p.add_argument("--mt_exp", type=Path, default=None, help="shared MT pre-training dir (its time is reported)")
    p.add_argument("--asr_exp", type=Path, default=None,
                   help="shared ASR pre-training dir (its time and where early stopping stopped it are reported)")
    p.add_argument("--lm_exp", type=Path, default=None,
                   help="shared LM pre-training dir of the speech-LLM rows (its time is reported)")
    p.add_argument("--n_bootstrap", type=int, default=DEFAULT_SAMPLES,
                   help="bootstrap resamples for the 95%% intervals and the paired test (0: plain scores)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the bootstrap resampling")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Optional[int]:
    """Entry point: write and print the comparison."""
    args = get_parser().parse_args(argv)
    methods = [m for m in re.split(r"[\s,]+", args.methods) if m]
    test_sets = [s for s in re.split(r"[\s,]+", args.test_sets) if s]
    print(write_comparison(args.out, args.exp, methods, args.command, args.title, args.note, test_sets,
                           args.train_set, args.mt_exp, args.lm_exp, args.n_bootstrap, args.seed, args.asr_exp),
          end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
