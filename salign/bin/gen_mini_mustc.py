"""Generate a mini MuST-C corpus (English -> Spanish only) in the exact MuST-C v1 layout.

Usage::

    python -m salign.bin.gen_mini_mustc --out DIR [--tgt es] [--n_train 240 --n_dev 40 --n_tst 40] [--seed 1]
        [--nj 2] [--utts_per_talk 10] [--n_mt_extra N|-1] [--n_tst_unseen N]

Writes ``DIR/en-es/data/{train,dev,tst-COMMON,tst-HE}/{wav/ted_N.wav, txt/<split>.{yaml,en,es}}`` and
``DIR/en-es/.mini_mustc.json``; ``--n_tst`` is the size of each test split. ``--n_mt_extra N`` also writes N
text-only pairs (never in a speech split) to ``DIR/en-es/mt-extra/mt-extra.{en,es}`` for MT pre-training;
``--n_mt_extra -1`` writes every usable pair: all strict (speakable) pairs left over plus the wide text-only pool
(3-30 words, digits, quotes, colons, parentheses; never spoken), none equal to a spoken sentence.
``--n_tst_unseen N`` holds voices out (flite ``rms``, espeak-ng ``en-gb-scotland`` with its variants): the other
splits never use them, and ``DIR/en-es/data/tst-UNSEEN`` (N segments) is spoken only by them; every talk's voice is
listed in ``DIR/en-es/voices.tsv``. Stage 1 takes it like any set: ``--test_sets "tst-COMMON tst-HE tst-UNSEEN"``.
Needs the Debian packages sox, flite, espeak-ng, apertium, apertium-eng-spa and fortunes. Only ``--tgt es`` is
supported (no Apertium en-de/en-fr). Translations of the sentence pools are cached under ``$SALIGN_CACHE`` (default
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
                        "mt-extra.{en,<tgt>} for MT pre-training (-1: every usable pair: the speakable ones left "
                        "over and the wide text-only pool)")
    p.add_argument("--n_tst_unseen", type=int, default=0,
                   help="segments of tst-UNSEEN, spoken only by held-out voices that no other split uses "
                        "(0: no held-out voices; every split draws from all voices)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Build (or reuse) the corpus; return 0."""
    a = get_parser().parse_args(argv)
    opts = MiniMustcOptions(tgt=a.tgt, n_train=a.n_train, n_dev=a.n_dev, n_tst=a.n_tst, seed=a.seed,
                            utts_per_talk=a.utts_per_talk, n_mt_extra=a.n_mt_extra, n_tst_unseen=a.n_tst_unseen)
    generate(a.out, opts, nj=a.nj)
    return 0


if __name__ == "__main__":
    run_cli(main)
