"""Choose the textual-encoder layers to align with optimal transport (AI-STA) by cross-modal retrieval.

Usage::

    python -m salign.bin.select_layers --st_train_config exp/st/config.yaml --st_model_file exp/st/valid.acc.ave.pth \
        --feats dump/dev/feats.scp --src_text data/dev/text.en --top_k 2 --out exp/st/layers.yaml
    # then train with: --align ot --align_conf layers_file=exp/st/layers.yaml

For every layer (0 = T-enc input, k = block k; ``--include_input`` makes 0 a candidate) the speech and transcript
branches are mean-pooled per utterance (eval mode), and each speech utterance retrieves among all transcripts of the
set by cosine. The ``--top_k`` layers by R@1 (ties: R@5, then the shallower layer) are written as
``{layers: [...], weights: [...], retrieval: {layer: {r1, r5}}, n_utts: N}``, which ``align_conf.layers_file`` reads.

A speech-LLM model (``salign.bin.llm_train``'s config.yaml) works the same way over the LM's layers (AI-STA's own
setting): 0 = the LM input (projected speech frames; transcript embeddings), k = LM block k, each branch's input
segment behind its own prompt; train with ``python -m salign.bin.llm_train ... --align ot --align_conf
layers_file=...``.
"""
from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

import yaml

from salign.analysis.representations import add_model_data_args, representations_from_args
from salign.analysis.retrieval import layer_retrieval, select_top_layers
from salign.utils.io import InputError, atomic_write, run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options of select_layers."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_data_args(p)
    p.add_argument("--out", required=True, help="YAML to write (read by align_conf.layers_file)")
    p.add_argument("--top_k", type=int, default=2, help="number of layers to select")
    p.add_argument("--weighting", choices=("uniform", "r1"), default="uniform",
                   help="per-layer weights: equal, or proportional to R@1 (both sum to 1)")
    p.add_argument("--include_input", action="store_true", help="let layer 0 (the T-enc or LM input) be selected")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Compute per-layer retrieval and write the layer selection."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    args = get_parser().parse_args(argv)
    if args.top_k < 1:
        raise InputError(f"--top_k {args.top_k} must be >= 1")
    _, reps = representations_from_args(args)
    scores = layer_retrieval(reps.speech, reps.text)
    candidates = [k for k in scores if k > 0 or args.include_input]
    layers, weights = select_top_layers(scores, args.top_k, args.weighting, candidates)
    out = {"layers": layers, "weights": [round(w, 6) for w in weights],
           "retrieval": {k: {m: round(v, 6) for m, v in s.items()} for k, s in scores.items()},
           "n_utts": len(reps.keys)}
    with atomic_write(args.out) as f:
        f.write("# written by python -m salign.bin.select_layers; read by align_conf.layers_file of --align ot\n")
        yaml.safe_dump(out, f, sort_keys=False, default_flow_style=None)
    for k, s in scores.items():
        mark = "*" if k in layers else " "
        print(f"{mark} layer {k}: R@1={s['r1']:.3f} R@5={s['r5']:.3f}")
    print(f"selected layers {layers} (weights {out['weights']}) on {len(reps.keys)} utterances -> {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
