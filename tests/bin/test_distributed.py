"""Data-parallel training (DDP) through the driver's own launch path, on CPU.

Stage 11 starts training with ``train_job`` (egs/TEMPLATE/st_lib.sh, the driver's helpers): ESPnet's
``espnet2.bin.launch`` -> the job launcher -> ``python -m salign.bin.st_train``. Here that function runs the tiny
S-Align config twice: once on one node through utils/queue/local.sh (one process), and once on two "nodes" through
utils/queue/slurm.pl with stand-in sbatch/srun (tests/utils/test_launchers.py) that start both on this machine: two
processes, one per node, joined by ESPnet's ``--dist_launcher slurm`` over gloo, each taking half of every global
mini-batch. (One node with ``--ngpu 0`` is always one process in ESPnet: its multiprocessing mode spawns one process
per GPU.)

The two-process run must behave as the one-process run on the same global batches: as many iterations and optimizer
updates per epoch on each rank (the model's ``forward_count`` buffer, saved in the checkpoint; updates =
forwards // accum_grad), the adversarial losses reported, and the λ schedule following the same update clock on
every iteration (the logged value is ESPnet's mean over the ranks, so a rank whose clock drifted would show).
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch

from salign.losses.adversarial import lambda_schedule
from tests.conftest import REPO, train_args
from tests.utils.test_launchers import fake_slurm_env

pytestmark = pytest.mark.slow

ST_LIB = REPO / "egs" / "TEMPLATE" / "st_lib.sh"  # the stage driver's helpers (st.sh sources it)
EPOCHS, BATCHES, ACCUM = 2, 6, 2  # 12 tiny utterances in global batches of 2
LAMBDA = {"lambda_max": 1.0, "decay_start": 2, "decay_end": 6}  # decays within the run's 6 updates


def train_job(tiny_data: Path, exp: Path, cuda_cmd: str, num_nodes: int, env: Dict[str, str]) -> Tuple[int, str]:
    """Run the driver's own ``train_job`` function (its helpers sourced) on the tiny data; return (status, stderr)."""
    args = [str(a) for a in train_args(tiny_data, exp)]
    i = args.index("--ngpu")
    del args[i:i + 2]  # the launcher passes --ngpu itself
    args += ["--max_epoch", str(EPOCHS), "--log_interval", "1", "--accum_grad", str(ACCUM)]
    args += [x for k, v in LAMBDA.items() for x in ("--align_conf", f"{k}={v}")]
    script = f"""set -euo pipefail
die() {{ echo "ERROR [st.sh]: $*" >&2; exit 2; }}
. {ST_LIB}
cuda_cmd="{cuda_cmd}"; ngpu=0; num_nodes={num_nodes}
launcher_words cuda_cmd cuda_launcher
train_job "$@"
"""
    bindir = str(Path(sys.executable).parent)
    full_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **env)
    full_env["PATH"] = f"{bindir}:{full_env['PATH']}"  # `python` is this venv's, as after a recipe's path.sh
    proc = subprocess.run(["bash", "-c", script, "train_job", str(exp), "python", "-m", "salign.bin.st_train", *args],
                          cwd=exp.parent, env=full_env, capture_output=True, text=True, timeout=240)
    return proc.returncode, proc.stderr


def stats(part: str) -> Dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-0-9.e+]+|nan)", part)}


def epoch_results(log: str) -> List[Dict[str, float]]:
    return [stats(ln.split("[train]", 1)[1].split("[valid]", 1)[0]) for ln in log.splitlines() if "epoch results" in ln]


def iteration_lambdas(log: str) -> List[Tuple[int, int, float]]:
    """(epoch, iteration, adv_lambda) of every per-iteration report (--log_interval 1)."""
    out = []
    for m in re.finditer(r"(\d+)epoch:train:(\d+)-\2batch:.*?adv_lambda=([-0-9.e+]+)", log):
        out.append((int(m.group(1)), int(m.group(2)), float(m.group(3))))
    return out


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory) -> Dict[str, Path]:
    work = tmp_path_factory.mktemp("ddp")
    out = {}
    one = work / "one" / "exp"
    one.parent.mkdir()
    rc, err = train_job(tiny_data, one, str(REPO / "utils" / "queue" / "local.sh"), 1, {})
    assert rc == 0, err
    out["one"] = one
    two = work / "two" / "exp"
    two.parent.mkdir()
    env = fake_slurm_env(work / "two")
    rc, err = train_job(tiny_data, two, str(REPO / "utils" / "queue" / "slurm.sh"), 2, env)
    assert rc == 0, err + "\n" + (two / "train.log").read_text()[-3000:]
    out["two"] = two
    out["sbatch_args"] = Path(env["FAKE_SBATCH_ARGS"])
    return out


def test_two_processes_over_gloo_finish_with_checkpoints(runs):
    two = runs["two"]
    log = (two / "train.log").read_text()
    assert re.search(r"\[[^\]]*:0/2\]", log), "rank 0 of a world of 2 should log"
    assert "--dist_launcher slurm" in log and "--dist_backend gloo" in log
    assert "--nodes=2" in runs["sbatch_args"].read_text().splitlines()
    for name in ("checkpoint.pth", "1epoch.pth", f"{EPOCHS}epoch.pth", "valid.acc.best.pth", "config.yaml"):
        assert (two / name).is_file(), name


def test_same_iterations_and_update_clock_per_rank(runs):
    one, two = (epoch_results((runs[k] / "train.log").read_text()) for k in ("one", "two"))
    assert len(one) == len(two) == EPOCHS
    assert [e["total_count"] for e in two] == [e["total_count"] for e in one] == [BATCHES * (i + 1) for i in
                                                                                   range(EPOCHS)]
    for epoch in range(1, EPOCHS + 1):
        counts = [int(torch.load(runs[k] / f"{epoch}epoch.pth", map_location="cpu")["forward_count"])
                  for k in ("one", "two")]
        assert counts == [BATCHES * epoch] * 2  # forwards on each rank; updates = forwards // accum_grad
    assert BATCHES * EPOCHS // ACCUM == 6  # the λ decay (updates 2..6) lies inside the run


def test_adversarial_losses_reported_in_both(runs):
    for k in ("one", "two"):
        for epoch in epoch_results((runs[k] / "train.log").read_text()):
            for key in ("loss_adv_d", "loss_adv_g", "adv_lambda"):
                assert key in epoch and math.isfinite(epoch[key]), (k, key)


def test_lambda_follows_the_update_clock_on_every_iteration(runs):
    seqs = {}
    for k in ("one", "two"):
        seq = iteration_lambdas((runs[k] / "train.log").read_text())
        assert [(e, i) for e, i, _ in seq] == [(e, i) for e in range(1, EPOCHS + 1) for i in range(1, BATCHES + 1)]
        # the model's clock: the n-th training forward sees the updates made before it, u = (n - 1) // accum_grad
        want = [lambda_schedule(((e - 1) * BATCHES + i - 1) // ACCUM, **LAMBDA) for e, i, _ in seq]
        assert [lam for _, _, lam in seq] == pytest.approx(want, abs=1e-3), k
        seqs[k] = seq
    assert seqs["one"] == seqs["two"]
