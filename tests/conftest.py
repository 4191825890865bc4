"""Shared fixtures: a tiny synthetic data set and helpers that run salign's real CLIs (ESPnet underneath)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

import pytest

REPO = Path(__file__).resolve().parents[1]
if os.environ.get("PYTEST_XDIST_WORKER"):  # parallel workers (pytest.ini: -n auto): one thread each, also for the
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"  # recipes and CLIs they start
    import torch

    torch.set_num_threads(1)
TEST_CONFIG = REPO / "tests" / "conf" / "train_st_salign_test.yaml"  # tiny configs for tests: tests/conf/
MT_CONFIG = REPO / "tests" / "conf" / "train_mt_test.yaml"


def run_tool(module: str, args: Sequence[str], cwd: Path, log: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args`` in ``cwd``; on failure show the tail of its log."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (cwd / log).write_text(proc.stdout)
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise AssertionError(f"{module} failed ({proc.returncode}); log {cwd / log}:\n{tail}")
    return proc


def data_args(prefix: str, root: Path, speech: bool = True) -> List[str]:
    """ESPnet ``--<prefix>_data_path_and_name_and_type`` arguments for the tiny data set."""
    out = []
    if speech:
        out += [f"--{prefix}_data_path_and_name_and_type", f"{root}/feats.scp,speech,kaldi_ark"]
    out += [f"--{prefix}_data_path_and_name_and_type", f"{root}/text,text,text",
            f"--{prefix}_data_path_and_name_and_type", f"{root}/src_text,src_text,text"]
    return out


def train_args(root: Path, out: Path, speech: bool = True, config: Path = TEST_CONFIG) -> List[str]:
    """A full ``st_train`` command line on the tiny data set."""
    shape = "speech_shape" if speech else "src_text_shape"
    return ["--config", config, "--output_dir", out, "--token_type", "word", "--src_token_type", "word",
            "--token_list", root / "tokens.txt", "--src_token_list", root / "tokens.txt", "--input_size", "80",
            "--train_shape_file", root / shape, "--valid_shape_file", root / shape, "--fold_length", "5000",
            "--ngpu", "0", "--use_matplotlib", "false", "--seed", "0",
            *data_args("train", root, speech), *data_args("valid", root, speech)]


def cli_error(capsys, main, argv: Sequence[str]) -> str:
    """Run a tool's ``main`` as its command line does (``run_cli``) on bad input: it must exit with status 2 after
    one ``ERROR [tool]: ...`` line on stderr, which is returned."""
    from salign.utils.io import run_cli

    with pytest.raises(SystemExit) as exc:
        run_cli(main, list(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ERROR ["), err
    return err


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """12 synthetic utterances (features, transcripts, translations) and a joint char token list."""
    from salign.testing.tiny_data import make_tiny_data

    root = tmp_path_factory.mktemp("tiny")
    make_tiny_data(root, n_utts=12)
    return root


@pytest.fixture(scope="session")
def model_dir(tiny_data, tmp_path_factory) -> Path:
    """A tiny trained model (the decoding tests share it, trained once per session through the real st_train): MT
    pre-training on text, then S-Align ST (+ st_ctc, + global CMVN as the recipe's models) initialised from it."""
    import kaldiio
    import numpy as np

    work = tmp_path_factory.mktemp("decode")
    feats = np.concatenate(list(kaldiio.load_scp(str(tiny_data / "feats.scp")).values())).astype(np.float64)
    np.savez(work / "stats.npz", count=np.array(len(feats)), sum=feats.sum(0), sum_square=(feats ** 2).sum(0))
    run_tool("salign.bin.st_train", train_args(tiny_data, work / "mt", speech=False, config=MT_CONFIG)
             + ["--max_epoch", "15"], work, "log_mt")
    args = train_args(tiny_data, work / "st") + ["--init_from_mt", work / "mt" / "valid.acc.best.pth",
                                                 "--max_epoch", "6", "--model_conf", "st_ctc_weight=0.3",
                                                 "--normalize", "global_mvn",
                                                 "--normalize_conf", f"stats_file={work / 'stats.npz'}"]
    run_tool("salign.bin.st_train", args, work, "log_st")
    return work / "st"
