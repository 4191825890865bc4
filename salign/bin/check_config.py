"""Check training and decoding configs before any work: unknown keys (with the closest valid key), types, ranges.

Usage::

    python -m salign.bin.check_config --task st --config conf/train_mt.yaml --config conf/train_st_salign.yaml \\
        --decode_config conf/decode_st.yaml

``--task``: st, mt or salign (salign's ST task, ``salign.bin.st_train``), llm (``salign.bin.llm_train``), espnet
(ESPnet's stock ``STTask``). ``--decode_config``: decoding configs, checked against ``salign.bin.st_inference``'s
options (ESPnet's ``st_inference`` with ``--task espnet``). No model is built. Each problem is one line
``ERROR [check_config]: FILE:LINE: key: what (fix: ...)``; all are listed, then the exit status is 2. Without
problems it prints one ``OK`` line (nothing with ``--quiet``) and exits 0. The checks: salign.utils.config_check.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from salign.utils.io import run_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Check every given config; print each problem as one ERROR line."""
    p = argparse.ArgumentParser(prog="check_config", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", action="append", default=[], help="training config (YAML); repeat for several")
    p.add_argument("--decode_config", action="append", default=[], help="decoding config (YAML); repeatable")
    p.add_argument("--task", choices=("st", "mt", "salign", "llm", "espnet"), default="st",
                   help="the training task the configs are for (default: st; salign: st, as st.sh's --model_family)")
    p.add_argument("--quiet", action="store_true", help="print nothing when every config is fine")
    args = p.parse_args(argv)
    if not args.config and not args.decode_config:
        p.error("give at least one --config or --decode_config")
    from salign.utils.config_check import check_configs

    task = "st" if args.task == "salign" else args.task
    decode_task = "espnet_decode" if task == "espnet" else "decode"
    todo = [(c, task) for c in args.config if c] + [(c, decode_task) for c in args.decode_config if c]
    problems = check_configs(todo)
    for problem in problems:
        print(f"ERROR [check_config]: {problem}", file=sys.stderr)
    if problems:
        return 2
    if not args.quiet:
        print(f"OK [check_config]: {', '.join(c for c, _ in todo)} ({task})")
    return 0


if __name__ == "__main__":
    run_cli(main)
