"""Check or write a stage's stamp (the one "already done" rule of :mod:`salign.utils.stamp`) from a shell stage.

Usage::

    python -m salign.bin.stamp check --stamp exp/x/.stamp --input data/train --option nbpe=8000 && exit 0
    ... do the work ...
    python -m salign.bin.stamp write --stamp exp/x/.stamp --input data/train --option nbpe=8000 --output exp/x/out

``check`` exits 0 and prints ``skip: <what> is up to date`` when the stamp matches the inputs' content, the options
and the recorded outputs; otherwise it exits 1 and prints the reason. ``write`` records them (every ``--output`` must
exist). ``--input``/``--option``/``--output`` may be repeated or take several values.
"""
from __future__ import annotations

import argparse
from typing import Dict, Optional, Sequence

from salign.utils.io import InputError, run_cli
from salign.utils.stamp import Stamp


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("check", "write"))
    p.add_argument("--stamp", required=True, help="the stamp file")
    p.add_argument("--input", action="extend", nargs="+", default=[], help="input file or directory")
    p.add_argument("--option", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="an option the outputs depend on")
    p.add_argument("--output", action="extend", nargs="+", default=[], help="output (write: must exist)")
    p.add_argument("--what", default=None, help="name printed by check (default: the stamp's directory)")
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
