"""The training and decoding entry points used by hand (issue 22, items 10 and 12).

* ``python -m salign.bin.st_train --config X.yaml`` (README's "by hand", and how ESPnet users work) accepted
  ``lambda_max: -4``, which reverses the method: only the driver's ``salign.bin.check_config`` refused it. Every entry
  point now runs the same checks on its ``--config`` in its own process (no second ESPnet start): ``st_train``,
  ``llm_train`` (training configs) and ``st_inference`` (decoding configs). One ERROR line naming the file and line,
  exit status 2, nothing written.
* ESPnet's own ``espnet2.bin.st_inference`` on a salign model died with a bare ``TypeError: got an unexpected keyword
  argument 'st_weight'``; now one line names the config and the tool that decodes it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MT_CONFIG, REPO, TEST_CONFIG, cli_error, train_args
from tests.hostile.test_input_model import cli_error as after_its_command_line  # (it prints that first)
from tests.llm.test_llm_train import TINY_CONFIG, llm_args


def bad_copy(src: Path, dst: Path, old: str, new: str) -> int:
    """``src`` with ``old`` replaced by ``new`` written to ``dst``; returns the line it is on."""
    text = src.read_text()
    assert old in text, old
    dst.write_text(text.replace(old, new))
    return text[: text.index(old)].count("\n") + 1


def test_st_train_refuses_a_negative_lambda_max(tiny_data, tmp_path, capsys):
    from salign.bin import st_train

    conf = tmp_path / "bad.yaml"
    line = bad_copy(TEST_CONFIG, conf, "lambda_max: 1.0", "lambda_max: -4")
    out = tmp_path / "exp"
    args = [str(a) for a in train_args(tiny_data, out, config=conf)]
    err = cli_error(capsys, st_train.main, args)
    assert err.startswith(f"ERROR [st_train]: {conf}:{line}: align_conf.lambda_max: ") and ">= 0" in err, err
    assert not out.exists()


def test_st_train_names_an_unknown_key_of_the_mt_config_too(tiny_data, tmp_path, capsys):
    from salign.bin import st_train

    conf = tmp_path / "mt.yaml"
    conf.write_text(MT_CONFIG.read_text() + "optim_conf: {lr: 0.002, betas_typo: [0.9, 0.98]}\n")
    err = cli_error(capsys, st_train.main, [str(a) for a in train_args(tiny_data, tmp_path / "x", False, conf)])
    assert "optim_conf.betas_typo: unknown" in err and "did you mean betas?" in err, err


def test_llm_train_refuses_an_out_of_range_value(tiny_data, tmp_path, capsys):
    from salign.bin import llm_train

    conf = tmp_path / "bad_llm.yaml"
    line = bad_copy(TINY_CONFIG, conf, "dropout_rate: 0.0, extra_tokens", "dropout_rate: 1.5, extra_tokens")
    err = cli_error(capsys, llm_train.main, [str(a) for a in llm_args(tiny_data, tmp_path / "exp", conf)])
    assert err.startswith(f"ERROR [llm_train]: {conf}:{line}: lm_conf.dropout_rate: ") and "[0, 1)" in err, err
    assert not (tmp_path / "exp").exists()


def test_st_inference_refuses_a_bad_decoding_config(tiny_data, tmp_path, capsys):
    from salign.bin import st_inference

    conf = tmp_path / "decode.yaml"
    conf.write_text("beam_size: 0\nmaxlenratio: 0.0\n")
    err = after_its_command_line(capsys, st_inference.main, [
        "--config", str(conf), "--st_train_config", str(tmp_path / "none.yaml"), "--st_model_file",
        str(tmp_path / "none.pth"), "--data_path_and_name_and_type", f"{tiny_data / 'feats.scp'},speech,kaldi_ark",
        "--output_dir", str(tmp_path / "out")])
    assert err.startswith(f"ERROR [st_inference]: {conf}:1: beam_size: ") and "> 0" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_espnets_own_st_inference_on_a_salign_model_names_the_tool(model_dir, tiny_data, tmp_path):
    """In the recipe's environment (its path.sh puts utils/pyhooks on PYTHONPATH) and in salign's venv as installed
    (tools/install.sh's .pth line): one line, exit status 2, no traceback."""
    cmd = [sys.executable, "-m", "espnet2.bin.st_inference", "--st_train_config", str(model_dir / "config.yaml"),
           "--st_model_file", str(model_dir / "valid.acc.ave.pth"), "--data_path_and_name_and_type",
           f"{tiny_data / 'feats.scp'},speech,kaldi_ark", "--output_dir", str(tmp_path / "out"), "--ngpu", "0"]
    envs = {"recipe": dict(os.environ, PYTHONPATH=str(REPO / "utils" / "pyhooks"))}
    if list(Path(sys.prefix).glob("lib/python*/site-packages/salign_hint.pth")):
        envs["venv"] = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for name, env in envs.items():
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR [")]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (name, proc.stderr[-2000:])
        assert errors == [f"ERROR [st_inference]: {model_dir / 'config.yaml'}: the config of a salign S-Align model; "
                          "ESPnet's espnet2.bin.st_inference builds ESPnet's stock ST model only (fix: python -m "
                          "salign.bin.st_inference with the same options; in Python: import salign.tasks.st as t; "
                          "t.register_with_espnet() before ESPnet's Speech2Text)"], (name, proc.stderr[-2000:])
