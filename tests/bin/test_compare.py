"""The salign.bin.compare command line: it writes and prints the table, missing results are dashes, bad input is one
line and exit 2. The table's rules: tests/analysis/test_compare.py; the comparison configs: tests/test_configs.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from salign.bin import compare
from tests.analysis.test_compare import make_exp, make_sig_exp, table, table_rows
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
    assert row[2:] == ["–"] * 11  # with the p-value column (no baseline row: none)
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


def test_test_sets_bootstrap_and_seed_options(tmp_path, monkeypatch, capsys):
    root = tmp_path / "recipe"
    root.mkdir()
    monkeypatch.chdir(root)
    make_sig_exp(root)
    exp = root / "exp"
    out = tmp_path / "C.md"
    assert compare.main(["--exp", str(exp), "--out", str(out), "--methods", "baseline better",
                         "--test_sets", "tst-COMMON,tst-voices", "--n_bootstrap", "50", "--seed", "3",
                         "--command", "x"]) == 0
    text = out.read_text()
    t = table(text)
    assert t["baseline"]["p tst-voices"] == "base" and t["better"]["p tst-COMMON"].endswith("†")
    assert "over 50 resamples of the set's segments with replacement, seed 3" in text and "`bs:50|seed:3`" in text
    assert compare.main(["--exp", str(exp), "--out", str(out), "--methods", "better", "--test_set", "tst-voices",
                         "--n_bootstrap", "0", "--command", "x"]) == 0  # the old single-set option still works
    assert "| ST BLEU tst-voices | ST BLEU train_subset |" in out.read_text()
    err = cli_error(capsys, compare.main, ["--exp", str(exp), "--methods", "better", "--command", "x",
                                           "--n_bootstrap", "-5", "--out", str(out)])
    assert "--n_bootstrap -5" in err and "fix:" in err
