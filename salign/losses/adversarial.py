"""S-Align's modal network (discriminator), adversarial losses and mix-up in the continuous prediction space.

Two losses are computed in one optimizer step (no gradient reversal):

* ``L_D`` -- binary cross-entropy of the discriminator D on **detached** textual-encoder outputs against the modality
  labels (speech ``c_st = 0``, text ``c_mt = 1``; mixed sequences ``p``; blank-noised text ``1 - r``). Only D learns
  from it.
* ``L_G`` -- binary cross-entropy of D on the **non-detached** outputs against 0.5 for both modalities, evaluated with
  detached copies of D's parameters, so that only the encoders learn from it and no D parameter gets its gradient.

The weight ``λ(u)`` is ``lambda_max`` until ``decay_start`` updates, then falls linearly to 0 at ``decay_end``; ``L_D``
is scaled by ``d_scale·λ`` and gated on from ``d_start``, ``L_G`` by ``λ`` from ``g_start``. Defaults are the official
full-scale MuST-C values (4.0, 25k, 45k, 1.5, 0, 1k; mix-up from 3k on 30% of batches with p ~ U(0, 1)); small runs
need them scaled down (see ``conf/tuning``).
"""
from __future__ import annotations

import random
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.func import functional_call
from typeguard import typechecked

from salign.losses.abs_align import AbsAlign, AlignBatch, Stats, length_mask, masked_mean

LEVELS = ("sentence", "token", "window")


class ModalNetwork(torch.nn.Module):
    """Discriminator: residual bottleneck per position, pooling, one logit without bias.

    ``v = LN(h + Dropout(W2·ReLU(W1·h)))`` (d → hidden → d), then per ``level``: the mean over real positions
    (``sentence``), each position (``token``), or means over windows of ``window`` positions every ``stride``
    (``window``). Returns logits and the weight of each logit (sentence length, 1 per real token, or real positions
    per window).
    """

    def __init__(self, dim: int, hidden: Optional[int] = None, dropout: float = 0.1, level: str = "sentence",
                 window: int = 8, stride: int = 5) -> None:
        super().__init__()
        if level not in LEVELS:
            raise ValueError(f"align_conf.level must be one of {LEVELS}, got {level!r}")
        hidden = hidden or dim // 2
        self.w1 = torch.nn.Linear(dim, hidden)
        self.w2 = torch.nn.Linear(hidden, dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.norm = torch.nn.LayerNorm(dim)
        self.out = torch.nn.Linear(dim, 1, bias=False)
        self.level = level
        self.window = window
        self.stride = stride

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return (logits, weights), both (B,) for sentence level and (B, N) otherwise."""
        v = self.norm(h + self.dropout(self.w2(torch.relu(self.w1(h)))))
        mask = length_mask(lengths, h.size(1))
        if self.level == "sentence":
            return self.out(masked_mean(v, lengths)).squeeze(-1), lengths.to(v.dtype)
        if self.level == "token":
            return self.out(v).squeeze(-1), mask.to(v.dtype)
        tmax = h.size(1)
        n_win = max(0, -(-(tmax - self.window) // self.stride)) + 1
        pad = self.window + (n_win - 1) * self.stride - tmax
        vm = F.pad(v * mask.unsqueeze(-1).to(v.dtype), (0, 0, 0, pad))
        m = F.pad(mask.to(v.dtype), (0, pad))
        sums = vm.unfold(1, self.window, self.stride).sum(-1)  # (B, W, D)
        counts = m.unfold(1, self.window, self.stride).sum(-1)  # (B, W)
        means = sums / counts.clamp(min=1).unsqueeze(-1)
        return self.out(means).squeeze(-1), counts


def lambda_schedule(u: int, lambda_max: float, decay_start: int, decay_end: int) -> float:
    """``λ(u)``: ``lambda_max`` until ``decay_start``, linear to 0 at ``decay_end``, 0 after."""
    if u < decay_start:
        return lambda_max
    if u >= decay_end or decay_end <= decay_start:
        return 0.0
    return lambda_max * (decay_end - u) / (decay_end - decay_start)


def mix_inputs(x: torch.Tensor, tokens: torch.Tensor, p: torch.Tensor, embed) -> Tuple[torch.Tensor, torch.Tensor]:
    """Replace each real shrunk position of sentence i with probability ``p[i]`` by the scaled embedding of its CTC token.

    Args:
        x: (B, S, D) textual-encoder input of the speech branch.
        tokens: (B, S) CTC token per position, -1 on padding (never replaced).
        p: (B,) replacement probability per sentence.
        embed: token ids -> ``sqrt(D)·E[ids]``.

    Returns:
        (mixed input, boolean mask of replaced positions)
    """
    valid = tokens >= 0
    replace = (torch.rand(tokens.shape, device=x.device) < p[:, None]) & valid
    emb = embed(tokens.clamp(min=0)).to(x.dtype)
    return torch.where(replace.unsqueeze(-1), emb, x), replace


def insert_blanks(tokens: torch.Tensor, lengths: torch.Tensor, ratios: torch.Tensor,
                  blank_id: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Insert ``round(r_i·len_i)`` blank tokens at random positions of each transcript (IMTL-style text noise)."""
    rows: List[torch.Tensor] = []
    for tok, n, r in zip(tokens, lengths.tolist(), ratios.tolist()):
        seq = tok[:n]
        k = int(round(r * n))
        if k > 0:
            out = torch.full((n + k,), blank_id, dtype=tok.dtype, device=tok.device)
            keep_pos = torch.sort(torch.randperm(n + k, device=tok.device)[:n]).values
            out[keep_pos] = seq
            seq = out
        rows.append(seq)
    new_lengths = torch.tensor([len(r) for r in rows], device=tokens.device)
    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=-1)
    return padded, new_lengths


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of BCE-with-logits over all items (weights 0 are ignored)."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    w = weights.float()
    return (loss * w).sum() / w.sum().clamp(min=1e-6)


class AdversarialAlign(AbsAlign):
    """S-Align: modal network trained adversarially against the encoders, with mix-up (``--align adversarial``)."""

    @typechecked
    def __init__(
        self,
        dim: int,
        level: str = "sentence",
        hidden: Optional[int] = None,
        dropout: float = 0.1,
        window: int = 8,
        stride: int = 5,
        lambda_max: float = 4.0,
        decay_start: int = 25000,
        decay_end: int = 45000,
        d_scale: float = 1.5,
        d_start: int = 0,
        g_start: int = 1000,
        mixup_start: int = 3000,
        mixup_batch_prob: float = 0.3,
        mixup_p_lo: float = 0.0,
        mixup_p_hi: float = 1.0,
        mixup_generator: bool = False,
        text_noise_prob: float = 0.0,
        text_noise_max_ratio: float = 0.3,
        speech_label: float = 0.0,
        text_label: float = 1.0,
    ) -> None:
        """Build the modal network; every number of the method is a keyword (see the module docstring)."""
        super().__init__()
        if not 0.0 <= mixup_p_lo <= mixup_p_hi <= 1.0:
            raise ValueError(f"need 0 <= mixup_p_lo <= mixup_p_hi <= 1, got {mixup_p_lo}, {mixup_p_hi}")
        self.disc = ModalNetwork(dim, hidden, dropout, level, window, stride)
        self.lambda_max, self.decay_start, self.decay_end = lambda_max, decay_start, decay_end
        self.d_scale, self.d_start, self.g_start = d_scale, d_start, g_start
        self.mixup_start, self.mixup_batch_prob = mixup_start, mixup_batch_prob
        self.mixup_p = (mixup_p_lo, mixup_p_hi)
        self.mixup_generator = mixup_generator
        self.text_noise_prob, self.text_noise_max_ratio = text_noise_prob, text_noise_max_ratio
        self.speech_label, self.text_label = speech_label, text_label

    # -- pieces, public so tests and analysis tools can use them --------------------------------------------------
    def weight(self, u: int) -> float:
        """λ(u)."""
        return lambda_schedule(u, self.lambda_max, self.decay_start, self.decay_end)

    def discriminator_loss(self, items: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``L_D`` over (hidden, lengths, label per sentence) triples; hidden states are detached here."""
        logits, labels, weights = [], [], []
        for h, lengths, label in items:
            lg, w = self.disc(h.detach(), lengths)
            logits.append(lg.reshape(-1))
            labels.append(label.view(-1, *([1] * (lg.dim() - 1))).expand_as(lg).reshape(-1))
            weights.append(w.reshape(-1))
        return weighted_bce(torch.cat(logits), torch.cat(labels), torch.cat(weights))

    def generator_loss(self, items: List[Tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``L_G``: push D's output to 0.5 through frozen (detached) copies of D's parameters."""
        params = {k: v.detach() for k, v in self.disc.named_parameters()}
        logits, weights = [], []
        for h, lengths in items:
            lg, w = functional_call(self.disc, params, (h, lengths))
            logits.append(lg.reshape(-1))
            weights.append(w.reshape(-1))
        lg = torch.cat(logits)
        return weighted_bce(lg, torch.full_like(lg, 0.5), torch.cat(weights))

    def mixup(self, batch: AlignBatch) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixed speech sequence re-encoded by the textual encoder; returns (output, labels p, replaced mask)."""
        assert batch.speech_input is not None and batch.speech_tokens is not None
        assert batch.embed is not None and batch.encode is not None
        lo, hi = self.mixup_p
        p = torch.empty(batch.speech.size(0), device=batch.speech.device).uniform_(lo, hi)
        with torch.set_grad_enabled(self.mixup_generator and torch.is_grad_enabled()):
            mixed, replaced = mix_inputs(batch.speech_input, batch.speech_tokens, p, batch.embed)
            out = batch.encode(mixed, batch.speech_lengths)
        return out, p, replaced

    def text_noise(self, batch: AlignBatch) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Transcripts with inserted blanks re-encoded; returns (output, lengths, labels 1 - r)."""
        assert batch.text_tokens is not None and batch.embed is not None and batch.encode is not None
        r = torch.empty(batch.text.size(0), device=batch.text.device).uniform_(0.0, self.text_noise_max_ratio)
        with torch.no_grad():
            noisy, lengths = insert_blanks(batch.text_tokens, batch.text_lengths, r, batch.blank_id)
            out = batch.encode(batch.embed(noisy.clamp(min=0)), lengths)
        return out, lengths, 1.0 - r

    # -- the loss --------------------------------------------------------------------------------------------------
    def forward(self, batch: AlignBatch) -> Tuple[torch.Tensor, Stats]:
        """Weighted ``d_scale·λ·L_D + λ·L_G`` with the warm-up gates, plus statistics."""
        u = batch.num_updates
        lam = self.weight(u)
        bsz = batch.speech.size(0)
        s_lab = batch.speech.new_full((bsz,), self.speech_label)
        t_lab = batch.text.new_full((batch.text.size(0),), self.text_label)
        d_items = [(batch.speech, batch.speech_lengths, s_lab), (batch.text, batch.text_lengths, t_lab)]
        g_items = [(batch.speech, batch.speech_lengths), (batch.text, batch.text_lengths)]
        stats: Stats = {}

        mixed = 0.0
        if (self.training and u >= self.mixup_start and batch.speech_input is not None
                and batch.speech_tokens is not None and random.random() < self.mixup_batch_prob):
            out, p, replaced = self.mixup(batch)
            d_items.append((out, batch.speech_lengths, p))
            if self.mixup_generator:
                g_items.append((out, batch.speech_lengths))
            mixed = 1.0
            stats["mixup_replaced"] = replaced.float().sum() / batch.speech_lengths.sum().clamp(min=1)
        stats["mixup"] = batch.speech.new_tensor(mixed)
        if self.training and batch.text_tokens is not None and random.random() < self.text_noise_prob:
            out, lengths, labels = self.text_noise(batch)
            d_items.append((out, lengths, labels))

        loss_d = self.discriminator_loss(d_items)
        loss_g = self.generator_loss(g_items)
        d_w = self.d_scale * lam if u >= self.d_start else 0.0
        g_w = lam if u >= self.g_start else 0.0
        loss = d_w * loss_d + g_w * loss_g

        with torch.no_grad():
            acc = []
            for h, lengths, label in d_items[:2]:
                lg, w = self.disc(h, lengths)
                target = label.view(-1, *([1] * (lg.dim() - 1))) > 0.5
                acc.append((((lg > 0) == target).float() * (w > 0).float()).sum() / (w > 0).float().sum())
        stats.update(loss_adv_d=loss_d.detach(), loss_adv_g=loss_g.detach(), adv_lambda=batch.speech.new_tensor(lam),
                     disc_acc=(acc[0] + acc[1]) / 2, disc_acc_speech=acc[0], disc_acc_text=acc[1])
        return loss, stats
