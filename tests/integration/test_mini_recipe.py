"""The mini MuST-C recipe through every stage (0-14) with the debug configs, in a scratch copy of the recipe."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

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
    table = (dst / "RESULTS.md").read_text()
    assert "| tst-COMMON |" in table and "| tst-HE |" in table and "| train_subset |" in table
    assert "nrefs:1|case:mixed" in table and "./run.sh --debug true" in table
    assert (dst / "exp" / "st_train_st_salign" / "packed" / "model.zip").is_file()
    gap = dst / "exp" / "st_train_st_salign" / "gap"
    assert (gap / "gap.json").is_file() and (gap / "pca_top.png").is_file()


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
