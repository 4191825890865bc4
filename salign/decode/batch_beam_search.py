"""Beam search over many utterances at once, with ESPnet's ``BatchBeamSearch`` results for each utterance.

B utterances x K hypotheses run as one decoder batch of N = B*K rows. Each utterance follows ESPnet's one-utterance
search (``espnet.nets.beam_search.BeamSearch.forward`` + ``BatchBeamSearch``) step for step:

* scores: ``(1 - ctc_weight) * log p_dec + penalty (per token) + ctc_weight * CTC prefix score + previous score``,
  summed in ESPnet's order; CTC is scored only on the ``int(1.5 * K)`` best tokens (ESPnet's "full" pre-beam);
* each step keeps the K best (hypothesis, token) pairs of the running hypotheses; those ending in ``<eos>`` leave
  the beam (kept as ended if the step index ``i >= minlen``), so fewer than K run on (dead rows here);
* at the last step ``i == maxlen - 1`` every new hypothesis gets an ``<eos>`` appended (no score added);
* with ``maxlenratio == 0`` ESPnet's ``end_detect`` stops an utterance; it also stops when no hypothesis runs;
* results: ended hypotheses sorted by score (or score / (len - 1) with ``normalize_length``); none ended and
  ``minlenratio >= 0.1``: decode again with ``minlenratio - 0.1``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from espnet.nets.ctc_prefix_score import CTCPrefixScoreTH

from salign.decode.incremental import make_step

if TYPE_CHECKING:
    from salign.decode.settings import DecodeSettings

D_END = float(np.log(1 * np.exp(-10)))  # espnet.nets.e2e_asr_common.end_detect's threshold


class Hyp(NamedTuple):
    """A finished hypothesis: ``yseq`` starts with <sos> and ends with <eos> (as ESPnet's ``Hypothesis.yseq``)."""

    yseq: List[int]
    score: float


def length_bounds(enc_len: int, maxlenratio: float, minlenratio: float) -> Tuple[int, int]:
    """ESPnet's (maxlen, minlen) for an encoder output of ``enc_len`` frames."""
    if maxlenratio == 0:
        maxlen = enc_len
    elif maxlenratio < 0:
        maxlen = -1 * int(maxlenratio)
    else:
        maxlen = max(1, int(maxlenratio * enc_len))
    minlen = -1 * int(minlenratio) if minlenratio < 0 else int(minlenratio * enc_len)
    return maxlen, minlen


@dataclass
class _Utt:
    """Search bookkeeping of one utterance."""

    index: int
    maxlen: int
    minlen: int
    ended: List[Hyp] = field(default_factory=list)
    best_by_len: Dict[int, float] = field(default_factory=dict)
    best: float = -math.inf

    def add(self, yseq: List[int], score: float) -> None:
        self.ended.append(Hyp(yseq, score))
        n = len(yseq)
        self.best_by_len[n] = max(self.best_by_len.get(n, -math.inf), score)
        self.best = max(self.best, score)

    def end_detect(self, i: int, m: int = 3) -> bool:
        """``espnet.nets.e2e_asr_common.end_detect`` on this utterance's ended hypotheses."""
        if not self.ended:
            return False
        count = 0
        for j in range(m):
            best = self.best_by_len.get(i - j)
            if best is not None and best - self.best < D_END:
                count += 1
        return count == m


class BatchBeamSearch:
    """Attention(-CTC) beam search of B utterances x ``beam_size`` hypotheses in one decoder batch."""

    def __init__(self, decoder: torch.nn.Module, sos: int, eos: int, vocab_size: int, beam_size: int,
                 penalty: float = 0.0, ctc: Optional[torch.nn.Module] = None, ctc_weight: float = 0.0,
                 normalize_length: bool = False, pre_beam_ratio: float = 1.5, fast: bool = True,
                 step_factory: Optional[Callable[[], Any]] = None) -> None:
        """``penalty``: per-token length bonus (ESPnet's ``--penalty``); ``ctc``: an ESPnet ``CTC`` module used
        for joint scoring when ``ctc_weight > 0``; ``fast``: use the cached Transformer step where possible.

        ``step_factory``: builds the one-step scorer instead of ``make_step(decoder)`` — any object with the
        ``start(memory, lengths, k)`` / ``step(yseq) -> (N, V) log-probs`` / ``reorder(rows)`` /
        ``keep_utts(rows, max_len)`` contract of :mod:`salign.decode.incremental` (e.g. a decoder-only LM with its
        key/value cache, :class:`salign.llm.decode.LMStep`)."""
        self.decoder, self.sos, self.eos = decoder, sos, eos
        self.step_factory = step_factory
        self.n_vocab, self.beam = vocab_size, beam_size
        self.penalty = penalty
        self.ctc = ctc if ctc_weight > 0 else None
        self.ctc_weight = ctc_weight
        self.dec_weight = 1.0 - ctc_weight
        self.normalize_length = normalize_length
        self.pre_beam = int(pre_beam_ratio * beam_size)
        self.do_pre_beam = self.ctc is not None and self.pre_beam < vocab_size
        self.fast = fast

    @classmethod
    def from_settings(cls, model: torch.nn.Module, settings: "DecodeSettings", fast: bool = True
                      ) -> "BatchBeamSearch":
        """The search ESPnet's ``Speech2Text`` builds for ``model`` with ``settings``: its decoder, ``sos``/``eos``,
        vocabulary, beam, length bonus and (``ctc_weight > 0``) joint scoring with ``model.st_ctc``."""
        ctc = getattr(model, "st_ctc", None) if settings.ctc_weight > 0 else None
        if settings.ctc_weight > 0 and ctc is None:  # else it would decode without CTC, silently
            raise ValueError("CTC joint scoring (ctc_weight > 0) needs the model's target-side CTC; it has none")
        return cls(model.decoder, model.sos, model.eos, len(model.token_list), settings.beam_size,
                   penalty=settings.penalty, ctc=ctc, ctc_weight=settings.ctc_weight,
                   normalize_length=settings.normalize_length, pre_beam_ratio=settings.pre_beam_ratio, fast=fast)

    # ------------------------------------------------------------------------------------------------ search
    @torch.no_grad()
    def __call__(self, enc: torch.Tensor, enc_lens: torch.Tensor, maxlenratio: float = 0.0,
                 minlenratio: float = 0.0, bound_lens: Optional[torch.Tensor] = None) -> List[List[Hyp]]:
        """enc: (B, T, D) encoder output, enc_lens: (B,) -> per utterance the ended hypotheses, best first.

        ``bound_lens`` (B,): the lengths the length ratios refer to (default ``enc_lens``)."""
        bound_lens = enc_lens if bound_lens is None else bound_lens
        lens = [int(n) for n in bound_lens.tolist()]
        out = self._search(enc, enc_lens, lens, maxlenratio, minlenratio)
        retry = [b for b, hyps in enumerate(out) if not hyps]
        if retry and minlenratio >= 0.1:  # ESPnet: "perform recognition again with smaller minlenratio"
            idx = torch.tensor(retry, device=enc.device)
            again = self(enc.index_select(0, idx), enc_lens.index_select(0, idx), maxlenratio,
                         max(0.0, minlenratio - 0.1), bound_lens.index_select(0, idx.to(bound_lens.device)))
            for b, hyps in zip(retry, again):
                out[b] = hyps
        return out

    def _score(self, logp: torch.Tensor, yseq: torch.Tensor, score: torch.Tensor, ctc_impl, ctc_state):
        """Weighted next-token scores (N, V) in ESPnet's summation order, and the CTC state of this step."""
        ws = torch.zeros_like(logp)
        ws += self.dec_weight * logp
        if self.penalty != 0:
            ws += self.penalty * torch.ones(1, dtype=logp.dtype, device=logp.device).expand_as(logp)
        full = None
        if ctc_impl is not None:
            part_ids = torch.topk(ws, self.pre_beam, dim=-1)[1] if self.do_pre_beam else None
            ctc_scores, full = ctc_impl(yseq, ctc_state, part_ids)
            ws += self.ctc_weight * ctc_scores
        ws += score.unsqueeze(1)
        return ws, full

    def _search(self, enc: torch.Tensor, enc_lens: torch.Tensor, lens: List[int], maxlenratio: float,
                minlenratio: float) -> List[List[Hyp]]:
        """One search pass (no retry) over the batch."""
        b_all, dev = enc.size(0), enc.device
        utts = [_Utt(b, *length_bounds(lens[b], maxlenratio, minlenratio)) for b in range(b_all)]
        active = [u for u in utts if u.maxlen > 0]
        if active:
            if len(active) < b_all:
                idx = torch.tensor([u.index for u in active], device=dev)
                enc, enc_lens = enc.index_select(0, idx), enc_lens.index_select(0, idx)
            self._run(active, enc, enc_lens, maxlenratio)
        return [self._finish(u) for u in utts]

    def _run(self, active: List[_Utt], enc: torch.Tensor, enc_lens: torch.Tensor, maxlenratio: float) -> None:
        """The step loop: fills each utterance's ended list; finished utterances leave the decoder batch."""
        k, v, dev = self.beam, self.n_vocab, enc.device
        step = self.step_factory() if self.step_factory is not None else make_step(self.decoder, self.fast)
        step.start(enc, enc_lens, k)
        ctc_impl = ctc_state = None
        if self.ctc is not None:
            ctc_impl = CTCPrefixScoreTH(self.ctc.log_softmax(enc), enc_lens, 0, self.eos)
        n = len(active) * k
        yseq = torch.full((n, 1), self.sos, dtype=torch.long, device=dev)
        score = torch.zeros(n, dtype=enc.dtype, device=dev)
        alive = torch.zeros(len(active), k, dtype=torch.bool, device=dev)
        alive[:, 0] = True  # one initial hypothesis per utterance
        offsets = (torch.arange(len(active), device=dev) * k).unsqueeze(1)
        i = 0
        while active:
            logp = step.step(yseq)
            ws, ctc_full = self._score(logp, yseq, score, ctc_impl, ctc_state)
            ws = ws.view(len(active), k, v).masked_fill(~alive.unsqueeze(2), -math.inf).view(len(active), k * v)
            top_score, top_ids = ws.topk(k, dim=1)  # (B, K), flat (hypothesis, token) ids per utterance
            prev = torch.div(top_ids, v, rounding_mode="trunc")
            token = top_ids % v
            rows = (prev + offsets).view(-1)
            yseq = torch.cat((yseq.index_select(0, rows), token.view(-1, 1)), dim=1)
            score = top_score.view(-1)
            step.reorder(rows)
            if ctc_impl is not None:
                ctc_state = ctc_impl.index_select_state(ctc_full, top_ids)
            alive, done = self._post_process(i, active, yseq, score, token, maxlenratio)
            if done.any():
                keep = (~done).nonzero().view(-1)
                active = [active[j] for j in keep.tolist()]
                keep = keep.to(dev)
                if not active:
                    break
                krows = (keep.unsqueeze(1) * k + torch.arange(k, device=dev)).view(-1)
                yseq, score, alive = yseq.index_select(0, krows), score.index_select(0, krows), alive[keep]
                offsets = offsets[: len(active)]
                max_len = int(enc_lens.index_select(0, keep).max())
                enc_lens = enc_lens.index_select(0, keep)
                step.keep_utts(krows, max_len)
                if ctc_impl is not None:
                    ctc_state = self._ctc_keep(ctc_impl, ctc_state, keep, krows)
            i += 1

    def _post_process(self, i: int, active: List[_Utt], yseq: torch.Tensor, score: torch.Tensor,
                      token: torch.Tensor, maxlenratio: float) -> Tuple[torch.Tensor, torch.Tensor]:
        """Move hypotheses ending in <eos> to the ended lists; returns (alive rows (B, K), finished utts (B,))."""
        k = self.beam
        is_eos = token == self.eos
        last = torch.tensor([u.maxlen - 1 == i for u in active], device=token.device)
        ended = is_eos | last.unsqueeze(1)
        done = torch.zeros(len(active), dtype=torch.bool)
        rows_ended = ended.view(-1).nonzero().view(-1).tolist()
        if rows_ended:
            seqs, scores = yseq.index_select(0, torch.tensor(rows_ended, device=yseq.device)).tolist(), \
                score.index_select(0, torch.tensor(rows_ended, device=score.device)).tolist()
            for r, seq, s in zip(rows_ended, seqs, scores):
                u = active[r // k]
                if u.maxlen - 1 == i:
                    seq = seq + [self.eos]  # ESPnet appends <eos> to every running hypothesis at the last step
                if i >= u.minlen:
                    u.add(seq, s)
        alive = ~ended
        any_alive = alive.any(dim=1).tolist()
        for j, u in enumerate(active):
            if (maxlenratio == 0.0 and u.end_detect(i)) or not any_alive[j]:
                done[j] = True
        return alive, done

    @staticmethod
    def _ctc_keep(impl: CTCPrefixScoreTH, state, keep: torch.Tensor, krows: torch.Tensor):
        """Restrict a batched CTC prefix scorer and its state to the kept utterances."""
        impl.x = impl.x.index_select(2, keep.to(impl.x.device))
        impl.end_frames = impl.end_frames.index_select(0, keep.to(impl.end_frames.device))
        impl.batch = int(keep.numel())
        impl.idx_b = torch.arange(impl.batch, device=impl.device)
        impl.idx_bo = (impl.idx_b * impl.odim).unsqueeze(1)
        impl.idx_bh = None
        r, s, f_min, f_max = state
        return r.index_select(2, krows), s.index_select(0, krows), f_min, f_max

    def _finish(self, u: _Utt) -> List[Hyp]:
        """Ended hypotheses, best first (stable sort, as ESPnet's ``sorted``)."""
        if self.normalize_length:
            key = lambda h: float(np.float32(h.score) / np.float32(len(h.yseq) - 1))  # noqa: E731
        else:
            key = lambda h: h.score  # noqa: E731
        return sorted(u.ended, key=key, reverse=True)
