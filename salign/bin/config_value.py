"""Print top-level values of a training config (YAML) for the stage driver, one per line (empty if unset).

Usage::

    python -m salign.bin.config_value --config conf/train_st_llm.yaml lm align   # -> "tiny\\not\\n"

The speech-LLM branch of ``egs/TEMPLATE/st.sh`` reads ``lm`` (pre-train our small LM on the recipe's text only
when it is ``tiny``) and ``align`` (an alignment method: warm up, select the LM layers, then train with them).
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import yaml

from salign.utils.io import InputError, run_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print each asked key's value (``None``/absent: an empty line)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="training config (YAML)")
    p.add_argument("keys", nargs="+", help="top-level keys to print")
    args = p.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise InputError("no such config", args.config) from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML ({str(exc).splitlines()[0]})", args.config) from None
    if not isinstance(conf, dict):
        raise InputError("a training config must be a mapping of options", args.config)
    for key in args.keys:
        value = conf.get(key)
        print("" if value is None else value)
    return 0


if __name__ == "__main__":
    run_cli(main)
