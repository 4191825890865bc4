"""Kill -9 in the middle of training, then resume: the same checkpoints as a run that was never interrupted.

The recipe's stage 11 resumes an interrupted training (``--resume true``, same inputs: ``train_once`` in
egs/TEMPLATE/st.sh). Here the real ``python -m salign.bin.st_train`` (the S-Align model with its adversarial loss and
its update clock) is killed with SIGKILL while epoch 2 is running, restarted with ``--resume true``, and its last
checkpoint must equal, tensor for tensor, the one of an uninterrupted run (ESPnet reseeds every epoch and restores
the model, optimizer, scheduler and our update-clock buffer from ``checkpoint.pth``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import train_args
from tests.hostile.kill import kill_when, run, start

pytestmark = pytest.mark.slow
EPOCHS = 3


def command(tiny_data: Path, out: Path) -> list:
    args = [str(a) for a in train_args(tiny_data, out)]
    return [sys.executable, "-m", "salign.bin.st_train", *args, "--max_epoch", str(EPOCHS), "--log_interval", "1",
            "--resume", "true", "--seed", "3"]


def test_training_killed_mid_epoch_resumes_to_the_same_checkpoints(tiny_data, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    run(command(tiny_data, whole / "exp"), whole, "log")

    proc = start(command(tiny_data, killed / "exp"), killed, "log")
    kill_when(proc, lambda: "2epoch:train:" in (killed / "log").read_text(), "in epoch 2", timeout=240)
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
