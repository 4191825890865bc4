"""Batched ST / MT / ASR decoding of an ``SAlignSTModel``, configured like ESPnet's ``Speech2Text``.

``BatchedDecoder.from_settings(model, settings)`` searches with the beam, weights and length ratios of
:class:`~salign.decode.settings.DecodeSettings` (ESPnet's ``st_inference`` options), so that ``st(...)`` returns the
hypotheses ESPnet's ``Speech2Text`` built with the same options returns, a batch of utterances at a time.
Inputs are copied (padded) before encoding: ESPnet's feature normalisation (``global_mvn``, ``utterance_mvn``) works
in place, and the caller's tensors must stay as they were.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from espnet.nets.pytorch_backend.nets_utils import pad_list
from espnet.nets.pytorch_backend.transformer import subsampling as ss

from salign.decode.batch_beam_search import BatchBeamSearch, Hyp
from salign.decode.settings import DecodeSettings
from salign.utils.tensor import length_mask


def length_batches(lengths: Sequence[int], batch_size: int, batch_frames: int = 0) -> List[List[int]]:
    """Indices grouped into batches of similar length (longest first).

    A batch holds at most ``batch_size`` items and, with ``batch_frames > 0``, at most that many padded frames
    (``len(batch) * longest``); an item longer than ``batch_frames`` gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: List[List[int]] = []
    cur: List[int] = []
    for i in order:
        longest = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) >= batch_size or (batch_frames > 0 and (len(cur) + 1) * longest > batch_frames)):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


# How ESPnet's subsampling layers cut their input mask: ((end, step), ...) as in ``x_mask[:, :, :end:step]``
MASK_SLICES: Dict[type, Tuple[Tuple[int, int], ...]] = {
    ss.Conv1dSubsampling1: ((-2, 1), (-2, 1)), ss.Conv1dSubsampling2: ((-2, 1), (-2, 2)),
    ss.Conv1dSubsampling3: ((-2, 1), (-4, 3)), ss.Conv2dSubsampling: ((-2, 2), (-2, 2)),
    ss.Conv2dSubsampling1: ((-4, 1),), ss.Conv2dSubsampling2: ((-2, 2), (-2, 1)),
    ss.Conv2dSubsampling6: ((-2, 2), (-4, 3)), ss.Conv2dSubsampling8: ((-2, 2), (-2, 2), (-2, 2)),
}


def subsampled_length(module: torch.nn.Module, length: int) -> int:
    """Output frames of an ESPnet subsampling layer for one unpadded input of ``length`` frames."""
    r = range(length)
    for end, step in MASK_SLICES[type(module)]:
        r = r[:end:step]
    return len(r)


@contextmanager
def exact_subsampling_masks(model: torch.nn.Module) -> Iterator[None]:
    """Make batched encoding give each utterance the frames it gets when encoded alone.

    ESPnet's convolutional subsampling cuts the *padded* mask, so a padded utterance keeps one or two frames more
    than it has alone (frames whose receptive field reaches into the padding), which changes its encoder output.
    This trims every output mask to the unpadded length while the context is active.
    """
    def hook(module, args, output):
        if len(args) != 2 or args[1] is None or not isinstance(output, tuple) or len(output) != 2:
            return output
        lengths = args[1].view(args[1].size(0), -1).sum(-1).tolist()
        mask = output[1]
        n = torch.tensor([subsampled_length(module, int(n)) for n in lengths], device=mask.device)
        keep = length_mask(n, mask.size(-1))
        return output[0], mask & keep.view(mask.size(0), *([1] * (mask.dim() - 2)), mask.size(-1))

    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in MASK_SLICES]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def collapse_ctc(best: torch.Tensor, lengths: torch.Tensor, blank: int) -> List[List[int]]:
    """CTC greedy paths (B, T) -> label ids per utterance: merge repeats, drop blanks."""
    out = []
    for seq, n in zip(best.tolist(), lengths.tolist()):
        seq = seq[:n]
        out.append([t for i, t in enumerate(seq) if t != blank and (i == 0 or t != seq[i - 1])])
    return out


class BatchedDecoder:
    """Decode batches of utterances (speech or transcripts) with one model and one search configuration."""

    def __init__(self, model: torch.nn.Module, search: BatchBeamSearch, maxlenratio: float = 0.0,
                 minlenratio: float = 0.0, nbest: int = 1, device: str = "cpu", dtype: str = "float32",
                 st_ctc_greedy: bool = False) -> None:
        """``st_ctc_greedy``: ST by greedy decoding of ``model.st_ctc`` (ESPnet's ``--ctc_greedy``)."""
        self.model, self.search = model, search
        self.maxlenratio, self.minlenratio, self.nbest = maxlenratio, minlenratio, nbest
        self.device, self.dtype = device, getattr(torch, dtype)
        self.st_ctc_greedy = st_ctc_greedy

    @classmethod
    def from_settings(cls, model: torch.nn.Module, settings: DecodeSettings, fast: bool = True) -> "BatchedDecoder":
        """The decoder of ``model`` (in eval mode, on ``settings.device``) searching as ESPnet's ``Speech2Text``
        does with the same options; ValueError for set-ups only ESPnet's one-by-one path supports."""
        why = settings.batched_unsupported(model)
        if why is not None:
            raise ValueError(why)
        search = BatchBeamSearch.from_settings(model, settings, fast)
        return cls(model, search, settings.maxlenratio, settings.minlenratio, settings.nbest, settings.device,
                   settings.dtype, settings.ctc_greedy)

    def _pad(self, xs: Sequence[torch.Tensor], pad: float) -> Tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.tensor([x.size(0) for x in xs], dtype=torch.long, device=self.device)
        return pad_list([x.to(self.device) for x in xs], pad), lengths

    @torch.no_grad()
    def st(self, speech: Sequence[torch.Tensor]) -> List[List[Hyp]]:
        """Speech (each (T, ...) features or samples) -> n-best translations per utterance."""
        x, lengths = self._pad([s.to(self.dtype) for s in speech], 0.0)
        with exact_subsampling_masks(self.model):
            enc, enc_lens = self.model.encode(x, lengths)
        if self.st_ctc_greedy:
            ids = collapse_ctc(self.model.st_ctc.argmax(enc), enc_lens, 0)
            sos, eos = self.model.sos, self.model.eos
            return [[Hyp([sos] + seq + [eos], 0.0)] for seq in ids]
        hyps = self.search(enc, enc_lens, self.maxlenratio, self.minlenratio)
        return [h[: self.nbest] for h in hyps]

    @torch.no_grad()
    def mt(self, src: Sequence[torch.Tensor]) -> List[List[Hyp]]:
        """Transcripts (each a 1-D tensor of source token ids) -> n-best translations per sentence."""
        x, lengths = self._pad([s.long() for s in src], 0)
        enc, enc_lens = self.model.encode_text(x, lengths)
        hyps = self.search(enc, enc_lens, self.maxlenratio, self.minlenratio)
        return [h[: self.nbest] for h in hyps]

    @torch.no_grad()
    def asr(self, speech: Sequence[torch.Tensor]) -> List[Tuple[List[int], float]]:
        """Speech -> (source token ids, summed best-path log-prob) by CTC greedy decoding of the A-enc."""
        x, lengths = self._pad([s.to(self.dtype) for s in speech], 0.0)
        with exact_subsampling_masks(self.model):
            return ctc_greedy(self.model, x, lengths)


def ctc_greedy(model, speech: torch.Tensor, lengths: torch.Tensor,
               blank: Optional[int] = None) -> List[Tuple[List[int], float]]:
    """CTC greedy decoding of the acoustic encoder: collapse repeats, drop blanks; returns (ids, log-prob) each."""
    aenc, alens = model.encode_speech(speech, lengths)
    logp = model.ctc.log_softmax(aenc)
    best, idx = logp.max(-1)
    ids = collapse_ctc(idx, alens, model.blank_id if blank is None else blank)
    return [(seq, float(best[b, : alens[b]].sum())) for b, seq in enumerate(ids)]
