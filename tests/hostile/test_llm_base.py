"""The speech-LLM's base LM (issue 22, item 9): which LM a checkpoint needs, and what decoding needs besides it.

* A LoRA/frozen-LM checkpoint holds no base weights; it is checked against the LM directory it is loaded over. The
  check saw ``config.json`` and the weight files' sizes only: a re-seeded LM with the same config loaded without a
  word and decoded differently. It now covers the weights' content (blocks sampled over each weight file).
* With ``lm: hf`` the LM's tokenizer is the vocabulary: the README said no ``--token_list`` was needed, but a model
  trained with one (the recipe passes its own) could not be built without that file. A token list given with
  ``lm: hf`` is now neither read nor kept.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest
import torch

from salign.utils.io import InputError
from tests.llm.test_llm_train import HF_CONFIG

pytestmark = pytest.mark.xdist_group("hostile_llm_base")


def lm_dir(root: Path, seed: int) -> Path:
    from salign.testing.tiny_llm import make_tiny_hf_lm

    return make_tiny_hf_lm(root / f"lm_seed{seed}", "qwen2", seed=seed)


def lora_lm(path: Path):
    from salign.llm.hf_lm import HFCausalLM

    return HFCausalLM(path=str(path), finetune="lora", lora_conf={"r": 2, "alpha": 4, "dropout": 0.0,
                                                                  "target_modules": ["q_proj", "v_proj"]})


def test_a_checkpoint_over_a_reseeded_lm_of_the_same_shape_is_refused(tmp_path):
    trained_on, other = lm_dir(tmp_path, 0), lm_dir(tmp_path, 1)
    same_files = {f.name: f.stat().st_size for f in trained_on.iterdir()}
    assert same_files == {f.name: f.stat().st_size for f in other.iterdir()}  # the same names and sizes
    assert (trained_on / "config.json").read_bytes() == (other / "config.json").read_bytes()
    state = lora_lm(trained_on).state_dict()  # LoRA weights + the base's fingerprint, no base weights
    lora_lm(trained_on).load_state_dict(state)  # over its own base: fine
    with pytest.raises(InputError, match="the checkpoint was trained on another base LM than this directory"):
        lora_lm(other).load_state_dict(state)


def test_a_checkpoint_of_an_older_salign_still_loads_with_a_warning(tmp_path, caplog):
    from salign.llm.hf_lm import FINGERPRINT, legacy_fingerprint

    base = lm_dir(tmp_path, 0)
    state = lora_lm(base).state_dict()
    state[next(k for k in state if k.endswith(FINGERPRINT))] = legacy_fingerprint(base)  # as saved before
    with caplog.at_level(logging.WARNING):
        lora_lm(base).load_state_dict(state)
    assert "saved by an older salign" in caplog.text


def test_an_hf_lm_model_neither_reads_nor_keeps_a_token_list(tmp_path):
    """The recipe passes its SentencePiece token list to every training; with lm: hf it is not read (here it does not
    exist) and config.yaml records none, so the trained model decodes and packs without it."""
    from salign.llm.task import LLMSTTask

    base = lm_dir(tmp_path, 0)
    parser = LLMSTTask.get_parser()
    tokens = tmp_path / "data" / "token_list" / "joint" / "tokens.txt"  # (never written)
    args = parser.parse_args(["--config", str(HF_CONFIG), "--lm_conf", f"path={base}", "--input_size", "80",
                              "--token_list", str(tokens), "--src_token_list", str(tokens),
                              "--output_dir", str(tmp_path / "exp")])
    model = LLMSTTask.build_model(args)
    assert isinstance(args, argparse.Namespace) and args.token_list is None and args.src_token_list is None
    assert isinstance(model, torch.nn.Module)
