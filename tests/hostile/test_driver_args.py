"""Hostile command lines against the stage driver (egs/TEMPLATE/st.sh) and its launchers (issue 13, item 3): each is
one ``ERROR [tool]: what (fix: ...)`` line on stderr, exit status 2, before any work (nothing is written), in a scratch
copy of the mini recipe that holds no data yet (each run takes well under a second, except the GPU check's torch
import). A re-run after the fix is in test_driver_stale.py (on a recipe with data). Issue 22: a stage range with no
stage in it, dump names that would clash, and a second run in one recipe directory (the lock)."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.hostile.driver import REPO, mini_recipe, mustc_recipe, one_error, run, snapshot

NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # torch sees no GPU, on any machine


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> Path:
    """A scratch copy of egs/mini_mustc without corpus, data or outputs."""
    return mini_recipe(tmp_path_factory.mktemp("bare"))


def fails_cleanly(recipe: Path, args, *parts, env=None) -> str:
    """``./run.sh --debug true ARGS`` fails with the one-line error holding ``parts`` and writes nothing."""
    before = snapshot(recipe)
    line = one_error(run(recipe, ["./run.sh", "--debug", "true", *args], env), *parts)
    assert snapshot(recipe) == before
    assert not list(recipe.glob("JOB=*")) and not list(recipe.rglob("*JOB=*"))  # no stray launcher files
    return line


@pytest.mark.parametrize("option", ["--nj", "--inference_nj"])
@pytest.mark.parametrize("value", ["0", "abc", "-2", "1.5", ""])
def test_job_counts_must_be_whole_numbers(bare, option, value):
    fails_cleanly(bare, [option, value], f"{option} must be a whole number >= 1, got '{value}'", f"{option} 1")


@pytest.mark.parametrize("option,value", [("--ngpu", "one"), ("--min_frames", "-1"), ("--nbpe", "0"),
                                          ("--train_eval_size", "x"), ("--min_free_gb", "lots")])
def test_other_numbers_must_be_whole_numbers(bare, option, value):
    fails_cleanly(bare, [option, value], f"{option} must be a whole number", f"got '{value}'")


@pytest.mark.parametrize("args,stray", [(["foo"], "foo"), (["--stage", "3", "bar", "--stop_stage", "4"], "bar"),
                                        (["--test_sets", "tst-COMMON", "tst-HE"], "tst-HE")])
def test_a_stray_positional_argument_is_an_error(bare, args, stray):
    """parse_options.sh stops at the first non-option: it and all after it were silently ignored."""
    line = fails_cleanly(bare, args, f"unexpected argument '{stray}'", "quote a value with spaces")
    if stray == "bar":
        assert "'bar --stop_stage 4'" in line  # what would have been ignored


def test_stop_stage_below_stage_is_an_error_not_done(bare):
    proc = run(bare, ["./run.sh", "--debug", "true", "--stage", "5", "--stop_stage", "3"])
    one_error(proc, "--stop_stage 3 is below --stage 5", "--stop_stage 5 or higher")
    assert "done" not in proc.stdout


@pytest.mark.parametrize("args,part", [(["--stagee", "3"], "unknown option '--stagee'"),
                                       (["--stage"], "option '--stage' needs a value"),
                                       (["--token_joint", "yes"], "takes true or false, got 'yes'")])
def test_option_errors_of_the_parser_are_one_line(bare, args, part):
    fails_cleanly(bare, args, part)


@pytest.mark.parametrize("name,option", [("exp", "--expdir"), ("dump", "--dumpdir"), ("data", "")])
def test_an_unwritable_output_dir_is_one_line_at_the_start(bare, name, option):
    """Before stage 0 (which would generate the corpus): the output dir is a link into /proc, where nobody (root
    included) can create a file; then a plain file where the directory should be."""
    target = bare / name
    target.symlink_to("/proc/1/fdinfo")
    try:
        line = fails_cleanly(bare, [], f"cannot write in the output directory {name}")
        assert option in line
    finally:
        target.unlink()
    target.write_text("")
    try:
        fails_cleanly(bare, [], f"{name} is not a directory")
    finally:
        target.unlink()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only (mode) directory")
def test_a_read_only_recipe_dir_is_one_line(bare):
    (bare / "exp").mkdir()
    (bare / "exp").chmod(0o555)
    try:
        fails_cleanly(bare, ["--stage", "10"], "cannot write in the output directory exp")
    finally:
        (bare / "exp").chmod(0o755)
        (bare / "exp").rmdir()


def test_too_little_free_disk_is_one_line_before_stage_0(bare):
    line = fails_cleanly(bare, ["--min_free_gb", "100000000"], "GB free in .", "stages 0-15", "--min_free_gb")
    assert "100000000" in line


def test_the_mustc_recipe_on_a_cpu_only_machine_fails_before_stage_1(tmp_path):
    """egs/mustc/run_pair.sh asks for --ngpu 1: without a GPU, that is known before stage 1 (not as ESPnet's
    'Torch not compiled with CUDA' after stages 1-10)."""
    recipe = mustc_recipe(tmp_path)
    corpus = tmp_path / "MUSTC_v1.0"
    corpus.mkdir()
    before = snapshot(tmp_path)
    proc = run(recipe, ["./run.sh", "--mustc_root", corpus], NO_GPU)
    one_error(proc, "--ngpu 1", "torch sees 0 CUDA GPU(s)", "fix: add --ngpu 0")
    assert "stage 1" not in proc.stdout and snapshot(tmp_path) == before
    # the same before the data (no MuST-C given at all): the argument errors come first
    one_error(run(recipe, ["./run.sh", "--mustc_root", corpus, "--nj", "0"], NO_GPU), "--nj must be")
    one_error(run(recipe, ["./run.sh", "--mustc_root", corpus, "extra"], NO_GPU), "unexpected argument 'extra'")


@pytest.mark.parametrize("jobs", ["JOB=1:abc", "JOB=1:-2", "JOB=1:0", "JOB=0:2", "JOB=3:1"])
@pytest.mark.parametrize("launcher", ["local.sh", "slurm.sh"])
def test_a_bad_job_range_is_one_line_and_no_stray_file(tmp_path, launcher, jobs):
    """The launchers took 'JOB=1:abc' for the log file's name (a stray file of that name)."""
    proc = run(tmp_path, [REPO / "utils" / "queue" / launcher, jobs, "log/x.JOB.log", "echo", "JOB"],
               {"SBATCH": "/nonexistent/sbatch"})
    one_error(proc, "job range", tool=launcher)
    assert list(tmp_path.iterdir()) == []


def test_a_stage_range_that_holds_no_stage_is_an_error_not_done(bare):
    """``--stage 7 --stop_stage 9`` (ESPnet's LM stages, none here) exited 0 having done nothing (issue 22)."""
    proc = run(bare, ["./run.sh", "--debug", "true", "--stage", "7", "--stop_stage", "9"])
    one_error(proc, "no stage in 7-9", "ESPnet's LM stages 6-9 have no counterpart here", "--stage 7 --stop_stage 10")
    assert "done" not in proc.stdout


@pytest.mark.parametrize("args,part", [(["--feats_tag", "a/b"], "--feats_tag 'a/b': not a directory name"),
                                       (["--feats_tag", "filtered"], "--feats_tag 'filtered'"),
                                       (["--test_sets", "stats"],
                                        "a set named 'stats' would share dump/tiny_random_last/stats")])
def test_a_dump_name_that_would_clash_is_one_line(bare, args, part):
    fails_cleanly(bare, args, part)


def test_a_second_run_in_the_same_recipe_refuses_naming_the_first(tmp_path):
    """Two runs in one recipe directory raced (one died on a "corrupt" checkpoint): the second now refuses at once,
    one line naming the first's pid (issue 22). Here the first run's stage 0 (the recipe's own corpus step) waits
    for a file; once it has ended, the same command runs."""
    recipe = mini_recipe(tmp_path)
    corpus = recipe / "local" / "corpus.sh"
    corpus.write_text("#!/usr/bin/env bash\nwhile [ ! -f release ]; do sleep 0.05; done\n")
    lock = recipe / ".salign.lock"
    cmd = ["./run.sh", "--debug", "true", "--stage", "0", "--stop_stage", "0"]
    env = dict(os.environ, SALIGN_ROOT=str(REPO), OMP_NUM_THREADS="1")
    first = subprocess.Popen(cmd, cwd=recipe, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while not (lock.is_file() and lock.read_text().strip()) and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        holder = int(lock.read_text().split()[0])
        assert "st.sh" in Path(f"/proc/{holder}/cmdline").read_text().replace("\0", " ")
        line = one_error(run(recipe, cmd), f"another run (pid {holder}: ", "is working in this recipe directory",
                         "wait until it and its jobs have ended, or run from a copy")
        assert str(recipe) in line
    finally:
        (recipe / "release").write_text("")
        out, _ = first.communicate(timeout=60)
    assert first.returncode == 0, out
    proc = run(recipe, cmd)
    assert proc.returncode == 0 and "done (stages 0..0)" in proc.stdout, proc.stdout + proc.stderr
