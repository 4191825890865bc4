"""Job launchers (utils/queue/local.sh, slurm.sh with a stand-in sbatch) and utils/parse_options.sh."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "utils" / "queue" / "local.sh"
SLURM = ROOT / "utils" / "queue" / "slurm.sh"
SLURM_PL = ROOT / "utils" / "queue" / "slurm.pl"  # slurm.sh under the name ESPnet's launcher knows
COMMON = ROOT / "utils" / "queue" / "common.sh"  # what the two launchers share (sourced by both)
PARSE = ROOT / "utils" / "parse_options.sh"
FAIL_JOB2 = 'echo "job JOB says hello"; for i in $(seq 1 30); do echo "line $i of JOB"; done; ' \
            'if [ JOB = 2 ]; then echo "boom in JOB" >&2; exit 3; fi'

# A stand-in for sbatch: runs the array tasks here, one after another (a test double for the cluster only).
FAKE_SBATCH = r"""#!/usr/bin/env bash
printf '%s\n' "$@" > "${FAKE_SBATCH_ARGS:?}"
array='' out='' nodes=1
for a in "$@"; do
  case "$a" in
    --array=*) array=${a#--array=} ;; --output=*) out=${a#--output=} ;; --nodes=*) nodes=${a#--nodes=} ;;
  esac
done
script=${!#}
array=${array%%%*}
echo 4242
rc=0
for ((i = ${array%-*}; i <= ${array#*-}; i++)); do
  SLURM_ARRAY_TASK_ID=$i SLURM_JOB_ID=4242 SLURM_JOB_NUM_NODES=$nodes bash "$script" > "${out//%a/$i}" 2>&1 || rc=1
done
exit $rc
"""
# A stand-in for srun inside such a job: one task per allocated "node", all on this machine, with the variables
# a Slurm job step sets (what ESPnet's --dist_launcher slurm reads).
FAKE_SRUN = r"""#!/usr/bin/env bash
printf '%s\n' "$@" > "${FAKE_SRUN_ARGS:?}"
echo "SRUN_CPUS_PER_TASK=${SRUN_CPUS_PER_TASK:-}" >> "${FAKE_SRUN_ARGS}"
while [[ $# -gt 0 && $1 == -* ]]; do shift; done
n=${SLURM_JOB_NUM_NODES:-1}
pids=()
for ((i = 0; i < n; i++)); do
  SLURM_PROCID=$i SLURM_NODEID=$i SLURM_LOCALID=0 SLURM_NTASKS=$n SLURM_STEP_NUM_NODES=$n \
    SLURM_STEP_NODELIST=localhost "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
"""


def run(args, cwd, env=None):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=120)


def fake_slurm_env(tmp_path: Path) -> dict:
    """Environment for slurm.sh with the stand-ins: SBATCH, and an ``srun`` first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, text in (("fake_sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN)):
        (bindir / name).write_text(text)
        (bindir / name).chmod((bindir / name).stat().st_mode | stat.S_IEXEC)
    return {"SBATCH": str(bindir / "fake_sbatch"), "FAKE_SBATCH_ARGS": str(tmp_path / "sbatch_args"),
            "FAKE_SRUN_ARGS": str(tmp_path / "srun_args"), "PATH": f"{bindir}:{os.environ['PATH']}"}


@pytest.fixture
def fake_sbatch(tmp_path):
    return fake_slurm_env(tmp_path)


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
    assert r.returncode == 2 and "not found" in r.stderr


def test_slurm_reports_a_killed_task_and_a_failed_submission(tmp_path, fake_sbatch):
    """A task killed before its footer (Slurm's time or memory limit) is named with its Slurm output; an sbatch that
    submits nothing is one line."""
    r = run([SLURM, "JOB=1:2", "log/k.JOB.log", 'if [ JOB = 2 ]; then kill -9 $PPID; fi; echo ran JOB'], tmp_path,
            fake_sbatch)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == "slurm.sh: 1/2 jobs failed; first failing log: log/k.2.log"
    assert "ended without a footer" in lines[-1] and lines[-1].endswith("/log/q/k.x.2.slurm.out")
    assert "# Ended (code 0)" in (tmp_path / "log/k.1.log").read_text()
    bad = tmp_path / "bad_sbatch"
    bad.write_text("#!/usr/bin/env bash\necho 'sbatch: error: invalid partition' >&2\nexit 1\n")
    bad.chmod(0o755)
    r = run([SLURM, "JOB=1:2", "log/s.JOB.log", "true"], tmp_path, dict(fake_sbatch, SBATCH=str(bad)))
    assert r.returncode == 2
    assert r.stderr.strip().startswith(f"ERROR [slurm.sh]: submission failed ({bad} exit 1): sbatch: error: invalid "
                                       "partition")


def test_launchers_take_espnet_launch_options(tmp_path, fake_sbatch):
    """The options ESPnet's espnet2.bin.launch (and its st.sh, via --cmd) passes: --name, --gpu, --num_threads,
    --num_nodes. local.sh runs one node only; slurm.sh allocates the nodes, one task each, for the command's srun."""
    r = run([LOCAL, "--name", "exp/st", "--gpu", "2", "--num_threads", "1", "--num_nodes", "1", "log/t.log",
             "echo", "ok"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ok" in (tmp_path / "log/t.log").read_text()
    r = run([LOCAL, "--num_nodes", "2", "log/t.log", "true"], tmp_path)
    assert r.returncode == 2 and "local.sh runs jobs on this machine only" in r.stderr and "slurm.sh" in r.stderr
    r = run([SLURM, "--name", "st_job", "--gpu", "4", "--num_threads", "4", "--num_nodes", "2", "log/train.log",
             "srun", "--export=ALL", "bash", "-c", "echo task $SLURM_PROCID of $SLURM_NTASKS"], tmp_path, fake_sbatch)
    assert r.returncode == 0, r.stderr
    args = Path(fake_sbatch["FAKE_SBATCH_ARGS"]).read_text().splitlines()
    for want in ("--job-name=st_job", "--nodes=2", "--ntasks-per-node=1", "--gres=gpu:4", "--cpus-per-task=4"):
        assert want in args
    log = (tmp_path / "log/train.log").read_text()
    assert "task 0 of 2" in log and "task 1 of 2" in log
    assert "SRUN_CPUS_PER_TASK=4" in Path(fake_sbatch["FAKE_SRUN_ARGS"]).read_text()
    assert SLURM_PL.resolve() == SLURM.resolve()
    r = run([SLURM, "--num_nodes", "0", "log/x.log", "true"], tmp_path, fake_sbatch)
    assert r.returncode == 2 and "--num_nodes must be a positive integer" in r.stderr


@pytest.mark.parametrize("nodes", [1, 2])
def test_espnet_launcher_drives_the_launchers(tmp_path, fake_sbatch, nodes):
    """``python -m espnet2.bin.launch --cmd LAUNCHER`` as stage 11 calls it: one node through local.sh; two nodes
    through slurm.pl (srun, one task per node, ESPnet's --dist_launcher slurm, gloo without GPUs)."""
    import sys

    launcher = LOCAL if nodes == 1 else SLURM_PL
    r = run([sys.executable, "-m", "espnet2.bin.launch", "--cmd", f"{launcher} --name exp", "--log", "exp/train.log",
             "--ngpu", "0", "--num_nodes", str(nodes), "--init_file_prefix", "exp/.dist_init_",
             "--multiprocessing_distributed", "true", "--", "bash", "-c", 'echo "rank=${SLURM_PROCID:-none} $*"',
             "_", "--x", "1"], tmp_path, fake_sbatch)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in (tmp_path / "exp/train.log").read_text().splitlines() if ln.startswith("rank=")]
    if nodes == 1:
        assert lines == ["rank=none --x 1 --ngpu 0 --multiprocessing_distributed True"]
    else:
        assert sorted(ln.split()[0] for ln in lines) == ["rank=0", "rank=1"]
        assert all("--dist_launcher slurm --dist_init_method file://" in ln and ln.endswith("--dist_backend gloo")
                   for ln in lines)
        assert "--nodes=2" in Path(fake_sbatch["FAKE_SBATCH_ARGS"]).read_text().splitlines()


def test_launcher_usage_errors(tmp_path):
    r = run([LOCAL, "--bogus", "1", "log/x.log", "true"], tmp_path)
    assert r.returncode == 2 and "unknown option '--bogus'" in r.stderr
    r = run([LOCAL, "JOB=1:2", "log/same.log", "true"], tmp_path)
    assert r.returncode == 2 and "does not contain 'JOB'" in r.stderr
    assert run([LOCAL, "--help"], tmp_path).stdout.startswith("Run a command as N parallel jobs")


# A job that reports progress as salign.utils.progress does (on stderr, into its log): N utterances, STEP s apart.
PROGRESS_JOB = r"""n=$1 step=$2 job=$3
echo "job $job: an unrelated line: 3/4 (75%), not progress"
for ((i = 1; i <= n; i++)); do
  sleep "$step"
  end="ETA 1 s"; [ "$i" -lt "$n" ] || end=done
  echo "make_fbank: shard $job/3: $i/$n utterances ($((100 * i / n))%), 1 s, $end" >&2
done
"""
SUMMARY = re.compile(r"^(local|slurm)\.sh: log/p\.JOB\.log: (\d+)/(~?)(\d+) utterances \((\d+)%\), \d+ s"
                     r"(, ETA ~?\d+ s)?; jobs: (\d+) running, (\d+) done, (\d+) waiting$")


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_progress_summary_while_jobs_run(tmp_path, fake_sbatch, launcher):
    """Every --progress_interval seconds one line sums the jobs' latest progress lines (a previous run's log of a job
    not started yet is not counted; a job that has not reported counts as the mean of those that have, marked ~),
    with the ETA; a last line once all ended; the job logs are left as the jobs wrote them."""
    script, env = (LOCAL, {}) if launcher == "local" else (SLURM, dict(fake_sbatch))
    (tmp_path / "job.sh").write_text(PROGRESS_JOB)
    (tmp_path / "log").mkdir()
    old = tmp_path / "log" / "p.3.log"  # a previous run's log: 99 utterances, long done
    old.write_text("make_fbank: shard 3/3: 99/99 utterances (100%), 1 s, done\n# Ended (code 0) at then\n")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    r = run([script, "--max_jobs_run", "2", "--progress_interval", "1", "JOB=1:3", "log/p.JOB.log",
             "bash", "job.sh", "10", "0.15", "JOB"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) >= 3, r.stderr
    found = [SUMMARY.match(ln) for ln in lines]
    assert all(found), r.stderr
    done = [int(m.group(2)) for m in found]
    assert done == sorted(done) and done[-1] == 30, r.stderr
    assert all(int(m.group(4)) <= 30 and int(m.group(8)) + int(m.group(9)) + int(m.group(7)) == 3 for m in found)
    last = found[-1]
    assert (last.group(3), last.group(4), last.group(5), last.group(6)) == ("", "30", "100", None)
    assert last.group(7, 8, 9) == ("0", "3", "0"), lines[-1]
    if launcher == "local":  # 2 at a time: job 3 waits at first, its share estimated (~), with an ETA
        first = found[0]
        assert first.group(9) == "1" and first.group(3) == "~" and first.group(4) == "30" and first.group(6), lines[0]
    for j in (1, 2, 3):
        text = (tmp_path / f"log/p.{j}.log").read_text().splitlines()
        assert text[2] == f"job {j}: an unrelated line: 3/4 (75%), not progress"
        assert text[-3] == f"make_fbank: shard {j}/3: 10/10 utterances (100%), 1 s, done"
        assert text[-2].startswith("# Accounting: ") and text[-1].startswith("# Ended (code 0)")
    # none with --progress_interval 0, nor for a job that reports nothing
    r = run([script, "--progress_interval", "0", "JOB=1:3", "log/p.JOB.log", "bash", "job.sh", "3", "0.5", "JOB"],
            tmp_path, env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = run([script, "--progress_interval", "1", "JOB=1:2", "log/q.JOB.log", "sleep 1.5"], tmp_path, env)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_progress_interval_usage_error(tmp_path):
    r = run([LOCAL, "--progress_interval", "soon", "JOB=1:2", "log/x.JOB.log", "true"], tmp_path)
    assert r.returncode == 2 and not (tmp_path / "log").exists()
    assert r.stderr.strip() == ("ERROR [local.sh]: --progress_interval must be a whole number of seconds, got 'soon' "
                                "(fix: e.g. --progress_interval 60, or 0 for no progress summary)")


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
    assert r.returncode == 2
    assert "unknown option '--stagee'" in r.stderr and "--nj" in r.stderr and "--src_lang" in r.stderr
    r = run(["bash", demo, "--use_gpu", "yes"], tmp_path)
    assert r.returncode == 2 and "true or false" in r.stderr
    r = run(["bash", demo, "--nj"], tmp_path)
    assert r.returncode == 2 and "needs a value" in r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean():
    r = subprocess.run(["shellcheck", "-S", "style", "-x", str(LOCAL), str(SLURM), str(COMMON), str(PARSE)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
