"""Train the S-Align model with ESPnet's trainer: ``python -m salign.bin.st_train --config conf.yaml ...``.

Accepts every ``espnet2.bin.st_train`` option plus ``--text_encoder``, ``--align`` and ``--init_from_mt``; run with
``--print_config`` to list every knob with its default.
"""
from __future__ import annotations

from typing import Optional, Sequence

from salign.tasks.st import SAlignSTTask
from salign.utils.io import run_cli


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse ESPnet's training options (``argv``, default the command line) and train."""
    SAlignSTTask.main(cmd=argv)


if __name__ == "__main__":
    run_cli(main)
