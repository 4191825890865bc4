"""H-Align: hard speech-text alignment by in-batch contrastive learning (ConST-style InfoNCE), ``--align contrastive``.

Two granularities (``level``):

* ``sentence`` (ConST): the top textual-encoder outputs of each branch are mean-pooled over real positions and
  L2-normalised; ``logits[i, j] = cos(speech_i, text_j) / temperature``; the loss is the cross-entropy of each speech
  sentence against the in-batch transcripts (speech→text), averaged with text→speech when ``symmetric``.
* ``token``: no token-level ground truth exists between shrunk speech positions and transcript tokens, so each text
  token is contrasted at the *utterance* level with a *local* match score. For text token ``t_{b,l}`` and utterance
  ``c`` the score is its best match among ``c``'s real speech positions: ``max_k cos(t_{b,l}, s_{c,k})``
  (``token_match: max``, ColBERT/FILIP-style MaxSim) or a soft-attention average
  ``Σ_k softmax_k(cos/attn_temperature)·cos`` (``token_match: soft``). Each token then gets an InfoNCE over the B
  utterances with its own utterance as the positive: every word must find a better counterpart in its own speech than
  in any other speech of the batch. ``symmetric`` adds the same with speech positions as queries over transcripts.
  Per-token losses are averaged over real tokens.

Statistics: ``loss_ctr`` (unweighted InfoNCE), ``ctr_acc`` (in-batch retrieval accuracy of the speech→text direction at
sentence level, of the text-token queries at token level) and, when ``symmetric``, ``ctr_acc_rev`` (other direction).
The returned loss is ``weight · loss_ctr`` (0 before update ``start``).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from typeguard import typechecked

from salign.losses.abs_align import AbsAlign, AlignBatch, Stats
from salign.losses.registry import register
from salign.utils.tensor import length_mask, masked_mean

LEVELS = ("sentence", "token")
TOKEN_MATCHES = ("max", "soft")


def info_nce(logits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of row i against column i of a (B, B) logit matrix; returns (mean loss, retrieval accuracy)."""
    target = torch.arange(logits.size(0), device=logits.device)
    loss = F.cross_entropy(logits.float(), target)
    acc = (logits.argmax(-1) == target).float().mean()
    return loss, acc


def sentence_logits(speech: torch.Tensor, speech_lengths: torch.Tensor, text: torch.Tensor,
                    text_lengths: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, B) cosine similarities of mean-pooled speech (rows) and text (columns), divided by ``temperature``."""
    s = F.normalize(masked_mean(speech, speech_lengths), dim=-1)
    t = F.normalize(masked_mean(text, text_lengths), dim=-1)
    return s @ t.t() / temperature


def token_scores(queries: torch.Tensor, q_lengths: torch.Tensor, keys: torch.Tensor, k_lengths: torch.Tensor,
                 match: str = "max", attn_temperature: float = 0.1) -> torch.Tensor:
    """Score of every query position against every utterance of the key side.

    Args:
        queries: (B, Lq, D) positions of one branch; keys: (B, Lk, D) positions of the other branch.
        match: ``max`` (best cosine among the utterance's real key positions) or ``soft`` (softmax-weighted mean of
            the cosines, weights ``softmax(cos / attn_temperature)`` over real key positions).

    Returns:
        (B, Lq, B) scores: ``[b, l, c]`` compares query position l of utterance b with utterance c.
    """
    del q_lengths  # padded query positions are masked out of the loss by the caller
    q = F.normalize(queries, dim=-1)
    k = F.normalize(keys, dim=-1)
    cos = torch.einsum("bld,ckd->blck", q, k)  # (B, Lq, B, Lk)
    kmask = length_mask(k_lengths, keys.size(1))[None, None]  # (1, 1, B, Lk)
    if match == "max":
        return cos.masked_fill(~kmask, float("-inf")).amax(-1)
    attn = torch.softmax((cos / attn_temperature).masked_fill(~kmask, float("-inf")), dim=-1)
    return (attn * cos).sum(-1)


def token_info_nce(scores: torch.Tensor, q_lengths: torch.Tensor, temperature: float
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-position InfoNCE over utterances (the positive is the query's own utterance), mean over real positions.

    ``scores``: (B, Lq, B) from :func:`token_scores`. Returns (loss, accuracy of the positions' argmax utterance).
    """
    bsz, lq, _ = scores.shape
    logits = scores.float() / temperature
    target = torch.arange(bsz, device=scores.device)[:, None].expand(bsz, lq)
    ce = F.cross_entropy(logits.reshape(bsz * lq, bsz), target.reshape(-1), reduction="none").view(bsz, lq)
    mask = length_mask(q_lengths, lq).float()
    n = mask.sum().clamp(min=1)
    acc = ((logits.argmax(-1) == target).float() * mask).sum() / n
    return (ce * mask).sum() / n, acc


@register("contrastive")
class ContrastiveAlign(AbsAlign):
    """In-batch InfoNCE between the speech and transcript branches (``--align contrastive``)."""

    @typechecked
    def __init__(self, dim: int, weight: float = 1.0, temperature: float = 0.1, symmetric: bool = True,
                 level: str = "sentence", token_match: str = "max", attn_temperature: float = 0.1,
                 start: int = 0) -> None:
        """Configure the loss (every argument is an ``align_conf`` key; ``dim`` is given by the task).

        Args:
            weight: scale of the InfoNCE in the model loss.
            temperature: InfoNCE temperature τ (logits are cosines / τ).
            symmetric: average speech→text and text→speech.
            level: ``sentence`` (mean-pooled) or ``token`` (see the module docstring).
            token_match: ``max`` or ``soft`` local match score at token level.
            attn_temperature: temperature of the soft-attention match.
            start: update from which the loss is on.
        """
        super().__init__()
        if level not in LEVELS:
            raise ValueError(f"align_conf.level must be one of {LEVELS}, got {level!r}")
        if token_match not in TOKEN_MATCHES:
            raise ValueError(f"align_conf.token_match must be one of {TOKEN_MATCHES}, got {token_match!r}")
        if temperature <= 0 or attn_temperature <= 0:
            raise ValueError("align_conf.temperature and attn_temperature must be > 0")
        self.dim = dim
        self.weight, self.temperature, self.symmetric = weight, temperature, symmetric
        self.level, self.token_match, self.attn_temperature = level, token_match, attn_temperature
        self.start = start

    def contrastive_loss(self, speech: torch.Tensor, speech_lengths: torch.Tensor, text: torch.Tensor,
                         text_lengths: torch.Tensor) -> Tuple[torch.Tensor, Stats]:
        """Unweighted InfoNCE and its retrieval accuracies for one batch of paired sequences."""
        if self.level == "sentence":
            logits = sentence_logits(speech, speech_lengths, text, text_lengths, self.temperature)
            loss, acc = info_nce(logits)
            stats: Stats = {"ctr_acc": acc}
            if self.symmetric:
                loss_rev, acc_rev = info_nce(logits.t())
                loss = 0.5 * (loss + loss_rev)
                stats["ctr_acc_rev"] = acc_rev
            return loss, stats
        scores = token_scores(text, text_lengths, speech, speech_lengths, self.token_match, self.attn_temperature)
        loss, acc = token_info_nce(scores, text_lengths, self.temperature)
        stats = {"ctr_acc": acc}
        if self.symmetric:
            scores = token_scores(speech, speech_lengths, text, text_lengths, self.token_match,
                                  self.attn_temperature)
            loss_rev, acc_rev = token_info_nce(scores, speech_lengths, self.temperature)
            loss = 0.5 * (loss + loss_rev)
            stats["ctr_acc_rev"] = acc_rev
        return loss, stats

    def forward(self, batch: AlignBatch) -> Tuple[torch.Tensor, Stats]:
        """``weight · InfoNCE`` on the top textual-encoder outputs, plus ``loss_ctr`` and accuracies."""
        loss, stats = self.contrastive_loss(batch.speech, batch.speech_lengths, batch.text, batch.text_lengths)
        w = self.weight if batch.num_updates >= self.start else 0.0
        stats = {"loss_ctr": loss.detach(), **{k: v.detach() for k, v in stats.items()}}
        return w * loss, stats
