"""Generic tensor helpers shared by the model, the alignment losses, decoding and the analysis tools.

Padded batches are ``(B, T, ...)`` tensors with a ``(B,)`` tensor of real lengths; these helpers are the one place
that turns lengths into masks, pools over real positions and counts a binary classifier's hits.
"""
from __future__ import annotations

from typing import Tuple

import torch


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) boolean mask, True on real positions (``t < lengths[b]``), on the device of ``lengths``."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over time of (B, T, D) ``x`` counting real positions only; (B, D). An empty row gives zeros."""
    mask = length_mask(lengths, x.size(1)).to(x.dtype).unsqueeze(-1)
    return (x * mask).sum(1) / lengths.clamp(min=1).to(x.dtype).unsqueeze(-1)


def binary_hits(logits: torch.Tensor, weights: torch.Tensor, positive: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """How often a binary classifier is right about items that all belong to one class.

    A logit > 0 predicts the positive class; items with weight <= 0 (padding) are not counted. Returns
    ``(correct, counted)`` as float tensors, so that an accuracy is ``correct / counted`` and counts can be summed
    over batches first (e.g. the modal network's accuracy on speech, label negative, and on text, label positive).
    """
    real = (weights > 0).float()
    return (((logits > 0) == positive).float() * real).sum(), real.sum()
