"""Job launchers (utils/queue/local.sh, slurm.sh with a stand-in sbatch) and utils/parse_options.sh."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "utils" / "queue" / "local.sh"
SLURM = ROOT / "utils" / "queue" / "slurm.sh"
PARSE = ROOT / "utils" / "parse_options.sh"
FAIL_JOB2 = 'echo "job JOB says hello"; for i in $(seq 1 30); do echo "line $i of JOB"; done; ' \
            'if [ JOB = 2 ]; then echo "boom in JOB" >&2; exit 3; fi'

# A stand-in for sbatch: runs the array tasks here, one after another (a test double for the cluster only).
FAKE_SBATCH = r"""#!/usr/bin/env bash
printf '%s\n' "$@" > "${FAKE_SBATCH_ARGS:?}"
array='' out=''
for a in "$@"; do
  case "$a" in --array=*) array=${a#--array=} ;; --output=*) out=${a#--output=} ;; esac
done
script=${!#}
array=${array%%%*}
echo 4242
rc=0
for ((i = ${array%-*}; i <= ${array#*-}; i++)); do
  SLURM_ARRAY_TASK_ID=$i SLURM_JOB_ID=4242 bash "$script" > "${out//%a/$i}" 2>&1 || rc=1
done
exit $rc
"""


def run(args, cwd, env=None):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=120)


@pytest.fixture
def fake_sbatch(tmp_path):
    path = tmp_path / "bin" / "fake_sbatch"
    path.parent.mkdir()
    path.write_text(FAKE_SBATCH)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"SBATCH": str(path), "FAKE_SBATCH_ARGS": str(tmp_path / "sbatch_args")}


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_one_failing_job_is_reported_with_its_log(tmp_path, fake_sbatch, launcher):
    script, env = (LOCAL, None) if launcher == "local" else (SLURM, fake_sbatch)
    r = run([script, "JOB=1:3", "exp/log/work.JOB.log", FAIL_JOB2], tmp_path, env)
    assert r.returncode == 1, r.stderr
    log2 = "exp/log/work.2.log"
    lines = r.stderr.splitlines()
    assert lines[0] == f"{script.name}: 1/3 jobs failed; first failing log: {log2}"
    tail = (tmp_path / log2).read_text().splitlines()[-20:]
    assert [line[len("  | "):] for line in lines[1:21]] == tail
    assert "boom in 2" in r.stderr and "# Ended (code 3)" in r.stderr
    for j in (1, 3):
        text = (tmp_path / f"exp/log/work.{j}.log").read_text()
        assert f"job {j} says hello" in text and "# Accounting: time=" in text and "# Ended (code 0)" in text
        assert text.splitlines()[0].startswith(f'# echo "job {j} says hello"')


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_all_succeed_and_job_substitution(tmp_path, fake_sbatch, launcher):
    script, env = (LOCAL, None) if launcher == "local" else (SLURM, fake_sbatch)
    (tmp_path / "in").mkdir()
    for j in (1, 2, 3, 4):
        (tmp_path / "in" / f"part.{j}").write_text(f"content {j}\n")
    r = run([script, "--max_jobs_run", "2", "--mem", "2G", "JOB=1:4", "log/cp.JOB.log", "cat", "in/part.JOB",
             ">", "out.JOB.txt"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    for j in (1, 2, 3, 4):
        assert (tmp_path / f"out.{j}.txt").read_text() == f"content {j}\n"
        assert "# Ended (code 0)" in (tmp_path / f"log/cp.{j}.log").read_text()
    r = run([script, "log/single.log", "echo", "a b", "JOB"], tmp_path, env)  # single job: JOB left alone
    assert r.returncode == 0
    assert "a b JOB\n" in (tmp_path / "log/single.log").read_text()


def test_local_parallelism_limit(tmp_path):
    # 4 jobs of 1 s with at most 2 at a time take >= 2 s; unlimited (4 cores or more) would take ~1 s
    r = run([LOCAL, "--max_jobs_run=2", "JOB=1:4", "log/s.JOB.log", "sleep 1; date +%s.%N"], tmp_path)
    assert r.returncode == 0
    ends = sorted(float((tmp_path / f"log/s.{j}.log").read_text().splitlines()[2]) for j in range(1, 5))
    assert ends[-1] - ends[0] > 0.8


def test_local_threads_share_the_cores(tmp_path):
    """A single job gets every core (OMP_NUM_THREADS); parallel jobs split them; --num_threads and a caller's
    OMP_NUM_THREADS are honoured."""
    clean = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    cores = len(os.sched_getaffinity(0))

    def threads(args, extra=None):
        r = subprocess.run([str(LOCAL), *args, "log/t.JOB.log", "echo threads=$OMP_NUM_THREADS"], cwd=tmp_path,
                           capture_output=True, text=True, env=dict(clean, **(extra or {})), timeout=120)
        assert r.returncode == 0, r.stderr
        return [ln for ln in (tmp_path / "log/t.1.log").read_text().splitlines() if ln.startswith("threads=")][0]

    assert threads(["JOB=1:1"]) == f"threads={cores}"
    assert threads([f"JOB=1:{2 * cores}"]) == "threads=1"
    assert threads(["--num_threads", "3", "JOB=1:1"]) == "threads=3"
    assert threads(["JOB=1:1"], {"OMP_NUM_THREADS": "1"}) == "threads=1"


def test_slurm_passes_resources_to_sbatch(tmp_path, fake_sbatch):
    r = run([SLURM, "--gpu", "1", "--mem=8G", "--time", "2:00:00", "--max_jobs_run", "3", "--num_threads", "4",
             "JOB=1:5", "log/dec.JOB.log", "true"], tmp_path, dict(fake_sbatch, SLURM_PARTITION="gpuq"))
    assert r.returncode == 0, r.stderr
    args = Path(fake_sbatch["FAKE_SBATCH_ARGS"]).read_text().splitlines()
    for want in ("--wait", "--array=1-5%3", "--gres=gpu:1", "--mem=8G", "--time=2:00:00", "--partition=gpuq",
                 "--cpus-per-task=4"):
        assert want in args
    r = run([SLURM, "log/x.log", "true"], tmp_path, {"SBATCH": "/nonexistent/sbatch"})
    assert r.returncode == 1 and "not found" in r.stderr


def test_launcher_usage_errors(tmp_path):
    r = run([LOCAL, "--bogus", "1", "log/x.log", "true"], tmp_path)
    assert r.returncode == 1 and "unknown option '--bogus'" in r.stderr
    r = run([LOCAL, "JOB=1:2", "log/same.log", "true"], tmp_path)
    assert r.returncode == 1 and "does not contain 'JOB'" in r.stderr
    assert run([LOCAL, "--help"], tmp_path).stdout.startswith("Run a command as N parallel jobs")


SCRIPT = """#!/usr/bin/env bash
# Demo recipe: prints its options.
#   --nj N   number of jobs
set -euo pipefail
nj=4
src_lang=en
use_gpu=false
. {parse} || exit 1
echo "nj=$nj src_lang=$src_lang use_gpu=$use_gpu rest=$*"
"""


@pytest.fixture
def demo(tmp_path):
    path = tmp_path / "demo.sh"
    path.write_text(SCRIPT.replace("{parse}", str(PARSE)))
    return path


def test_parse_options(demo, tmp_path):
    r = run(["bash", demo, "--nj", "8", "--src-lang=de", "--use_gpu", "true", "a", "--b"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "nj=8 src_lang=de use_gpu=true rest=a --b"
    r = run(["bash", demo, "--", "--nj"], tmp_path)
    assert r.stdout.strip() == "nj=4 src_lang=en use_gpu=false rest=--nj"
    r = run(["bash", demo, "--help"], tmp_path)
    assert r.returncode == 0 and r.stdout == "Demo recipe: prints its options.\n  --nj N   number of jobs\n"
    r = run(["bash", demo, "--stagee", "3"], tmp_path)
    assert r.returncode == 1
    assert "unknown option '--stagee'" in r.stderr and "--nj" in r.stderr and "--src_lang" in r.stderr
    r = run(["bash", demo, "--use_gpu", "yes"], tmp_path)
    assert r.returncode == 1 and "true or false" in r.stderr
    r = run(["bash", demo, "--nj"], tmp_path)
    assert r.returncode == 1 and "needs a value" in r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean():
    r = subprocess.run(["shellcheck", "-S", "style", str(LOCAL), str(SLURM), str(PARSE)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout
