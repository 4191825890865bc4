"""Span masking of the acoustic encoder's input in training, with the semantics of fairseq's wav2vec 2.0 / HuBERT
fine-tuning (its ``compute_mask_indices`` with static spans, as ``HubertModel.apply_mask`` calls it).

For one utterance with ``n`` maskable positions (its valid frames in time; the channels of its feature vectors):

* ``k = floor(prob · n / span + u)`` spans, ``u ~ U[0, 1)`` (a probabilistic rounding), at least ``min_masks``;
* ``k`` distinct span starts drawn uniformly from ``[0, n - span)`` (from ``[0, k + 1)`` when that range has no more
  than ``k`` starts);
* each span covers ``span`` consecutive positions, cut at ``n``. Spans may overlap, so ``prob`` is the share of
  positions that *start* a span times its length, not the masked share: that is about ``1 - exp(-prob)``
  (0.39 for 0.5, 0.22 for 0.25);
* ``same_count`` (fairseq's ``require_same_masks``, on in HuBERT fine-tuning): every utterance of the batch then keeps
  a random subset of its masked positions as large as the utterance with the fewest.

Time masks draw ``k`` per utterance from its own length (HuBERT: at least 2 spans) and replace the masked frames by a
learned mask embedding (HuBERT's ``mask_emb``; zeros where the model has none); channel masks draw one ``k`` for the
batch over the feature width, each utterance its own channels, and zero those channels in all its frames. Random
numbers come from torch's global generator, so ``torch.manual_seed`` reproduces a mask.
"""
from __future__ import annotations

from typing import List, Optional

import torch


def span_mask(lengths: Optional[torch.Tensor], size: int, prob: float, span: int, batch: Optional[int] = None,
              min_masks: int = 0, same_count: bool = True) -> torch.Tensor:
    """(B, size) boolean mask of the positions to mask, on the CPU.

    Args:
        lengths: (B,) maskable positions per row (positions beyond are never masked); None: every row has ``size``
            and one span count is drawn for the whole batch (fairseq's channel masks).
        size: positions per row.
        prob: span starts per position, times ``span`` (see the module doc); 0 masks nothing.
        span: positions per span (>= 1).
        batch: rows when ``lengths`` is None.
        min_masks: fewest spans per row.
        same_count: every row keeps as many masked positions as the row with the fewest.
    """
    if span < 1:
        raise ValueError(f"mask span length must be >= 1, got {span}")
    if lengths is None:
        if batch is None:
            raise ValueError("span_mask needs lengths or batch")
        n_rows = batch
        shared = max(min_masks, int(prob * size / span + torch.rand(()).item()))
        sizes = [size] * n_rows
    else:
        sizes = [int(n) for n in lengths.tolist()]
        n_rows, shared = len(sizes), None
    mask = torch.zeros(n_rows, size, dtype=torch.bool)
    if prob <= 0 or n_rows == 0:
        return mask
    rows: List[torch.Tensor] = []
    for n in sizes:
        k = shared if shared is not None else max(min_masks, int(prob * n / span + torch.rand(()).item()))
        if k <= 0 or n <= 0:
            rows.append(torch.empty(0, dtype=torch.long))
            continue
        # starts come from [0, n - span); with too few of them, from [0, k + 1) (spans then run past n and are cut)
        n_starts = n - span if n - span > k else k + 1
        starts = torch.randperm(n_starts)[:k]
        pos = (starts[:, None] + torch.arange(span)).flatten()
        rows.append(torch.unique(pos[pos < n]))
    fewest = min(len(r) for r in rows)
    for i, r in enumerate(rows):
        if same_count and len(r) > fewest:
            r = r[torch.randperm(len(r))[:fewest]]
        mask[i, r] = True
    return mask


def mask_spans(x: torch.Tensor, lengths: torch.Tensor, time_prob: float = 0.0, time_span: int = 10,
               channel_prob: float = 0.0, channel_span: int = 10, mask_emb: Optional[torch.Tensor] = None,
               min_time_masks: int = 2) -> torch.Tensor:
    """``x`` (B, T, C) with time spans of its valid frames replaced by ``mask_emb`` (C,) (zeros when None) and channel
    spans zeroed; a new tensor (the mask embedding gets its gradient). See the module doc for the semantics."""
    bsz, tmax, dim = x.shape
    if time_prob > 0:
        keep_out = span_mask(lengths, tmax, time_prob, time_span, min_masks=min_time_masks).to(x.device)
        fill = mask_emb.to(x.dtype) if mask_emb is not None else x.new_zeros(dim)
        x = torch.where(keep_out.unsqueeze(-1), fill, x)
    if channel_prob > 0:
        channels = span_mask(None, dim, channel_prob, channel_span, batch=bsz).to(x.device)
        x = x.masked_fill(channels.unsqueeze(1), 0.0)
    return x
