"""Write a tiny randomly initialised Hugging Face causal LM (Qwen2 or Llama) and its tokenizer to a local directory.

The debug stand-in of a real LLM for ``--lm hf`` on a CPU (the mini recipe's ``./run.sh --debug true
--model_family llm --lm hf``): the same loading path, LoRA, KV-cache decoding and tokenisation as a real Qwen2.5 or
Llama directory, in seconds, with nothing downloaded. Random weights: it shows that the pipeline runs, not results.

Usage::

    python -m salign.bin.make_tiny_hf_lm --out exp/tiny_hf_lm [--family qwen2|llama] \
        [--tokenizer bytelevel|word] [--text FILE ...] [--hidden_size 64] [--num_layers 2] [--vocab_size 512]

``--tokenizer bytelevel`` (default) is a byte-level BPE as GPT-2's and Qwen's: its byte tokens cover any text, its
merges are learnt from the ``--text`` files (one sentence per line) and the prompts. ``word`` keeps only the words
seen (others become ``<unk>``). The directory is written atomically and left alone when it is already there with the
same options (``.tiny_hf_lm.json``).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from salign.utils.io import InputError, atomic_dir, run_cli

MARKER = ".tiny_hf_lm.json"


def read_texts(paths: Sequence[str]) -> Iterator[str]:
    """The lines of each text file (a one-line error for a missing one)."""
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise InputError("no such text file", p, fix="pass existing --text files (or none)")
        with p.open(encoding="utf-8") as f:
            yield from (line.rstrip("\n") for line in f)


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="the model directory to write")
    p.add_argument("--family", default="qwen2", choices=["qwen2", "llama"], help="the HF model class")
    p.add_argument("--tokenizer", default="bytelevel", choices=["bytelevel", "word"], help="tokenizer kind")
    p.add_argument("--text", action="append", default=[], help="text file to learn the tokenizer from (repeatable)")
    p.add_argument("--hidden_size", type=int, default=64, help="model width (a multiple of 4)")
    p.add_argument("--num_layers", type=int, default=2, help="decoder layers")
    p.add_argument("--vocab_size", type=int, default=512, help="byte-level BPE vocabulary size (>= 260)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the directory (or say it is up to date)."""
    args = get_parser().parse_args(argv)
    if args.hidden_size <= 0 or args.hidden_size % 4:
        raise InputError(f"--hidden_size {args.hidden_size}: must be a positive multiple of 4 (4 attention heads)")
    if args.num_layers <= 0:
        raise InputError(f"--num_layers {args.num_layers}: must be positive")
    if args.tokenizer == "bytelevel" and args.vocab_size < 260:
        raise InputError(f"--vocab_size {args.vocab_size}: a byte-level BPE needs >= 260 (256 bytes + 4 specials)")
    options = {k: str(v) for k, v in sorted(vars(args).items()) if k != "out"}
    options["text_sizes"] = [Path(t).stat().st_size if Path(t).is_file() else None for t in args.text]
    marker = args.out / MARKER
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == options:
        print(f"{args.out}: up to date (same options)")
        return 0
    texts: List[str] = list(read_texts(args.text))
    from salign.testing.tiny_llm import make_tiny_hf_lm

    if args.out.exists():
        shutil.rmtree(args.out)
    with atomic_dir(args.out) as tmp:
        make_tiny_hf_lm(tmp, args.family, texts or None, hidden_size=args.hidden_size, num_layers=args.num_layers,
                        seed=args.seed, tokenizer=args.tokenizer, vocab_size=args.vocab_size)
        (tmp / MARKER).write_text(json.dumps(options), encoding="utf-8")
    print(f"{args.out}: tiny random {args.family} LM ({args.tokenizer} tokenizer) written")
    return 0


if __name__ == "__main__":
    run_cli(main)
