"""S-Align's modal network (discriminator), adversarial losses and mix-up in the continuous prediction space.

Two losses are computed in one optimizer step (no gradient reversal):

* ``L_D`` -- binary cross-entropy of the discriminator D on **detached** textual-encoder outputs against the modality
  labels (speech ``c_st = 0``, text ``c_mt = 1``; mixed sequences ``p``; blank-noised text ``1 - r``). Only D learns
  from it.
* ``L_G`` -- binary cross-entropy of D on the **non-detached** outputs against 0.5 for both modalities, evaluated with
  detached copies of D's parameters, so that only the encoders learn from it and no D parameter gets its gradient.

Both losses see the same items, one speech and one text sample per sentence. From ``mixup_start``, a share
``mixup_batch_prob`` of batches is mixed: each sentence draws ``p ~ U(mixup_p_lo, mixup_p_hi)``, each shrunk position
is replaced with probability p by ``sqrt(d)·E[c_t]`` (its CTC token's scaled embedding), and the mixed sequence,
re-encoded by the textual encoder **with gradient**, *replaces* the speech sample in both terms (``L_D``: detached,
label p; ``L_G``: target 0.5), so a mixed batch has no label-0 speech sample and the confusion gradient reaches the
acoustic encoder, the textual encoder and the embedding table through the mixed input. Text noise (IMTL) works the
same way per sentence: with probability ``text_noise_prob`` a transcript gets ``round(r·len)`` blanks inserted,
``r ~ U(0, text_noise_max_ratio)``, and replaces its clean version (label 1 - r). ``mixup_mode: extra`` keeps the
earlier salign behaviour (mixed/noised sequences as extra D-only samples computed without gradient; one text-noise
draw per batch) for ablations.

Reduction (``reduction: items``, official): each item's BCE is weighted by its length and the sum is divided by the
number of items (2B at sentence level), as ``F.binary_cross_entropy_with_logits(weight=lengths, reduction="mean")``
in the official code, so the losses are about mean-length times larger than a length-weighted mean
(``reduction: weights``).

Effective strength (``adv_grad_scale``): the module returns ``adv_grad_scale·(d_scale·λ·L_D + λ·L_G)``. The official
fork back-propagates L_D and L_G outside fairseq's fp16 loss scaling while the translation losses go through it, and
fairseq then divides every gradient by the loss scale S and by the batch's token count; relative to salign's
sentence-normalised translation loss the official encoders therefore feel ``λ·L_G / (S·B)``, B the sentences per
GPU (:func:`official_adv_grad_scale`). ``adv_grad_scale: official`` is that factor for the official run (S = 128,
B = 18.75: 1/2400); ``face_value`` (1.0, the default, salign's behaviour before the knob) adds λ·L_G as it is. The
discriminator learns the same at either scale (Adam is scale-invariant and D only receives L_D); only its share of
the gradient norm that ``grad_clip`` sees changes, as in the official code.

The weight ``λ(u)`` is ``lambda_max`` until ``decay_start`` updates, then falls linearly to 0 at ``decay_end``; ``L_D``
is scaled by ``d_scale·λ`` and gated on from ``d_start``, ``L_G`` by ``λ`` from ``g_start``. Defaults are the official
full-scale MuST-C values (4.0, 25k, 45k, 1.5, 0, 1k; mix-up from 3k on 30% of batches with p ~ U(0, 1)) except
``adv_grad_scale`` (``face_value``, so that a config written before the knob keeps its meaning; the official one is
``official``); small runs need them scaled down (see ``egs/mini_mustc/conf``).

Guard: while the game is on, a discriminator whose accuracy stays within ``pinned_margin`` of 0 or 1 for
``pinned_window`` updates (0: never checked) is reported by a WARNING (once per window while it lasts) and the
training stat ``disc_pinned`` (1 on such batches, 0 otherwise). A non-finite ``loss_adv_d``/``loss_adv_g`` is named
and its batch skipped by the model's guard (:mod:`salign.utils.guards`).
"""
from __future__ import annotations

import logging
import random
from typing import Callable, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch.func import functional_call
from typeguard import typechecked

from salign.losses.abs_align import AbsAlign, AlignBatch, Stats
from salign.losses.registry import register
from salign.utils.tensor import binary_hits, length_mask, masked_mean

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


#: the official run's fp16 loss scale when training starts (fairseq's ``--fp16-init-scale``; it doubles after every
#: 2^14 / 8 GPUs = 2048 updates without overflow and halves on an overflow)
OFFICIAL_LOSS_SCALE = 128.0
#: sentences per GPU in the official batch: 8 GPUs x 15k padded 10 ms frames, ~150 MuST-C utterances per update
OFFICIAL_SENTENCES_PER_GPU = 150 / 8


def official_adv_grad_scale(loss_scale: float = OFFICIAL_LOSS_SCALE,
                            sentences_per_gpu: float = OFFICIAL_SENTENCES_PER_GPU) -> float:
    """The factor by which the official fork's encoders feel ``λ·L_G`` relative to salign's face value: ``1 / (S·B)``.

    Per GPU the official update follows ``(S·Σ_tok CE + λ·L_G) / (S·N)`` (translation back-propagated through the fp16
    loss scale S, L_G outside it, every gradient divided by S and by the token count N); salign's ESPnet loss is the
    token-summed CE averaged over the sentences (``Σ_tok CE / B``) plus ``adv_grad_scale·λ·L_G``. The ratios of the
    two terms agree when ``adv_grad_scale = 1 / (S·B)``, B the official sentences per GPU (N cancels; L_G is a mean
    over items and does not grow with B).
    """
    if loss_scale <= 0 or sentences_per_gpu <= 0:
        raise ValueError(f"need loss_scale > 0 and sentences_per_gpu > 0, got {loss_scale}, {sentences_per_gpu}")
    return 1.0 / (loss_scale * sentences_per_gpu)


#: the named settings of ``align_conf.adv_grad_scale``
ADV_GRAD_SCALES = {"face_value": 1.0, "official": official_adv_grad_scale()}


def resolve_adv_grad_scale(value: Union[float, str]) -> float:
    """``align_conf.adv_grad_scale`` as a number: a named setting (:data:`ADV_GRAD_SCALES`) or a number >= 0."""
    if isinstance(value, str):
        if value not in ADV_GRAD_SCALES:
            raise ValueError(f"align_conf.adv_grad_scale: unknown setting {value!r} (fix: one of "
                             f"{', '.join(ADV_GRAD_SCALES)}, or a number >= 0)")
        return ADV_GRAD_SCALES[value]
    if not 0.0 <= float(value) < float("inf"):
        raise ValueError(f"align_conf.adv_grad_scale must be >= 0, got {value} (fix: face_value, official or a "
                         "number >= 0)")
    return float(value)


def mix_inputs(x: torch.Tensor, tokens: torch.Tensor, p: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor]
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Replace each real shrunk position of sentence i with probability ``p[i]`` by its CTC token's scaled embedding.

    Args:
        x: (B, S, D) textual-encoder input of the speech branch.
        tokens: (B, S) CTC token per position, -1 on padding (never replaced).
        p: (B,) replacement probability per sentence.
        embed: token ids -> ``sqrt(D)·E[ids]`` (``AlignHost.embed_tokens``).

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


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                 reduction: str = "items") -> torch.Tensor:
    """BCE-with-logits of every item, weighted, reduced as the official code or as a weighted mean.

    ``items`` (official, ``F.binary_cross_entropy_with_logits(weight=w, reduction="mean")``): ``Σ w·bce / N`` with N
    the number of real items (weight > 0); at sentence level the weight is the length, so the loss is about
    mean-length times larger than a weighted mean. ``weights``: ``Σ w·bce / Σ w`` (a weighted mean).
    """
    loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    w = weights.float()
    if reduction == "items":
        return (loss * w).sum() / (w > 0).sum().clamp(min=1)
    return (loss * w).sum() / w.sum().clamp(min=1e-6)


MIXUP_MODES = ("replace", "extra")
REDUCTIONS = ("items", "weights")


@register("adversarial")
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
        reduction: str = "items",
        mixup_start: int = 3000,
        mixup_batch_prob: float = 0.3,
        mixup_p_lo: float = 0.0,
        mixup_p_hi: float = 1.0,
        mixup_mode: str = "replace",
        text_noise_prob: float = 0.0,
        text_noise_max_ratio: float = 0.3,
        speech_label: float = 0.0,
        text_label: float = 1.0,
        pinned_window: int = 2000,
        pinned_margin: float = 0.02,
        adv_grad_scale: Union[float, str] = "face_value",
    ) -> None:
        """Build the modal network; every number of the method is a keyword (see the module docstring)."""
        super().__init__()
        if not 0.0 <= mixup_p_lo <= mixup_p_hi <= 1.0:
            raise ValueError(f"need 0 <= mixup_p_lo <= mixup_p_hi <= 1, got {mixup_p_lo}, {mixup_p_hi}")
        if mixup_mode not in MIXUP_MODES:
            raise ValueError(f"align_conf.mixup_mode must be one of {MIXUP_MODES}, got {mixup_mode!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"align_conf.reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.disc = ModalNetwork(dim, hidden, dropout, level, window, stride)
        self.lambda_max, self.decay_start, self.decay_end = lambda_max, decay_start, decay_end
        self.d_scale, self.d_start, self.g_start = d_scale, d_start, g_start
        self.reduction = reduction
        self.mixup_start, self.mixup_batch_prob = mixup_start, mixup_batch_prob
        self.mixup_p = (mixup_p_lo, mixup_p_hi)
        self.mixup_mode = mixup_mode
        self.text_noise_prob, self.text_noise_max_ratio = text_noise_prob, text_noise_max_ratio
        self.speech_label, self.text_label = speech_label, text_label
        if pinned_window < 0 or not 0.0 <= pinned_margin < 0.5:
            raise ValueError(f"need align_conf.pinned_window >= 0 and 0 <= pinned_margin < 0.5, got {pinned_window}, "
                             f"{pinned_margin}")
        self.pinned_window, self.pinned_margin = pinned_window, pinned_margin
        self.adv_grad_scale = resolve_adv_grad_scale(adv_grad_scale)
        logging.info("adversarial gradient scale %g (%s)", self.adv_grad_scale, adv_grad_scale)
        self._pinned_since: Optional[int] = None  # update at which D's accuracy got pinned (None: it is not)
        self._pinned_warned: Optional[int] = None  # update of the last warning

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
        return weighted_bce(torch.cat(logits), torch.cat(labels), torch.cat(weights), self.reduction)

    def generator_loss(self, items: List[Tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """``L_G``: push D's output to 0.5 through frozen (detached) copies of D's parameters."""
        params = {k: v.detach() for k, v in self.disc.named_parameters()}
        logits, weights = [], []
        for h, lengths in items:
            lg, w = functional_call(self.disc, params, (h, lengths))
            logits.append(lg.reshape(-1))
            weights.append(w.reshape(-1))
        lg = torch.cat(logits)
        return weighted_bce(lg, torch.full_like(lg, 0.5), torch.cat(weights), self.reduction)

    def mixup(self, batch: AlignBatch) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixed speech sequence re-encoded by the textual encoder; returns (output, labels p, replaced mask).

        With gradient in ``replace`` mode (official: the confusion loss reaches A-enc, T-enc and the embedding table
        through the mixed input); under no-grad in the legacy ``extra`` mode.
        """
        if batch.speech_input is None or batch.speech_tokens is None or batch.host is None:
            raise ValueError("mix-up needs AlignBatch.speech_input, speech_tokens and host")
        lo, hi = self.mixup_p
        p = torch.empty(batch.speech.size(0), device=batch.speech.device).uniform_(lo, hi)
        with torch.set_grad_enabled(self.mixup_mode == "replace" and torch.is_grad_enabled()):
            mixed, replaced = mix_inputs(batch.speech_input, batch.speech_tokens, p, batch.host.embed_tokens)
            out, _ = batch.host.text_encode(mixed, batch.speech_lengths)
        return out, p, replaced

    def text_noise(self, batch: AlignBatch, ratios: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Transcripts with ``round(r_i·len_i)`` inserted blanks, re-encoded; returns (output, lengths)."""
        if batch.text_tokens is None or batch.host is None:
            raise ValueError("text noise needs AlignBatch.text_tokens and host")
        with torch.set_grad_enabled(self.mixup_mode == "replace" and torch.is_grad_enabled()):
            noisy, lengths = insert_blanks(batch.text_tokens, batch.text_lengths, ratios, batch.blank_id)
            out, _ = batch.host.text_encode(batch.host.embed_tokens(noisy.clamp(min=0)), lengths)
        return out, lengths

    def _text_items(self, batch: AlignBatch, stats: Stats) -> List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Text-side (hidden, lengths, labels) items: the clean transcripts, some replaced by blank-noised ones."""
        n = batch.text.size(0)
        labels = batch.text.new_full((n,), self.text_label)
        clean = [(batch.text, batch.text_lengths, labels)]
        if not (self.training and batch.text_tokens is not None and self.text_noise_prob > 0):
            return clean
        if self.mixup_mode == "extra":  # legacy: one draw per batch, an extra D-only sample of every sentence
            if random.random() >= self.text_noise_prob:
                return clean
            r = torch.empty(n, device=batch.text.device).uniform_(0.0, self.text_noise_max_ratio)
            out, lengths = self.text_noise(batch, r)
            stats["text_noised"] = batch.text.new_tensor(1.0)
            return clean + [(out.detach(), lengths, 1.0 - r)]
        # official: each sentence is noised with probability text_noise_prob and replaces its clean version
        pick = torch.rand(n, device=batch.text.device) < self.text_noise_prob
        stats["text_noised"] = pick.float().mean()
        if not bool(pick.any()):
            return clean
        r = torch.empty(n, device=batch.text.device).uniform_(0.0, self.text_noise_max_ratio) * pick
        sub = AlignBatch(speech=batch.speech, speech_lengths=batch.speech_lengths, text=batch.text[pick],
                         text_lengths=batch.text_lengths[pick], num_updates=batch.num_updates,
                         text_tokens=batch.text_tokens[pick], host=batch.host, blank_id=batch.blank_id)
        out, lengths = self.text_noise(sub, r[pick])
        items = [(out, lengths, self.text_label - r[pick] * (self.text_label - self.speech_label))]
        if not bool(pick.all()):
            keep = ~pick
            items.append((batch.text[keep], batch.text_lengths[keep], labels[keep]))
        return items

    def track_pinned(self, u: int, acc: float) -> bool:
        """Whether D's accuracy ``acc`` (of update ``u``) has stayed within ``pinned_margin`` of 0 or 1 for at least
        ``pinned_window`` updates; the first time, and once per further window while it lasts, a WARNING says so."""
        if self.pinned_window <= 0:
            return False
        if self.pinned_margin < acc < 1.0 - self.pinned_margin:
            self._pinned_since = None
            return False
        if self._pinned_since is None or u < self._pinned_since:
            self._pinned_since = u
        if u - self._pinned_since < self.pinned_window:
            return False
        if self._pinned_warned is None or u - self._pinned_warned >= self.pinned_window or u < self._pinned_warned:
            self._pinned_warned = u
            side = ("D separates the modalities perfectly: the encoders do not confuse it (raise lambda_max or lower "
                    "d_scale)" if acc >= 0.5 else "D labels the modalities the wrong way round (check speech_label/"
                    "text_label)")
            logging.warning("discriminator accuracy pinned at %.3f (within %g of %d) for %d updates (since update %d): "
                            "%s", acc, self.pinned_margin, round(acc), u - self._pinned_since, self._pinned_since,
                            side)
        return True

    # -- the loss --------------------------------------------------------------------------------------------------
    def forward(self, batch: AlignBatch) -> Tuple[torch.Tensor, Stats]:
        """``adv_grad_scale·(d_scale·λ·L_D + λ·L_G)`` with the warm-up gates, plus statistics.

        ``L_D`` and ``L_G`` see the same items: the speech sample (in a mixed batch, ``replace`` mode: the mixed
        sequence with label p instead) and the text sample (sentences drawn for text noise replaced by their noised
        version, label 1 - r).
        """
        u = batch.num_updates
        lam = self.weight(u)
        bsz = batch.speech.size(0)
        speech_item = (batch.speech, batch.speech_lengths, batch.speech.new_full((bsz,), self.speech_label))
        stats: Stats = {}
        extra: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

        mixed = 0.0
        if (self.training and u >= self.mixup_start and batch.speech_input is not None
                and batch.speech_tokens is not None and random.random() < self.mixup_batch_prob):
            out, p, replaced = self.mixup(batch)
            # labels in U(c_st, c_mt): p = 0 is pure speech, p = 1 every position replaced by its token
            lab = self.speech_label + p * (self.text_label - self.speech_label)
            if self.mixup_mode == "replace":
                speech_item = (out, batch.speech_lengths, lab)
            else:
                extra.append((out, batch.speech_lengths, lab))
            mixed = 1.0
            stats["mixup_replaced"] = replaced.float().sum() / batch.speech_lengths.sum().clamp(min=1)
        stats["mixup"] = batch.speech.new_tensor(mixed)
        text_items = self._text_items(batch, stats)
        d_items = [speech_item, *text_items, *extra]
        g_items = [(h, n) for h, n, _ in (speech_item, *text_items)]

        loss_d = self.discriminator_loss(d_items)
        loss_g = self.generator_loss(g_items)
        d_w = self.d_scale * lam if u >= self.d_start else 0.0
        g_w = lam if u >= self.g_start else 0.0
        loss = self.adv_grad_scale * (d_w * loss_d + g_w * loss_g)

        with torch.no_grad():  # how well D separates the plain modalities (speech 0, text 1)
            acc = []
            for h, lengths, target in ((batch.speech, batch.speech_lengths, False),
                                       (batch.text, batch.text_lengths, True)):
                correct, counted = binary_hits(*self.disc(h, lengths), target)
                acc.append(correct / counted)
        disc_acc = (acc[0] + acc[1]) / 2
        stats.update(loss_adv_d=loss_d.detach(), loss_adv_g=loss_g.detach(), adv_lambda=batch.speech.new_tensor(lam),
                     disc_acc=disc_acc, disc_acc_speech=acc[0], disc_acc_text=acc[1])
        if self.training:  # only while the adversarial game is on (D or G weighted)
            pinned = (d_w > 0 or g_w > 0) and self.track_pinned(u, float(disc_acc))
            stats["disc_pinned"] = batch.speech.new_tensor(1.0 if pinned else 0.0)
        return loss, stats
