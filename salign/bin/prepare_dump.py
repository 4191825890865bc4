"""Stage 4 and 10 helpers: length filtering into training-ready dump dirs, and ESPnet shape/stat files.

    # stage 4: join features and texts of one split, dropping bad utterances (train/dev) or keeping all (test)
    python -m salign.bin.prepare_dump filter --data data/train --feats dump/fbank/train \
        --out dump/fbank/filtered/train \
        --src_lang en --tgt_lang es [--min_frames 10 --max_frames 3000 --max_src_tokens 200 --max_tgt_tokens 200]
        [--keep_all]
    # the same on raw audio (--feats_type raw: make_raw's wav.scp), lengths in samples at 16 kHz
    python -m salign.bin.prepare_dump filter --data data/train --feats dump/raw/train --out dump/raw/filtered/train \
        --src_lang en --tgt_lang es [--min_samples 1600 --max_samples 480000 ...]
    # stage 10 (instead of ESPnet's slow collect-stats pass): shape files (CMVN stats come from stage 3)
    python -m salign.bin.prepare_dump stats --dump dump/fbank/filtered/train --out dump/fbank/stats/train \
        --src_lang en --tgt_lang es --bpemodel tgt.model --src_bpemodel src.model

    # stage 4: parallel text for MT pre-training (training transcripts + optional extra text-only data)
    python -m salign.bin.prepare_dump mt_text --out dump/fbank/filtered/mt_train --dump dump/fbank/filtered/train \
        [--src_file extra.en --tgt_file extra.es] --src_lang en --tgt_lang es

``filter`` writes ``feats.scp``, ``utt2num_frames``, ``text.<src>``, ``text.<tgt>`` (and ``utt2speed`` for a
speed-perturbed set) and a ``filter.log`` counting what was dropped and why; on a raw dump (``make_raw``: ``wav.scp``
and ``utt2num_samples``) it writes ``wav.scp`` and ``utt2num_samples`` instead of the first two, filtering by
``--min_samples``/``--max_samples``. ``stats`` writes the shape files, the only ones of the recipe: ``speech_shape``
(``frames,width`` for fbank, the width read from the features; samples for raw audio, ESPnet's raw shape format
``utt 123456``), ``text_shape``, ``src_text_shape`` (token counts, ESPnet's format). Global CMVN statistics are
stage 3's ``cmvn.npz`` (ESPnet's GlobalMVN format), read by training where they are. The logic is in
:mod:`salign.data.dump`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from salign.data.dump import filter_split, mt_text, write_stats
from salign.utils.io import InputError, run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("filter", help="join features and texts, drop bad utterances")
    f.add_argument("--data", required=True, type=Path)
    f.add_argument("--feats", required=True, type=Path)
    f.add_argument("--out", required=True, type=Path)
    f.add_argument("--min_frames", type=int, default=10, help="fbank dumps: fewest 10 ms frames")
    f.add_argument("--max_frames", type=int, default=3000, help="fbank dumps: most 10 ms frames")
    f.add_argument("--min_samples", type=int, default=1600, help="raw dumps: fewest 16 kHz samples (0.1 s)")
    f.add_argument("--max_samples", type=int, default=480000, help="raw dumps: most 16 kHz samples (30 s)")
    f.add_argument("--max_src_tokens", type=int, default=200, help="words")
    f.add_argument("--max_tgt_tokens", type=int, default=200, help="words")
    f.add_argument("--keep_all", action="store_true", help="test sets: keep every utterance with features")
    f.add_argument("--subset", type=int, default=0, help="keep this many (evenly spaced, no speed-perturbed copies)")
    s = sub.add_parser("stats", help="shape files and CMVN stats for ESPnet")
    s.add_argument("--dump", required=True, type=Path)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--bpemodel", default=None)
    s.add_argument("--src_bpemodel", default=None)
    m = sub.add_parser("mt_text", help="parallel text for MT pre-training (dump dirs + plain-text files)")
    m.add_argument("--out", required=True, type=Path)
    m.add_argument("--dump", type=Path, nargs="*", default=[], help="dump dirs whose texts to include")
    m.add_argument("--src_file", type=Path, nargs="*", default=[], help="plain-text source files")
    m.add_argument("--tgt_file", type=Path, nargs="*", default=[], help="plain-text target files (same order)")
    for q in (f, s, m):
        q.add_argument("--src_lang", default="en")
        q.add_argument("--tgt_lang", required=True)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point."""
    a = get_parser().parse_args(argv)
    if a.cmd == "filter":
        why = filter_split(a.data, a.feats, a.out, a.src_lang, a.tgt_lang, a.min_frames, a.max_frames,
                           a.max_src_tokens, a.max_tgt_tokens, a.keep_all, a.subset, a.min_samples, a.max_samples)
        print(f"[prepare_dump] {a.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(why.items())))
    elif a.cmd == "mt_text":
        if len(a.src_file) != len(a.tgt_file):
            raise InputError("--src_file and --tgt_file must come in pairs", fix="give one --tgt_file per --src_file")
        n = mt_text(a.out, a.src_lang, a.tgt_lang, a.dump, a.src_file, a.tgt_file)
        print(f"[prepare_dump] {a.out}: {n} sentence pairs for MT pre-training")
    else:
        write_stats(a.dump, a.out, a.src_lang, a.tgt_lang, a.bpemodel, a.src_bpemodel)
        print(f"[prepare_dump] {a.out}: speech_shape, text_shape, src_text_shape")
    return 0


if __name__ == "__main__":
    run_cli(main)
