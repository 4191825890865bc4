"""The mini MuST-C recipe through every stage (0-14) with the debug configs, in a scratch copy of the recipe."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from typing import Dict, List

import pytest

from salign.analysis.train_log import read_train_log
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    src = REPO / "egs" / "mini_mustc"
    dst = root / "egs" / "mini_mustc"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("corpus", "data", "dump", "exp", "RESULTS.md"))
    (root / "egs" / "TEMPLATE").symlink_to(REPO / "egs" / "TEMPLATE")
    env = dict(os.environ, SALIGN_ROOT=str(REPO))
    proc = subprocess.run(["./run.sh", "--debug", "true"], cwd=dst, env=env, capture_output=True, text=True)
    (root / "run.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return dst, proc.stdout


def test_every_stage_ran_and_the_table_was_printed(recipe):
    dst, out = recipe
    for n in (0, 1, 3, 4, 5, 10, 11, 12, 13, 14, 15):
        assert f"stage {n}" in out, n
    table = (dst / "exp" / "st_train_st_salign" / "RESULTS.md").read_text()
    assert "| tst-COMMON |" in table and "| tst-HE |" in table and "| train_subset |" in table
    assert "nrefs:1|case:mixed" in table and "./run.sh --debug true" in table
    assert (dst / "exp" / "st_train_st_salign" / "packed" / "model.zip").is_file()
    gap = dst / "exp" / "st_train_st_salign" / "gap"
    assert (gap / "gap.json").is_file() and (gap / "pca_top.png").is_file()


def results_rows(table: str) -> Dict[str, Dict[str, str]]:
    """RESULTS.md's table as {test set: {column: cell}}."""
    lines = [ln for ln in table.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[1:]]
    return {r["Test set"]: r for r in rows}


def test_every_score_is_a_finite_number_in_range_and_matches_its_score_file(recipe):
    dst, _ = recipe
    rows = results_rows((dst / "exp" / "st_train_st_salign" / "RESULTS.md").read_text())
    assert set(rows) == {"train_subset", "tst-COMMON", "tst-HE"}
    exp = dst / "exp" / "st_train_st_salign"
    for test_set, row in rows.items():
        for column, cell in row.items():
            if column == "Test set":
                continue
            value = float(cell)  # every cell is a number: no decode or score is missing
            top = 500.0 if column == "ASR WER" else 100.0  # WER counts insertions: it may pass 100
            assert math.isfinite(value) and 0.0 <= value <= top, (test_set, column, cell)
        for task, column, key in (("st", "ST BLEU", "bleu"), ("st", "ST chrF", "chrf"), ("mt", "MT BLEU", "bleu"),
                                  ("asr", "ASR WER", "wer")):
            result = json.loads((exp / f"decode_{task}_{test_set}" / "score" / "result.json").read_text())
            assert (result["task"], result["set"]) == (task, test_set)
            assert result["num_utts"] > 0 and result["num_missing"] == 0
            assert f"{result[key]:.2f}" == row[column], (test_set, column)


def test_training_losses_fall_and_the_gap_measures_are_in_range(recipe):
    """MT pre-training and S-Align training each learn over their epochs (the ST path starts untrained, so its
    cross-entropy must fall); the gap analysis reports accuracies and recalls in [0, 1]."""
    dst, _ = recipe
    exps = dst / "exp"
    for log_path, key in ((exps / "mt_train_mt" / "train.log", "loss"),
                          (exps / "st_train_st_salign" / "train.log", "loss_st")):
        log = read_train_log(log_path)
        assert log is not None, log_path
        train: List[Dict[str, float]] = log.split_stats("train")
        assert len(train) >= 2 and all(math.isfinite(s[key]) for s in train), (log_path, train)
        assert train[-1][key] < train[0][key], (log_path, key, [s[key] for s in train])
    gap = json.loads((exps / "st_train_st_salign" / "gap" / "gap.json").read_text())
    assert gap["n_utts"] > 0
    for name, acc in gap["discriminator"].items():
        assert all(0.0 <= acc[k] <= 1.0 for k in ("acc", "acc_speech", "acc_text")), (name, acc)
    for layer, r in gap["retrieval"].items():
        assert 0.0 <= r["r1"] <= r["r5"] <= 1.0, (layer, r)
    assert -2.0 <= gap["cosine"]["top"]["gap"] <= 2.0 and 0.0 <= gap["cka"]["top"] <= 1.0 + 1e-6


def test_rerun_is_a_noop(recipe):
    dst, _ = recipe
    env = dict(os.environ, SALIGN_ROOT=str(REPO))
    proc = subprocess.run(["./run.sh", "--debug", "true", "--stage", "3", "--stop_stage", "12"], cwd=dst, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is complete" in proc.stdout and "stage 11a" not in proc.stdout and "stage 11b" not in proc.stdout


def test_bad_stage_fails_fast_with_one_line(recipe):
    dst, _ = recipe
    env = dict(os.environ, SALIGN_ROOT=str(REPO))
    proc = subprocess.run(["./run.sh", "--stage", "7x"], cwd=dst, env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown stage '7x'" in proc.stderr and "fix:" in proc.stderr
