"""Fixtures of the speech-LLM tests: tiny random HF LMs (Qwen2, Llama) written offline, and small models."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download, ever


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory) -> Path:
    """A tiny random Qwen2 causal LM + word-level tokenizer in a save_pretrained directory."""
    from salign.testing.tiny_llm import make_tiny_hf_lm

    return make_tiny_hf_lm(tmp_path_factory.mktemp("hf") / "qwen2", "qwen2")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny random Llama causal LM + word-level tokenizer (adds ``<s>``) in a save_pretrained directory."""
    from salign.testing.tiny_llm import make_tiny_hf_lm

    return make_tiny_hf_lm(tmp_path_factory.mktemp("hf") / "llama", "llama")


def tiny_tokens() -> list:
    """The tiny data set's word token list (as tests/conftest.py's tiny_data writes it)."""
    from salign.testing.tiny_data import SRC_WORDS, TGT_WORDS

    return ["<blank>", "<unk>"] + SRC_WORDS + TGT_WORDS + ["<sos/eos>"]


def build_model(lm_kind: str = "tiny", path: Optional[Path] = None, finetune: str = "lora", stack: int = 2,
                projector: str = "linear", **model_conf):
    """A small :class:`SpeechLLMModel` (fbank transformer encoder, 80-dim input) with our tiny LM or an HF LM."""
    from espnet2.asr.encoder.transformer_encoder import TransformerEncoder

    from salign.llm.hf_lm import HFCausalLM
    from salign.llm.lm import TinyCausalLM
    from salign.llm.model import SpeechLLMModel
    from salign.llm.projector import LinearProjector, MLPProjector

    torch.manual_seed(0)
    encoder = TransformerEncoder(80, output_size=16, attention_heads=2, linear_units=32, num_blocks=1,
                                 dropout_rate=0.0, input_layer="linear")
    if lm_kind == "tiny":
        lm = TinyCausalLM(tiny_tokens(), hidden_size=32, num_blocks=2, attention_heads=2, linear_units=64,
                          dropout_rate=0.0, extra_tokens=8)
    else:
        lm = HFCausalLM(path=str(path), finetune=finetune,
                        lora_conf={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    proj = (LinearProjector if projector == "linear" else MLPProjector)(16, lm.hidden_size, stack=stack)
    model_conf.setdefault("tgt_lang", "es")
    return SpeechLLMModel(None, None, None, encoder, proj, lm, None, **model_conf)


def fake_batch(model, n: int = 3, seed: int = 0):
    """Random speech (B, T, 80) and target/source ids in the model LM's vocabulary, ESPnet-padded (-1)."""
    g = torch.Generator().manual_seed(seed)
    speech_lens = torch.tensor([20, 14, 9][:n])
    speech = torch.randn(n, int(speech_lens.max()), 80, generator=g)
    high = 22 if hasattr(model.lm, "token_list") else 40  # word rows of the tiny list / the tiny HF vocab
    def ids(lens):
        x = torch.randint(4, high, (n, int(max(lens))), generator=g)
        for i, m in enumerate(lens):
            x[i, m:] = -1
        return x, torch.tensor(lens)
    text, text_lens = ids([4, 2, 3][:n])
    src, src_lens = ids([3, 4, 2][:n])
    return dict(text=text, text_lengths=text_lens, speech=speech, speech_lengths=speech_lens, src_text=src,
                src_text_lengths=src_lens)
