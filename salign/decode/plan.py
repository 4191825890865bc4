"""``st_inference --plan FILE``: several decodes in one process (one ESPnet import, each model loaded once).

Each non-empty, non-comment line of FILE holds the options of one decode (shell-quoted), added to the options of
the command line, e.g. ``--task mt --data_path_and_name_and_type test/text.en,src_text,text --output_dir out/mt``.
Every decode's options and model are checked before the first decode starts.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from salign.utils.io import InputError


def split_plan_option(argv: Sequence[str]) -> Tuple[Optional[str], List[str]]:
    """(the ``--plan`` file or None, the other options)."""
    argv = [x for a in argv for x in (a.split("=", 1) if a.startswith("--plan=") else [a])]
    if "--plan" not in argv:
        return None, argv
    i = argv.index("--plan")
    if i + 1 >= len(argv):
        raise InputError("--plan needs a file", fix="--plan FILE")
    return argv[i + 1], argv[:i] + argv[i + 2:]


def read_plan(path: str) -> List[List[str]]:
    """The decodes of a plan file: one shell-quoted option list per non-empty, non-comment line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InputError(f"cannot read the plan ({e.strerror})", path, fix="check the plan file's path") from None
    plan = []
    for n, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                plan.append(shlex.split(line))
            except ValueError as e:
                raise InputError(f"cannot parse the options ({e})", path, n, fix="quote them as a shell would") \
                    from None
            if "--plan" in plan[-1] or "--output_dir" not in plan[-1]:
                raise InputError("each decode needs its own --output_dir (and no --plan)", path, n,
                                 fix="give --output_dir DIR on every line")
    return plan


def run_plan(plan_file: str, common: Sequence[str], parse: Callable[[List[str]], argparse.Namespace]) -> None:
    """Check, then run, every decode of ``plan_file`` with the ``common`` options before each line's own."""
    from salign.decode.runner import Session, decode, prepare

    plan = read_plan(plan_file)
    parsed = [parse(list(common) + opts) for opts in plan]
    session = Session()
    for args in parsed:  # every decode's options and model checked before the first decode starts
        prepare(args, session)
    for n, (opts, args) in enumerate(zip(plan, parsed), 1):
        print(f"[st_inference] {plan_file}, decode {n}/{len(plan)}: {shlex.join(opts)}", file=sys.stderr)
        decode(args, session)
