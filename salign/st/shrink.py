"""CTC shrink: de-duplicate acoustic frames by their CTC token, with a correct padding mask.

Frame ``t`` of an utterance is kept when its CTC token differs from the token of frame ``t-1`` (the first frame is
always kept), so each run of identical tokens -- blank runs included -- collapses to its first frame. During training
the token of a frame is sampled from the CTC distribution, at evaluation it is the arg-max (as in the official S-Align
code). Unlike the official code, the shrunk sequence comes with its true lengths, so attention never sees padding.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from salign.utils.tensor import length_mask


class Shrunk(NamedTuple):
    """Result of :func:`ctc_shrink`."""

    feats: torch.Tensor  # (B, T', D) kept frames, zero-padded
    lengths: torch.Tensor  # (B,) number of kept frames per utterance
    tokens: torch.Tensor  # (B, T') CTC token of each kept frame, -1 on padding


def frame_tokens(log_probs: torch.Tensor, sample: bool) -> torch.Tensor:
    """CTC token per frame: a sample from ``exp(log_probs)`` (Gumbel-max) or the arg-max.

    Args:
        log_probs: (B, T, V) CTC log-probabilities.
        sample: draw from the distribution instead of taking the arg-max.
    """
    if sample:
        u = torch.rand_like(log_probs, dtype=torch.float32).clamp_(1e-9, 1.0 - 1e-9)
        return (log_probs.float() - torch.log(-torch.log(u))).argmax(-1)
    return log_probs.argmax(-1)


def ctc_shrink(feats: torch.Tensor, lengths: torch.Tensor, tokens: torch.Tensor) -> Shrunk:
    """Keep the first frame of every run of equal CTC tokens.

    Args:
        feats: (B, T, D) encoder output.
        lengths: (B,) valid frames per utterance.
        tokens: (B, T) CTC token per frame (values on padded frames are ignored).

    Returns:
        :class:`Shrunk` with the kept frames packed to the left, their count and their tokens.
    """
    bsz, tmax, _ = feats.shape
    valid = length_mask(lengths, tmax)
    change = torch.ones_like(valid)
    change[:, 1:] = tokens[:, 1:] != tokens[:, :-1]
    keep = change & valid
    new_lengths = keep.sum(1)
    new_max = int(new_lengths.max().item()) if bsz > 0 else 0
    # target position of each kept frame = number of kept frames before it
    pos = keep.long().cumsum(1) - 1
    b_idx, t_idx = keep.nonzero(as_tuple=True)
    out = feats.new_zeros(bsz, max(new_max, 1), feats.size(-1))
    out[b_idx, pos[b_idx, t_idx]] = feats[b_idx, t_idx]
    out_tok = tokens.new_full((bsz, max(new_max, 1)), -1)
    out_tok[b_idx, pos[b_idx, t_idx]] = tokens[b_idx, t_idx]
    return Shrunk(out, new_lengths, out_tok)
