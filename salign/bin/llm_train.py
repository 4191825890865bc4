"""Train the speech-LLM model with ESPnet's trainer: ``python -m salign.bin.llm_train --config conf.yaml ...``.

Accepts every ``espnet2.bin.st_train`` option plus ``--projector`` and ``--lm`` (``tiny`` or ``hf``); run with
``--print_config`` to list every knob with its default. See :mod:`salign.llm`. The ``--config`` file is checked
first, as the recipe's driver checks it (``salign.bin.check_config --task llm``): a problem is one ERROR line naming
the file and line, exit status 2, before anything is written.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from salign.llm.task import LLMSTTask
from salign.utils.config_check import check_entry_config
from salign.utils.io import run_cli


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Check the config, parse ESPnet's training options (``argv``, default the command line) and train."""
    check_entry_config(sys.argv[1:] if argv is None else argv, "llm", "llm_train")
    LLMSTTask.main(cmd=argv)


if __name__ == "__main__":
    run_cli(main)
