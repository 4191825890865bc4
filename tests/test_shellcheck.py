"""Every shell script in the repo passes shellcheck (warnings and style)."""
import shutil
import subprocess

from tests.conftest import REPO


def shell_scripts():
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, text=True,
                         capture_output=True, check=True).stdout.split()
    files = [REPO / f for f in out if (REPO / f).is_file()]
    return [f for f in files if f.suffix == ".sh" or f.name == "run" and f.parent.name == ".ci"
            or f.read_bytes()[:40].startswith(b"#!/usr/bin/env bash")]


def test_every_shell_script_passes_shellcheck():
    assert shutil.which("shellcheck"), "shellcheck missing (fix: tools/install.sh, or apt-get install shellcheck)"
    scripts = shell_scripts()
    assert len(scripts) >= 10
    proc = subprocess.run(["shellcheck", "-S", "style", "-x", *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
