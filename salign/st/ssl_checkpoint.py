"""Read HuBERT / wav2vec 2.0 checkpoints into torchaudio's layout, with neither fairseq nor transformers installed.

Two formats, one result (:class:`SSLCheckpoint`: the keyword arguments of ``torchaudio.models.wav2vec2_model``, a
state dict with torchaudio's key names, whether the model expects a per-utterance normalised waveform, and the
learned mask embedding the input masking of fine-tuning uses -- fairseq's ``mask_emb``, Hugging Face's
``masked_spec_embed`` -- which torchaudio's model does not hold):

* **fairseq** ``.pt`` (``hubert_base_ls960.pt``, ``wav2vec_small.pt``, ``hubert_large_ll60k.pt``, ...): a pickled dict
  with ``cfg`` (hydra config: ``cfg["model"]``, ``cfg["task"]``) or legacy ``args`` (an argparse Namespace) and
  ``model`` (fairseq key names). Unpickling stubs the fairseq classes a checkpoint may carry (``task_state``
  dictionaries); the architecture is read from the config fields that fairseq's ``HubertConfig``/``Wav2Vec2Config``
  define, with fairseq's defaults; keys are renamed as ``torchaudio.models.wav2vec2.utils.import_fairseq`` does.
  Fine-tuned checkpoints (``w2v_encoder.w2v_model.*`` keys, config in ``cfg.model.w2v_args``) load their encoder.
* **Hugging Face** directory: ``config.json`` (``HubertModel``/``Wav2Vec2Model`` or their ``ForCTC`` variants) and
  ``model.safetensors`` (read by a built-in reader when the ``safetensors`` package is absent) or
  ``pytorch_model.bin``; keys renamed as ``import_huggingface_model`` does (``feature_projection.*`` ->
  ``encoder.feature_projection.*``, ``encoder.*`` -> ``encoder.transformer.*``). ``preprocessor_config.json``'s
  ``do_normalize`` gives the waveform normalisation.
"""
from __future__ import annotations

import argparse
import json
import pickle
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch

from salign.utils.io import InputError

PathLike = Union[str, Path]
POS_G, POS_V = "parametrizations.weight.original0", "parametrizations.weight.original1"  # weight_norm's g and v
_FIX = "give a fairseq HuBERT/wav2vec 2.0 checkpoint (.pt) or a Hugging Face model directory (config.json + weights)"

# fairseq key -> torchaudio key (the table of torchaudio's import_fairseq._map_key)
FAIRSEQ_TO_TORCHAUDIO: List[Tuple[str, str]] = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)", r"feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"layer_norm\.(weight|bias)", r"encoder.feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"encoder.feature_projection.projection.\1"),
    (r"encoder\.pos_conv\.0\.bias", r"encoder.transformer.pos_conv_embed.conv.bias"),
    (r"encoder\.pos_conv\.0\.weight_g", rf"encoder.transformer.pos_conv_embed.conv.{POS_G}"),
    (r"encoder\.pos_conv\.0\.weight_v", rf"encoder.transformer.pos_conv_embed.conv.{POS_V}"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.transformer.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.(weight|bias)",
     r"encoder.transformer.layers.\1.attention.\2_proj.\3"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"encoder.transformer.layers.\1.layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)",
     r"encoder.transformer.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"encoder.transformer.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.transformer.layers.\1.final_layer_norm.\2"),
]
# pre-training / fine-tuning heads that an encoder does not use
FAIRSEQ_DROP = re.compile(r"(mask_emb|label_embs_concat|(final_proj|quantizer|project_q|target_glu|proj)\..*)")
HF_DROP = re.compile(r"(masked_spec_embed|(lm_head|quantizer|project_q|project_hid|dropout_features)\..*)")


@dataclass
class SSLCheckpoint:
    """A checkpoint in torchaudio's terms."""

    arch: Dict[str, Any]  #: ``torchaudio.models.wav2vec2_model`` keyword arguments (without ``aux_num_out``)
    state_dict: Dict[str, torch.Tensor]  #: torchaudio key names
    normalize_waveform: bool  #: the model was trained on zero-mean unit-variance utterances
    kind: str  #: "fairseq" or "huggingface"
    mask_emb: Optional[torch.Tensor] = None  #: (width,) learned embedding of masked frames; None if absent


def _take_mask_emb(state: Dict[str, torch.Tensor], names: Tuple[str, ...]) -> Optional[torch.Tensor]:
    """The checkpoint's mask embedding (the first of ``names`` found), as float32; None when it has none."""
    for name in names:
        if name in state:
            return state[name].detach().float().clone().reshape(-1)
    return None


def load_ssl_checkpoint(path: PathLike) -> SSLCheckpoint:
    """Read a fairseq ``.pt`` file or a Hugging Face directory; bad input is a one-line :class:`InputError`."""
    path = Path(path)
    if path.is_dir():
        return _load_huggingface(path)
    if not path.is_file():
        raise InputError("no such SSL checkpoint (file or directory)", path,
                         fix="download it (e.g. hubert_base_ls960.pt) or set encoder_conf.checkpoint")
    return _load_fairseq(path)


# ----------------------------------------------------------------------------------------------------- fairseq
class _Stub:
    """Stands for a class of a package that is not installed (fairseq's Dictionary in ``task_state``, enums)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Stub":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def __str__(self) -> str:
        args = self.__dict__.get("_args") or ("",)
        return str(args[0])


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            if module.split(".")[0] == "fairseq":
                return type(name, (_Stub,), {"__module__": module})
            raise


_PICKLE = types.SimpleNamespace(__name__="salign_fairseq_pickle", Unpickler=_Unpickler,
                                load=lambda f, **kw: _Unpickler(f, **kw).load())


def _plain(cfg: Any) -> Dict[str, Any]:
    """A config section (dict, omegaconf DictConfig, argparse Namespace or None) as a plain dict."""
    if cfg is None:
        return {}
    if isinstance(cfg, argparse.Namespace):
        return vars(cfg)
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            try:
                return OmegaConf.to_container(cfg, resolve=True)
            except Exception:  # an interpolation that needs fairseq's resolvers
                return OmegaConf.to_container(cfg, resolve=False)
    except ImportError:
        pass
    return dict(cfg) if isinstance(cfg, dict) else {}


def _conv_layers(spec: Any, path: Path) -> List[Tuple[int, int, int]]:
    """fairseq's ``conv_feature_layers`` string, e.g. "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"."""
    if not isinstance(spec, str):
        return [tuple(map(int, x)) for x in spec]
    if not re.fullmatch(r"[\d\s\[\](),+*]+", spec):
        raise InputError(f"unreadable conv_feature_layers {spec!r}", path, fix=_FIX)
    return [tuple(map(int, x)) for x in eval(spec, {"__builtins__": {}}, {})]  # digits and list operators only


# torchaudio ``wav2vec2_model`` argument: (type, fairseq name, fairseq default, Hugging Face name, HF default)
ENCODER_FIELDS = {
    "encoder_embed_dim": (int, "encoder_embed_dim", 768, "hidden_size", 768),
    "encoder_projection_dropout": (float, "dropout_input", 0.0, "feat_proj_dropout", 0.0),
    "encoder_pos_conv_kernel": (int, "conv_pos", 128, "num_conv_pos_embeddings", 128),
    "encoder_pos_conv_groups": (int, "conv_pos_groups", 16, "num_conv_pos_embedding_groups", 16),
    "encoder_num_layers": (int, "encoder_layers", 12, "num_hidden_layers", 12),
    "encoder_num_heads": (int, "encoder_attention_heads", 12, "num_attention_heads", 12),
    "encoder_attention_dropout": (float, "attention_dropout", 0.1, "attention_dropout", 0.1),
    "encoder_ff_interm_features": (int, "encoder_ffn_embed_dim", 3072, "intermediate_size", 3072),
    "encoder_ff_interm_dropout": (float, "activation_dropout", 0.0, "activation_dropout", 0.1),
    "encoder_dropout": (float, "dropout", 0.1, "hidden_dropout", 0.1),
    "encoder_layer_norm_first": (bool, "layer_norm_first", False, "do_stable_layer_norm", False),
    "encoder_layer_drop": (float, "encoder_layerdrop", 0.0, "layerdrop", 0.1),
}


def _encoder_fields(cfg: Dict[str, Any], hf: bool) -> Dict[str, Any]:
    """The transformer part of the architecture from a fairseq (``hf`` False) or Hugging Face config."""
    return {arg: typ(cfg.get(*((hf_name, hf_default) if hf else (fs_name, fs_default))))
            for arg, (typ, fs_name, fs_default, hf_name, hf_default) in ENCODER_FIELDS.items()}


def fairseq_arch(model_cfg: Dict[str, Any], path: Path) -> Dict[str, Any]:
    """torchaudio ``wav2vec2_model`` arguments from a fairseq HuBERT/wav2vec 2.0 model config (fairseq defaults)."""
    g = model_cfg.get
    unsupported = [f"{k}={g(k)}" for k, ok in (("layer_type", "transformer"), ("pos_conv_depth", 1),
                                                ("activation_fn", "gelu")) if g(k) is not None and str(g(k)) != str(ok)]
    if unsupported:
        raise InputError(f"unsupported SSL architecture ({', '.join(unsupported)})", path,
                         fix="use a HuBERT or wav2vec 2.0 (transformer) checkpoint")
    mode = str(g("extractor_mode", "default"))
    return dict(
        extractor_mode="layer_norm" if mode == "layer_norm" else "group_norm",
        extractor_conv_layer_config=_conv_layers(
            g("conv_feature_layers", "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"), path),
        extractor_conv_bias=bool(g("conv_bias", False)),
        **_encoder_fields(model_cfg, hf=False),
    )


def _rename(state: Dict[str, torch.Tensor], rename: Callable[[str], Optional[str]],
            path: Path) -> Dict[str, torch.Tensor]:
    """``state`` under torchaudio's names (``rename`` gives None for an unused head, KeyError for a stranger)."""
    converted: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        try:
            new = rename(key)
        except KeyError:
            raise InputError(f"unexpected parameter {key!r}: not a HuBERT/wav2vec 2.0 encoder", path,
                             fix=_FIX) from None
        if new is not None:
            converted[new] = value
    return converted


def fairseq_to_torchaudio_key(key: str) -> Optional[str]:
    """torchaudio's name of a fairseq encoder parameter; None for a head the encoder does not use."""
    key = key[len("w2v_model."):] if key.startswith("w2v_model.") else key
    if FAIRSEQ_DROP.fullmatch(key):
        return None
    for pattern, repl in FAIRSEQ_TO_TORCHAUDIO:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, repl, key)
    raise KeyError(key)


def _load_fairseq(path: Path) -> SSLCheckpoint:
    try:
        ckpt = torch.load(path, map_location="cpu", pickle_module=_PICKLE, weights_only=False)
    except Exception as exc:  # not a torch file, truncated, ...
        raise InputError(f"not a readable fairseq checkpoint ({type(exc).__name__}: {str(exc)[:120]})", path,
                         fix=_FIX) from None
    if not (isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict)
            and all(isinstance(v, torch.Tensor) for v in ckpt["model"].values())):
        raise InputError("not a fairseq checkpoint (no 'model' state dict)", path, fix=_FIX)
    cfg = _plain(ckpt.get("cfg"))
    model_cfg, task_cfg = _plain(cfg.get("model")), _plain(cfg.get("task"))
    if not cfg:  # legacy checkpoints: one argparse Namespace for model and task
        model_cfg = task_cfg = _plain(ckpt.get("args"))
    if not model_cfg:
        raise InputError("fairseq checkpoint without 'cfg' or 'args'", path, fix=_FIX)
    state = ckpt["model"]
    if any(k.startswith("w2v_encoder.") for k in state):  # fine-tuned (CTC) model: its pre-trained encoder
        inner = _plain(model_cfg.get("w2v_args"))
        if "model" in inner:  # hydra: {model: ..., task: ...}; legacy: one Namespace
            model_cfg, task_cfg = _plain(inner["model"]), _plain(inner.get("task"))
        else:
            model_cfg = task_cfg = inner
        state = {k[len("w2v_encoder."):]: v for k, v in state.items() if k.startswith("w2v_encoder.")}
    arch = fairseq_arch(model_cfg, path)
    converted = _rename(state, fairseq_to_torchaudio_key, path)
    _identity_projection(converted, arch)
    mask_emb = _take_mask_emb(state, ("mask_emb", "w2v_model.mask_emb"))
    return SSLCheckpoint(arch, converted, bool(task_cfg.get("normalize", False)), "fairseq", mask_emb)


def _identity_projection(state: Dict[str, torch.Tensor], arch: Dict[str, Any]) -> None:
    """fairseq has no ``post_extract_proj`` when the CNN width equals the model width: use an identity."""
    key = "encoder.feature_projection.projection.weight"
    dim, conv_dim = arch["encoder_embed_dim"], arch["extractor_conv_layer_config"][-1][0]
    if key not in state and dim == conv_dim:
        state[key] = torch.eye(dim)
        state["encoder.feature_projection.projection.bias"] = torch.zeros(dim)


# ------------------------------------------------------------------------------------------------ Hugging Face
_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}


def read_hf_weights(path: Path, fix: str) -> Tuple[Path, Dict[str, torch.Tensor]]:
    """The weight file of a Hugging Face model directory (``model.safetensors``, else ``pytorch_model.bin``) and its
    tensors; a missing or unreadable one is an :class:`InputError` naming it, with ``fix``."""
    weights = next((path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()), None)
    if weights is None:
        raise InputError("no model.safetensors or pytorch_model.bin", path, fix=fix)
    try:
        return weights, (read_safetensors(weights) if weights.suffix == ".safetensors"
                         else torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise InputError(f"unreadable weights ({type(exc).__name__}: {str(exc)[:120]})", weights, fix=fix) from None


def read_safetensors(path: PathLike) -> Dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file (the ``safetensors`` package when installed, else a built-in reader)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return load_file(str(path))
    data = Path(path).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = (8 + n + o for o in info["data_offsets"])
        buf = bytearray(data[begin:end])
        dtype = _ST_DTYPES[info["dtype"]]
        flat = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(info["shape"])
    return out


def huggingface_arch(cfg: Dict[str, Any], path: Path) -> Dict[str, Any]:
    """torchaudio ``wav2vec2_model`` arguments from a ``HubertConfig``/``Wav2Vec2Config`` config.json."""
    g = cfg.get
    problems = [f"model_type={g('model_type')}"] if g("model_type") not in ("hubert", "wav2vec2") else []
    problems += [f"{k}={g(k)}" for k, bad in (("feat_proj_layer_norm", False), ("conv_pos_batch_norm", True),
                                              ("add_adapter", True), ("use_weighted_layer_sum", True)) if g(k) is bad]
    problems += [f"{k}={g(k)}" for k in ("hidden_act", "feat_extract_activation") if g(k, "gelu") != "gelu"]
    if problems:
        raise InputError(f"unsupported SSL architecture ({', '.join(problems)})", path,
                         fix="use a HubertModel or Wav2Vec2Model directory")
    return dict(
        extractor_mode=f"{g('feat_extract_norm', 'group')}_norm",
        extractor_conv_layer_config=[tuple(x) for x in zip(g("conv_dim", (512,) * 7),
                                                           g("conv_kernel", (10, 3, 3, 3, 3, 2, 2)),
                                                           g("conv_stride", (5, 2, 2, 2, 2, 2, 2)))],
        extractor_conv_bias=bool(g("conv_bias", False)),
        **_encoder_fields(cfg, hf=True),
    )


def huggingface_to_torchaudio_key(key: str) -> Optional[str]:
    """torchaudio's name of a ``HubertModel``/``Wav2Vec2Model`` parameter; None for an unused head."""
    key = re.sub(r"^(hubert|wav2vec2)\.", "", key)
    if HF_DROP.fullmatch(key):
        return None
    key = key.replace("pos_conv_embed.conv.weight_g", f"pos_conv_embed.conv.{POS_G}")
    key = key.replace("pos_conv_embed.conv.weight_v", f"pos_conv_embed.conv.{POS_V}")
    if key.startswith("feature_projection."):
        return f"encoder.{key}"
    if key.startswith("encoder."):
        return f"encoder.transformer.{key[len('encoder.'):]}"
    if key.startswith("feature_extractor.conv_layers."):
        return key
    raise KeyError(key)


def _load_huggingface(path: Path) -> SSLCheckpoint:
    def read_json(name: str) -> Dict[str, Any]:
        try:
            return json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable {name} ({exc})", path / name, fix=_FIX) from None

    if not (path / "config.json").is_file():
        raise InputError("no config.json in this Hugging Face model directory", path, fix=_FIX)
    arch = huggingface_arch(read_json("config.json"), path / "config.json")
    weights, state = read_hf_weights(path, _FIX)
    converted = _rename(state, huggingface_to_torchaudio_key, weights)
    pre = read_json("preprocessor_config.json") if (path / "preprocessor_config.json").is_file() else {}
    mask_emb = _take_mask_emb(state, ("masked_spec_embed", "hubert.masked_spec_embed", "wav2vec2.masked_spec_embed"))
    return SSLCheckpoint(arch, converted, bool(pre.get("do_normalize", False)), "huggingface", mask_emb)
