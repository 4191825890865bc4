"""Report what salign needs and is missing, each with the exact command that fixes it.

Usage: ``python -m salign.bin.check_install`` (exit status 1 when anything is missing).
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from salign.utils.install import missing, report, warnings  # noqa: F401 - missing/warnings: this tool's checks
from salign.utils.io import run_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print missing requirements (or an all-clear line); exit status 1 when anything is missing."""
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    return report()


if __name__ == "__main__":
    run_cli(main)
