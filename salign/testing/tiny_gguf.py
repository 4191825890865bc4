"""Tiny causal LMs in GGUF, written with the ``gguf`` package in llama.cpp's real layout (no download).

SmolLM2-135M ships as one GGUF file (``llama`` architecture, byte-level BPE tokenizer ``gpt2``, weights Q4_1 with a
Q8_0 token embedding); :func:`write_llama_gguf` writes a Hugging Face Llama directory the way llama.cpp's
``convert_hf_to_gguf.py`` does: the ``llama.*`` hyper-parameters, the tokenizer as ``tokenizer.ggml.*`` metadata
(tokens, token types, merges, special ids), tensors under llama.cpp's names (``token_embd``, ``blk.N.attn_q``, ...;
no ``output.weight`` when the embeddings are tied) with the query/key rows permuted for llama.cpp's rotary layout,
and, with ``quantize``, the matrices quantised (``Q8_0`` token embedding, ``Q4_1`` elsewhere, as the real file;
norms stay float32). :func:`tiny_llama_dir` writes the Hugging Face model it starts from.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Union

import numpy as np

PathLike = Union[str, Path]

#: Hugging Face Llama parameter names -> llama.cpp's (``{i}``: the block)
HF_TO_GGUF: Dict[str, str] = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{i}.input_layernorm.weight": "blk.{i}.attn_norm.weight",
    "model.layers.{i}.self_attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "model.layers.{i}.self_attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "model.layers.{i}.self_attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "model.layers.{i}.self_attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "model.layers.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
}


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's row permutation of a query/key projection (``convert_hf_to_gguf.py``: ``LlamaModel.permute``):
    each head's rotary halves interleaved. transformers' GGUF loader undoes it."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tiny_llama_dir(out: PathLike, hidden_size: int = 64, num_layers: int = 2, seed: int = 0) -> Path:
    """A tiny random Hugging Face Llama (4 heads, 2 key/value heads, tied embeddings) with a byte-level BPE tokenizer
    (no bos added, as SmolLM2's) in ``out``; widths are multiples of 32, the GGUF block size. Returns ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from salign.testing.tiny_data import SRC_WORDS, TGT_WORDS
    from salign.testing.tiny_llm import build_tokenizer

    out = Path(out)
    tok = build_tokenizer([" ".join(SRC_WORDS), " ".join(TGT_WORDS)], bos=False, kind="bytelevel", vocab_size=320)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True, rope_theta=100000.0,
                         rms_norm_eps=1e-5, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.convert_tokens_to_ids("<s>"))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_llama_gguf(hf_dir: PathLike, out_file: PathLike, quantize: bool = True) -> Path:
    """The Hugging Face Llama in ``hf_dir`` (config, ``model.safetensors``, a byte-level ``tokenizer.json``) as a
    GGUF file ``out_file`` in llama.cpp's layout (see the module doc). Returns ``out_file``."""
    import gguf
    from safetensors.numpy import load_file

    hf_dir, out_file = Path(hf_dir), Path(out_file)
    cfg = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    tok = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if tok["model"]["type"] != "BPE":
        raise ValueError(f"{hf_dir}/tokenizer.json: a byte-level BPE tokenizer is needed, got {tok['model']['type']}")
    vocab = tok["model"]["vocab"]
    specials = {t["content"]: t["id"] for t in tok.get("added_tokens", []) if t.get("special")}
    vocab.update(specials)
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise ValueError(f"{hf_dir}/tokenizer.json: token ids are not 0..{len(tokens) - 1}")
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    heads, kv_heads = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads

    w = gguf.GGUFWriter(str(out_file), arch="llama")
    w.add_name("tiny-llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    rope = cfg.get("rope_parameters") or {}  # transformers 5 keeps rope_theta there
    w.add_rope_freq_base(float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_vocab_size(len(tokens))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1 if quantize else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "pad_token_id")):
        if cfg.get(key) is not None:
            getattr(w, f"add_{name}_token_id")(int(cfg[key]))
    w.add_add_bos_token(False)

    state = load_file(str(hf_dir / "model.safetensors"))
    names = {}
    for i in range(cfg["num_hidden_layers"]):
        names.update({k.format(i=i): v.format(i=i) for k, v in HF_TO_GGUF.items() if "{i}" in k})
    names.update({k: v for k, v in HF_TO_GGUF.items() if "{i}" not in k})
    for hf_name, t in state.items():
        if hf_name == "lm_head.weight" and cfg.get("tie_word_embeddings", False):
            continue
        if hf_name not in names:
            raise ValueError(f"{hf_dir}: no llama.cpp name for {hf_name}")
        name, t = names[hf_name], np.ascontiguousarray(t, dtype=np.float32)
        if name.endswith("attn_q.weight"):
            t = llama_cpp_permute(t, heads)
        elif name.endswith("attn_k.weight"):
            t = llama_cpp_permute(t, kv_heads)
        qtype = None
        if quantize and t.ndim == 2:
            qtype = gguf.GGMLQuantizationType.Q8_0 if name == "token_embd.weight" else gguf.GGMLQuantizationType.Q4_1
        if qtype is None:
            w.add_tensor(name, t)
        else:
            w.add_tensor(name, gguf.quants.quantize(t, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out_file


def dequantized(t: np.ndarray, quantize: bool, embedding: bool = False) -> np.ndarray:
    """What a float32 matrix becomes after :func:`write_llama_gguf` quantised it and a loader dequantised it
    (unchanged without ``quantize`` or for vectors)."""
    import gguf

    t = np.ascontiguousarray(t, dtype=np.float32)
    if not quantize or t.ndim != 2:
        return t
    q = gguf.GGMLQuantizationType.Q8_0 if embedding else gguf.GGMLQuantizationType.Q4_1
    return gguf.quants.dequantize(gguf.quants.quantize(t, q), q).reshape(t.shape)
