"""Train the speech-LLM model with ESPnet's trainer: ``python -m salign.bin.llm_train --config conf.yaml ...``.

Accepts every ``espnet2.bin.st_train`` option plus ``--projector`` and ``--lm`` (``tiny`` or ``hf``); run with
``--print_config`` to list every knob with its default. See :mod:`salign.llm`.
"""
from __future__ import annotations

from typing import Optional, Sequence

from salign.llm.task import LLMSTTask
from salign.utils.io import run_cli


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse ESPnet's training options (``argv``, default the command line) and train."""
    LLMSTTask.main(cmd=argv)


if __name__ == "__main__":
    run_cli(main)
