"""Helpers of the driver's hostile-input tests: scratch recipes, runs, and the one-line error rule."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

from tests.conftest import REPO
from tests.integration.scratch import mini_recipe

__all__ = ["REPO", "mini_recipe", "mustc_recipe", "run", "one_error", "snapshot"]


def mustc_recipe(root: Path, pair: str = "en-de") -> Path:
    """``root/egs/mustc/<pair>``: the shipped MuST-C recipe (run_pair.sh, path.sh, cmd.sh) beside the shared driver."""
    dst = root / "egs" / "mustc"
    shutil.copytree(REPO / "egs" / "mustc", dst)
    if not (root / "egs" / "TEMPLATE").exists():
        (root / "egs" / "TEMPLATE").symlink_to(REPO / "egs" / "TEMPLATE")
    return dst / pair


def run(cwd: Path, args: Sequence[str], env: Optional[Mapping[str, str]] = None) -> subprocess.CompletedProcess:
    """Run a recipe command (``./run.sh ...``) or a tool in ``cwd`` with this checkout's tools, one thread."""
    full = dict(os.environ, SALIGN_ROOT=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    full.update(env or {})
    return subprocess.run(list(map(str, args)), cwd=cwd, env=full, capture_output=True, text=True)


def one_error(proc: subprocess.CompletedProcess, *parts: str, tool: str = "st.sh") -> str:
    """The run failed with exit status 2 and exactly one ``ERROR [tool]: what (fix: ...)`` line on stderr, no
    traceback; the line (returned) holds every one of ``parts``."""
    out = proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR [")]
    assert proc.returncode == 2, out[-3000:]
    assert len(errors) == 1, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    line = errors[0]
    assert line.startswith(f"ERROR [{tool}]: ") and "(fix: " in line, line
    for part in parts:
        assert part in line, (part, line)
    return line


#: the recipe's run lock (utils/recipe_lock.sh): every run that gets past its checks says in it who holds it
LOCK = ".salign.lock"


def snapshot(root: Path) -> Dict[str, Tuple[int, int]]:
    """Every file, link and directory under ``root`` but the run lock (:data:`LOCK`): relative path -> (size,
    mtime_ns) (a directory: (0, 0)); equal before and after a run means the run wrote nothing."""
    found: Dict[str, Tuple[int, int]] = {}
    for dirpath, dirs, files in os.walk(root):
        files = [f for f in files if f != LOCK]
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            # a directory by its name only: a probe file made and removed (the writability check) changes its mtime
            found[str(p.relative_to(root))] = (0, 0) if p.is_dir() and not p.is_symlink() else (st.st_size,
                                                                                                 st.st_mtime_ns)
    return found
