"""Each MuST-C pair's recipe runs its data-prep stage on a small MuST-C-layout corpus and fails fast on bad input."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.data.conftest import make_split

PAIRS = ["de", "es", "fr", "it", "nl", "pt", "ro", "ru"]
SPLITS = ("train", "dev", "tst-COMMON", "tst-HE")


def scratch_recipe(tmp_path: Path, pair: str) -> Path:
    dst = tmp_path / "egs" / "mustc" / f"en-{pair}"
    shutil.copytree(REPO / "egs" / "mustc" / f"en-{pair}", dst)
    (tmp_path / "egs" / "TEMPLATE").symlink_to(REPO / "egs" / "TEMPLATE")
    (tmp_path / "egs" / "mustc" / "run_pair.sh").symlink_to(REPO / "egs" / "mustc" / "run_pair.sh")
    return dst


def run(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SALIGN_ROOT=str(REPO))
    env.pop("MUSTC_ROOT", None)
    return subprocess.run(["./run.sh", *args], cwd=recipe, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("pair", PAIRS)
def test_data_prep_stage_of_each_pair(pair, tmp_path):
    corpus = tmp_path / "MUSTC_v1.0"
    for split in SPLITS:
        make_split(corpus / f"en-{pair}", split, pair)
    recipe = scratch_recipe(tmp_path, pair)
    proc = run(recipe, "--stage", "1", "--stop_stage", "1", "--mustc_root", str(corpus))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for split in SPLITS:
        d = recipe / "data" / split
        assert len((d / f"text.{pair}").read_text().splitlines()) == 3
        assert (d / "text.en").read_text().splitlines()[0].split(maxsplit=1)[1] == "hello world"


def test_missing_corpus_location_is_one_line(tmp_path):
    proc = run(scratch_recipe(tmp_path, "de"), "--stage", "1", "--stop_stage", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "MuST-C location unknown" in proc.stderr
    assert "--mustc_root" in proc.stderr


def test_missing_split_fails_before_any_output(tmp_path):
    corpus = tmp_path / "mustc"
    make_split(corpus / "en-de", "train", "de")
    recipe = scratch_recipe(tmp_path, "de")
    proc = run(recipe, "--stage", "1", "--stop_stage", "3", "--mustc_root", str(corpus))
    assert proc.returncode == 2 and "dev" in proc.stderr and "ERROR" in proc.stderr
    assert not (recipe / "data").exists() and not (recipe / "dump").exists()
