"""A tiny randomly initialised HuBERT saved as a real checkpoint would be, for tests of ``--encoder hubert``.

:func:`tiny_hubert` builds a torchaudio ``Wav2Vec2Model`` (2 conv layers, 2 transformer layers, width 32);
:func:`save_fairseq` writes it in the layout of ``hubert_base_ls960.pt`` (``cfg`` with ``model``/``task`` sections
holding fairseq's ``HubertConfig``/``HubertPretrainingConfig`` fields, an interpolated ``label_rate``, a
``task_state`` with a pickled ``fairseq.data.dictionary.Dictionary``, and ``model`` with fairseq's key names and its
pre-training heads ``mask_emb``, ``label_embs_concat``, ``final_proj``); :func:`save_huggingface` writes a
``HubertModel`` directory as ``save_pretrained`` does (config.json with ``HubertConfig`` fields, model.safetensors
with ``weight_g``/``weight_v`` for the positional convolution as on the Hub, or pytorch_model.bin).
:func:`make_tiny_wav_data` writes the words of :mod:`salign.testing.tiny_data` as 16 kHz wav files (``sound`` data).
"""
from __future__ import annotations

import contextlib
import json
import re
import sys
import types
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple, Union

import torch

from salign.st.ssl_checkpoint import POS_G, POS_V

PathLike = Union[str, Path]
TINY_CONV: List[Tuple[int, int, int]] = [(16, 10, 5), (16, 16, 16)]  # 80 samples per frame (200 frames/s)


def tiny_arch(large: bool = False, conv: List[Tuple[int, int, int]] = TINY_CONV) -> Dict[str, Any]:
    """torchaudio ``wav2vec2_model`` arguments of a tiny model; ``large``: the Large variant's norm placement."""
    return dict(extractor_mode="layer_norm" if large else "group_norm", extractor_conv_layer_config=list(conv),
                extractor_conv_bias=large, encoder_embed_dim=32, encoder_projection_dropout=0.0,
                encoder_pos_conv_kernel=8, encoder_pos_conv_groups=4, encoder_num_layers=2, encoder_num_heads=4,
                encoder_attention_dropout=0.0, encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0,
                encoder_dropout=0.0, encoder_layer_norm_first=large, encoder_layer_drop=0.0)


def tiny_hubert(seed: int = 0, large: bool = False, conv: List[Tuple[int, int, int]] = TINY_CONV) -> torch.nn.Module:
    """A randomly initialised tiny torchaudio HuBERT (eval mode), non-trivial norms and biases included."""
    from torchaudio.models import wav2vec2_model

    torch.manual_seed(seed)
    model = wav2vec2_model(**tiny_arch(large, conv), aux_num_out=None)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))  # so that a swapped norm or bias shows in the outputs
    return model.eval()


def torchaudio_to_fairseq_key(key: str, group_norm: bool) -> str:
    """fairseq's name of a torchaudio parameter (the inverse of torchaudio's import_fairseq table)."""
    m = re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.(conv|layer_norm)\.(weight|bias)", key)
    if m:
        i, part, w = m.groups()
        sub = "0" if part == "conv" else ("2" if group_norm else "2.1")
        return f"feature_extractor.conv_layers.{i}.{sub}.{w}"
    for old, new in (("encoder.feature_projection.layer_norm.", "layer_norm."),
                     ("encoder.feature_projection.projection.", "post_extract_proj."),
                     (f"encoder.transformer.pos_conv_embed.conv.{POS_G}", "encoder.pos_conv.0.weight_g"),
                     (f"encoder.transformer.pos_conv_embed.conv.{POS_V}", "encoder.pos_conv.0.weight_v"),
                     ("encoder.transformer.pos_conv_embed.conv.", "encoder.pos_conv.0."),
                     ("encoder.transformer.", "encoder.")):
        if key.startswith(old):
            key = new + key[len(old):]
            break
    for old, new in ((".attention.", ".self_attn."), (".layer_norm.", ".self_attn_layer_norm."),
                     (".feed_forward.intermediate_dense.", ".fc1."), (".feed_forward.output_dense.", ".fc2.")):
        if key.startswith("encoder.layers."):
            key = key.replace(old, new)
    return key


@contextlib.contextmanager
def _fake_fairseq() -> Iterator[type]:
    """A class named ``fairseq.data.dictionary.Dictionary`` that pickle can save (fairseq is not installed)."""
    names = ["fairseq", "fairseq.data", "fairseq.data.dictionary"]
    saved = {n: sys.modules.get(n) for n in names}
    mod = types.ModuleType("fairseq.data.dictionary")
    cls = type("Dictionary", (), {"__module__": "fairseq.data.dictionary"})
    mod.Dictionary = cls
    sys.modules.update({"fairseq": types.ModuleType("fairseq"), "fairseq.data": types.ModuleType("fairseq.data"),
                        "fairseq.data.dictionary": mod})
    try:
        yield cls
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def save_fairseq(model: torch.nn.Module, path: PathLike, normalize: bool = False, n_classes: int = 5,
                 **model_cfg_values: Any) -> Path:
    """Write ``model`` as a fairseq HuBERT pre-training checkpoint (the layout of ``hubert_base_ls960.pt``);
    ``model_cfg_values`` replace fields of its ``cfg.model`` (e.g. ``encoder_layerdrop=0.05``)."""
    from omegaconf import OmegaConf

    arch = _arch_of(model)
    group = arch["extractor_mode"] == "group_norm"
    dim, final_dim = arch["encoder_embed_dim"], 16
    state = {torchaudio_to_fairseq_key(k, group): v.clone() for k, v in model.state_dict().items()}
    state["mask_emb"] = torch.rand(dim)
    state["label_embs_concat"] = torch.rand(n_classes, final_dim)
    state["final_proj.weight"], state["final_proj.bias"] = torch.randn(final_dim, dim), torch.zeros(final_dim)
    conv = " + ".join(f"[({c},{k},{s})]" for c, k, s in arch["extractor_conv_layer_config"])
    model_cfg = {
        "_name": "hubert", "label_rate": "${task.label_rate}",
        "extractor_mode": "default" if group else "layer_norm", "encoder_layers": arch["encoder_num_layers"],
        "encoder_embed_dim": dim, "encoder_ffn_embed_dim": arch["encoder_ff_interm_features"],
        "encoder_attention_heads": arch["encoder_num_heads"], "activation_fn": "gelu", "layer_type": "transformer",
        "dropout": arch["encoder_dropout"], "attention_dropout": arch["encoder_attention_dropout"],
        "activation_dropout": arch["encoder_ff_interm_dropout"], "encoder_layerdrop": arch["encoder_layer_drop"],
        "dropout_input": arch["encoder_projection_dropout"], "dropout_features": 0.1, "final_dim": final_dim,
        "untie_final_proj": False, "layer_norm_first": arch["encoder_layer_norm_first"],
        "conv_feature_layers": conv, "conv_bias": arch["extractor_conv_bias"], "logit_temp": 0.1,
        "target_glu": False, "feature_grad_mult": 0.1, "mask_length": 10, "mask_prob": 0.8,
        "mask_selection": "static", "mask_other": 0.0, "no_mask_overlap": False, "mask_min_space": 1,
        "mask_channel_length": 10, "mask_channel_prob": 0.0, "mask_channel_selection": "static",
        "mask_channel_other": 0.0, "no_mask_channel_overlap": False, "mask_channel_min_space": 1,
        "conv_pos": arch["encoder_pos_conv_kernel"], "conv_pos_groups": arch["encoder_pos_conv_groups"],
        "latent_temp": [2.0, 0.5, 0.999995], "skip_masked": False, "skip_nomask": False,
        "checkpoint_activations": False, "required_seq_len_multiple": 2, "depthwise_conv_kernel_size": 31,
        "attn_type": "", "pos_enc_type": "abs", "fp16": False,
    }
    unknown = set(model_cfg_values) - set(model_cfg)
    if unknown:
        raise ValueError(f"not fields of HubertConfig here: {sorted(unknown)}")
    model_cfg.update(model_cfg_values)
    task_cfg = {"_name": "hubert_pretraining", "data": "/checkpoint/librispeech", "fine_tuning": False,
                "labels": ["km"], "label_dir": "/checkpoint/labels", "label_rate": 50.0, "sample_rate": 16000,
                "normalize": normalize, "enable_padding": False, "max_keep_size": None, "max_sample_size": 250000,
                "min_sample_size": 32000, "single_target": False, "random_crop": True, "pad_audio": False}
    cfg = OmegaConf.create({"_name": None, "common": {"fp16": True, "seed": 1337}, "model": model_cfg,
                            "task": task_cfg, "criterion": {"_name": "hubert", "pred_masked_weight": 1.0}})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _fake_fairseq() as dictionary:
        d = dictionary()
        d.symbols, d.count, d.indices = [str(i) for i in range(n_classes)], [1] * n_classes, {}
        torch.save({"args": None, "cfg": cfg, "model": state, "criterion": None,
                    "optimizer_history": [{"criterion_name": "HubertCriterion", "num_updates": 400000}],
                    "task_state": {"dictionaries": [d]}, "extra_state": {"epoch": 1}, "last_optimizer_state": None},
                   path)
    return path


def save_huggingface(model: torch.nn.Module, path: PathLike, safetensors: bool = True,
                     normalize: bool = False) -> Path:
    """Write ``model`` as a Hugging Face ``HubertModel`` directory (config.json + weights)."""
    arch = _arch_of(model)
    conv = arch["extractor_conv_layer_config"]
    config = {
        "architectures": ["HubertModel"], "model_type": "hubert",
        "activation_dropout": arch["encoder_ff_interm_dropout"],
        "apply_spec_augment": True, "attention_dropout": arch["encoder_attention_dropout"], "bos_token_id": 1,
        "classifier_proj_size": 256, "conv_bias": arch["extractor_conv_bias"], "conv_dim": [c for c, _, _ in conv],
        "conv_kernel": [k for _, k, _ in conv], "conv_pos_batch_norm": False, "conv_stride": [s for _, _, s in conv],
        "ctc_loss_reduction": "sum", "ctc_zero_infinity": False,
        "do_stable_layer_norm": arch["encoder_layer_norm_first"], "eos_token_id": 2, "feat_extract_activation": "gelu",
        "feat_extract_dropout": 0.0, "feat_extract_norm": arch["extractor_mode"].split("_")[0],
        "feat_proj_dropout": arch["encoder_projection_dropout"], "feat_proj_layer_norm": True, "final_dropout": 0.1,
        "hidden_act": "gelu", "hidden_dropout": arch["encoder_dropout"], "hidden_size": arch["encoder_embed_dim"],
        "initializer_range": 0.02, "intermediate_size": arch["encoder_ff_interm_features"], "layer_norm_eps": 1e-5,
        "layerdrop": arch["encoder_layer_drop"], "mask_feature_length": 10, "mask_feature_min_masks": 0,
        "mask_feature_prob": 0.0, "mask_time_length": 10, "mask_time_min_masks": 2, "mask_time_prob": 0.05,
        "num_attention_heads": arch["encoder_num_heads"],
        "num_conv_pos_embedding_groups": arch["encoder_pos_conv_groups"],
        "num_conv_pos_embeddings": arch["encoder_pos_conv_kernel"], "num_feat_extract_layers": len(conv),
        "num_hidden_layers": arch["encoder_num_layers"], "pad_token_id": 0, "tokenizer_class": "Wav2Vec2CTCTokenizer",
        "torch_dtype": "float32", "transformers_version": "4.46.0", "use_weighted_layer_sum": False, "vocab_size": 32,
    }
    state = {}
    for key, value in model.state_dict().items():
        key = key.replace(f"pos_conv_embed.conv.{POS_G}", "pos_conv_embed.conv.weight_g")
        key = key.replace(f"pos_conv_embed.conv.{POS_V}", "pos_conv_embed.conv.weight_v")
        key = key.replace("encoder.feature_projection.", "feature_projection.")
        key = key.replace("encoder.transformer.", "encoder.")
        state[key] = value.clone().contiguous()
    state["masked_spec_embed"] = torch.rand(arch["encoder_embed_dim"])
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (path / "preprocessor_config.json").write_text(json.dumps(
        {"do_normalize": normalize, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
         "padding_side": "right", "padding_value": 0, "return_attention_mask": False, "sampling_rate": 16000}) + "\n")
    if safetensors:
        write_safetensors(state, path / "model.safetensors")
    else:
        torch.save(state, path / "pytorch_model.bin")
    return path


def write_safetensors(tensors: Dict[str, torch.Tensor], path: PathLike) -> None:
    """A ``.safetensors`` file (float32 tensors), as the ``safetensors`` package writes it."""
    header: Dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    Path(path).write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))


def make_tiny_wav_data(root: PathLike, n_utts: int = 12, seed: int = 0, rate: int = 16000) -> Dict[str, Path]:
    """``root/{wav/*.wav,wav.scp,speech_shape,text,src_text,*_shape,tokens.txt}``: each word a tone of its own pitch.

    ``speech_shape`` counts samples; the token list is :func:`salign.testing.tiny_data.make_tiny_data`'s.
    """
    import random

    import numpy as np
    import soundfile

    from salign.testing.tiny_data import SRC_WORDS, TGT_WORDS

    root = Path(root)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    rng, prng = np.random.RandomState(seed), random.Random(seed)
    rows: Dict[str, Dict[str, str]] = {"wav.scp": {}, "speech_shape": {}, "text": {}, "src_text": {}}
    for i in range(n_utts):
        idx = [prng.randrange(len(SRC_WORDS)) for _ in range(prng.randint(2, 3))]
        parts = []
        for j in idx:
            t = np.arange(prng.randint(1200, 1800)) / rate
            parts.append(0.3 * np.sin(2 * np.pi * (200 + 150 * j) * t + rng.rand() * 6.3) + 0.01 * rng.randn(t.size))
        wave = np.concatenate(parts).astype(np.float32)
        uid = f"utt{i:03d}"
        soundfile.write(root / "wav" / f"{uid}.wav", wave, rate, subtype="PCM_16")
        rows["wav.scp"][uid] = str(root / "wav" / f"{uid}.wav")
        rows["speech_shape"][uid] = str(wave.size)
        rows["src_text"][uid] = " ".join(SRC_WORDS[j] for j in idx)
        rows["text"][uid] = " ".join(TGT_WORDS[j] for j in idx)
    for name in ("text", "src_text"):
        rows[f"{name}_shape"] = {u: str(len(t.split())) for u, t in rows[name].items()}
    for name, table in rows.items():
        (root / name).write_text("".join(f"{u} {table[u]}\n" for u in sorted(table)))
    tokens = ["<blank>", "<unk>"] + SRC_WORDS + TGT_WORDS + ["<sos/eos>"]
    (root / "tokens.txt").write_text("\n".join(tokens) + "\n")
    return {"root": root, "wav_scp": root / "wav.scp", "tokens": root / "tokens.txt"}


def _arch_of(model: torch.nn.Module) -> Dict[str, Any]:
    """The tiny architecture of a model made by :func:`tiny_hubert` (read back from its modules)."""
    blocks = model.feature_extractor.conv_layers
    large = not isinstance(blocks[0].layer_norm, torch.nn.GroupNorm)
    return tiny_arch(large, [(b.conv.out_channels, b.kernel_size, b.stride) for b in blocks])
