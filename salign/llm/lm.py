"""Decoder-only LMs of the speech-LLM family: the interface (:class:`AbsCausalLM`) and our own small LM.

Every LM takes input *embeddings* (so speech frames from the projector and token embeddings mix in one sequence),
a 2-D attention mask (1 = real position; left or right padding) and explicit position ids, and returns the logits,
optionally every layer's hidden states (for alignment losses on LM layers) and a key/value cache for incremental
decoding. ``--lm tiny`` (:class:`TinyCausalLM`) is a small pre-LN causal Transformer over the recipe's token list
(SentencePiece / word tokens), for CPU recipes; ``--lm hf`` (:mod:`salign.llm.hf_lm`) wraps a Hugging Face causal LM.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from salign.llm.prompt import prompt_words


@dataclass
class LMOutput:
    """What an LM step returns: logits (B, L, V), per-layer hidden states (embeddings + each layer, or None) and the
    key/value cache (an LM-specific object to pass back as ``past_key_values``, or None)."""

    logits: torch.Tensor
    hidden_states: Optional[Tuple[torch.Tensor, ...]] = None
    past_key_values: Any = None


class AbsCausalLM(torch.nn.Module, ABC):
    """A decoder-only LM with its own tokenisation of prompts and target text."""

    @property
    @abstractmethod
    def hidden_size(self) -> int:
        """Width of the input embeddings (the projector's output size)."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of output classes (logit columns)."""

    @property
    @abstractmethod
    def num_layers(self) -> int:
        """Number of Transformer layers (``hidden_states`` has ``num_layers + 1`` entries)."""

    @property
    @abstractmethod
    def eos_id(self) -> int:
        """Id that ends a target sequence."""

    @property
    def bos_ids(self) -> List[int]:
        """Ids put before the whole prompt (e.g. Llama's ``<s>``); none by default."""
        return []

    @abstractmethod
    def tokenize_prompt(self, text: str) -> List[int]:
        """Ids of a prompt fragment (never with special begin/end tokens)."""

    @abstractmethod
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, L) -> input embeddings (B, L, D); negative (padding) ids map to any row (callers mask)."""

    @abstractmethod
    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                past_key_values: Any = None, use_cache: bool = False,
                output_hidden_states: bool = False, logits_to_keep: int = 0) -> LMOutput:
        """Run the LM on ``inputs_embeds`` (B, L, D) after ``past_key_values``.

        ``attention_mask`` (B, L_past + L) marks real positions of the cached and new steps; ``position_ids`` (B, L).
        ``logits_to_keep`` > 0: logits of only the last that many positions (Hugging Face's convention; 0: all).
        """


class SinusoidalTable(torch.nn.Module):
    """Sinusoidal position embeddings looked up by (any) position id."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) integer positions -> (B, L, D)."""
        pos = position_ids.float().unsqueeze(-1)
        div = torch.exp(torch.arange(0, self.dim, 2, device=pos.device, dtype=torch.float32)
                        * (-math.log(10000.0) / self.dim))
        pe = torch.zeros(*position_ids.shape, self.dim, device=pos.device)
        pe[..., 0::2] = torch.sin(pos * div)
        pe[..., 1::2] = torch.cos(pos * div)
        return pe


class TinyBlock(torch.nn.Module):
    """Pre-LN causal self-attention + feed-forward block with a key/value cache."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"lm_conf.hidden_size {dim} must be divisible by attention_heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = torch.nn.LayerNorm(dim), torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.out = torch.nn.Linear(dim, dim)
        self.ffn = torch.nn.Sequential(torch.nn.Linear(dim, ffn), torch.nn.GELU(), torch.nn.Dropout(dropout),
                                       torch.nn.Linear(ffn, dim))
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                cache: Optional[Tuple[torch.Tensor, torch.Tensor]]
                ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """x (B, L, D); mask (B, 1, L, L_past + L) boolean, True = may attend; returns output and new cache."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        att = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout.p if self.training else 0.0)
        x = x + self.dropout(self.out(att.transpose(1, 2).reshape(b, n, d)))
        x = x + self.dropout(self.ffn(self.norm2(x)))
        return x, (k, v)


class TinyCausalLM(AbsCausalLM):
    """Our own small causal Transformer LM over the recipe's token list (``--lm tiny``).

    The vocabulary is ``token_list`` followed by ``extra_tokens`` reserved rows for prompt words that are not in the
    token list (e.g. ``<st>``, ``<en>``): :meth:`tokenize_prompt` splits a prompt on whitespace and gives each new word
    the next free row, in the order the model renders its prompts (fixed by the config, so checkpoints agree).
    The cache is a list of per-layer (key, value) tensors (B, H, L_past, D/H).
    """

    def __init__(self, token_list: Sequence[str], hidden_size: int = 256, num_blocks: int = 4,
                 attention_heads: int = 4, linear_units: int = 1024, dropout_rate: float = 0.1,
                 extra_tokens: int = 16, eos: str = "<sos/eos>", tie_embeddings: bool = True) -> None:
        """Build the LM (``lm_conf`` are the arguments after ``token_list``)."""
        super().__init__()
        self.token_list = list(token_list)
        self.index: Dict[str, int] = {t: i for i, t in enumerate(self.token_list)}
        if eos not in self.index:
            raise ValueError(f"lm_conf.eos {eos!r} is not in the token list")
        self._eos = self.index[eos]
        self._extra_limit = extra_tokens
        self.extra: Dict[str, int] = {}
        self.dim, self.blocks_n = hidden_size, num_blocks
        self.embedding = torch.nn.Embedding(len(self.token_list) + extra_tokens, hidden_size)
        torch.nn.init.normal_(self.embedding.weight, std=hidden_size ** -0.5)
        self.positions = SinusoidalTable(hidden_size)
        self.dropout = torch.nn.Dropout(dropout_rate)
        self.blocks = torch.nn.ModuleList(TinyBlock(hidden_size, attention_heads, linear_units, dropout_rate)
                                          for _ in range(num_blocks))
        self.norm = torch.nn.LayerNorm(hidden_size)
        self.head = torch.nn.Linear(hidden_size, len(self.token_list) + extra_tokens, bias=False)
        if tie_embeddings:
            self.head.weight = self.embedding.weight

    @property
    def hidden_size(self) -> int:
        """Embedding width."""
        return self.dim

    @property
    def vocab_size(self) -> int:
        """Token list plus the reserved prompt rows."""
        return len(self.token_list) + self._extra_limit

    @property
    def num_layers(self) -> int:
        """Number of blocks."""
        return self.blocks_n

    @property
    def eos_id(self) -> int:
        """Index of ``<sos/eos>`` in the token list."""
        return self._eos

    def tokenize_prompt(self, text: str) -> List[int]:
        """Whitespace-split prompt words -> token-list ids, or reserved extra rows for words not in the list."""
        ids = []
        for word in prompt_words(text):
            if word in self.index:
                ids.append(self.index[word])
                continue
            if word not in self.extra:
                if len(self.extra) >= self._extra_limit:
                    raise ValueError(f"the prompts need more than lm_conf.extra_tokens={self._extra_limit} words "
                                     f"outside the token list; raise it")
                self.extra[word] = len(self.token_list) + len(self.extra)
            ids.append(self.extra[word])
        return ids

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Scaled token embeddings ``sqrt(d)·E[ids]`` (padding ids < 0 map to row 0)."""
        return self.embedding(ids.clamp(min=0)) * math.sqrt(self.dim)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                past_key_values: Optional[List[Tuple[torch.Tensor, torch.Tensor]]] = None, use_cache: bool = False,
                output_hidden_states: bool = False, logits_to_keep: int = 0) -> LMOutput:
        """See :meth:`AbsCausalLM.forward`; the cache is a list of per-layer (key, value)."""
        b, n, _ = inputs_embeds.shape
        past = past_key_values[0][0].size(2) if past_key_values else 0
        keys = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, past + n)
        causal = torch.ones(n, past + n, dtype=torch.bool, device=inputs_embeds.device).tril(past)
        mask = keys & causal[None, None]
        # a query row with nothing to attend (a left-padding position) attends to itself: no NaN, masked later
        eye = torch.zeros_like(causal)
        eye[torch.arange(n), past + torch.arange(n)] = True
        mask = mask | (~mask.any(-1, keepdim=True) & eye[None, None])
        hidden = [inputs_embeds]  # as Hugging Face: entry 0 is the input embeddings
        x = self.dropout(inputs_embeds + self.positions(position_ids).to(inputs_embeds.dtype))
        cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, mask, past_key_values[i] if past_key_values else None)
            cache.append(kv)
            hidden.append(x)
        x = self.norm(x)
        if output_hidden_states:
            hidden[-1] = x  # as Hugging Face: the last entry is after the final norm
        logits = self.head(x[:, -logits_to_keep:])  # -0: every position
        return LMOutput(logits=logits, hidden_states=tuple(hidden) if output_hidden_states else None,
                        past_key_values=cache if use_cache else None)
