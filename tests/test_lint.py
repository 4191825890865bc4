"""The Python code passes ruff (rules and settings: ruff.toml; ruff is pinned in tools/requirements.txt, installed by
tools/install.sh), next to shellcheck for the shell scripts (tests/test_shellcheck.py)."""
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def ruff() -> str:
    """The venv's ruff (beside this Python), else one on PATH."""
    here = Path(sys.executable).parent / "ruff"
    return str(here) if here.is_file() else (shutil.which("ruff") or "")


def test_python_code_passes_ruff():
    exe = ruff()
    assert exe, "ruff missing (fix: tools/install.sh, or tools/venv/bin/pip install -r tools/requirements.txt)"
    pinned = next(line.split("==")[1].strip() for line in (REPO / "tools" / "requirements.txt").read_text().splitlines()
                  if line.startswith("ruff=="))
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert version == pinned, f"ruff {version} is not the pinned {pinned} (fix: tools/install.sh)"
    proc = subprocess.run([exe, "check", "--no-cache", "salign", "tests", "benchmarks"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
