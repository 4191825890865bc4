"""Generate a mini Spanish-English code-switch speech translation corpus (CS speech -> English text).

Usage::

    python -m salign.bin.gen_cs_mini --out DIR [--seed 1] [--nj 2] [--n_cs_train 300 --n_mono_train 300
        --n_dev 30 --n_test 50] [--pause_min 0.1 --pause_max 0.3] [...]

Writes Kaldi data dirs ``DIR/{cs,en,es}_{train,dev,test}`` and ``DIR/mix_test`` (cs_test + es_test), each with
``wav.scp`` (per-utterance wavs under ``DIR/<set>/wav``), ``text`` (English target), ``text.src`` (source as
spoken), ``utt2lang`` (cs|en|es), ``spans`` (``utt lang start end ...``), ``utt2spk``, ``spk2utt``, ``utt2dur``,
``chunks.jsonl``; and ``DIR/metadata.json`` (options, voice split, counts, durations). Test sets use held-out
voices. Needs the Debian packages sox, flite, espeak-ng, apertium, apertium-eng-spa and fortunes; Apertium
translations are cached under ``$SALIGN_CACHE`` (default ``~/.cache/salign``). See ``docs/cs_corpus.md``.
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from salign.data.cs_mini import CsMiniOptions, generate
from salign.utils.io import run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options (defaults: :class:`CsMiniOptions`)."""
    d = CsMiniOptions()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="output corpus directory (built atomically)")
    p.add_argument("--seed", type=int, default=d.seed, help="sentence/language/voice/pause seed")
    p.add_argument("--nj", type=int, default=2, help="parallel synthesis jobs (the output does not depend on it)")
    p.add_argument("--n_cs_train", type=int, default=d.n_cs_train, help="code-switch training utterances")
    p.add_argument("--n_mono_train", type=int, default=d.n_mono_train, help="utterances in each of en_train, es_train")
    p.add_argument("--n_dev", type=int, default=d.n_dev, help="utterances in each dev set")
    p.add_argument("--n_test", type=int, default=d.n_test, help="utterances in each test set")
    p.add_argument("--pause_min", type=float, default=d.pause_min, help="shortest pause between chunks (s)")
    p.add_argument("--pause_max", type=float, default=d.pause_max, help="longest pause between chunks (s)")
    p.add_argument("--min_words", type=int, default=d.min_words, help="shortest phrase chunk (words)")
    p.add_argument("--max_words", type=int, default=d.max_words, help="longest phrase chunk (words)")
    p.add_argument("--en_max_share", type=float, default=d.en_max_share,
                   help="at most this share of a CS utterance's chunks stays English (at least 1, at most n-1)")
    p.add_argument("--p_flite", type=float, default=d.p_flite, help="probability an English voice is flite")
    p.add_argument("--same_voice", type=float, default=d.same_voice,
                   help="probability a CS utterance's English chunks use its Spanish espeak-ng voice's timbre")
    p.add_argument("--n_test_flite", type=int, default=d.n_test_flite, help="flite voices held out for tests")
    p.add_argument("--n_test_variants", type=int, default=d.n_test_variants,
                   help="espeak-ng variants (timbres) held out for tests")
    p.add_argument("--noise_db", type=float, default=d.noise_db, help="noise floor of the pauses (dBFS)")
    p.add_argument("--trim_db", type=float, default=d.trim_db,
                   help="trim each chunk's TTS below peak - this many dB at both ends (0: no trimming)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Build (or reuse) the corpus; return 0."""
    a = vars(get_parser().parse_args(argv))
    out, nj = a.pop("out"), a.pop("nj")
    generate(out, CsMiniOptions(**a), nj=nj)
    return 0


if __name__ == "__main__":
    run_cli(main)
