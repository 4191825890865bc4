"""Write a tiny randomly initialised Whisper (encoder + decoder) as a Hugging Face directory: the debug stand-in of
the pretrained Whisper that ``tools/get_pretrained.sh`` converts, so that CI runs ``--feats_type whisper`` and
``--encoder whisper`` through the same loaders with nothing fetched. Random weights: it shows that the pipeline runs.

Usage::

    python -m salign.bin.make_tiny_whisper --out exp/tiny_whisper [--window 30] [--width 32] [--layers 2]

The directory is written atomically and left alone when it is already there with the same options
(``.tiny_whisper.json``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from salign.utils.io import atomic_dir, run_cli

MARKER = ".tiny_whisper.json"


def get_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the directory to write")
    p.add_argument("--window", type=float, default=30.0, help="seconds the encoder takes at most (default 30)")
    p.add_argument("--width", type=int, default=32, help="model width (default 32)")
    p.add_argument("--layers", type=int, default=2, help="encoder layers (default 2; the decoder has 1)")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write the tiny Whisper unless the same one is there."""
    args = get_parser().parse_args(argv)
    opts = {"window": args.window, "width": args.width, "layers": args.layers, "seed": args.seed}
    marker = args.out / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == opts:
        return 0
    from salign.testing.tiny_formats import tiny_hf_whisper

    model = tiny_hf_whisper(seed=args.seed, d_model=args.width, encoder_layers=args.layers,
                            encoder_ffn_dim=4 * args.width, decoder_ffn_dim=4 * args.width,
                            max_source_positions=int(round(args.window * 50)))
    with atomic_dir(args.out) as tmp:
        model.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(opts))
    return 0


if __name__ == "__main__":
    run_cli(main)
