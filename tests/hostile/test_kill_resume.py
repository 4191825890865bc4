"""Kill -9 in the middle of training, then resume: the same checkpoints as a run that was never interrupted.

The recipe's stage 11 resumes an interrupted training (``--resume true``, same inputs: ``train_once`` in
egs/TEMPLATE/st.sh). Here the real ``python -m salign.bin.st_train`` (the S-Align model with its adversarial loss and
its update clock) is killed with SIGKILL while epoch 2 is running, restarted with ``--resume true``, and its last
checkpoint must equal, tensor for tensor, the one of an uninterrupted run (ESPnet reseeds every epoch and restores
the model, optimizer, scheduler and our update-clock buffer from ``checkpoint.pth``).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import train_args

pytestmark = pytest.mark.slow
EPOCHS = 3


def command(tiny_data: Path, out: Path) -> list:
    args = [str(a) for a in train_args(tiny_data, out)]
    return [sys.executable, "-m", "salign.bin.st_train", *args, "--max_epoch", str(EPOCHS), "--log_interval", "1",
            "--resume", "true", "--seed", "3"]


def run(cmd: list, cwd: Path, log: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(cwd / log, "w") as f:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=300)
    assert proc.returncode == 0, (cwd / log).read_text()[-3000:]


def test_training_killed_mid_epoch_resumes_to_the_same_checkpoints(tiny_data, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    run(command(tiny_data, whole / "exp"), whole, "log")

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    log = killed / "log"
    with open(log, "w") as f:
        proc = subprocess.Popen(command(tiny_data, killed / "exp"), cwd=killed, env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    while "2epoch:train:" not in log.read_text() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed in epoch 2:\n" + log.read_text()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    exp = killed / "exp"
    assert (exp / "1epoch.pth").is_file() and not (exp / f"{EPOCHS}epoch.pth").exists()
    run(command(tiny_data, exp), killed, "log_resumed")
    assert f"{EPOCHS}epoch results" in (killed / "log_resumed").read_text()  # it trained on from the checkpoint

    for epoch in range(2, EPOCHS + 1):
        a = torch.load(whole / "exp" / f"{epoch}epoch.pth", map_location="cpu")
        b = torch.load(exp / f"{epoch}epoch.pth", map_location="cpu")
        assert a.keys() == b.keys()
        diff = [k for k in a if not torch.equal(a[k], b[k])]
        assert not diff, f"epoch {epoch}: {diff[:5]}"
