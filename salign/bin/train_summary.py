"""Print how training went, from ESPnet training logs: first and last epoch of each reported loss and accuracy.

    python -m salign.bin.train_summary exp/mt_x/train.log exp/st_y/train.log

Missing logs are skipped (a stage may have been skipped). Parsing: :mod:`salign.analysis.train_log`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from salign.analysis.train_log import summaries
from salign.utils.io import run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options of train_summary."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("logs", nargs="*", type=Path, help="ESPnet train.log files (missing ones are skipped)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Optional[int]:
    """Print a summary per log."""
    text = summaries(get_parser().parse_args(argv).logs)
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    run_cli(main)
