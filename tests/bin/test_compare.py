"""The salign.bin.compare command line: it writes and prints the table, missing results are dashes, bad input is one
line and exit 2. The table's rules: tests/analysis/test_compare.py; the comparison configs: tests/test_configs.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from salign.bin import compare
from tests.analysis.test_compare import make_exp, table_rows
from tests.conftest import REPO, cli_error


@pytest.fixture
def exp(tmp_path) -> Path:
    return make_exp(tmp_path)


def test_main_writes_and_prints_the_table(exp, tmp_path, capsys):
    out = tmp_path / "COMPARE.md"
    assert compare.main(["--exp", str(exp), "--out", str(out), "--methods", "baseline adversarial, stock_espnet",
                         "--command", "./compare.sh --debug true", "--mt_exp", str(exp / "mt_train_mt_compare"),
                         "--note", "Learning size: ./compare.sh --corpus_opts ..."]) == 0
    text = out.read_text()
    assert capsys.readouterr().out == text
    assert list(table_rows(text)) == ["baseline", "adversarial", "stock_espnet"]
    assert "Learning size: ./compare.sh --corpus_opts ..." in text and "Shared MT pre-training" in text


def test_missing_decodes_are_dashes_and_the_cli_writes_atomically(exp, tmp_path):
    (exp / "st_ot").mkdir()
    out = tmp_path / "sub" / "C.md"
    proc = subprocess.run([sys.executable, "-m", "salign.bin.compare", "--exp", str(exp), "--out", str(out),
                           "--methods", "ot", "--command", "x"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    row = table_rows(out.read_text())["ot"]
    assert row[2:] == ["–"] * 10
    assert "(no translation results yet)" in out.read_text()
    assert [p.name for p in out.parent.iterdir()] == ["C.md"]


def test_bad_input_is_one_line_and_exit_2(exp, tmp_path, capsys):
    err = cli_error(capsys, compare.main, ["--exp", str(exp), "--methods", "baseline nope", "--command", "x",
                                           "--out", str(tmp_path / "o.md")])
    assert "no experiment dir for nope" in err and "fix:" in err
    proc = subprocess.run([sys.executable, "-m", "salign.bin.compare", "--exp", str(tmp_path / "none"),
                           "--methods", "a", "--command", "x", "--out", str(tmp_path / "o.md")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.startswith("ERROR [compare]: ") and "fix:" in proc.stderr
    assert not (tmp_path / "o.md").exists()
