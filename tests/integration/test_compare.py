"""The comparison recipe (egs/mini_mustc/compare.sh --debug true --jobs 2) end to end in a scratch copy of the recipe:
data once, one shared MT pre-training, three salign rows (no alignment loss, S-Align at face value and at the official
effective adversarial strength; the contrastive and OT rows are the same pipeline with another loss, each loss trained
end to end in tests/losses and tests/st, kept out to hold the suite's time), ESPnet's stock ST model and the two
speech-LLM rows (one shared LM pre-training; without and with AI-STA) two at a time, one COMPARE.md table."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from tests.analysis.test_compare import table as table_by_column
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]
METHODS = ("baseline", "adversarial", "adversarial_official")
ALIGN = {"adversarial_official": "adversarial"}  # a row's alignment loss, where the row is not named after it
LLM_ROWS = ("llm_baseline", "llm_ot")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    dst = root / "egs" / "mini_mustc"
    shutil.copytree(REPO / "egs" / "mini_mustc", dst,
                    ignore=shutil.ignore_patterns("corpus", "data", "dump", "exp", "RESULTS.md", "COMPARE.md"))
    (root / "egs" / "TEMPLATE").symlink_to(REPO / "egs" / "TEMPLATE")
    env = dict(os.environ, SALIGN_ROOT=str(REPO))
    proc = subprocess.run(["./compare.sh", "--debug", "true", "--jobs", "2", "--methods", " ".join(METHODS)], cwd=dst,
                          env=env, capture_output=True, text=True)
    (root / "compare.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return dst, proc.stdout


def test_one_row_per_method_plus_the_stock_model(recipe):
    dst, out = recipe
    table = (dst / "COMPARE.md").read_text()
    assert table in out  # also printed
    r = table_by_column(table)
    assert list(r) == [*METHODS, "stock_espnet", *LLM_ROWS]
    interval = re.compile(r"\d+\.\d\d \[\d+\.\d, \d+\.\d\]")  # score [low, high] from the decodes' files
    for m in (*METHODS, *LLM_ROWS):
        cells = r[m]
        for col in ("ST BLEU tst-COMMON", "ST BLEU train_subset", "MT BLEU tst-COMMON"):
            assert interval.fullmatch(cells[col]), (col, cells)
        assert cells["ASR WER tst-COMMON"] != "–", cells
        assert cells["R@1 top"] != "–" and cells["cos gap"] != "–" and cells["CKA top"] != "–", cells
        assert cells["train time"] != "–" and cells["params"].endswith(("K", "M")), cells
        assert re.fullmatch(r"base|\d\.\d\d\d†?", cells["p tst-COMMON"]), cells  # vs baseline / llm_baseline
    assert r["baseline"]["p tst-COMMON"] == r["llm_baseline"]["p tst-COMMON"] == "base"
    for m in ("adversarial", "adversarial_official"):  # only S-Align has a modal network
        assert r[m]["disc acc"] != "–" and r["baseline"]["disc acc"] == "–", m
    assert "Shared LM pre-training on the same text (`exp/mt_train_lm_compare`" in table
    assert "Not computed" not in table  # every decode's hypothesis and reference files were found
    stock = r["stock_espnet"]
    assert interval.fullmatch(stock["ST BLEU tst-COMMON"]) and interval.fullmatch(stock["ST BLEU train_subset"])
    assert re.fullmatch(r"\d\.\d\d\d†?", stock["p tst-COMMON"])  # vs baseline
    assert stock["MT BLEU tst-COMMON"] == stock["ASR WER tst-COMMON"] == "–"
    assert "nrefs:1|case:mixed" in table and "./compare.sh --debug true --jobs 2" in table
    assert "--n_train 2400" in table  # how to run it at learning size


def test_mt_pretraining_ran_once_and_every_model_started_from_it(recipe):
    dst, out = recipe
    exp = dst / "exp"
    pre = {j: (exp / "compare_logs" / f"{j}.log").read_text() for j in ("pre_mt", "pre_asr", "pre_lm")}
    assert pre["pre_mt"].count("stage 11a: MT pre-training") == 1 and "ASR pre-training" not in pre["pre_mt"]
    assert pre["pre_asr"].count("stage 11a: ASR pre-training") == 1 and "MT pre-training (" not in pre["pre_asr"]
    assert pre["pre_lm"].count("stage 11a: LM pre-training") == 1
    for row in (*METHODS, "stock_espnet", *LLM_ROWS):  # each row ran in the background with its own log
        log = (exp / "compare_logs" / f"{row}.log").read_text()
        assert "stage 11a" not in log and f"{row}: done" in out, row
    assert (exp / "mt_train_mt_compare" / ".train.stamp").is_file()
    for m in METHODS:
        log = (exp / f"st_{m}" / "train.log").read_text()
        assert "init_from_mt exp/mt_train_mt_compare/" in log, m
        assert "--init_from_asr exp/asr_train_asr_compare/valid.loss.best.pth" in log, m
        assert re.search(r"encoder +initialised from ASR", log), m
        assert (exp / f"st_{m}" / "gap" / "gap.json").is_file() and (exp / f"st_{m}" / "RESULTS.md").is_file()
    for m in LLM_ROWS:  # both LLM rows start from the one LM pre-training; only llm_ot aligns, on the layers picked
        log = (exp / f"st_{m}" / "train.log").read_text()
        assert "Loading pretrained params from exp/mt_train_lm_compare/valid.acc.best.pth:lm:lm" in log, m
        assert re.search(r"encoder +initialised from ASR", log), m  # the same acoustic encoder as every row
        assert ("ot_l" in log) == (m == "llm_ot"), m
        said = "ot" if m == "llm_ot" else "none"  # the driver reads the config's align (absent: none)
        assert f"stage 11d: speech-LLM training (align: {said})" in (exp / "compare_logs" / f"{m}.log").read_text(), m
    layers = yaml.safe_load((exp / "st_llm_ot" / "layers.yaml").read_text())["layers"]
    assert yaml.safe_load((exp / "st_llm_ot" / "config.yaml").read_text())["align_conf"]["layers_file"] and layers
    stock = (exp / "st_stock_espnet" / "train.log").read_text()
    assert "espnet2.bin.st_train" in stock and "ESPnetSTModel" in stock and "init_from_mt" not in stock
    for part in ("encoder:encoder", "ctc:ctc"):  # ESPnet's own --init_param, from the same ASR pre-training
        assert f"Loading pretrained params from exp/asr_train_asr_compare/valid.loss.best.pth:{part}" in stock


def test_asr_pretraining_gives_the_encoder_and_keeps_the_mt_embeddings(recipe):
    """The shared ASR pre-training trains the acoustic encoder + a CTC head of its own on the stacked 160-dim dumps;
    a salign row takes its encoder, and its CTC projection (tied to the embedding table) stays the MT model's; the
    table reports the pre-training."""
    import torch

    dst, _ = recipe
    exp = dst / "exp"
    used = yaml.safe_load((exp / "asr_train_asr_compare" / "config.yaml").read_text())
    assert used["input_size"] == 160 and used["model_conf"]["st_weight"] == 0.0
    assert used["model_conf"]["tie_ctc"] is False and used["init_from_mt"] is None
    log = (exp / "st_baseline" / "train.log").read_text()
    assert "kept (tied): ctc.ctc_lo.weight = src_embed.weight" in log
    asr = torch.load(exp / "asr_train_asr_compare" / "valid.loss.best.pth", map_location="cpu")
    mt = torch.load(exp / "mt_train_mt_compare" / "valid.acc.best.pth", map_location="cpu")
    assert not torch.equal(asr["ctc.ctc_lo.weight"], mt["src_embed.weight"])
    assert "Shared ASR pre-training (`exp/asr_train_asr_compare`" in (dst / "COMPARE.md").read_text()
    decode = (exp / "st_stock_espnet" / "decode_st_tst-COMMON" / "logdir" / "decode.1.log").read_text()
    assert "espnet2.bin.st_inference" in decode.splitlines()[0]  # ESPnet decodes its own model
    assert not (exp / "st_stock_espnet" / "gap").exists()


def test_each_row_trains_with_the_base_config_and_its_own_alignment_loss(recipe):
    """exp/compare_conf/train_st_<row>.yaml = conf/compare/debug/base.yaml + method/<row>.yaml; ESPnet's record of the
    training (config.yaml) has the base's budget and the row's loss."""
    import yaml

    dst, _ = recipe
    base = yaml.safe_load((dst / "conf" / "compare" / "debug" / "base.yaml").read_text())
    for m in METHODS:
        used = yaml.safe_load((dst / "exp" / f"st_{m}" / "config.yaml").read_text())
        assert used["config"] == f"exp/compare_conf/train_st_{m}.yaml"
        assert (used["align"] or "baseline") == ALIGN.get(m, m)
        for key in ("max_epoch", "batch_size", "optim_conf", "encoder_conf", "text_encoder_conf", "model_conf"):
            assert used[key] == {**used[key], **base[key]} if isinstance(base[key], dict) else used[key] == base[key]
    scales = {m: yaml.safe_load((dst / "exp" / f"st_{m}" / "config.yaml").read_text())["align_conf"]["adv_grad_scale"]
              for m in ("adversarial", "adversarial_official")}
    assert scales == {"adversarial": "face_value", "adversarial_official": "official"}
    log = (dst / "exp" / "st_adversarial_official" / "train.log").read_text()
    assert "adversarial gradient scale 0.000416667 (official)" in log  # the model ran with the official strength
    mt = yaml.safe_load((dst / "exp" / "mt_train_mt_compare" / "config.yaml").read_text())
    assert mt["batch_size"] == 32 and mt["align"] is None and mt["encoder_conf"] == {**mt["encoder_conf"],
                                                                                      **base["encoder_conf"]}
    assert not (dst / "RESULTS.md").exists()  # run.sh's RESULTS.md is left as it was (none in a fresh copy)


def test_rerun_of_the_stock_row_is_a_noop_and_rewrites_the_table(recipe):
    dst, _ = recipe
    env = dict(os.environ, SALIGN_ROOT=str(REPO))
    proc = subprocess.run(["./compare.sh", "--debug", "true", "--stage", "3", "--methods", " ".join(METHODS)], cwd=dst,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    logs = dst / "exp" / "compare_logs"
    jobs = ("pre_asr", "pre_lm", "stock_espnet", *LLM_ROWS)  # step 3's rows and what they need
    assert [ln.split("] ")[1].split(":")[0] for ln in proc.stdout.splitlines() if ": started on" in ln] == list(jobs)
    stock = (logs / "stock_espnet.log").read_text()
    assert "exp/st_stock_espnet is complete" in stock
    for job in jobs:
        for line in (ln for ln in (logs / f"{job}.log").read_text().splitlines() if "[st.sh] stage 11" in ln):
            assert "complete" in line or "skipped" in line, (job, line)  # nothing is trained again
    assert "stage 12: exp/st_stock_espnet/decode_st_tst-COMMON is complete" in stock
    assert "| `stock_espnet` |" in proc.stdout and "| `adversarial_official` |" in (dst / "COMPARE.md").read_text()


def test_unknown_method_fails_fast(recipe):
    dst, _ = recipe
    env = dict(os.environ, SALIGN_ROOT=str(REPO))
    proc = subprocess.run(["./compare.sh", "--methods", "baseline nope"], cwd=dst, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "no config for method 'nope'" in proc.stderr and "fix:" in proc.stderr
    assert "adversarial adversarial_official baseline contrastive ot" in proc.stderr  # conf/compare/method/
    proc = subprocess.run(["./compare.sh", "--jobs", "0"], cwd=dst, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "--jobs 0: must be a positive integer" in proc.stderr
    proc = subprocess.run(["./compare.sh", "--nj", "4"], cwd=dst, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown option '--nj'" in proc.stderr and "--run_opts" in proc.stderr
