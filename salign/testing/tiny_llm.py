"""Tiny randomly initialised Hugging Face causal LMs (Qwen2, Llama) with an offline tokenizer.

For tests and CPU smoke runs of ``--lm hf``: nothing is downloaded. The tokenizer is a ``tokenizers`` WordLevel model
over the given texts' words (plus the default prompts' words), or (``tokenizer="bytelevel"``) a byte-level BPE as
GPT-2's and Qwen's, whose 256 byte tokens cover any text (a few merges learnt from the texts), saved as a
``PreTrainedTokenizerFast``; the model is
built from a ``Qwen2Config``/``LlamaConfig`` and written with ``save_pretrained``. A Llama tokenizer adds ``<s>``
before every encoded text (as Llama's does), a Qwen2 one adds nothing (as Qwen's does).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional

from salign.llm.prompt import HF_PROMPTS, LANGUAGE_NAMES

SPECIALS = ["<unk>", "<pad>", "<s>", "</s>"]


def prompt_texts() -> List[str]:
    """The default HF prompts' words, so that the tiny tokenizer knows them."""
    names = " ".join(LANGUAGE_NAMES.values())
    return [t.replace("{input}", " ").replace("{src}", " ").replace("{tgt}", " ") for t in HF_PROMPTS.values()] + [
        names]


def build_tokenizer(texts: Iterable[str], bos: bool, kind: str = "word", vocab_size: int = 512):
    """A ``PreTrainedTokenizerFast`` built offline: ``kind`` ``word`` (the words of ``texts`` and the prompts; others
    are ``<unk>``) or ``bytelevel`` (byte-level BPE of ``vocab_size`` tokens learnt from them; covers any text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
        trainer = trainers.WordLevelTrainer(special_tokens=SPECIALS, min_frequency=1)
    elif kind == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        raise ValueError(f"tokenizer {kind!r}: use word or bytelevel")
    tok.train_from_iterator(list(texts) + prompt_texts(), trainer=trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="</s>",
                                   bos_token="<s>" if bos else None)


def make_tiny_hf_lm(out: Path, family: str = "qwen2", texts: Optional[Iterable[str]] = None, hidden_size: int = 32,
                    num_layers: int = 2, seed: int = 0, tokenizer: str = "word", vocab_size: int = 512) -> Path:
    """Write a tiny random ``family`` (qwen2 | llama) causal LM and its tokenizer (``tokenizer``: word | bytelevel,
    see :func:`build_tokenizer`) to ``out``; returns ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    if texts is None:
        from salign.testing.tiny_data import SRC_WORDS, TGT_WORDS

        texts = [" ".join(SRC_WORDS), " ".join(TGT_WORDS)]
    tok = build_tokenizer(texts, bos=family == "llama", kind=tokenizer, vocab_size=vocab_size)
    common = dict(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                  num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=1024, tie_word_embeddings=True,
                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                  bos_token_id=tok.convert_tokens_to_ids("<s>"))
    if family == "qwen2":
        config = Qwen2Config(**common)
    elif family == "llama":
        config = LlamaConfig(**common)
    else:
        raise ValueError(f"family {family!r}: use qwen2 or llama")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
