"""Split a decoding job into key files and merge the jobs' ESPnet outputs back (for decodes run outside stage 12).

    python -m salign.bin.decode_utils split --scp dump/fbank/filtered/tst-COMMON/feats.scp --nj 4 --out DIR/split4
    # (any Kaldi table keyed by utterance will do, e.g. the wav.scp of --feats_type raw)
    python -m salign.bin.decode_utils merge --nj 4 --out DIR   # DIR/output.{1..4}/1best_recog/* -> DIR/1best_recog/*

``merge`` checks that every job wrote every one of its keys (naming the job's log otherwise) and writes the merged
files atomically, sorted by key. The logic is :mod:`salign.decode.jobs`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from salign.decode.jobs import merge_outputs, read_keys, split_keys
from salign.utils.io import run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options of decode_utils."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("--scp", type=Path, required=True)
    s.add_argument("--nj", type=int, required=True)
    s.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("merge")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--nj", type=int, required=True)
    m.add_argument("--split", type=Path, default=None, help="the split dir, to check every key was decoded")
    m.add_argument("--log", default=None, help="the jobs' logs, JOB standing for the job number")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Optional[int]:
    """Entry point."""
    a = get_parser().parse_args(argv)
    if a.cmd == "split":
        print(len(split_keys(a.scp, a.nj, a.out)))
        return 0
    shares = [read_keys(str(a.split / f"keys.{j}")) if a.split else None for j in range(1, a.nj + 1)]
    n = merge_outputs(a.out, shares, a.log)
    print(f"[decode_utils] merged {n} utterances into {a.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
