"""Whisper checkpoints in three formats, read into one: openai's layout (``dims`` + ``model_state_dict``).

``encoder_conf.checkpoint`` of ``--encoder whisper`` (and every other reader of Whisper weights in salign) goes
through :func:`load_whisper`, which accepts

- an openai ``.pt`` file (``{"dims": ModelDimensions fields, "model_state_dict": ...}``, as ``whisper.load_model``
  caches them);
- a Hugging Face ``WhisperForConditionalGeneration``/``WhisperModel`` directory (``config.json`` with
  ``model_type: whisper``, ``model.safetensors`` or ``pytorch_model.bin``);
- a CTranslate2 Whisper directory (``model.bin`` -- or ``model.bin.part1``, ``.part2``, ... -- with ``WhisperSpec``
  variables; float16/float32, or int8 with per-row scales), as faster-whisper ships them.

Name mapping (N: layer index; ``*`` encoder or decoder; CTranslate2 fuses q/k/v by rows and stores a zero key
bias), CTranslate2 -> Hugging Face (under ``model.``) -> openai::

    encoder/conv{1,2}/*                       encoder.conv{1,2}.*                  encoder.conv{1,2}.*
    encoder/position_encodings/encodings      encoder.embed_positions.weight       encoder.positional_embedding
    */layer_N/self_attention/layer_norm       *.layers.N.self_attn_layer_norm      *.blocks.N.attn_ln
    */layer_N/self_attention/linear_0         *.layers.N.self_attn.{q,k,v}_proj    *.blocks.N.attn.{query,key,value}
    */layer_N/self_attention/linear_1         *.layers.N.self_attn.out_proj        *.blocks.N.attn.out
    decoder/layer_N/attention/layer_norm      *.layers.N.encoder_attn_layer_norm   *.blocks.N.cross_attn_ln
    decoder/layer_N/attention/linear_0        *.layers.N.encoder_attn.q_proj       *.blocks.N.cross_attn.query
    decoder/layer_N/attention/linear_1 (k;v)  *.layers.N.encoder_attn.{k,v}_proj   *.blocks.N.cross_attn.{key,value}
    decoder/layer_N/attention/linear_2        *.layers.N.encoder_attn.out_proj     *.blocks.N.cross_attn.out
    */layer_N/ffn/layer_norm                  *.layers.N.final_layer_norm          *.blocks.N.mlp_ln
    */layer_N/ffn/linear_{0,1}                *.layers.N.fc{1,2}                   *.blocks.N.mlp.{0,2}
    encoder/layer_norm                        encoder.layer_norm                   encoder.ln_post
    decoder/embeddings/weight                 decoder.embed_tokens.weight          decoder.token_embedding.weight
    decoder/position_encodings/encodings      decoder.embed_positions.weight       decoder.positional_embedding
    decoder/layer_norm                        decoder.layer_norm                   decoder.ln

(CTranslate2 norms are ``gamma``/``beta``; Hugging Face's ``proj_out`` is tied to the token embedding.)
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch

from salign.encoders.ct2 import dequantize, read_ct2
from salign.utils.io import InputError

PathLike = Union[str, Path]
Dims = Dict[str, int]
State = Dict[str, torch.Tensor]
ENCODER_DIMS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer")
TEXT_DIMS = ("n_vocab", "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer")
FIX = ("an openai Whisper .pt file, a Hugging Face Whisper directory or a CTranslate2 Whisper directory "
       "(tools/get_pretrained.sh whisper-tiny.en writes one)")
_LN = {"gamma": "weight", "beta": "bias"}


# ---------------------------------------------------------------------------------------------- CTranslate2
def ct2_to_openai(variables: State, heads: Tuple[int, int], path: Path) -> Tuple[Dims, State]:
    """openai dims and state dict from dequantised CTranslate2 ``WhisperSpec`` variables; ``heads`` = (encoder,
    decoder) head counts."""
    out: State = {}
    for name, t in variables.items():
        parts = name.split("/")
        side = parts[0]
        if side not in ("encoder", "decoder") or t.dim() == 0:
            continue
        rest = parts[1:]
        if rest[0] in ("conv1", "conv2"):
            out[f"encoder.{rest[0]}.{rest[1]}"] = t
        elif rest[0] == "position_encodings":
            out[f"{side}.positional_embedding"] = t
        elif rest[0] == "embeddings":
            out["decoder.token_embedding.weight"] = t
        elif rest[0] == "layer_norm":
            out[f"{side}.{'ln_post' if side == 'encoder' else 'ln'}.{_LN[rest[1]]}"] = t
        elif rest[0] == "projection":
            continue  # tied to the embeddings
        elif rest[0].startswith("layer_"):
            n = int(rest[0][len("layer_"):])
            block = f"{side}.blocks.{n}"
            module, leaf = rest[1], rest[-1]
            if rest[2] == "layer_norm":
                ln = {"self_attention": "attn_ln", "attention": "cross_attn_ln", "ffn": "mlp_ln"}[module]
                out[f"{block}.{ln}.{_LN[leaf]}"] = t
            elif module == "ffn":
                out[f"{block}.mlp.{'0' if rest[2] == 'linear_0' else '2'}.{leaf}"] = t
            else:
                attn = "attn" if module == "self_attention" else "cross_attn"
                fused = {("attn", "linear_0"): ("query", "key", "value"), ("attn", "linear_1"): ("out",),
                         ("cross_attn", "linear_0"): ("query",), ("cross_attn", "linear_1"): ("key", "value"),
                         ("cross_attn", "linear_2"): ("out",)}[(attn, rest[2])]
                for piece, target in zip(t.chunk(len(fused), dim=0), fused):
                    if target == "key" and leaf == "bias":
                        continue  # openai's key has no bias (CTranslate2 stores zeros)
                    out[f"{block}.{attn}.{target}.{leaf}"] = piece.contiguous()
        else:
            raise InputError(f"unexpected CTranslate2 Whisper variable {name}", path, fix=FIX)
    try:
        dims = dims_from_state(out, heads)
    except KeyError as e:
        raise InputError(f"not a complete CTranslate2 Whisper model (no {e.args[0]})", path, fix=FIX) from None
    return dims, out


def dims_from_state(state: State, heads: Tuple[int, int]) -> Dims:
    """openai ``ModelDimensions`` from the tensor shapes (head counts given: they are not in the shapes)."""
    enc_pos, conv1 = state["encoder.positional_embedding"], state["encoder.conv1.weight"]
    dims = dict(n_mels=conv1.shape[1], n_audio_ctx=enc_pos.shape[0], n_audio_state=enc_pos.shape[1],
                n_audio_head=heads[0], n_audio_layer=_count(state, "encoder.blocks."))
    if "decoder.token_embedding.weight" in state:
        emb, dec_pos = state["decoder.token_embedding.weight"], state["decoder.positional_embedding"]
        dims.update(n_vocab=emb.shape[0], n_text_ctx=dec_pos.shape[0], n_text_state=emb.shape[1],
                    n_text_head=heads[1], n_text_layer=_count(state, "decoder.blocks."))
    return {k: int(v) for k, v in dims.items()}


def _count(state: State, prefix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def load_ct2_whisper(path: Path, dtype: torch.dtype = torch.float32) -> Tuple[Dims, State]:
    """openai dims + state dict of a CTranslate2 Whisper directory (or ``model.bin``)."""
    model = read_ct2(path)
    if model.spec and model.spec != "WhisperSpec":
        raise InputError(f"a CTranslate2 {model.spec}, not a WhisperSpec", path, fix=FIX)
    try:
        heads = (int(model.variables["encoder/num_heads"]), int(model.variables.get(
            "decoder/num_heads", model.variables["encoder/num_heads"])))
    except KeyError:
        raise InputError("no encoder/num_heads in this CTranslate2 model", path, fix=FIX) from None
    return ct2_to_openai(dequantize(model, dtype), heads, path)


# ---------------------------------------------------------------------------------------------- Hugging Face
_HF_TO_OPENAI = [
    (r"conv([12])\.", r"conv\1."), (r"embed_positions\.weight$", "positional_embedding"),
    (r"embed_tokens\.weight$", "token_embedding.weight"), (r"layers\.(\d+)\.", r"blocks.\1."),
    (r"self_attn_layer_norm\.", "attn_ln."), (r"encoder_attn_layer_norm\.", "cross_attn_ln."),
    (r"final_layer_norm\.", "mlp_ln."), (r"fc1\.", "mlp.0."), (r"fc2\.", "mlp.2."),
    (r"self_attn\.", "attn."), (r"encoder_attn\.", "cross_attn."), (r"q_proj\.", "query."), (r"k_proj\.", "key."),
    (r"v_proj\.", "value."), (r"out_proj\.", "out."),
]


def hf_to_openai_key(key: str) -> Optional[str]:
    """openai's name of a Hugging Face Whisper parameter (``model.`` prefix optional); None for ``proj_out``
    (tied to the token embedding)."""
    key = re.sub(r"^model\.", "", key)
    if key.startswith("proj_out."):
        return None
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        raise KeyError(key)
    if rest == "layer_norm.weight" or rest == "layer_norm.bias":
        return f"{side}.{'ln_post' if side == 'encoder' else 'ln'}.{rest.split('.')[-1]}"
    for pat, rep in _HF_TO_OPENAI:
        rest = re.sub(pat, rep, rest)
    return f"{side}.{rest}"


def openai_to_hf(dims: Dims, state: State) -> Tuple[Dict[str, Any], State]:
    """A transformers ``WhisperConfig`` dict and ``WhisperForConditionalGeneration`` state dict from openai's
    layout (the inverse of :func:`hf_to_openai_key`; the key bias Hugging Face lacks too, ``proj_out`` tied)."""
    hf: State = {}
    for key, t in state.items():
        side, _, rest = key.partition(".")
        if rest.startswith("ln_post.") or rest.startswith("ln."):
            name = f"{side}.layer_norm.{rest.split('.')[-1]}"
        else:
            name = rest
            for pat, rep in [("positional_embedding", "embed_positions.weight"),
                             ("token_embedding.weight", "embed_tokens.weight"), (r"blocks\.(\d+)\.", r"layers.\1."),
                             (r"\.attn_ln\.", ".self_attn_layer_norm."),
                             (r"cross_attn_ln\.", "encoder_attn_layer_norm."),
                             (r"mlp_ln\.", "final_layer_norm."), (r"mlp\.0\.", "fc1."), (r"mlp\.2\.", "fc2."),
                             (r"\.attn\.", ".self_attn."), (r"cross_attn\.", "encoder_attn."), (r"query\.", "q_proj."),
                             (r"key\.", "k_proj."), (r"value\.", "v_proj."), (r"\.out\.", ".out_proj.")]:
                name = re.sub(pat, rep, name)
            name = f"{side}.{name}"
        hf[f"model.{name}"] = t
    config = dict(
        model_type="whisper", architectures=["WhisperForConditionalGeneration"],
        num_mel_bins=dims["n_mels"], max_source_positions=dims["n_audio_ctx"], d_model=dims["n_audio_state"],
        encoder_attention_heads=dims["n_audio_head"], encoder_layers=dims["n_audio_layer"],
        encoder_ffn_dim=4 * dims["n_audio_state"], vocab_size=dims["n_vocab"],
        max_target_positions=dims["n_text_ctx"], decoder_attention_heads=dims["n_text_head"],
        decoder_layers=dims["n_text_layer"], decoder_ffn_dim=4 * dims["n_text_state"],
        activation_function="gelu", scale_embedding=False, tie_word_embeddings=True)
    return config, hf


def load_hf_whisper(path: Path, dtype: torch.dtype = torch.float32) -> Tuple[Dims, State]:
    """openai dims + state dict of a Hugging Face Whisper directory."""
    from salign.st.ssl_checkpoint import read_hf_weights

    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable config.json ({e})", path / "config.json", fix=FIX) from None
    if cfg.get("model_type") != "whisper":
        raise InputError(f"a Hugging Face {cfg.get('model_type')!r} model, not Whisper", path / "config.json", fix=FIX)
    weights, raw = read_hf_weights(path, FIX)
    state: State = {}
    for k, v in raw.items():
        try:
            name = hf_to_openai_key(k)
        except KeyError:
            raise InputError(f"unexpected tensor {k} for a Whisper model", weights, fix=FIX) from None
        if name is not None:
            state[name] = v.to(dtype) if v.is_floating_point() else v
    if "decoder.token_embedding.weight" not in state and "proj_out.weight" in raw:
        state["decoder.token_embedding.weight"] = raw["proj_out.weight"].to(dtype)
    try:
        dims = dims_from_state(state, (int(cfg["encoder_attention_heads"]),
                                       int(cfg.get("decoder_attention_heads", cfg["encoder_attention_heads"]))))
    except KeyError as e:
        raise InputError(f"not a complete Whisper model (no {e.args[0]})", path, fix=FIX) from None
    return dims, state


# ---------------------------------------------------------------------------------------------- openai
def load_openai_whisper(path: Path) -> Tuple[Dims, State]:
    """openai dims + state dict of an openai ``.pt`` file."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, not a torch file, a pickle that is not plain data
        raise InputError(f"cannot read the Whisper checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                         path, fix=FIX) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("dims"), dict) \
            or not isinstance(ckpt.get("model_state_dict"), dict):
        raise InputError("not an openai Whisper checkpoint (no 'dims' and 'model_state_dict')", path, fix=FIX)
    missing = [k for k in ENCODER_DIMS if k not in ckpt["dims"]]
    if missing:
        raise InputError(f"Whisper checkpoint dims lack {missing}", path, fix=FIX)
    return {k: int(v) for k, v in ckpt["dims"].items()}, ckpt["model_state_dict"]


def whisper_format(path: PathLike) -> str:
    """``openai``, ``huggingface`` or ``ct2``: the format of a Whisper checkpoint path (an InputError if none)."""
    path = Path(path)
    if path.is_file():
        return "ct2" if path.name.startswith("model.bin") else "openai"
    if path.is_dir():
        if (path / "model.bin").is_file() or (path / "model.bin.part1").is_file():
            return "ct2"
        if (path / "config.json").is_file():
            return "huggingface"
        raise InputError("a directory with neither config.json (Hugging Face) nor model.bin (CTranslate2)", path,
                         fix=FIX)
    raise InputError("no such Whisper checkpoint", path, fix=f"give {FIX}, or set encoder_conf.checkpoint")


def load_whisper(path: PathLike, encoder_only: bool = False) -> Tuple[Dims, State]:
    """openai dims and state dict of any supported Whisper checkpoint (see the module doc); with
    ``encoder_only`` only the ``encoder.*`` tensors, their prefix removed."""
    path = Path(path)
    fmt = whisper_format(path)
    dims, state = {"ct2": load_ct2_whisper, "huggingface": load_hf_whisper,
                   "openai": load_openai_whisper}[fmt](path)
    if encoder_only:
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    return dims, state
