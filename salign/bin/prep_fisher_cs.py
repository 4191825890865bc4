"""Stage 0 of egs/fisher_cs: Fisher Spanish-English ST data as Kaldi data dirs with code-switch test sets.

Usage::

    python -m salign.bin.prep_fisher_cs --fisher_speech LDC2010S01 --fisher_trans LDC2010T04 \\
        --translations fisher-callhome-corpus --out data [--rule words|tags] [--min_words 1] [--cs_list FILE] \\
        [--splits train,dev,dev2,test] [--use_translation true|false] [--audio_tool auto|sph2pipe|sox]

``--translations`` is a clone of https://github.com/joshua-decoder/fisher-callhome-corpus (``mapping/`` and
``corpus/ldc/``). Writes ``<out>/{train,dev,dev2,test}`` and, for each evaluation split, ``<out>/<split>_cs``,
``<split>_mono`` and ``<split>_mix``, each with ``wav.scp segments utt2spk spk2utt reco2file_and_channel text
text.src utt2lang``; ``<out>/fisher_cs_summary.json`` holds the rule and the counts. The joins (ESPnet's
``fisher_callhome_spanish`` recipe) and the code-switch rule are documented in :mod:`salign.data.fisher`.
Everything is validated before anything is written; an identical re-run is skipped.
"""
from __future__ import annotations

import argparse
import time
from typing import Optional, Sequence

from salign.data.fisher import SPLITS, prepare
from salign.utils.io import run_cli


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--fisher_speech", required=True, help="LDC2010S01 dir (Fisher Spanish .sph files)")
    p.add_argument("--fisher_trans", required=True, help="LDC2010T04 dir (Fisher Spanish .tdf transcripts)")
    p.add_argument("--translations", required=True, help="fisher-callhome-corpus clone (mapping/, corpus/ldc/)")
    p.add_argument("--out", default="data", help="output dir; one Kaldi data dir per set")
    p.add_argument("--splits", default=",".join(SPLITS), help="comma-separated subset of train,dev,dev2,test")
    p.add_argument("--min_words", type=int, default=1,
                   help="code-switched: at least this many English and this many Spanish words")
    p.add_argument("--rule", default="words", choices=["words", "tags"],
                   help="words: word-level language ID (annotated English spans + word lists); tags: CS when the "
                        "transcript has a <foreign> span (the split of Weller et al. 2022)")
    p.add_argument("--cs_list", default=None, help="file of code-switched utterance ids (replaces the word rule)")
    p.add_argument("--use_translation", type=_bool, default=True,
                   help="a list-English word counts only if the English translation has it too")
    p.add_argument("--audio_tool", default="auto", choices=["auto", "sph2pipe", "sox"],
                   help="reader of the .sph files in wav.scp (auto: sph2pipe if on PATH, else sox)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the preparation; return 0 (bad input raises InputError)."""
    a = get_parser().parse_args(argv)
    start = time.time()
    summary = prepare(a.fisher_speech, a.fisher_trans, a.translations, a.out,
                      [s.strip() for s in a.splits.split(",")], a.min_words, a.cs_list, a.use_translation,
                      a.audio_tool, a.rule)
    if summary is not None:
        n = sum(summary["sets"][s]["utterances"] for s in summary["sets"] if "_" not in s)
        print(f"prep_fisher_cs: {n} utterances in {len([s for s in summary['sets'] if '_' not in s])} split(s), "
              f"{time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    run_cli(main)
