"""Train the S-Align model with ESPnet's trainer: ``python -m salign.bin.st_train --config conf.yaml ...``.

Accepts every ``espnet2.bin.st_train`` option plus ``--text_encoder``, ``--align`` and ``--init_from_mt``; run with
``--print_config`` to list every knob with its default. The ``--config`` file is checked first, as the recipe's
driver checks it (``salign.bin.check_config``: unknown keys, types, ranges such as ``lambda_max >= 0``): a problem is
one ERROR line naming the file and line, exit status 2, before anything is written.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from salign.tasks.st import SAlignSTTask
from salign.utils.config_check import check_entry_config
from salign.utils.io import run_cli


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Check the config, parse ESPnet's training options (``argv``, default the command line) and train."""
    check_entry_config(sys.argv[1:] if argv is None else argv, "st", "st_train")
    SAlignSTTask.main(cmd=argv)


if __name__ == "__main__":
    run_cli(main)
