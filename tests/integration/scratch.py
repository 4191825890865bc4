"""Scratch copies of the mini recipe for the integration tests (the repository's own egs/ stays untouched)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional, Sequence

from tests.conftest import REPO

OUTPUTS = ("corpus", "data", "dump", "exp", "RESULTS.md", "COMPARE.md", ".salign.lock")  # a run's, not the recipe's


def mini_recipe(root: Path) -> Path:
    """``root/egs/mini_mustc``: the recipe without any outputs, next to a link to the shared driver."""
    dst = root / "egs" / "mini_mustc"
    shutil.copytree(REPO / "egs" / "mini_mustc", dst, ignore=shutil.ignore_patterns(*OUTPUTS))
    (root / "egs" / "TEMPLATE").symlink_to(REPO / "egs" / "TEMPLATE")
    return dst


def run(recipe: Path, command: Sequence[str], log: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Run ``command`` in the recipe with this checkout's tools; keep its output in ``log`` when given."""
    env = dict(os.environ, SALIGN_ROOT=str(REPO))
    proc = subprocess.run(list(command), cwd=recipe, env=env, capture_output=True, text=True)
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    return proc
