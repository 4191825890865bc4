"""Real ``python -m salign.bin.llm_train`` runs on the tiny data set: our tiny LM and tiny HF LMs (LoRA, frozen),
through ESPnet's trainer, checkpoint averaging, resume and ``build_model_from_file``."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from tests.conftest import REPO, data_args, run_tool

pytestmark = pytest.mark.slow
TINY_CONFIG = REPO / "tests" / "conf" / "train_st_llm_tiny_test.yaml"
HF_CONFIG = REPO / "tests" / "conf" / "train_st_llm_hf_test.yaml"


def llm_args(root: Path, out: Path, config: Path, tokens: bool = True) -> List[str]:
    """An ``llm_train`` command line on the tiny data set (word token list only for the tiny LM)."""
    args = ["--config", config, "--output_dir", out, "--input_size", "80", "--train_shape_file",
            root / "speech_shape", "--valid_shape_file", root / "speech_shape", "--fold_length", "5000",
            "--ngpu", "0", "--seed", "0", *data_args("train", root), *data_args("valid", root)]
    if tokens:
        args += ["--token_type", "word", "--src_token_type", "word", "--token_list", root / "tokens.txt",
                 "--src_token_list", root / "tokens.txt"]
    return args


def epoch_stats(log: str) -> Dict[int, Dict[str, float]]:
    """Training statistics per epoch as ESPnet's trainer printed them."""
    out = {}
    for m in re.finditer(r"(\d+)epoch results: \[train\] (.*?)\[valid\]", log):
        out[int(m.group(1))] = {k: float(v) for k, v in re.findall(r"(\w+)=([-0-9.e+]+)", m.group(2))}
    return out


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("llm_tiny")
    run_tool("salign.bin.llm_train", llm_args(tiny_data, work / "exp", TINY_CONFIG), work, "log")
    return work / "exp"


def test_tiny_lm_trains_two_epochs_with_every_branch(tiny_run):
    stats = epoch_stats((tiny_run.parent / "log").read_text())
    assert sorted(stats) == [1, 2]
    for key in ("loss_st", "acc_st", "loss_mt", "loss_asr", "loss_ctc", "acc"):
        assert key in stats[1], key
    assert stats[2]["loss_st"] < stats[1]["loss_st"]
    for name in ("valid.acc.ave.pth", "valid.acc.best.pth", "checkpoint.pth", "config.yaml"):
        assert (tiny_run / name).is_file(), name


def test_tiny_lm_resumes_and_rebuilds_from_files(tiny_run, tiny_data):
    work = tiny_run.parent
    run_tool("salign.bin.llm_train", llm_args(tiny_data, tiny_run, TINY_CONFIG) + ["--max_epoch", "3", "--resume",
                                                                                    "true"], work, "log_resume")
    assert sorted(epoch_stats((work / "log_resume").read_text())) == [3]

    from salign.llm.task import LLMSTTask

    model, args = LLMSTTask.build_model_from_file(tiny_run / "config.yaml", tiny_run / "valid.acc.ave.pth")
    import kaldiio

    feats = torch.from_numpy(next(iter(kaldiio.load_scp(str(tiny_data / "feats.scp")).values())))[None]
    hyps = model.greedy_search(model.prompt_inputs("st", feats, torch.tensor([feats.size(1)])), max_len=5)
    assert len(hyps) == 1 and all(0 <= t < model.lm.vocab_size for t in hyps[0])


@pytest.mark.parametrize("family,finetune", [("qwen2", "lora"), ("llama", "frozen")])
def test_hf_lm_trains_through_espnet(family, finetune, tiny_data, tmp_path, request):
    from safetensors.torch import load_file

    lm_dir = request.getfixturevalue(f"tiny_{family}")
    exp = tmp_path / "exp"
    run_tool("salign.bin.llm_train", llm_args(tiny_data, exp, HF_CONFIG, tokens=False)
             + ["--lm_conf", f"path={lm_dir}", "--lm_conf", f"finetune={finetune}"], tmp_path, "log")
    stats = epoch_stats((tmp_path / "log").read_text())
    assert sorted(stats) == [1, 2] and "loss_st" in stats[1] and "loss_mt" in stats[1]
    assert stats[2]["loss_ctc"] < stats[1]["loss_ctc"]  # the speech side learns

    # checkpoints leave the frozen base weights out (read from lm_conf.path); the adapters (LoRA) moved
    original = load_file(str(lm_dir / "model.safetensors"))
    trained = torch.load(exp / "valid.acc.ave.pth", map_location="cpu")
    assert not any(".base_layer." in k for k in trained) and "lm.base_fingerprint" in trained
    assert all(k.startswith(("encoder.", "projector.", "ctc.", "normalize.", "lm.model.base_model.model.") if
                              finetune == "lora" else ("encoder.", "projector.", "ctc.", "normalize.")) or
               k == "lm.base_fingerprint" for k in trained), sorted(trained)
    if finetune == "lora":
        assert any("lora_B" in k and trained[k].abs().sum() > 0 for k in trained)
        assert all("lora_" in k for k in trained if k.startswith("lm.model."))

    from salign.llm.task import LLMSTTask

    # the model built from the files has the LM's own weights, untouched by LoRA / freezing
    model, _ = LLMSTTask.build_model_from_file(exp / "config.yaml", exp / "valid.acc.ave.pth")
    assert model.lm.path == str(lm_dir)
    state = {k: v for k, v in model.state_dict(keep_vars=True).items()}
    params = dict(model.named_parameters())
    prefix = "lm.model.base_model.model." if finetune == "lora" else "lm.model."
    for key, value in original.items():
        name = prefix + key
        name = name if name in params else name.replace(".weight", ".base_layer.weight").replace(
            ".bias", ".base_layer.bias")
        assert torch.equal(params[name].detach(), value), name
    assert state["lm.base_fingerprint"] is not None
    if finetune != "lora":
        return
    # resume is strict in ESPnet's trainer: the checkpoint without the base weights resumes
    run_tool("salign.bin.llm_train", llm_args(tiny_data, exp, HF_CONFIG, tokens=False)
             + ["--lm_conf", f"path={lm_dir}", "--max_epoch", "3", "--resume", "true"], tmp_path, "log_resume")
    assert sorted(epoch_stats((tmp_path / "log_resume").read_text())) == [3]


def test_checkpoint_over_another_base_lm_is_one_line_error(tiny_data, tiny_qwen2, tmp_path):
    """A checkpoint without the frozen weights, decoded over a different base directory: one line naming it."""
    import shutil

    from salign.llm.hf_lm import base_fingerprint
    from salign.llm.task import LLMSTTask
    from salign.testing.tiny_llm import make_tiny_hf_lm
    from salign.utils.io import InputError

    other = make_tiny_hf_lm(tmp_path / "other", "qwen2", hidden_size=48)
    assert not torch.equal(base_fingerprint(other), base_fingerprint(tiny_qwen2))
    exp = tmp_path / "exp"
    run_tool("salign.bin.llm_train", llm_args(tiny_data, exp, HF_CONFIG, tokens=False)
             + ["--lm_conf", f"path={tiny_qwen2}", "--max_epoch", "1"], tmp_path, "log")
    config = (exp / "config.yaml").read_text().replace(str(tiny_qwen2), str(tmp_path / "moved"))
    shutil.copytree(other, tmp_path / "moved")
    (exp / "config_moved.yaml").write_text(config)
    with pytest.raises(InputError, match="another base LM"):
        LLMSTTask.build_model_from_file(exp / "config_moved.yaml", exp / "valid.acc.ave.pth")
