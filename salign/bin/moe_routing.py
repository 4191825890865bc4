"""Routing table of trained MoE speech projectors on test sets (share of frames routed to their language's group per
language, load per expert, router entropy), by one encoder + projector forward pass per utterance.

Usage::

    python -m salign.bin.moe_routing --exp_dirs "exp/st_main exp/st_nolang" --model latest.pth \
        --sets "cs_test en_test es_test" --dump_dir dump/fbank/filtered --data_dir data --out exp/routing.json

Reads ``<exp>/config.yaml`` + ``<exp>/<model>``, ``<dump_dir>/<set>/feats.scp`` and ``<data_dir>/<set>/lang_frames``;
writes ``{"<exp name>": {"<set>": {stat: value} | null}}`` (null: a projector without routing, e.g. ``linear``).
Skipped while its stamp (models, configs, features, labels, options) is up to date. See :mod:`salign.llm.routing`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, Optional, Sequence

from salign.utils.io import atomic_write, run_cli
from salign.utils.stamp import Stamp


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--exp_dirs", required=True, help="experiment dirs (space-separated); name = dir name")
    p.add_argument("--model", default="latest.pth", help="model file name inside each exp dir")
    p.add_argument("--sets", required=True, help="test sets (space-separated)")
    p.add_argument("--dump_dir", default="dump/fbank/filtered", help="holds <set>/feats.scp")
    p.add_argument("--data_dir", default="data", help="holds <set>/lang_frames")
    p.add_argument("--batch_size", type=int, default=16, help="utterances per forward pass")
    p.add_argument("--out", required=True, help="output JSON")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Compute (or reuse) the routing statistics of every exp dir on every set."""
    a = get_parser().parse_args(argv)
    exps, sets = a.exp_dirs.split(), a.sets.split()
    inputs = [str(Path(x) / f) for x in exps for f in ("config.yaml", a.model)]
    inputs += [str(Path(d) / s / f) for s in sets for d, f in ((a.dump_dir, "feats.scp"), (a.data_dir, "lang_frames"))]
    stamp = Stamp(Path(a.out).with_suffix(".stamp"), inputs, {"batch_size": a.batch_size, "exps": exps, "sets": sets})
    if stamp.reason() is None:
        print(f"moe_routing: skip: {a.out} is up to date")
        return 0
    import torch

    from salign.decode.loader import load_model
    from salign.llm.routing import routing_stats

    torch.manual_seed(0)
    table: Dict[str, Dict[str, Optional[Dict[str, float]]]] = {}
    for x in exps:
        model, _ = load_model(str(Path(x) / "config.yaml"), str(Path(x) / a.model))
        name = Path(x).name
        table[name] = {s: routing_stats(model, Path(a.dump_dir) / s / "feats.scp", Path(a.data_dir) / s /
                                        "lang_frames", a.batch_size) for s in sets}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(a.out) as f:
        json.dump(table, f, indent=1)
        f.write("\n")
    stamp.write([a.out])
    print(f"moe_routing: {len(exps)} model(s) x {len(sets)} set(s) -> {a.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
