"""The speech-LLM model: speech encoder -> frame stacking -> projector -> decoder-only LM (AI-STA's setting).

Data flow (see ``docs/method.md`` §2)::

    speech ─ frontend/normalize ─ encoder ─┬─ CTC over the LM's tokens (optional)
                                           └─ stack k frames ─ projector ─┐
    transcript ─ LM embeddings ───────────────────────────────────────────┴─ [bos] prefix <input> suffix target eos
                                                                                 └ decoder-only LM, CE on target+eos ┘

One LM serves ST (speech input), MT (the transcript as input: the text branch of the alignment losses) and optionally
ASR (speech input, transcript as target), each behind its own prompt (:mod:`salign.llm.prompt`). Only the target
tokens and the final eos are scored; the prompt, the speech frames and the transcript are context.
:meth:`SpeechLLMModel.run_branch` returns every LM layer's hidden states and where the input segment lies in the
sequence (for OT on LM layers); with an alignment module (``--align``: AI-STA's OT on chosen LM layers, or any method of
:mod:`salign.losses`, e.g. ``multi``) the forward pass hands both branches' input segments to it
(:mod:`salign.llm.align`); :meth:`SpeechLLMModel.prompt_inputs` + :meth:`SpeechLLMModel.step` decode
incrementally with the LM's key/value cache (left-padded prompts).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from espnet2.asr.ctc import CTC
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.preencoder.abs_preencoder import AbsPreEncoder
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.torch_utils.device_funcs import force_gatherable

from salign.llm.align import branch_states, segment_layers
from salign.llm.lm import AbsCausalLM, LMOutput, TinyCausalLM
from salign.llm.projector import AbsProjector, add_aux_losses, lang_extras
from salign.llm.prompt import render_all
from salign.losses.abs_align import AbsAlign, AlignBatch
from salign.utils.clock import UpdateClock
from salign.utils.espnet_model import SpeechTextModel
from salign.utils.guards import guard_nonfinite

IGNORE = -100


@dataclass
class LMBatch:
    """An assembled LM input: embeddings (B, N, D), mask (B, N), positions (B, N), next-token labels (B, N; -100 =
    not scored), and where each utterance's input segment (speech frames or transcript) starts and how long it is."""

    embeds: torch.Tensor
    mask: torch.Tensor
    position_ids: torch.Tensor
    labels: Optional[torch.Tensor]
    input_start: torch.Tensor
    input_lengths: torch.Tensor


@dataclass
class BranchOutput:
    """One branch's LM run: loss and accuracy on its targets, the LM output and the assembled batch."""

    loss: torch.Tensor
    acc: torch.Tensor
    lm_out: LMOutput
    batch: LMBatch


class SpeechLLMModel(SpeechTextModel):
    """Speech encoder + projector + causal LM, trained on ST (+ MT on transcripts, + optional ASR, CTC)."""

    def __init__(
        self,
        frontend: Optional[AbsFrontend],
        specaug: Optional[AbsSpecAug],
        normalize: Optional[AbsNormalize],
        encoder: AbsEncoder,
        projector: AbsProjector,
        lm: AbsCausalLM,
        ctc: Optional[CTC],
        src_lang: str = "en",
        tgt_lang: str = "de",
        prompts: Optional[Mapping[str, str]] = None,
        st_weight: float = 1.0,
        mt_weight: float = 0.5,
        asr_weight: float = 0.0,
        ctc_weight: float = 0.0,
        lsm_weight: float = 0.0,
        freeze_encoder: bool = False,
        extract_feats_in_collect_stats: bool = True,
        *,
        align: Optional[AbsAlign] = None,
        preencoder: Optional[AbsPreEncoder] = None,
    ) -> None:
        """Assemble the model; the arguments after ``ctc`` are ``model_conf`` in the YAML.

        Loss: ``st_weight·CE(target | prompt_st, speech) + mt_weight·CE(target | prompt_mt, transcript)
        + asr_weight·CE(transcript | prompt_asr, speech) + ctc_weight·CTC(transcript | encoder)``, each CE averaged
        over the scored tokens (target + eos). ``prompts``: per-task template overrides (see
        :mod:`salign.llm.prompt`). ``freeze_encoder``: the speech encoder's parameters are frozen and it runs
        under no-grad (a pre-trained HuBERT/Whisper encoder kept as is). ``align`` (keyword, built by the task from
        ``--align``): its weighted loss on (speech, transcript) batches is added; the model is its
        :class:`~salign.losses.abs_align.AlignHost` and counts updates for its schedules (``clock``).
        """
        super().__init__()
        if ctc_weight > 0 and ctc is None:
            raise ValueError("model_conf.ctc_weight > 0 needs a CTC head (the task builds one when it is > 0)")
        self.frontend, self.specaug, self.normalize = frontend, specaug, normalize
        self.preencoder = preencoder  # (keyword, from --preencoder: e.g. fbank frame stacking before the encoder)
        self.encoder, self.projector, self.lm, self.ctc = encoder, projector, lm, ctc
        if projector.output_size() != lm.hidden_size:
            raise ValueError(f"projector output {projector.output_size()} != LM width {lm.hidden_size}")
        self.st_weight, self.mt_weight, self.asr_weight = st_weight, mt_weight, asr_weight
        self.ctc_weight, self.lsm_weight = ctc_weight, lsm_weight
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            for p in list(encoder.parameters()) + list((frontend or torch.nn.Module()).parameters()):
                p.requires_grad_(False)
        self.extract_feats_in_collect_stats = extract_feats_in_collect_stats
        self.src_lang = src_lang  # a speech batch's language for projectors with language routing (moe)
        self.align = align
        if align is not None:  # only then: checkpoints of models without alignment keep their keys
            self.clock = UpdateClock()
            self.clock.attach(self, "clock")
        # CTC's blank is id 0: an HF tokenizer's id 0 is a real token, so its ids shift by one there
        self.ctc_shift = 0 if isinstance(lm, TinyCausalLM) else 1
        self.prompts = render_all(src_lang, tgt_lang, natural=not isinstance(lm, TinyCausalLM), overrides=prompts)
        self.prompt_ids: Dict[str, Tuple[List[int], List[int]]] = {
            task: (lm.bos_ids + lm.tokenize_prompt(p.prefix), lm.tokenize_prompt(p.suffix))
            for task, p in self.prompts.items()}

    # ------------------------------------------------------------------------------------------------ speech
    def encode_speech(self, speech: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features (+SpecAugment in training, normalisation) -> encoder output (B, T, D_enc) and lengths."""
        speech = speech[:, : lengths.max()]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            feats, flens = (self.frontend(speech, lengths) if self.frontend is not None else (speech, lengths))
            if self.specaug is not None and self.training:
                feats, flens = self.specaug(feats, flens)
            if self.normalize is not None:
                feats, flens = self.normalize(feats, flens)
            if self.preencoder is not None:
                feats, flens = self.preencoder(feats, flens)
            out, olens, _ = self.encoder(feats, flens)
        if isinstance(out, tuple):
            out = out[0]
        return out, olens

    def speech_embeds(self, enc: torch.Tensor, enc_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encoder output -> stacked, projected frames in the LM's embedding space, and their lengths."""
        return self.projector(enc, enc_lengths)

    # ------------------------------------------------------------------------------------------------ AlignHost
    def speech_input(self, enc: torch.Tensor, enc_lengths: torch.Tensor
                     ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """Encoder output -> the speech branch's LM-input segment (layer 0), its lengths, no CTC tokens."""
        emb, lens = self.speech_embeds(enc, enc_lengths)
        return emb, lens, None

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Transcript ids -> the LM's input embeddings (ids < 0 map to a valid row). ``AlignHost``."""
        return self.lm.embed(tokens.clamp(min=0))

    def text_encode(self, x_in: torch.Tensor, lengths: torch.Tensor, return_layers: bool = False
                    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """An input segment behind the MT prompt -> (its top LM states, per-block states if asked). ``AlignHost``."""
        top, layers = branch_states(self, "mt", x_in, lengths)
        return top, (layers if return_layers else [])

    def encode_branch(self, task: str, x_in: torch.Tensor, lengths: torch.Tensor
                      ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """An input segment behind ``task``'s prompt (``st`` for speech, ``mt`` for a transcript) -> (top LM
        states, per-block states) of the segment (what ``select_layers`` pools)."""
        return branch_states(self, task, x_in, lengths)

    @property
    def num_updates(self) -> int:
        """Optimizer updates so far (0 without an alignment module: nothing has a schedule then)."""
        return self.clock.num_updates if self.align is not None else 0

    # ------------------------------------------------------------------------------------------------ sequences
    def assemble(self, task: str, inputs: torch.Tensor, input_lengths: torch.Tensor,
                 targets: Optional[torch.Tensor] = None, target_lengths: Optional[torch.Tensor] = None,
                 left_pad: bool = False) -> LMBatch:
        """``[bos] prefix <inputs> suffix [targets]`` per utterance, padded (right for training, left for decoding).

        ``inputs``: (B, T, D) embeddings; ``targets``: (B, L) token ids. Labels are next-token targets: the last
        suffix position predicts ``targets[0]``, each target position the next target token, the last one eos.
        """
        prefix, suffix = self.prompt_ids[task]
        dev = inputs.device
        pre = self.lm.embed(torch.tensor(prefix, dtype=torch.long, device=dev)[None])[0].to(inputs.dtype)
        suf = self.lm.embed(torch.tensor(suffix, dtype=torch.long, device=dev)[None])[0].to(inputs.dtype)
        tgt_emb = self.lm.embed(targets).to(inputs.dtype) if targets is not None else None
        seqs, labels = [], []
        for i in range(inputs.size(0)):
            n = int(input_lengths[i])
            parts = [pre, inputs[i, :n], suf]
            lab = [torch.full((len(prefix) + n + len(suffix),), IGNORE, dtype=torch.long, device=dev)]
            if targets is not None:
                t = targets[i, : int(target_lengths[i])]
                parts.append(tgt_emb[i, : t.numel()])
                lab[0][-1:] = t[:1] if t.numel() else self.lm.eos_id
                nxt = torch.cat([t[1:], t.new_full((1,), self.lm.eos_id)]) if t.numel() else t
                lab.append(nxt)
            seqs.append(torch.cat(parts))
            labels.append(torch.cat(lab))
        lens = torch.tensor([s.size(0) for s in seqs], device=dev)
        width = int(lens.max())
        emb = inputs.new_zeros(len(seqs), width, inputs.size(-1))
        lab_out = torch.full((len(seqs), width), IGNORE, dtype=torch.long, device=dev)
        mask = torch.zeros(len(seqs), width, dtype=torch.long, device=dev)
        offset = (width - lens) if left_pad else torch.zeros_like(lens)
        for i, (s, lab) in enumerate(zip(seqs, labels)):
            o = int(offset[i])
            emb[i, o: o + s.size(0)] = s
            lab_out[i, o: o + s.size(0)] = lab
            mask[i, o: o + s.size(0)] = 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        return LMBatch(embeds=emb, mask=mask, position_ids=positions,
                       labels=lab_out if targets is not None else None,
                       input_start=offset + len(prefix), input_lengths=input_lengths.to(dev))

    def run_branch(self, task: str, inputs: torch.Tensor, input_lengths: torch.Tensor, targets: torch.Tensor,
                   target_lengths: torch.Tensor, output_hidden_states: bool = False) -> BranchOutput:
        """Teacher-forced LM run of one branch: target-only CE (label-smoothed if ``lsm_weight``) and accuracy.

        With ``output_hidden_states``, ``lm_out.hidden_states[l][i, s:s+n]`` (``s = batch.input_start[i]``,
        ``n = batch.input_lengths[i]``) are the layer-``l`` states of utterance ``i``'s speech frames or transcript.
        """
        batch = self.assemble(task, inputs, input_lengths, targets, target_lengths)
        out = self.lm(batch.embeds, batch.mask, batch.position_ids, output_hidden_states=output_hidden_states)
        scored = batch.labels != IGNORE
        logits = out.logits[scored]
        gold = batch.labels[scored]
        loss = torch.nn.functional.cross_entropy(logits.float(), gold, label_smoothing=self.lsm_weight)
        acc = (logits.argmax(-1) == gold).float().mean().detach()
        return BranchOutput(loss=loss, acc=acc, lm_out=out, batch=batch)

    # ------------------------------------------------------------------------------------------------ training
    def batch_extras(self, fields: Dict[str, Any]) -> Dict[str, Any]:
        """Optional language labels of the batch for the projector: ``lang`` (B,) / ``lang_frames`` (B, T')."""
        return lang_extras(fields)

    def compute_loss(self, text: torch.Tensor, text_lengths: torch.Tensor, speech: Optional[torch.Tensor],
                     speech_lengths: Optional[torch.Tensor], src_text: Optional[torch.Tensor],
                     src_text_lengths: Optional[torch.Tensor], lang: Optional[torch.Tensor] = None,
                     lang_frames: Optional[torch.Tensor] = None
                     ) -> Tuple[torch.Tensor, Dict[str, Optional[torch.Tensor]], torch.Tensor]:
        """Weighted multi-task loss on one batch (``forward``, ESPnet's contract, checks and trims it first).

        On speech batches the projector's auxiliary losses (:meth:`AbsProjector.aux_losses`, e.g. the MoE's routing
        losses, given ``lang``/``lang_frames`` and ``src_lang``) are added with their weights and logged."""
        stats: Dict[str, Optional[torch.Tensor]] = {}
        loss = torch.zeros((), device=text.device)
        use_align = self.align is not None and speech is not None and src_text is not None
        st = mt = None
        s_emb = s_lens = None
        if speech is not None:
            enc, enc_lens = self.encode_speech(speech, speech_lengths)
            if self.ctc is not None and src_text is not None and (self.ctc_weight > 0 or not self.training):
                loss_ctc = self.ctc(enc, enc_lens, src_text + self.ctc_shift, src_text_lengths)
                loss = loss + self.ctc_weight * loss_ctc
                stats["loss_ctc"] = loss_ctc.detach()
            s_emb, s_lens = self.speech_embeds(enc, enc_lens)
            loss = add_aux_losses(loss, stats, self.projector, lang, lang_frames, self.src_lang)
            if self.st_weight > 0 or not self.training or use_align:
                st = self.run_branch("st", s_emb, s_lens, text, text_lengths, output_hidden_states=use_align)
                if self.st_weight > 0 or not self.training:
                    loss = loss + self.st_weight * st.loss
                    stats.update(loss_st=st.loss.detach(), acc_st=st.acc, acc=st.acc)
            if src_text is not None and self.asr_weight > 0:
                asr = self.run_branch("asr", s_emb, s_lens, src_text, src_text_lengths)
                loss = loss + self.asr_weight * asr.loss
                stats.update(loss_asr=asr.loss.detach(), acc_asr=asr.acc)
        if src_text is not None and (self.mt_weight > 0 or speech is None or use_align):
            t_emb = self.lm.embed(src_text)
            mt = self.run_branch("mt", t_emb, src_text_lengths, text, text_lengths, output_hidden_states=use_align)
            if self.mt_weight > 0 or speech is None:
                loss = loss + self.mt_weight * mt.loss
                stats.update(loss_mt=mt.loss.detach(), acc_mt=mt.acc)
            if speech is None:
                stats["acc"] = mt.acc
        if use_align:
            loss_align, align_stats = self.align(self.align_batch(st, mt, src_text))
            loss = loss + loss_align
            stats["loss_align"] = loss_align.detach()
            stats.update(align_stats)
        if self.align is not None and self.training:
            self.clock.tick()
        stats["loss"] = loss.detach()
        loss, stats = guard_nonfinite(loss, stats, self.training, self.num_updates)
        loss, stats, weight = force_gatherable((loss, stats, text.size(0)), loss.device)
        return loss, stats, weight

    def align_batch(self, st: BranchOutput, mt: BranchOutput, src_text: torch.Tensor) -> AlignBatch:
        """Both branches' input segments at every LM layer, as the alignment losses read them (layer 0: LM input)."""
        s_layers = segment_layers(st.lm_out.hidden_states, st.batch.input_start, st.batch.input_lengths)
        t_layers = segment_layers(mt.lm_out.hidden_states, mt.batch.input_start, mt.batch.input_lengths)
        return AlignBatch(speech=s_layers[-1], speech_lengths=st.batch.input_lengths, text=t_layers[-1],
                          text_lengths=mt.batch.input_lengths, num_updates=self.num_updates,
                          speech_input=s_layers[0], text_tokens=src_text, speech_layers=s_layers[1:],
                          text_layers=t_layers[1:], host=self)

    def collect_feats(self, text: torch.Tensor, text_lengths: torch.Tensor, speech: Optional[torch.Tensor] = None,
                      speech_lengths: Optional[torch.Tensor] = None, **kwargs: Any) -> Dict[str, torch.Tensor]:
        """Features for ESPnet's collect-stats stage (none for text-only data)."""
        if speech is None:
            return {}
        speech = speech[:, : speech_lengths.max()]
        if self.frontend is not None:
            feats, flens = self.frontend(speech, speech_lengths)
            return {"feats": feats, "feats_lengths": flens}
        return {"feats": speech, "feats_lengths": speech_lengths}

    # ------------------------------------------------------------------------------------------------ decoding
    @torch.no_grad()
    def prompt_inputs(self, task: str, speech: Optional[torch.Tensor] = None,
                      speech_lengths: Optional[torch.Tensor] = None, src_text: Optional[torch.Tensor] = None,
                      src_text_lengths: Optional[torch.Tensor] = None) -> LMBatch:
        """Left-padded prompts (no targets) for decoding: ``st``/``asr`` from speech, ``mt`` from transcript ids."""
        if task == "mt":
            if src_text is None:
                raise ValueError("task mt needs src_text")
            return self.assemble("mt", self.lm.embed(src_text), src_text_lengths, left_pad=True)
        if speech is None:
            raise ValueError(f"task {task} needs speech")
        emb, lens = self.speech_embeds(*self.encode_speech(speech, speech_lengths))
        return self.assemble(task, emb, lens, left_pad=True)

    def step(self, batch_mask: torch.Tensor, positions: torch.Tensor, ids: Optional[torch.Tensor] = None,
             embeds: Optional[torch.Tensor] = None, cache: Any = None, output_hidden_states: bool = False
             ) -> LMOutput:
        """One incremental LM call: new ``ids`` (B, L) or ``embeds`` (B, L, D) after ``cache``.

        ``batch_mask`` (B, L_past + L) covers the cached and the new positions; ``positions`` (B, L).
        """
        if embeds is None:
            embeds = self.lm.embed(ids)
        return self.lm(embeds, batch_mask, positions, past_key_values=cache, use_cache=True,
                       output_hidden_states=output_hidden_states)

    @torch.no_grad()
    def greedy_search(self, prompt: LMBatch, max_len: int = 50) -> List[List[int]]:
        """Greedy decoding with the KV cache from :meth:`prompt_inputs` (reference for the batched beam search)."""
        out = self.step(prompt.mask, prompt.position_ids, embeds=prompt.embeds)
        mask, pos = prompt.mask, prompt.position_ids[:, -1:]
        hyps: List[List[int]] = [[] for _ in range(mask.size(0))]
        done = torch.zeros(mask.size(0), dtype=torch.bool, device=mask.device)
        for _ in range(max_len):
            nxt = out.logits[:, -1].argmax(-1)
            for i in range(len(hyps)):
                if not done[i] and int(nxt[i]) != self.lm.eos_id:
                    hyps[i].append(int(nxt[i]))
            done |= nxt == self.lm.eos_id
            if bool(done.all()):
                break
            mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], dim=1)
            pos = pos + 1
            out = self.step(mask, pos, ids=nxt[:, None], cache=out.past_key_values)
        return hyps
