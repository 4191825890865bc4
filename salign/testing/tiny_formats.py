"""Tiny Whisper models written in the real on-disk formats, for tests of :mod:`salign.encoders.whisper_format`.

The reference is a randomly initialised ``transformers`` ``WhisperForConditionalGeneration`` (:func:`tiny_hf_whisper`):
it is saved as a Hugging Face directory by ``save_pretrained`` itself, and as a CTranslate2 ``model.bin`` by
:func:`hf_to_ct2`, which follows CTranslate2's own Transformers converter for Whisper (q/k/v fused by rows with a zero
key bias, cross-attention k/v fused, ``gamma``/``beta`` norms, ``num_heads`` scalars, the output projection an alias
of the embeddings) -- written from the Hugging Face names, independently of salign's reader, so that a test loading
both formats checks the reader's mapping against transformers' own encoder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from salign.encoders.ct2 import CT2Model, quantize_int8, write_ct2

PathLike = Union[str, Path]
TINY_HF = dict(vocab_size=64, num_mel_bins=80, encoder_layers=2, encoder_attention_heads=4, decoder_layers=1,
               decoder_attention_heads=4, d_model=32, encoder_ffn_dim=128, decoder_ffn_dim=128,
               max_source_positions=64, max_target_positions=16, decoder_start_token_id=1, pad_token_id=0,
               bos_token_id=0, eos_token_id=0)


def tiny_hf_whisper(seed: int = 0, **overrides):
    """A tiny random transformers Whisper (eval mode; 64 encoder positions = a 1.28 s window)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(WhisperConfig(**{**TINY_HF, **overrides})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))  # a swapped norm or bias shows in the outputs
    return model


def hf_to_ct2(model, dtype: torch.dtype = torch.float16, int8: bool = False) -> CT2Model:
    """CTranslate2 ``WhisperSpec`` variables of a transformers Whisper (float16/float32, or int8 linear weights with
    per-row ``_scale`` variables as CTranslate2's int8 quantisation writes them)."""
    sd = {k.removeprefix("model."): v.detach() for k, v in model.state_dict().items()}
    cfg = model.config
    out: Dict[str, torch.Tensor] = {}

    def put(name: str, t: torch.Tensor, linear: bool = False) -> None:
        if linear and int8 and name.endswith("weight"):
            q, s = quantize_int8(t.float())
            out[name], out[name + "_scale"] = q, s
        else:
            out[name] = t.to(dtype)

    def ln(prefix: str, hf: str) -> None:
        put(f"{prefix}/gamma", sd[f"{hf}.weight"])
        put(f"{prefix}/beta", sd[f"{hf}.bias"])

    def lin(prefix: str, ws, bs) -> None:
        put(f"{prefix}/weight", torch.cat(ws), linear=True)
        put(f"{prefix}/bias", torch.cat(bs))

    for side, n_layers in (("encoder", cfg.encoder_layers), ("decoder", cfg.decoder_layers)):
        for n in range(n_layers):
            h, c = f"{side}.layers.{n}", f"{side}/layer_{n}"
            a = f"{h}.self_attn"
            ln(f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
            lin(f"{c}/self_attention/linear_0", [sd[f"{a}.{p}_proj.weight"] for p in "qkv"],
                [sd[f"{a}.q_proj.bias"], torch.zeros_like(sd[f"{a}.q_proj.bias"]), sd[f"{a}.v_proj.bias"]])
            lin(f"{c}/self_attention/linear_1", [sd[f"{a}.out_proj.weight"]], [sd[f"{a}.out_proj.bias"]])
            if side == "decoder":
                e = f"{h}.encoder_attn"
                ln(f"{c}/attention/layer_norm", f"{h}.encoder_attn_layer_norm")
                lin(f"{c}/attention/linear_0", [sd[f"{e}.q_proj.weight"]], [sd[f"{e}.q_proj.bias"]])
                lin(f"{c}/attention/linear_1", [sd[f"{e}.k_proj.weight"], sd[f"{e}.v_proj.weight"]],
                    [torch.zeros_like(sd[f"{e}.v_proj.bias"]), sd[f"{e}.v_proj.bias"]])
                lin(f"{c}/attention/linear_2", [sd[f"{e}.out_proj.weight"]], [sd[f"{e}.out_proj.bias"]])
            ln(f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
            lin(f"{c}/ffn/linear_0", [sd[f"{h}.fc1.weight"]], [sd[f"{h}.fc1.bias"]])
            lin(f"{c}/ffn/linear_1", [sd[f"{h}.fc2.weight"]], [sd[f"{h}.fc2.bias"]])
        ln(f"{side}/layer_norm", f"{side}.layer_norm")
        put(f"{side}/position_encodings/encodings", sd[f"{side}.embed_positions.weight"])
    for k in ("conv1", "conv2"):
        put(f"encoder/{k}/weight", sd[f"encoder.{k}.weight"])
        put(f"encoder/{k}/bias", sd[f"encoder.{k}.bias"])
    put("decoder/embeddings/weight", sd["decoder.embed_tokens.weight"])
    out["encoder/num_heads"] = torch.tensor(cfg.encoder_attention_heads, dtype=torch.int16)
    out["decoder/num_heads"] = torch.tensor(cfg.decoder_attention_heads, dtype=torch.int16)
    out["decoder/pre_norm"] = torch.tensor(1, dtype=torch.int8)
    return CT2Model("WhisperSpec", 3, out, {"decoder/projection/weight": "decoder/embeddings/weight"})


def save_ct2_dir(model, out: PathLike, dtype: torch.dtype = torch.float16, int8: bool = False,
                 split: Optional[int] = None) -> Path:
    """A CTranslate2 Whisper directory (``model.bin`` + ``config.json``); ``split`` N: ``model.bin`` cut into N
    ``model.bin.partK`` pieces, as the Whisper-base packages ship it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_ct2(out / "model.bin", hf_to_ct2(model, dtype, int8))
    if split:
        data = (out / "model.bin").read_bytes()
        size = -(-len(data) // split)
        for k in range(split):
            (out / f"model.bin.part{k + 1}").write_bytes(data[k * size:(k + 1) * size])
        (out / "model.bin").unlink()
    (out / "config.json").write_text(json.dumps({"suppress_ids": [], "suppress_ids_begin": [], "lang_ids": []}))
    return out
