"""The speech-LLM family under data-parallel training (DDP) on CPU, through the driver's own launch path: a tiny
Hugging Face Qwen2 adapted with LoRA (its base weights frozen: parameters DDP must leave alone) with AI-STA's OT at an
LM layer, two processes joined over gloo (``espnet2.bin.launch`` -> utils/queue/slurm.sh with stand-in sbatch/srun,
as tests/bin/test_distributed.py does for S-Align). Both ranks must finish every epoch with the same number of
iterations as one process, and the checkpoints must hold what training changes, without the frozen base weights."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.bin.test_distributed import ST_LIB, epoch_results
from tests.conftest import REPO
from tests.llm.test_llm_train import HF_CONFIG, llm_args
from tests.utils.test_launchers import fake_slurm_env

pytestmark = pytest.mark.slow


def llm_train_job(tiny_data: Path, lm_dir: Path, exp: Path, cuda_cmd: str, num_nodes: int, env: dict) -> str:
    """st.sh's ``train_job`` running ``salign.bin.llm_train`` (LoRA + OT at LM layer 1); returns stderr."""
    args = [str(a) for a in llm_args(tiny_data, exp, HF_CONFIG, tokens=False)]
    i = args.index("--ngpu")
    del args[i:i + 2]  # the launcher passes --ngpu itself
    args += ["--lm_conf", f"path={lm_dir}", "--align", "ot", "--align_conf", "layers=[1]", "--align_conf",
             "n_iters=5", "--unused_parameters", "true", "--batch_size", "4"]
    script = f"""set -euo pipefail
die() {{ echo "ERROR [st.sh]: $*" >&2; exit 2; }}
. {ST_LIB}
cuda_cmd="{cuda_cmd}"; ngpu=0; num_nodes={num_nodes}
launcher_words cuda_cmd cuda_launcher
train_job "$@"
"""
    full_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **env)
    full_env["PATH"] = f"{Path(sys.executable).parent}:{full_env['PATH']}"
    proc = subprocess.run(["bash", "-c", script, "train_job", str(exp), "python", "-m", "salign.bin.llm_train", *args],
                          cwd=exp.parent, env=full_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:] + "\n" + (exp / "train.log").read_text()[-3000:]
    return proc.stderr


def test_lora_and_ot_train_on_two_ranks_as_on_one(tiny_data, tiny_qwen2, tmp_path):
    runs = {}
    for name, cmd, nodes, env in (("one", "local.sh", 1, {}), ("two", "slurm.sh", 2, None)):
        exp = tmp_path / name / "exp"
        exp.parent.mkdir()
        env = fake_slurm_env(tmp_path / name) if env is None else env
        llm_train_job(tiny_data, tiny_qwen2, exp, str(REPO / "utils" / "queue" / cmd), nodes, env)
        runs[name] = exp
    log = (runs["two"] / "train.log").read_text()
    assert ":0/2]" in log and "--dist_backend gloo" in log
    one, two = (epoch_results((runs[k] / "train.log").read_text()) for k in ("one", "two"))
    assert len(one) == len(two) == 2
    assert [e["total_count"] for e in two] == [e["total_count"] for e in one]
    for epoch in two:
        assert "loss_align" in epoch and "ot_l1" in epoch, sorted(epoch)
    state = torch.load(runs["two"] / "valid.acc.best.pth", map_location="cpu")
    assert any("lora_B" in k for k in state) and not any(".base_layer." in k for k in state)
