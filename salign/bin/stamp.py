"""Check or write a stage's stamp (the one "already done" rule of :mod:`salign.utils.stamp`) from a shell stage.

Usage::

    python -m salign.bin.stamp check --stamp exp/x/.stamp --input data/train --option nbpe=8000 && exit 0
    ... do the work ...
    python -m salign.bin.stamp write --stamp exp/x/.stamp --input data/train --option nbpe=8000 --output exp/x/out

``check`` exits 0 and prints ``skip: <what> is up to date`` when the stamp matches the inputs' content, the options
and the recorded outputs; otherwise it exits 1 and prints the reason. ``write`` records them (every ``--output`` must
exist). ``--input``/``--option``/``--output`` may be repeated or take several values.

``check --recorded`` (no ``--input``/``--option``) checks a finished step's stamp against the inputs and options it
recorded: how a later stage makes sure what an earlier one produced is not stale. ``why --stamp NEW --old OLD``
prints the first difference between two stamps of one step (why it was redone) and exits 0, or exits 1 when they
record the same inputs and options::

    python -m salign.bin.stamp check --recorded --stamp exp/st/decode_st_dev/.stamp || echo "decode again"
    python -m salign.bin.stamp why --stamp dump/fbank/dev/split2/feats.1.done --old /tmp/feats.1.done
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional, Sequence

from salign.utils.io import InputError, run_cli
from salign.utils.stamp import Stamp, difference


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("check", "write", "why"))
    p.add_argument("--stamp", required=True, help="the stamp file")
    p.add_argument("--input", action="extend", nargs="+", default=[], help="input file or directory")
    p.add_argument("--option", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="an option the outputs depend on")
    p.add_argument("--output", action="extend", nargs="+", default=[], help="output (write: must exist)")
    p.add_argument("--what", default=None, help="name printed by check (default: the stamp's directory)")
    p.add_argument("--recorded", action="store_true",
                   help="check: against the inputs and options the stamp recorded (nothing else may be given)")
    p.add_argument("--old", default=None, help="why: the earlier stamp of the same step")
    return p


def parse_options(pairs: Sequence[str]) -> Dict[str, str]:
    """``KEY=VALUE`` strings to a dict (a repeated key is an error)."""
    options: Dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"option '{pair}' is not KEY=VALUE", fix="write --option key=value")
        if key in options:
            raise InputError(f"option '{key}' given twice", fix="give each --option key once")
        options[key] = value
    return options


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``check``: 0 if fresh (prints ``skip: ...``), 1 with the reason otherwise; ``write``: record the stamp."""
    args = get_parser().parse_args(argv)
    if args.action == "why":
        if args.old is None:
            raise InputError("why needs --old", fix="give the earlier stamp: --old FILE")
        old, new = Stamp(args.old)._old(), Stamp(args.stamp)._old()
        if new is None:
            raise InputError("no stamp to compare", args.stamp, fix="give a stamp file the step wrote")
        why = "no earlier stamp" if old is None else difference(old, new)
        print(why or "the same inputs and options")
        return 0 if why else 1
    if args.recorded:
        if args.input or args.option or args.output or args.action != "check":
            raise InputError("--recorded takes no --input, --option or --output, and only with check",
                             fix="check --recorded --stamp FILE")
        stamp = Stamp.recorded(args.stamp)
    else:
        stamp = Stamp(args.stamp, args.input, parse_options(args.option))
    if args.action == "write":
        stamp.write(args.output)
        return 0
    reason = stamp.reason()
    if reason is None:
        print(f"skip: {args.what or stamp.path.parent} is up to date")
        return 0
    print(reason)
    return 1


if __name__ == "__main__":
    run_cli(main)
