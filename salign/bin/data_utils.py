"""Small Kaldi data-dir tools.

Usage::

    python -m salign.bin.data_utils subset --data D --out O (--first N | --utt_list FILE)
    python -m salign.bin.data_utils speed_perturb --data D --out O [--factors 0.9,1.0,1.1]
    python -m salign.bin.data_utils validate --data D [--no_audio]
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Sequence

from salign.data.datadir import speed_perturb_datadir, subset_datadir, validate_datadir
from salign.data.kaldi import read_table
from salign.utils.io import InputError, run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options (one sub-command per tool)."""
    p = argparse.ArgumentParser(description="Kaldi data-dir tools: subset, speed_perturb, validate")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("subset", help="consistent subset of a data dir")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--first", type=int, help="first N utterances in sorted order")
    g.add_argument("--utt_list", help="file with one utterance id per line (first field)")
    sp = sub.add_parser("speed_perturb", help="Kaldi-style speed-perturbed copy (utt2speed)")
    sp.add_argument("--data", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--factors", default="0.9,1.0,1.1")
    v = sub.add_parser("validate", help="check a data dir for consistency")
    v.add_argument("--data", required=True)
    v.add_argument("--no_audio", action="store_true", help="skip reading wav headers")
    return p


def _factors(text: str) -> List[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"bad --factors '{text}'", fix="e.g. --factors 0.9,1.0,1.1") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Dispatch to the sub-command; return 0 on success."""
    args = get_parser().parse_args(argv)
    if args.cmd == "subset":
        utts = list(read_table(args.utt_list, fix="give a file of utterance ids")) if args.utt_list else None
        n = subset_datadir(args.data, args.out, first=args.first, utt_list=utts)
        print(f"data_utils subset: {n} utterances -> {Path(args.out)}")
    elif args.cmd == "speed_perturb":
        n = speed_perturb_datadir(args.data, args.out, _factors(args.factors))
        print(f"data_utils speed_perturb: {n} utterances -> {Path(args.out)}")
    else:
        n = validate_datadir(args.data, check_audio=not args.no_audio)
        print(f"data_utils validate: {args.data} OK ({n} utterances)")
    return 0


if __name__ == "__main__":
    run_cli(main)
