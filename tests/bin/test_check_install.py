"""The install check's logic, fed fake module/command/file lookups (what this machine has installed does not matter),
and the one property of the pinned install it relies on: ESPnet's argument checks still work under typeguard 2."""
from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from salign.bin import check_install
from salign.utils import install


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: every requirement present unless a test removes it from ``gone``."""
    gone = {"modules": set(), "commands": set(), "files": set(), "typeguard": "2.13.3"}

    def import_module(name):
        if name in gone["modules"]:
            raise ImportError(f"No module named {name!r}")
        return SimpleNamespace(__name__=name)

    real_exists = os.path.exists
    known_files = {path for path, _ in install.FILES}
    monkeypatch.setattr(install, "importlib", SimpleNamespace(import_module=import_module))
    monkeypatch.setattr(install, "shutil", SimpleNamespace(
        which=lambda cmd: None if cmd in gone["commands"] else f"/usr/bin/{cmd}"))
    monkeypatch.setattr(os.path, "exists",
                        lambda p: p not in gone["files"] if p in known_files else real_exists(p))
    monkeypatch.setattr("importlib.metadata.version", lambda name: gone["typeguard"])
    monkeypatch.setattr(install, "pretrained", lambda: [])  # (its report: tests/utils/test_install.py)
    return gone


def test_all_present_is_an_all_clear(machine, capsys):
    assert check_install.missing() == [] and check_install.warnings() == []
    assert check_install.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[check_install] OK: torch") and "MISSING" not in out


def test_each_missing_piece_is_one_line_with_its_fix(machine, capsys):
    machine["modules"].add("jiwer")
    machine["commands"].add("flite")
    machine["files"].add("/usr/share/games/fortunes")
    problems = check_install.missing()
    assert problems == [
        "python module 'jiwer' unusable (ImportError: No module named 'jiwer'); "
        "fix: tools/venv/bin/pip install jiwer",
        "command 'flite' not found; fix: apt-get install -y flite",
        "/usr/share/games/fortunes not found; fix: apt-get install -y fortunes",
    ]
    assert check_install.main([]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"[check_install] MISSING: {p}" for p in problems]


def test_a_slow_typeguard_is_a_warning_not_a_failure(machine, capsys):
    machine["typeguard"] = "4.1.5"
    (warning,) = check_install.warnings()
    assert warning.startswith("typeguard 4.1.5:") and "fix: tools/install.sh" in warning
    assert check_install.main([]) == 0
    out = capsys.readouterr().out
    assert "[check_install] SLOW: typeguard 4.1.5" in out and "[check_install] OK" in out


def test_typeguard_still_checks_espnet_arguments():
    """typeguard 2 (tools/constraints.txt) keeps ESPnet's @typechecked constructor checks: a wrong type fails at
    build time."""
    code = ("from espnet2.asr.ctc import CTC\n"
            "try:\n    CTC(odim='ten', encoder_output_size=4)\nexcept TypeError as e:\n    print('TypeError', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.startswith("TypeError") and "odim" in out
