"""The unified S-Align model: one network for speech translation (ST), machine translation (MT) and ASR.

Data flow (see ``docs/method.md``)::

    speech ─ frontend/normalize ─ A-enc ─┬─ CTC over the source vocabulary (ASR)
                                         └─ CTC shrink ─ adapter (Linear+LN) ─┐
    transcript ─ sqrt(d)·E[x] ────────────────────────────────────────────────┴─ + positions ─ T-enc ─ decoder
                                                      (shared layers)              top outputs ─ alignment (--align)

The same class trains on text-only batches (MT pre-training: ``src_text`` + ``text``, no ``speech``) and on
speech/transcript/translation triples (multi-task fine-tuning), so an MT-pretrained checkpoint loads into the ST model
parameter for parameter. ``encode`` follows ESPnet's contract, so ``espnet2.bin.st_inference.Speech2Text`` decodes it.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from espnet.nets.pytorch_backend.nets_utils import th_accuracy
from espnet.nets.pytorch_backend.transformer.add_sos_eos import add_sos_eos
from espnet.nets.pytorch_backend.transformer.label_smoothing_loss import LabelSmoothingLoss
from espnet2.asr.ctc import CTC
from espnet2.asr.decoder.abs_decoder import AbsDecoder
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.preencoder.abs_preencoder import AbsPreEncoder
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.torch_utils.device_funcs import force_gatherable
from typeguard import typechecked

from salign.llm.projector import AbsProjector, add_aux_losses, lang_extras
from salign.losses.abs_align import AbsAlign, AlignBatch
from salign.st.shrink import ctc_shrink, frame_tokens
from salign.utils.clock import UpdateClock
from salign.utils.espnet_model import SpeechTextModel
from salign.utils.guards import guard_nonfinite
from salign.utils.tensor import length_mask


class SinusoidalPositions(torch.nn.Module):
    """Adds sinusoidal positions (no input scaling: callers scale their inputs), then dropout."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.dim = dim
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) -> (B, T, D)."""
        pos = torch.arange(x.size(1), device=x.device, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, self.dim, 2, device=x.device, dtype=torch.float32)
                        * (-math.log(10000.0) / self.dim))
        pe = torch.zeros(x.size(1), self.dim, device=x.device)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        return self.dropout(x + pe.to(x.dtype).unsqueeze(0))


class SAlignSTModel(SpeechTextModel):
    """A-enc + CTC + shrink + shared T-enc + shared decoder, with an optional alignment module.

    Implements :class:`salign.losses.abs_align.AlignHost` (``text_encode``, ``embed_tokens``) for its alignment
    module, and counts updates with an :class:`~salign.utils.clock.UpdateClock` (``clock``; the task sets its
    ``accum_grad``).
    """

    @typechecked
    def __init__(
        self,
        vocab_size: int,
        token_list: List[str],
        src_vocab_size: int,
        src_token_list: List[str],
        frontend: Optional[AbsFrontend],
        specaug: Optional[AbsSpecAug],
        normalize: Optional[AbsNormalize],
        preencoder: Optional[AbsPreEncoder],
        encoder: AbsEncoder,
        text_encoder: AbsEncoder,
        decoder: AbsDecoder,
        ctc: CTC,
        align: Optional[AbsAlign],
        st_ctc: Optional[CTC],
        adapter: Optional[AbsProjector] = None,
        st_weight: float = 0.7,
        asr_weight: float = 0.3,
        mt_weight: float = 0.5,
        st_ctc_weight: float = 0.0,
        lsm_weight: float = 0.2,
        length_normalized_loss: bool = False,
        shrink: bool = True,
        shrink_sample: bool = True,
        tie_embeddings: bool = True,
        tie_ctc: bool = True,
        input_dropout: float = 0.1,
        st_start: int = 0,
        asr_task_weight: float = 0.0,
        asr_stop: int = 0,
        shrink_start: int = 0,
        freeze_encoder_updates: int = 0,
        ignore_id: int = -1,
        sym_blank: str = "<blank>",
        sym_sos: str = "<sos/eos>",
        sym_eos: str = "<sos/eos>",
        extract_feats_in_collect_stats: bool = True,
        src_lang: Optional[str] = None,
    ) -> None:
        """Assemble the model; the arguments after ``st_ctc`` are ``model_conf`` in the YAML.

        Loss (method.md, official values in ``conf/train_st_salign.yaml``)::

            L_ST  = st_weight·CE(target | speech) + asr_weight·CTC(transcript | speech)     from update st_start
            L_ASR = asr_task_weight·CTC(transcript | speech)                                until asr_stop (0: never)
            L_MT  = mt_weight·CE(target | transcript)
            + st_ctc_weight·CTC(target | speech) + the alignment module's own weighted loss

        ``shrink_start``: update from which CTC shrink is applied (before it, in training and validation alike, the
        textual encoder sees every acoustic frame). ``freeze_encoder_updates``: the acoustic front end (frontend,
        pre-encoder, encoder) runs under no-grad (frozen, its forward paid once) for that many updates.
        Updates are counted from 0: the first optimizer step's micro-batches all see update 0.

        ``adapter`` (``--speech_adapter moe``): a projector with routing between A-enc and T-enc, on every A-enc frame
        before the CTC shrink (stack 1; it replaces the Linear adapter), whose auxiliary losses (language, balance)
        are added on speech batches; ``src_lang`` names a speech batch's language group when the batch carries no
        ``lang``/``lang_frames`` labels.
        """
        super().__init__()
        dim = text_encoder.output_size()
        self.dim = dim
        self.vocab_size, self.src_vocab_size = vocab_size, src_vocab_size
        self.token_list, self.src_token_list = list(token_list), list(src_token_list)
        self.joint_vocab = self.token_list == self.src_token_list
        self.sos = self.eos = token_list.index(sym_sos) if sym_sos in token_list else vocab_size - 1
        self.src_sos = self.src_eos = (src_token_list.index(sym_sos) if sym_sos in src_token_list
                                       else src_vocab_size - 1)
        self.blank_id = src_token_list.index(sym_blank) if sym_blank in src_token_list else 0
        self.ignore_id = ignore_id
        self.st_weight, self.asr_weight, self.mt_weight = st_weight, asr_weight, mt_weight
        self.st_ctc_weight = st_ctc_weight
        self.shrink, self.shrink_sample = shrink, shrink_sample
        for name, value in (("st_start", st_start), ("asr_stop", asr_stop), ("shrink_start", shrink_start),
                            ("freeze_encoder_updates", freeze_encoder_updates)):
            if value < 0:
                raise ValueError(f"model_conf.{name} must be >= 0 updates, got {value}")
        self.st_start, self.asr_stop, self.asr_task_weight = st_start, asr_stop, asr_task_weight
        self.shrink_start, self.freeze_encoder_updates = shrink_start, freeze_encoder_updates
        self.extract_feats_in_collect_stats = extract_feats_in_collect_stats
        # attributes espnet2.bin.st_inference.Speech2Text reads
        self.use_multidecoder = False
        self.use_speech_attn = False
        self.st_use_transducer_decoder = False

        self.frontend, self.specaug, self.normalize = frontend, specaug, normalize
        self.preencoder, self.encoder = preencoder, encoder
        self.ctc = ctc
        self.st_ctc = st_ctc
        self.text_encoder = text_encoder
        self.decoder = decoder
        self.align = align

        self.src_embed = torch.nn.Embedding(src_vocab_size, dim)
        torch.nn.init.normal_(self.src_embed.weight, mean=0.0, std=dim ** -0.5)
        self.positions = SinusoidalPositions(dim, input_dropout)
        a_dim = encoder.output_size()
        self.adapter, self.src_lang = adapter, src_lang
        if adapter is not None and (adapter.stack != 1 or adapter.output_size() != dim):
            raise ValueError(f"speech_adapter_conf: the adapter between A-enc and T-enc needs stack 1 and output {dim} "
                             f"(got stack {adapter.stack}, output {adapter.output_size()})")
        self.speech_proj = (torch.nn.Linear(a_dim, dim) if a_dim != dim and adapter is None
                            else torch.nn.Identity())
        self.speech_norm = torch.nn.LayerNorm(dim)

        if tie_embeddings:
            if not self.joint_vocab:
                raise ValueError("model_conf.tie_embeddings needs a joint vocabulary (token_list == src_token_list); "
                                 "use one --token_list for both, or set model_conf.tie_embeddings: false")
            emb, out = getattr(decoder, "embed", None), getattr(decoder, "output_layer", None)
            if not (isinstance(emb, torch.nn.Sequential) and isinstance(emb[0], torch.nn.Embedding)
                    and isinstance(out, torch.nn.Linear)):
                raise ValueError("model_conf.tie_embeddings needs a decoder with an embedding input layer and an "
                                 "output layer (e.g. --decoder transformer); set tie_embeddings: false otherwise")
            emb[0].weight = self.src_embed.weight
            out.weight = self.src_embed.weight
        if tie_ctc:
            if a_dim != dim:
                raise ValueError(f"model_conf.tie_ctc needs encoder output_size ({a_dim}) == text_encoder "
                                 f"output_size ({dim}); set tie_ctc: false or make them equal")
            self.ctc.ctc_lo.weight = self.src_embed.weight

        self.criterion = LabelSmoothingLoss(size=vocab_size, padding_idx=ignore_id, smoothing=lsm_weight,
                                            normalize_length=length_normalized_loss)
        # the update clock of every schedule (checkpoint key `forward_count`, as before it was an object)
        self.clock = UpdateClock()
        self.clock.attach(self, "clock")

    # ------------------------------------------------------------------------------------------------ schedules
    @property
    def asr_only(self) -> bool:
        """True for an ASR pre-training config (no ST, MT, ST-CTC, alignment or adapter): a speech batch then runs
        the acoustic encoder and its CTC only."""
        return (self.st_weight == 0 and self.mt_weight == 0 and self.st_ctc_weight == 0 and self.align is None
                and self.adapter is None)

    @property
    def num_updates(self) -> int:
        """Optimizer updates so far (``clock.num_updates``: training forward passes // accum_grad)."""
        return self.clock.num_updates

    def ctc_weight_at(self, u: int) -> float:
        """Weight of CTC(transcript | speech) at update ``u``: L_ST's share from ``st_start``, L_ASR's until
        ``asr_stop``."""
        w = self.asr_weight if u >= self.st_start else 0.0
        if self.asr_stop <= 0 or u < self.asr_stop:
            w += self.asr_task_weight
        return w

    # ------------------------------------------------------------------------------------------------ encoders
    def _extract_feats(self, speech: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        speech = speech[:, : lengths.max()]
        if self.frontend is not None:
            return self.frontend(speech, lengths)
        return speech, lengths

    def encoder_frozen(self) -> bool:
        """True while the acoustic front end is frozen (training, fewer than ``freeze_encoder_updates`` updates)."""
        return self.training and self.num_updates < self.freeze_encoder_updates

    def shrink_active(self) -> bool:
        """True when CTC shrink applies now (``shrink`` on and at least ``shrink_start`` updates done)."""
        return self.shrink and self.num_updates >= self.shrink_start

    def encode_speech(self, speech: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Acoustic encoder: features (+SpecAugment in training, normalisation) -> A-enc output.

        While :meth:`encoder_frozen`, the front end runs under no-grad (no activations kept for backward). An encoder
        with a ``backbone_frozen()`` context (e.g. ``hubert``: its pre-trained model frozen, its projection to the
        model width trained, as the official code) decides itself which part is frozen.
        """
        if not self.encoder_frozen():
            return self._encode_speech(speech, lengths)
        if hasattr(self.encoder, "backbone_frozen") and self.frontend is None and self.preencoder is None:
            with self.encoder.backbone_frozen():
                return self._encode_speech(speech, lengths)
        with torch.no_grad():
            return self._encode_speech(speech, lengths)

    def _encode_speech(self, speech: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with _no_autocast(speech.device.type):
            feats, flens = self._extract_feats(speech, lengths)
            if self.specaug is not None and self.training:
                feats, flens = self.specaug(feats.clone(), flens)
            if self.normalize is not None:
                # ESPnet's GlobalMVN/UtteranceMVN normalise in place when no gradient is needed: normalise a copy, so
                # a caller's tensor (e.g. ESPnet's Speech2Text decoding the same features twice) is never changed
                feats, flens = self.normalize(feats if feats.requires_grad else feats.clone(), flens)
        if self.preencoder is not None:
            feats, flens = self.preencoder(feats, flens)
        out, olens, _ = self.encoder(feats, flens)
        if isinstance(out, tuple):
            out = out[0]
        return out, olens

    def speech_input(self, aenc: torch.Tensor, alens: torch.Tensor
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A-enc output -> textual-encoder input of the speech branch, its lengths and CTC tokens per position."""
        log_probs = self.ctc.log_softmax(aenc)
        tokens = frame_tokens(log_probs.detach(), sample=self.training and self.shrink_sample)
        x = self.adapter(aenc, alens)[0] if self.adapter is not None else aenc
        if self.shrink_active():
            feats, lengths, tokens = ctc_shrink(x, alens, tokens)
        else:
            feats, lengths = x, alens
            tokens = tokens.masked_fill(~length_mask(alens, aenc.size(1)), -1)
        return self.speech_norm(self.speech_proj(feats)), lengths, tokens

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """``sqrt(d)·E[tokens]`` (padding ids < 0 map to the blank row; callers mask by length). ``AlignHost``."""
        return self.src_embed(tokens.clamp(min=0)) * math.sqrt(self.dim)

    def text_encode(self, x_in: torch.Tensor, lengths: torch.Tensor, return_layers: bool = False
                    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Shared textual encoder on an input sequence (either branch); returns (top output, per-layer outputs).

        ``x_in`` is the textual-encoder input before positions. ``AlignHost``.
        """
        out, _, _ = self.text_encoder(self.positions(x_in), lengths, return_all_hs=return_layers)
        layers: List[torch.Tensor] = []
        if isinstance(out, tuple):
            out, layers = out[0], list(out[1])
        return out, layers

    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor, return_int_enc: bool = False):
        """ST encoder as ESPnet's ``Speech2Text`` expects: speech -> T-enc output (+ A-enc output if asked)."""
        aenc, alens = self.encode_speech(speech, speech_lengths)
        x_in, lengths, _ = self.speech_input(aenc, alens)
        out, _ = self.text_encode(x_in, lengths)
        if return_int_enc:
            return out, lengths, aenc, alens
        return out, lengths

    def encode_text(self, src_text: torch.Tensor, src_text_lengths: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """MT encoder: transcript token ids -> T-enc output."""
        out, _ = self.text_encode(self.embed_tokens(src_text), src_text_lengths)
        return out, src_text_lengths

    # ------------------------------------------------------------------------------------------------ losses
    def decoder_loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, ys: torch.Tensor, ys_lens: torch.Tensor
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Label-smoothed cross-entropy of the shared decoder and its token accuracy."""
        ys_in, ys_out = add_sos_eos(ys, self.sos, self.eos, self.ignore_id)
        logits, _ = self.decoder(enc, enc_lens, ys_in, ys_lens + 1)
        loss = self.criterion(logits, ys_out)
        acc = th_accuracy(logits.view(-1, self.vocab_size), ys_out, ignore_label=self.ignore_id)
        return loss, torch.tensor(acc, device=loss.device)

    def batch_extras(self, fields: Dict[str, Any]) -> Dict[str, Any]:
        """Optional language labels for the adapter's language loss: ``lang`` (B,) / ``lang_frames`` (B, T_aenc)."""
        return lang_extras(fields)

    def compute_loss(self, text: torch.Tensor, text_lengths: torch.Tensor, speech: Optional[torch.Tensor],
                     speech_lengths: Optional[torch.Tensor], src_text: Optional[torch.Tensor],
                     src_text_lengths: Optional[torch.Tensor], lang: Optional[torch.Tensor] = None,
                     lang_frames: Optional[torch.Tensor] = None
                     ) -> Tuple[torch.Tensor, Dict[str, Optional[torch.Tensor]], torch.Tensor]:
        """Multi-task loss on one batch (``forward``, ESPnet's contract, checks and trims it first)."""
        u = self.num_updates  # updates done before this one (the clock moves at the end of a training forward)
        st_on = u >= self.st_start
        stats: Dict[str, Optional[torch.Tensor]] = {}
        loss = text.new_zeros((), dtype=torch.float32)
        need_layers = self.align is not None and self.align.needs_layers

        s_out = s_lens = s_in = s_tok = None
        s_layers: List[torch.Tensor] = []
        if speech is not None:
            aenc, alens = self.encode_speech(speech, speech_lengths)
            ctc_w = self.ctc_weight_at(u)
            validating_asr = not self.training and self.asr_weight + self.asr_task_weight > 0
            if src_text is not None and (ctc_w > 0 or validating_asr):
                loss_asr = self.ctc(aenc, alens, src_text, src_text_lengths)
                loss = loss + ctc_w * loss_asr
                stats["loss_asr"] = loss_asr.detach()
        # ASR pre-training: nothing reads the textual encoder's speech output
        if speech is not None and not self.asr_only:
            s_in, s_lens, s_tok = self.speech_input(aenc, alens)
            if self.adapter is not None:
                loss = add_aux_losses(loss, stats, self.adapter, lang, lang_frames, self.src_lang)
            s_out, s_layers = self.text_encode(s_in, s_lens, need_layers)
            if self.st_weight > 0 and (st_on or not self.training):
                loss_st, acc_st = self.decoder_loss(s_out, s_lens, text, text_lengths)
                if st_on:
                    loss = loss + self.st_weight * loss_st
                # `acc` selects and averages checkpoints: always the ST accuracy, 0 while the ST loss is off (a
                # checkpoint whose ST path was never trained must not win on its MT-pretrained accuracy)
                stats.update(loss_st=loss_st.detach(), acc_st=acc_st, acc=acc_st if st_on else acc_st.new_zeros(()))
            elif self.st_weight > 0:
                stats["acc"] = loss.new_zeros(())
            if self.st_ctc is not None and self.st_ctc_weight > 0:
                loss_st_ctc = self.st_ctc(s_out, s_lens, text, text_lengths)
                loss = loss + self.st_ctc_weight * loss_st_ctc
                stats["loss_st_ctc"] = loss_st_ctc.detach()
            stats["shrink_ratio"] = (s_lens.sum() / alens.sum().clamp(min=1)).detach().float()

        t_out = None
        t_layers: List[torch.Tensor] = []
        use_align = self.align is not None and s_out is not None and src_text is not None
        if src_text is not None and (self.mt_weight > 0 or use_align):
            t_out, t_layers = self.text_encode(self.embed_tokens(src_text), src_text_lengths, need_layers)
            if self.mt_weight > 0:
                loss_mt, acc_mt = self.decoder_loss(t_out, src_text_lengths, text, text_lengths)
                loss = loss + self.mt_weight * loss_mt
                stats.update(loss_mt=loss_mt.detach(), acc_mt=acc_mt)
                if speech is None:  # MT-only batch (MT pre-training): its accuracy is the MT one
                    stats["acc"] = acc_mt

        if use_align:
            batch = AlignBatch(speech=s_out, speech_lengths=s_lens, text=t_out, text_lengths=src_text_lengths,
                               num_updates=u, speech_input=s_in, speech_tokens=s_tok, text_tokens=src_text,
                               speech_layers=s_layers, text_layers=t_layers, host=self, blank_id=self.blank_id)
            loss_align, align_stats = self.align(batch)
            loss = loss + loss_align
            stats["loss_align"] = loss_align.detach()
            stats.update(align_stats)

        if self.training:
            self.clock.tick()
        stats["loss"] = loss.detach()
        # a non-finite term: one WARNING naming it, stat nonfinite_skip, and no update from the batch
        loss, stats = guard_nonfinite(loss, stats, self.training, u)
        batch_size = text.size(0)
        loss, stats, weight = force_gatherable((loss, stats, batch_size), loss.device)
        return loss, stats, weight

    def collect_feats(self, text: torch.Tensor, text_lengths: torch.Tensor, speech: Optional[torch.Tensor] = None,
                      speech_lengths: Optional[torch.Tensor] = None, **kwargs) -> Dict[str, torch.Tensor]:
        """Features for ESPnet's collect-stats stage (none for text-only data)."""
        if speech is None:
            return {}
        feats, flens = self._extract_feats(speech, speech_lengths)
        return {"feats": feats, "feats_lengths": flens}


@contextmanager
def _no_autocast(device_type: str) -> Iterator[None]:
    """Feature extraction and normalisation stay in float32 under AMP."""
    if device_type == "cuda":
        with torch.autocast("cuda", enabled=False):
            yield
    else:
        yield
