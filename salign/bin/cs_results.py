"""Write the code-switch recipe's results page: ST BLEU/chrF on cs/es/mix test sets and ASR WER per system, the
routing table and the wall time of each part.

Usage::

    python -m salign.bin.cs_results --exp exp --dump dump/fbank/filtered --rows "main=full method" --rows "linear=..." \
        --routing exp/routing.json --timing exp/timing.tsv --out RESULTS.md --command "cd egs/cs_mini && ./run.sh" \
        [--notes local/notes.md] [--title ...]

See :mod:`salign.scoring.cs_results`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from salign.scoring.cs_results import write_results_page
from salign.utils.io import InputError, run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--exp", required=True, help="holds st_<row>/decode_*/score/result.json")
    p.add_argument("--dump", default="dump/fbank/filtered", help="holds <set>/text.<tgt> (mix_test references)")
    p.add_argument("--rows", action="append", required=True, help="NAME=description, one per system, in order")
    p.add_argument("--routing", default=None, help="moe_routing's JSON")
    p.add_argument("--timing", default=None, help="part<TAB>seconds lines")
    p.add_argument("--tgt", default="en", help="target text suffix")
    p.add_argument("--notes", default=None, help="a Markdown file appended before the reproduce command")
    p.add_argument("--title", default="Results", help="page title")
    p.add_argument("--command", required=True, help="the reproduce command")
    p.add_argument("--out", required=True, help="output Markdown file")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the page and print it."""
    a = get_parser().parse_args(argv)
    rows = []
    for r in a.rows:
        name, sep, what = r.partition("=")
        if not sep or not name:
            raise InputError(f"--rows '{r}': need NAME=description", fix="e.g. --rows 'main=MoE, four stages'")
        rows.append((name, what))
    notes = None
    if a.notes:
        if not Path(a.notes).is_file():
            raise InputError("no such file", a.notes, fix="give an existing Markdown file or leave out --notes")
        notes = Path(a.notes).read_text(encoding="utf-8")
    print(write_results_page(a.out, a.exp, a.dump, rows, a.command, routing=a.routing, timing=a.timing, tgt=a.tgt,
                             title=a.title, notes=notes), end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
