"""Measure the speech-text modality gap of a trained model on a dev set, with plots.

Usage::

    python -m salign.bin.analyze_gap --st_train_config exp/st/config.yaml --st_model_file exp/st/valid.acc.ave.pth \
        --feats dump/dev/feats.scp --src_text data/dev/text.en --out exp/st/gap
    # a model trained on raw audio (--feats_type raw): its dev set's wav.scp, read with ESPnet's sound loader
    ... --feats dump/raw/filtered/dev/wav.scp ...

Writes ``<out>/gap.json`` (discriminator accuracy when the model has a modal network, per-layer speech→text R@1/R@5,
paired vs unpaired cosine, linear CKA and RBF MMD², see :mod:`salign.analysis.gap`), ``<out>/pca_top.png`` (2-D PCA of
the pooled top outputs of both modalities) and ``<out>/retrieval.png`` (R@1/R@5 per layer).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Optional, Sequence

from salign.analysis.gap import DiscriminatorProbe, analyze, plot_pca, plot_retrieval
from salign.analysis.representations import add_model_data_args, representations_from_args
from salign.utils.io import InputError, atomic_write, run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options of analyze_gap."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_data_args(p)
    p.add_argument("--out", required=True, type=Path, help="output directory (gap.json, *.png)")
    p.add_argument("--mmd_sigma", type=float, default=None, help="RBF bandwidth (default: median heuristic)")
    p.add_argument("--no_plots", action="store_true", help="write gap.json only")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Collect representations, compute the measures, write JSON and plots."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    args = get_parser().parse_args(argv)
    if args.mmd_sigma is not None and args.mmd_sigma <= 0:
        raise InputError(f"--mmd_sigma {args.mmd_sigma} must be > 0")
    if args.out.exists() and not args.out.is_dir():
        raise InputError("exists and is not a directory", args.out, fix="pass a directory to --out")
    probes = []

    def make_hook(model):
        probes.append(DiscriminatorProbe(model))
        return probes[0]

    _, reps = representations_from_args(args, make_hook)
    result = analyze(reps, probes[0], args.mmd_sigma)
    result["model"] = str(args.st_model_file)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / "gap.json") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    if not args.no_plots:
        plot_pca(reps, args.out / "pca_top.png")
        plot_retrieval(result, args.out / "retrieval.png")
    r1 = ", ".join(f"{k}={result['retrieval'][k]['r1']:.2f}" for k in result["layers"])
    msg = f"{result['n_utts']} utterances; speech->text R@1 per layer: {r1}"
    msg += f"; cosine gap (top) {result['cosine']['top']['gap']:.3f}"
    if result["discriminator"]:
        accs = ", ".join(f"{n}={d['acc']:.2f}" for n, d in result["discriminator"].items())
        msg += f"; discriminator accuracy {accs}"
    print(f"{msg} -> {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
