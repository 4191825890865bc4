"""Train SentencePiece models and write ESPnet token lists (joint or separate source/target vocabularies).

Usage::

    python -m salign.bin.make_tokens --text data/train/text.en --text data/train/text.es \
        --mode joint --nbpe 8000 --model_type unigram --out data/token_list
    # -> data/token_list/joint/{bpe.model, bpe.vocab, tokens.txt, stamp.json}
    python -m salign.bin.make_tokens --text data/train/text.en --text data/train/text.es \
        --mode separate --nbpe 4000 [--tgt_nbpe 8000] --out data/token_list
    # -> data/token_list/src/... (first --text) and data/token_list/tgt/... (second --text)

Text files are Kaldi style (``utt text``); the utterance id is stripped. ``tokens.txt`` is ESPnet's token list
(``<blank>``, ``<unk>``, pieces, ``<sos/eos>``) for ``--token_list``; ``bpe.model`` is for ``--bpemodel``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from salign.text.tokens import MODEL_TYPES, make_tokens
from salign.utils.io import run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options of make_tokens."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", action="append", required=True, type=Path,
                   help="Kaldi text file; repeat (separate mode: source first, then target)")
    p.add_argument("--mode", choices=("joint", "separate"), default="joint")
    p.add_argument("--nbpe", type=int, required=True, help="vocabulary size (source size in separate mode)")
    p.add_argument("--tgt_nbpe", type=int, default=None, help="target vocabulary size in separate mode")
    p.add_argument("--model_type", choices=MODEL_TYPES, default="unigram")
    p.add_argument("--out", type=Path, required=True, help="output dir, e.g. data/token_list")
    p.add_argument("--character_coverage", type=float, default=1.0)
    p.add_argument("--user_defined_symbols", action="append", default=[],
                   help="extra symbols kept whole; comma-separated and/or repeated")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point."""
    args = get_parser().parse_args(argv)
    symbols: List[str] = [s for arg in args.user_defined_symbols for s in arg.split(",") if s]
    dirs = make_tokens(args.text, args.out, args.mode, args.nbpe, args.model_type, args.character_coverage,
                       symbols, args.tgt_nbpe)
    for d in dirs:
        n = sum(1 for _ in (d / "tokens.txt").open(encoding="utf-8"))
        print(f"make_tokens: {d}/bpe.model, {d}/tokens.txt ({n} tokens)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
