"""Conversions of the registry packages' weights into Hugging Face directories (``salign.pretrained.fetch``)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Union

import torch

from salign.encoders.whisper_format import load_ct2_whisper, openai_to_hf
from salign.utils.io import InputError

PathLike = Union[str, Path]


def whisper_ct2_to_hf(src: PathLike, out: PathLike) -> None:
    """A CTranslate2 Whisper directory (``model.bin`` or its ``.partN`` pieces, ``config.json``,
    ``tokenizer.json``) -> a Hugging Face ``WhisperForConditionalGeneration`` directory in ``out`` (weights in
    float16 as shipped), with a generation config that transformers' ``generate`` needs offline (start, language,
    task and no-timestamps tokens; suppressed tokens from the CTranslate2 config)."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    src, out = Path(src), Path(out)
    dims, state = load_ct2_whisper(src, dtype=torch.float16)
    cfg, hf_state = openai_to_hf(dims, state)
    ct2 = json.loads((src / "config.json").read_text(encoding="utf-8"))
    tok = WhisperTokenizerFast(tokenizer_file=str(src / "tokenizer.json"))
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>",
                                                     "<|transcribe|>", "<|translate|>")}
    if any(i is None or tok.convert_ids_to_tokens(i) != t for t, i in ids.items()):
        raise InputError(f"tokenizer lacks Whisper's special tokens ({ids})", src / "tokenizer.json")
    eot = ids["<|endoftext|>"]
    config = WhisperConfig(**{k: v for k, v in cfg.items() if k not in ("model_type", "architectures")},
                           decoder_start_token_id=ids["<|startoftranscript|>"], pad_token_id=eot, bos_token_id=eot,
                           eos_token_id=eot, suppress_tokens=ct2.get("suppress_ids", []),
                           begin_suppress_tokens=ct2.get("suppress_ids_begin", []))
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(hf_state, strict=False)
    if unexpected or set(missing) - {"proj_out.weight"}:
        raise InputError(f"conversion does not fit transformers' Whisper: missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}", src)
    model.tie_weights()
    multilingual = dims["n_vocab"] >= 51865
    gen = GenerationConfig.from_model_config(config)
    gen.max_length = dims["n_text_ctx"]
    gen.no_timestamps_token_id = ids["<|notimestamps|>"]
    gen.is_multilingual = multilingual
    gen.alignment_heads = ct2.get("alignment_heads")
    if multilingual:
        gen.lang_to_id = {tok.convert_ids_to_tokens(i): i for i in ct2.get("lang_ids", [])}
        gen.task_to_id = {"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}
    model.generation_config = gen
    model.half().save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    WhisperFeatureExtractor(feature_size=dims["n_mels"]).save_pretrained(out)
    logging.info("whisper: %d encoder + %d decoder layers, width %d, vocabulary %d -> %s", dims["n_audio_layer"],
                 dims["n_text_layer"], dims["n_audio_state"], dims["n_vocab"], out)


def gguf_to_hf(gguf: PathLike, out: PathLike) -> None:
    """A GGUF causal LM -> a Hugging Face directory (float32 ``model.safetensors`` and the tokenizer) through
    transformers' GGUF loader, which dequantises the weights. A model loaded from GGUF is flagged as quantised and
    ``save_pretrained`` refuses it; its weights are plain float32, so the flag is cleared before saving."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    logging.info("lm: %s, %d layers, width %d, vocabulary %d -> %s", model.config.model_type,
                 model.config.num_hidden_layers, model.config.hidden_size, model.config.vocab_size, out)
