"""Generate a mini MuST-C corpus (English -> Spanish only) in the exact MuST-C v1 layout.

Usage::

    python -m salign.bin.gen_mini_mustc --out DIR [--tgt es] [--n_train 240 --n_dev 40 --n_tst 40] [--seed 1]
        [--nj 2] [--utts_per_talk 10]

Writes ``DIR/en-es/data/{train,dev,tst-COMMON,tst-HE}/{wav/ted_N.wav, txt/<split>.{yaml,en,es}}`` and
``DIR/en-es/.mini_mustc.json``; ``--n_tst`` is the size of each test split. ``--n_mt_extra N`` also writes N
text-only pairs (never in a speech split) to ``DIR/en-es/mt-extra/mt-extra.{en,es}`` for MT pre-training. Needs the
Debian packages sox, flite, espeak-ng, apertium, apertium-eng-spa and fortunes. Only ``--tgt es`` is supported (no
Apertium en-de/en-fr). Translations of the sentence pool are cached under ``$SALIGN_CACHE`` (default
``~/.cache/salign``).
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from salign.data.mini_mustc import SUPPORTED_TGT, MiniMustcOptions, generate
from salign.utils.io import run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output root; the corpus goes to OUT/en-<tgt>")
    p.add_argument("--tgt", default="es", help=f"target language (supported: {', '.join(SUPPORTED_TGT)})")
    p.add_argument("--n_train", type=int, default=240, help="training segments")
    p.add_argument("--n_dev", type=int, default=40, help="dev segments")
    p.add_argument("--n_tst", type=int, default=40, help="segments in each of tst-COMMON and tst-HE")
    p.add_argument("--seed", type=int, default=1, help="selection/voice/noise seed")
    p.add_argument("--nj", type=int, default=2, help="parallel synthesis jobs")
    p.add_argument("--utts_per_talk", type=int, default=10, help="utterances per talk wav")
    p.add_argument("--n_mt_extra", type=int, default=0,
                   help="text-only sentence pairs outside the speech splits, written to OUT/en-<tgt>/mt-extra/"
                        "mt-extra.{en,<tgt>} for MT pre-training (-1: all remaining)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Build (or reuse) the corpus; return 0."""
    a = get_parser().parse_args(argv)
    opts = MiniMustcOptions(a.tgt, a.n_train, a.n_dev, a.n_tst, a.seed, a.utts_per_talk, a.n_mt_extra)
    generate(a.out, opts, nj=a.nj)
    return 0


if __name__ == "__main__":
    run_cli(main)
