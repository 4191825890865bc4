"""Code-switch recipe data (``egs/cs_mini``): driver data dirs from the corpus, and the training stages' lists.

Usage::

    python -m salign.bin.prep_cs_mini data --corpus corpus --out data --frame_shift 0.08 [--src cs --tgt en]
    # -> data/{train,dev,cs_test,en_test,es_test}/ (wav.scp, text.cs, text.en, lang, lang_frames, utt2set, ...)
    python -m salign.bin.prep_cs_mini lists --data data --stats dump/fbank/stats --out dump/fbank/stats/lists \
        --replay "0.5 0.25 0.1" [--seed 1]
    # -> dump/fbank/stats/lists/{asr,st,cs,replay1,...}[_dev]/ shape files + lists.json
    python -m salign.bin.prep_cs_mini config --config conf/train_cs_s1.yaml --set projector=linear \
        --set 'projector_conf={stack: 2}' --out exp/conf/linear/train_cs_s1.yaml
    # -> the config with those top-level keys replaced (an ablation's config)

See :mod:`salign.data.cs_recipe` and ``docs/moe.md`` (the four training stages).
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import yaml

from salign.data.cs_recipe import derive_config, prepare, write_lists
from salign.utils.io import InputError, run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options of both sub-commands."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    d = sub.add_parser("data", help="driver data dirs from a gen_cs_mini corpus")
    d.add_argument("--corpus", required=True, help="the corpus directory (gen_cs_mini --out)")
    d.add_argument("--out", required=True, help="output data directory (data/<set>/)")
    d.add_argument("--frame_shift", type=float, required=True,
                   help="seconds per projector frame for lang_frames (encoder frame period x stack)")
    d.add_argument("--src", default="cs", help="source text file suffix (text.<src>)")
    d.add_argument("--tgt", default="en", help="target text file suffix (text.<tgt>)")
    s = sub.add_parser("lists", help="the training stages' shape-file lists")
    s.add_argument("--data", required=True, help="the data directory of 'data' (for utt2set)")
    s.add_argument("--stats", required=True, help="the driver's shape files (holds train/ and dev/)")
    s.add_argument("--out", required=True, help="output directory of the lists")
    s.add_argument("--replay", required=True, help="stage 3's replay shares, decaying, e.g. '0.5 0.25 0.1'")
    s.add_argument("--seed", type=int, default=1, help="seed of the replayed utterances' order")
    c = sub.add_parser("config", help="a config with some top-level keys replaced")
    c.add_argument("--config", required=True, help="the training config to start from")
    c.add_argument("--set", action="append", default=[], help="KEY=YAML value (repeatable)")
    c.add_argument("--out", required=True, help="the derived config")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one sub-command; print what was written."""
    a = get_parser().parse_args(argv)
    if a.action == "config":
        overrides = {}
        for item in a.set:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise InputError(f"--set '{item}': need KEY=VALUE", fix="e.g. --set projector=linear")
            overrides[key] = yaml.safe_load(value)
        derive_config(a.config, a.out, overrides)
        print(f"prep_cs_mini config: {a.config} with {', '.join(overrides)} replaced -> {a.out}")
        return 0
    if a.action == "data":
        counts = prepare(a.corpus, a.out, a.frame_shift, a.src, a.tgt)
    else:
        try:
            ratios = [float(x) for x in a.replay.split()]
        except ValueError:
            raise InputError(f"--replay '{a.replay}': not a list of numbers", fix="e.g. --replay '0.5 0.25 0.1'"
                             ) from None
        counts = write_lists(a.data, a.stats, a.out, ratios, a.seed)
    print(f"prep_cs_mini {a.action}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" -> {a.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
