"""One-step decoders for batched beam search: B utterances x K hypotheses decoded as one batch of N = B*K rows.

Two implementations of the same contract (``start`` / ``step`` / ``reorder`` / ``keep_utts``):

* :class:`GenericStep` calls the decoder's own ``forward_one_step`` with the encoder output and mask repeated per
  hypothesis and ESPnet's layer-output cache. Works for any ESPnet decoder with that method.
* :class:`CachedStep` is a fast path for ESPnet's ``TransformerDecoder`` (``DecoderLayer`` + ``MultiHeadedAttention``):
  it projects the encoder output to source-attention keys/values once per utterance (ESPnet redoes this for every
  hypothesis at every step), keeps self-attention keys/values per layer instead of recomputing them over the whole
  prefix, and embeds only the newest token. Same maths, different float summation order (scores agree to ~1e-6).
"""
from __future__ import annotations

import math
from functools import partial
from typing import List, Optional

import torch
from espnet.nets.pytorch_backend.transformer.attention import MultiHeadedAttention
from espnet.nets.pytorch_backend.transformer.decoder_layer import DecoderLayer
from espnet.nets.pytorch_backend.transformer.mask import subsequent_mask

from salign.utils.tensor import length_mask


class GenericStep:
    """``decoder.forward_one_step`` over N = B*K rows with the encoder output repeated per hypothesis."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        self.decoder = decoder
        self.mem: Optional[torch.Tensor] = None
        self.mask: Optional[torch.Tensor] = None
        self.cache: Optional[List[torch.Tensor]] = None

    def start(self, memory: torch.Tensor, lengths: torch.Tensor, k: int) -> None:
        """memory: (B, T, D) encoder output, lengths: (B,); every utterance gets ``k`` hypothesis rows."""
        mask = length_mask(lengths, memory.size(1)).unsqueeze(1)
        self.mem = memory.repeat_interleave(k, dim=0)
        self.mask = mask.repeat_interleave(k, dim=0)
        self.cache = None

    def step(self, yseq: torch.Tensor) -> torch.Tensor:
        """yseq: (N, L) prefixes -> (N, V) log-probabilities of the next token."""
        ys_mask = subsequent_mask(yseq.size(-1), device=yseq.device).unsqueeze(0)
        logp, self.cache = self.decoder.forward_one_step(yseq, ys_mask, self.mem, self.mask, cache=self.cache)
        return logp

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep decoder states of ``rows`` (new row r continues old row rows[r]; same utterance)."""
        self.cache = [c.index_select(0, rows) for c in self.cache]

    def keep_utts(self, rows: torch.Tensor, max_len: int) -> None:
        """Drop finished utterances: keep hypothesis ``rows``; the kept encoder outputs fit in ``max_len`` frames."""
        self.mem = self.mem.index_select(0, rows)[:, :max_len]
        self.mask = self.mask.index_select(0, rows)[:, :, :max_len]
        if self.cache is not None:
            self.cache = [c.index_select(0, rows) for c in self.cache]


class CachedStep:
    """Incremental Transformer decoder step with per-utterance source keys/values and self-attention K/V caches."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        if not self.supports(decoder):
            raise ValueError(f"{type(decoder).__name__} is not a plain Transformer decoder")
        self.decoder = decoder
        self.layers: List[DecoderLayer] = list(decoder.decoders)
        self.k = 1
        self.src_k: List[torch.Tensor] = []
        self.src_v: List[torch.Tensor] = []
        self.self_k: List[Optional[torch.Tensor]] = []
        self.self_v: List[Optional[torch.Tensor]] = []
        self.src_mask: Optional[torch.Tensor] = None

    @staticmethod
    def supports(decoder: torch.nn.Module) -> bool:
        """True for ESPnet's ``TransformerDecoder`` made of plain ``DecoderLayer``/``MultiHeadedAttention`` blocks."""
        layers = getattr(decoder, "decoders", None)
        if layers is None or not hasattr(decoder, "embed") or not hasattr(decoder, "forward_one_step"):
            return False
        for layer in layers:
            if type(layer) is not DecoderLayer or getattr(layer, "sequential_attn", None) is not None:
                return False
            for att in (layer.self_attn, layer.src_attn):
                if type(att) is not MultiHeadedAttention:
                    return False
        return True

    @staticmethod
    def _heads(x: torch.Tensor, att: MultiHeadedAttention) -> torch.Tensor:
        """(n, t, D) -> (n, H, t, d_k)."""
        return x.view(x.size(0), -1, att.h, att.d_k).transpose(1, 2)

    def start(self, memory: torch.Tensor, lengths: torch.Tensor, k: int) -> None:
        """memory: (B, T, D) encoder output, lengths: (B,); every utterance gets ``k`` hypothesis rows."""
        self.k = k
        mask = length_mask(lengths, memory.size(1))
        self.src_mask = (~mask)[:, None, None, :]  # (B, 1, 1, T): True where padded
        self.src_k = [self._heads(layer.src_attn.linear_k(memory), layer.src_attn) for layer in self.layers]
        self.src_v = [self._heads(layer.src_attn.linear_v(memory), layer.src_attn) for layer in self.layers]
        self.self_k = [None] * len(self.layers)
        self.self_v = [None] * len(self.layers)

    def _self_attn(self, i: int, layer: DecoderLayer, x: torch.Tensor) -> torch.Tensor:
        """Causal self-attention of the newest position x: (N, 1, D) over the cached prefix."""
        att = layer.self_attn
        q = self._heads(att.linear_q(x), att)
        k_new, v_new = self._heads(att.linear_k(x), att), self._heads(att.linear_v(x), att)
        k = k_new if self.self_k[i] is None else torch.cat((self.self_k[i], k_new), dim=2)
        v = v_new if self.self_v[i] is None else torch.cat((self.self_v[i], v_new), dim=2)
        self.self_k[i], self.self_v[i] = k, v
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(att.d_k)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)  # (N, H, 1, d_k)
        return att.linear_out(ctx.transpose(1, 2).reshape(x.size(0), 1, att.h * att.d_k))

    def _src_attn(self, i: int, layer: DecoderLayer, x: torch.Tensor) -> torch.Tensor:
        """Source attention of x: (N, 1, D) with the K hypotheses of one utterance sharing its keys/values."""
        att = layer.src_attn
        n, b = x.size(0), x.size(0) // self.k
        q = att.linear_q(x).view(b, self.k, att.h, att.d_k).transpose(1, 2)  # (B, H, K, d_k)
        scores = torch.matmul(q, self.src_k[i].transpose(-2, -1)) / math.sqrt(att.d_k)  # (B, H, K, T)
        scores = scores.masked_fill(self.src_mask, torch.finfo(scores.dtype).min)
        p = torch.softmax(scores, dim=-1).masked_fill(self.src_mask, 0.0)
        ctx = torch.matmul(p, self.src_v[i])  # (B, H, K, d_k)
        return att.linear_out(ctx.transpose(1, 2).reshape(n, 1, att.h * att.d_k))

    def step(self, yseq: torch.Tensor) -> torch.Tensor:
        """yseq: (N, L) prefixes -> (N, V) log-probabilities of the next token."""
        dec = self.decoder
        x = dec.embed(yseq)[:, -1:]  # positional encodings need the full prefix length; only the last row is used
        for i, layer in enumerate(self.layers):
            x = _sublayer(layer, x, layer.norm1, partial(self._self_attn, i, layer), "concat_linear1")
            x = _sublayer(layer, x, layer.norm2, partial(self._src_attn, i, layer), "concat_linear2")
            x = _sublayer(layer, x, layer.norm3, layer.feed_forward)
        y = x[:, -1]
        if dec.normalize_before:
            y = dec.after_norm(y)
        if dec.output_layer is not None:
            y = torch.log_softmax(dec.output_layer(y), dim=-1)
        return y

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep decoder states of ``rows`` (new row r continues old row rows[r]; same utterance)."""
        self.self_k = [c.index_select(0, rows) for c in self.self_k]
        self.self_v = [c.index_select(0, rows) for c in self.self_v]

    def keep_utts(self, rows: torch.Tensor, max_len: int) -> None:
        """Drop finished utterances: keep hypothesis ``rows``; the kept encoder outputs fit in ``max_len`` frames."""
        utts = rows[:: self.k] // self.k
        self.src_k = [c.index_select(0, utts)[:, :, :max_len] for c in self.src_k]
        self.src_v = [c.index_select(0, utts)[:, :, :max_len] for c in self.src_v]
        self.src_mask = self.src_mask.index_select(0, utts)[..., :max_len]
        self.self_k = [c if c is None else c.index_select(0, rows) for c in self.self_k]
        self.self_v = [c if c is None else c.index_select(0, rows) for c in self.self_v]


def _sublayer(layer: DecoderLayer, x: torch.Tensor, norm, fn, concat: Optional[str] = None) -> torch.Tensor:
    """One residual block of an ESPnet ``DecoderLayer`` (pre- or post-norm; ``concat``: the layer's concat-after
    linear of an attention block, used when ``layer.concat_after``)."""
    h = norm(x) if layer.normalize_before else x
    a = fn(h)
    if concat is not None and layer.concat_after:
        a = getattr(layer, concat)(torch.cat((h, a), dim=-1))
    x = x + a
    return x if layer.normalize_before else norm(x)


def make_step(decoder: torch.nn.Module, fast: bool = True):
    """The fast cached step where the decoder supports it, else the generic ``forward_one_step`` one."""
    return CachedStep(decoder) if fast and CachedStep.supports(decoder) else GenericStep(decoder)
