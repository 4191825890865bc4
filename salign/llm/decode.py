"""Batched beam search of the speech-LLM family: :class:`salign.decode.BatchBeamSearch` driving the LM's KV cache.

The search (its bookkeeping, end rules, n-best) is the S-Align family's own :class:`BatchBeamSearch`; only the
one-step scorer differs. :class:`LMStep` implements its step contract (``start`` / ``step`` / ``reorder`` /
``keep_utts``) for a decoder-only LM: ``start`` runs the left-padded prompts (:meth:`SpeechLLMModel.prompt_inputs`)
once per utterance and copies the key/value cache to the K hypothesis rows; each ``step`` feeds only the newest token
of every row after the cache; ``reorder``/``keep_utts`` select cache rows (surviving hypotheses, unfinished
utterances). B utterances x K hypotheses run as one LM batch; finished utterances leave it.

Rules (ESPnet's, see :mod:`salign.decode.batch_beam_search`), with the lengths they refer to chosen for an LM:

* ``--maxlenratio``/``--minlenratio`` > 0 are relative to the input's length in LM positions: the projected
  speech frames (ST, ASR) or the transcript's tokens (MT) — not the prompt's words; ``--maxlenratio -N`` is an
  absolute limit of N generated tokens (Hugging Face's ``max_new_tokens=N``); ``--maxlenratio 0`` (ESPnet's
  default): at most the input length, stopped by ESPnet's end detection;
* ``--penalty``: per-token length bonus; ``--nbest``: the best ended hypotheses; ``--normalize_length``: unused
  (ESPnet's Speech2Text ignores it too);
* a ``tiny`` LM never emits its reserved prompt-word rows (they are masked).

Parity with Hugging Face ``generate`` (tests/llm/test_llm_decode.py): greedy (``--beam_size 1`` vs
``do_sample=False, num_beams=1, max_new_tokens=N`` with ``--maxlenratio -N``) is token for token. Beam search
coincides with ``num_beams=K`` (any ``length_penalty``/``early_stopping``) when no ``<eos>`` enters the K best before
the length limit: HF then keeps K running beams and ends them all at ``max_new_tokens``, as ESPnet does. Once
an ``<eos>`` is among the K best earlier, the rules differ by design: ESPnet ends that hypothesis and searches on with
fewer (HF refills the beam from 2K candidates and ranks ended ones by ``score / length ** length_penalty``).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import torch

from salign.decode.batch_beam_search import BatchBeamSearch, Hyp
from salign.llm.lm import TinyCausalLM
from salign.llm.model import LMBatch, SpeechLLMModel

#: utterances per speech-encoder call when decoding on a CPU (see :meth:`LLMDecoder._speech`)
CPU_ENCODE_CHUNK = 8


def reorder_cache(cache: Any, rows: torch.Tensor) -> Any:
    """Cache rows ``rows`` (in that order): our tiny LM's list of (key, value) or a Hugging Face ``Cache``."""
    if isinstance(cache, list):
        return [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in cache]
    cache.reorder_cache(rows)  # Hugging Face: in place
    return cache


class LMStep:
    """One-step scorer of :class:`BatchBeamSearch` for a decoder-only LM with a key/value cache."""

    def __init__(self, model: SpeechLLMModel) -> None:
        self.model = model
        lm = model.lm
        # our LM's reserved prompt-word rows are never targets: never emitted
        self.n_real = len(lm.token_list) if isinstance(lm, TinyCausalLM) else None
        self.cache: Any = None
        self.mask: Optional[torch.Tensor] = None
        self.pos: Optional[torch.Tensor] = None
        self.first: Optional[torch.Tensor] = None

    def _logp(self, logits: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits.float(), dim=-1)
        if self.n_real is not None:
            logp[:, self.n_real:] = float("-inf")
        return logp

    def start(self, embeds: torch.Tensor, lengths: torch.Tensor, k: int) -> None:
        """embeds: (B, T, D) left-padded prompts, lengths: (B,) their lengths; each gets ``k`` hypothesis rows."""
        width = embeds.size(1)
        mask = (torch.arange(width, device=embeds.device)[None] >= (width - lengths)[:, None]).long()
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        out = self.model.lm(embeds, mask, positions, use_cache=True, logits_to_keep=1)  # as HF generate
        rows = torch.arange(embeds.size(0), device=embeds.device).repeat_interleave(k)
        self.first = self._logp(out.logits[:, -1]).index_select(0, rows)
        self.cache = reorder_cache(out.past_key_values, rows)
        self.mask, self.pos = mask.index_select(0, rows), positions[:, -1:].index_select(0, rows)

    def step(self, yseq: torch.Tensor) -> torch.Tensor:
        """yseq: (N, L) ``<sos>`` + generated tokens -> (N, V) log-probabilities of the next token."""
        if yseq.size(1) == 1:  # only <sos>: the prompt's last position predicts the first token
            return self.first
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.size(0), 1)], dim=1)
        self.pos = self.pos + 1
        out = self.model.step(self.mask, self.pos, ids=yseq[:, -1:], cache=self.cache)
        self.cache = out.past_key_values
        return self._logp(out.logits[:, -1])

    def reorder(self, rows: torch.Tensor) -> None:
        """New row r continues old row ``rows[r]``."""
        self.cache = reorder_cache(self.cache, rows)
        self.mask, self.pos = self.mask.index_select(0, rows), self.pos.index_select(0, rows)
        if self.first is not None:
            self.first = self.first.index_select(0, rows)

    def keep_utts(self, rows: torch.Tensor, max_len: int) -> None:
        """Drop finished utterances (keep hypothesis ``rows``); ``max_len`` is unused (the prompts stay)."""
        self.reorder(rows)


class LLMDecoder:
    """ST / MT / ASR decoding of a :class:`SpeechLLMModel` with the batched beam search; inputs padded here."""

    asr_by_search = True  # ASR is a beam search over the LM too (not CTC greedy)

    def __init__(self, model: SpeechLLMModel, beam_size: int = 1, penalty: float = 0.0, maxlenratio: float = 0.0,
                 minlenratio: float = 0.0, nbest: int = 1, device: str = "cpu", dtype: str = "float32") -> None:
        """See the module doc for the length rules."""
        eos = model.lm.eos_id
        self.model = model
        self.search = BatchBeamSearch(None, eos, eos, model.lm.vocab_size, beam_size, penalty=penalty,
                                      step_factory=lambda: LMStep(model))
        self.maxlenratio, self.minlenratio, self.nbest = maxlenratio, minlenratio, nbest
        self.device, self.dtype = device, getattr(torch, dtype)
        self._warned = False

    @classmethod
    def from_settings(cls, model: SpeechLLMModel, settings) -> "LLMDecoder":
        """The decoder with ``st_inference``'s beam, penalty, length ratios and n-best; ValueError for options an
        LLM cannot honour (CTC joint scoring: its CTC head is over the transcript, not the target)."""
        if settings.ctc_weight > 0 or settings.ctc_greedy:
            raise ValueError("--ctc_weight/--ctc_greedy: the speech-LLM's CTC head is over the transcript; "
                             "use --ctc_weight 0 --ctc_greedy false")
        if settings.lm_train_config is not None or settings.ngram_file is not None:
            raise ValueError("language-model and n-gram scoring are not supported for the speech-LLM family")
        return cls(model, settings.beam_size, settings.penalty, settings.maxlenratio, settings.minlenratio,
                   settings.nbest, settings.device, settings.dtype)

    def _pad(self, xs: Sequence[torch.Tensor], dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        from espnet.nets.pytorch_backend.nets_utils import pad_list

        lengths = torch.tensor([x.size(0) for x in xs], dtype=torch.long, device=self.device)
        return pad_list([x.to(device=self.device, dtype=dtype) for x in xs], 0), lengths

    def decode_prompts(self, prompt: LMBatch) -> List[List[Hyp]]:
        """n-best hypotheses (``<eos>`` + tokens + ``<eos>``) of assembled, left-padded prompts."""
        hyps = self.search(prompt.embeds, prompt.mask.sum(1), self.maxlenratio, self.minlenratio,
                           bound_lens=prompt.input_lengths)
        return [h[: self.nbest] for h in hyps]

    def speech_prompts(self, task: str, speech: Sequence[torch.Tensor]) -> LMBatch:
        """Left-padded ``task`` prompts of utterances, each encoded with its own frames (as when encoded alone).

        On a CPU the speech is encoded ``CPU_ENCODE_CHUNK`` utterances at a time (measured ~2x faster for the conv
        front ends than one call over 32: the activations stay in cache); on a GPU in one call."""
        from espnet.nets.pytorch_backend.nets_utils import pad_list

        from salign.decode.decoder import exact_subsampling_masks

        chunk = CPU_ENCODE_CHUNK if torch.device(self.device).type == "cpu" else len(speech)
        embeds: List[torch.Tensor] = []
        with exact_subsampling_masks(self.model):
            for i in range(0, len(speech), max(chunk, 1)):
                x, lengths = self._pad(speech[i: i + chunk], self.dtype)
                emb, lens = self.model.speech_embeds(*self.model.encode_speech(x, lengths))
                embeds += [emb[j, : int(n)] for j, n in enumerate(lens)]
        lens = torch.tensor([e.size(0) for e in embeds], dtype=torch.long, device=embeds[0].device)
        return self.model.assemble(task, pad_list(embeds, 0.0), lens, left_pad=True)

    def _speech(self, task: str, speech: Sequence[torch.Tensor]) -> List[List[Hyp]]:
        """n-best hypotheses of utterances behind ``task``'s prompt (:meth:`speech_prompts`, then one search)."""
        return self.decode_prompts(self.speech_prompts(task, speech))

    @torch.no_grad()
    def st(self, speech: Sequence[torch.Tensor]) -> List[List[Hyp]]:
        """Speech (each (T, ...) features or samples) -> n-best translations."""
        return self._speech("st", speech)

    @torch.no_grad()
    def asr(self, speech: Sequence[torch.Tensor]) -> List[List[Hyp]]:
        """Speech -> n-best transcripts (the LM behind its ASR prompt; a warning if it was not trained on ASR)."""
        if not getattr(self.model, "asr_weight", 0.0) and not self._warned:
            import logging

            logging.warning("ASR decoding of a speech-LLM trained with model_conf.asr_weight 0: its ASR prompt "
                            "was never trained")
            self._warned = True
        return self._speech("asr", speech)

    @torch.no_grad()
    def mt(self, src: Sequence[torch.Tensor]) -> List[List[Hyp]]:
        """Transcripts (1-D token ids in the LM's vocabulary) -> n-best translations."""
        x, lengths = self._pad(src, torch.long)
        return self.decode_prompts(self.model.prompt_inputs("mt", src_text=x, src_text_lengths=lengths))


class LMVocab:
    """Token ids of the LM back to tokens and text: the HF tokenizer for ``hf`` LMs; the token list (and the model's
    BPE / word detokeniser, as ESPnet's ``Speech2Text``) for ``tiny``."""

    def __init__(self, model: SpeechLLMModel, train_args, token_type: Optional[str] = None,
                 bpemodel: Optional[str] = None) -> None:
        """``token_type``/``bpemodel`` default to the model's training options (ESPnet's rule; ``tiny`` only)."""
        from salign.decode.loader import _tokenizer

        self.lm = model.lm
        self.hf = not isinstance(self.lm, TinyCausalLM)
        self.detok = None if self.hf else _tokenizer(token_type or train_args.token_type,
                                                    bpemodel or train_args.bpemodel)

    def target(self, yseq: Sequence[int], score: float) -> Tuple[Optional[str], List[str], List[int], float]:
        """(text, tokens, ids, score) of a hypothesis ``<eos> ... <eos>`` (the tiny list's blank 0 dropped)."""
        ids = [int(i) for i in list(yseq)[1:]]
        while ids and ids[-1] == self.lm.eos_id:  # at the length limit ESPnet appends <eos> even after <eos>
            ids.pop()
        if self.hf:
            tok = self.lm.tokenizer
            return tok.decode(ids, skip_special_tokens=True).strip(), tok.convert_ids_to_tokens(ids), ids, float(score)
        ids = [i for i in ids if i != 0]
        tokens = [self.lm.token_list[i] for i in ids]
        return (self.detok.tokens2text(tokens) if self.detok is not None else None, tokens, ids, float(score))
