"""``--lm hf``: a Hugging Face causal LM (Qwen2/2.5, Llama, GPT-2, ...) loaded from a LOCAL directory.

``lm_conf``::

    path: downloads/Qwen2.5-0.5B   # required: a save_pretrained directory with config.json, weights and tokenizer
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
from typing import Any, Dict, List, Optional, Sequence

import torch

from salign.llm.lm import AbsCausalLM, LMOutput
from salign.utils.io import InputError

FINETUNE = ("frozen", "full", "lora")
FINGERPRINT = "base_fingerprint"  # buffer name: 16 bytes of a hash of the base model directory (as float64 0..255)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SAMPLE_BLOCKS, BLOCK_BYTES = 64, 4096  # per weight file: content read, whatever its size (256 KiB at most)


def _weight_files(model_dir: Path) -> List[Path]:
    return [f for f in sorted(model_dir.iterdir()) if f.suffix in WEIGHT_SUFFIXES and f.is_file()]


def base_fingerprint(model_dir: Path) -> torch.Tensor:
    """16 bytes identifying a model directory's base weights: ``config.json``, and each weight file's name, size
    and the content of :data:`SAMPLE_BLOCKS` blocks spread evenly over it (first and last included): a re-seeded or
    otherwise retrained LM with the same config and file sizes differs in them.

    Float64 values 0..255: ESPnet's checkpoint averaging divides float tensors by n (exact here) and would sum
    integer ones."""
    h = hashlib.sha256((model_dir / "config.json").read_bytes())
    for f in _weight_files(model_dir):
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            last = max(size - BLOCK_BYTES, 0)
            for i in range(SAMPLE_BLOCKS):
                fh.seek(last * i // (SAMPLE_BLOCKS - 1))
                h.update(fh.read(BLOCK_BYTES))
    return torch.tensor(list(h.digest()[:16]), dtype=torch.float64)


def legacy_fingerprint(model_dir: Path) -> torch.Tensor:
    """The fingerprint of checkpoints written before the weights' content counted: ``config.json`` and each weight
    file's name and size only (accepted, with a warning: such a checkpoint cannot tell a re-seeded LM apart)."""
    h = hashlib.sha256((model_dir / "config.json").read_bytes())
    for f in _weight_files(model_dir):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return torch.tensor(list(h.digest()[:16]), dtype=torch.float64)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_model_dir(path: Optional[str]) -> Path:
    """The local model directory, or an :class:`InputError` naming the path."""
    if not path:
        raise InputError("lm_conf.path is required for --lm hf", fix="point it at a local save_pretrained directory")
    p = Path(path)
    if not (p / "config.json").is_file():
        raise InputError("no local Hugging Face model directory (config.json missing)", p,
                         fix="download the model beforehand (e.g. huggingface-cli download ... --local-dir DIR) "
                             "and set lm_conf.path to DIR; nothing is downloaded at run time")
    return p


def load_tokenizer(path: str):
    """The LM's tokenizer from its local directory (no download).

    A plain ``tokenizers`` tokenizer (``tokenizer_class`` ``TokenizersBackend``/``PreTrainedTokenizerFast``, e.g.
    one built offline from the recipe's data) loads as exactly that: ``AutoTokenizer`` would pick the model family's
    own tokenizer class (e.g. ``Qwen2Tokenizer``) and re-interpret the vocabulary.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    model_dir = check_model_dir(path)
    conf_file = model_dir / "tokenizer_config.json"
    conf = json.loads(conf_file.read_text(encoding="utf-8")) if conf_file.is_file() else {}
    if conf.get("tokenizer_class") in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        return PreTrainedTokenizerFast.from_pretrained(str(model_dir), local_files_only=True)
    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


class HFCausalLM(AbsCausalLM):
    """A ``transformers`` ``AutoModelForCausalLM``, frozen, fully trained or LoRA-adapted (``peft``)."""

    def __init__(self, path: Optional[str] = None, finetune: str = "lora", lora_conf: Optional[Dict[str, Any]] = None,
                 dtype: Optional[str] = None, gradient_checkpointing: bool = False,
                 add_bos: Optional[bool] = None, attn_implementation: Optional[str] = None,
                 save_frozen: bool = False) -> None:
        """Load the model and tokenizer from ``path``; see the module doc for the options."""
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForCausalLM

        if finetune not in FINETUNE:
            raise ValueError(f"lm_conf.finetune {finetune!r}: use one of {FINETUNE}")
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"lm_conf.dtype {dtype!r}: use null or one of {sorted(DTYPES)}")
        model_dir = check_model_dir(path)
        self.path, self.finetune = str(model_dir), finetune
        self.tokenizer = load_tokenizer(self.path)
        kwargs: Dict[str, Any] = {"local_files_only": True}
        if dtype is not None:
            kwargs["dtype"] = DTYPES[dtype]
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        model = AutoModelForCausalLM.from_pretrained(self.path, **kwargs)
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
            self.register_buffer(FINGERPRINT, base_fingerprint(model_dir))
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
            if torch.equal(saved, legacy_fingerprint(Path(self.path))):
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
